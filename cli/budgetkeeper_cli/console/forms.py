"""The console's forms read as the CLI's options: the same checks and the same messages."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from budgetkeeper_cli import options
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.operator_runs import ACTIONS, ActionRequest


def action_request(form: Any) -> ActionRequest:
    action = form.get("action", "")
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}")
    return ActionRequest.parse(
        action,
        form.get("scope", ""),
        form.get("reason"),
        window=form.get("window"),
        duration=form.get("duration"),
    )


# The confirmation's field that sets a budget on a principal IAM does not have (--allow-missing).
ALLOW_MISSING = "allow_missing"


def budget_args(form: Any) -> argparse.Namespace:
    """The form of `budget set` as its options: the same checks and the same messages."""

    def given(name: str) -> str | None:
        return (form.get(name) or "").strip() or None

    dry_run = given("dry_run")
    return argparse.Namespace(
        scope=options.scope(form.get("scope", "")),
        window=options.window(given("window")) if given("window") else None,
        limit=given("limit"),
        time_zone=given("time_zone"),
        warning_percent=given("warning_percent"),
        critical_percent=given("critical_percent"),
        grace=given("grace"),
        owner=given("owner"),
        language=given("language"),
        dry_run=None if dry_run is None else dry_run == "yes",
    )


# The CLI's option names in messages, as the console's forms label the same fields.
_CONSOLE_WORDS = (
    ("--warning-percent", "warning %"),
    ("--critical-percent", "critical %"),
    ("--limit", "limit USD"),
    ("--window", "window"),
    ("--for", "for"),
    ("--grace", "grace"),
    ("--owner", "owner"),
    ("--language", "language"),
    ("--time-zone", "time zone"),
    ("--reason", "reason"),
    ("--since", "since"),
    ("--until", "until"),
    ("type e.g.", "e.g."),
)


def console_words(message: str) -> str:
    """A CLI message in the console's words: the field names of its forms, not option flags."""
    for flag, field in _CONSOLE_WORDS:
        message = message.replace(flag, field)
    return message


def date_presets(now: datetime) -> list[tuple[str, str, str]]:
    """(label, since, until) of the date presets: today, the last 7 days, this month, last month."""
    today = now.astimezone(UTC).date()
    first = today.replace(day=1)
    last_month_end = first - timedelta(days=1)
    return [
        ("today", today.isoformat(), today.isoformat()),
        ("7 days", (today - timedelta(days=6)).isoformat(), today.isoformat()),
        ("this month", first.isoformat(), today.isoformat()),
        ("last month", last_month_end.replace(day=1).isoformat(), last_month_end.isoformat()),
    ]
