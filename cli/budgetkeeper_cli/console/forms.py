"""The console's forms read as the CLI's options: the same checks and the same messages."""

from __future__ import annotations

import argparse
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
