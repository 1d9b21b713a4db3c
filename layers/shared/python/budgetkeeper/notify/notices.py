"""From a budget event to the notice people read: which template, which words, who reads it.

Pure: no AWS here. The notifier (budgetkeeper.notify.notifier) resolves owners and delivers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from budgetkeeper.budgets.rules import is_manual_window
from budgetkeeper.enforcement.runs import SYSTEM_ACTOR
from budgetkeeper.notify import NotificationEvent

# Notices a budget's owner gets by e-mail (when an owner can be found); operators get every notice.
OWNER_NOTICES = frozenset(
    {
        "forecast",
        "warning",
        "critical",
        "grace",
        "suspended",
        "manual_suspension",
        "restored",
        "stood_down",
        "protected_alert",
        "late_spend",
    }
)
# Notices that page operators: the SMS subscription of the operators' topic filters on this.
URGENT_NOTICES = frozenset(
    {
        "grace",
        "suspended",
        "manual_suspension",
        "cannot_suspend",
        "protected_alert",
        "workflow_failed",
        "notification_failed",
        "member_account_unreachable",
    }
)


@dataclass(frozen=True, slots=True)
class Notice:
    """What to render for one event: the template, its variables, and the transition it announces."""

    template: str
    context: dict[str, Any]
    key: str  # the same for every delivery of one transition (a retried task publishes it again)
    urgent: bool = False  # sent by SMS too (the operators' topic's `urgency` attribute)


def template_for(event: NotificationEvent) -> str:
    if event.type == "suspended" and is_manual_window(event.window):
        return "manual_suspension"
    return event.type


def restore_cause(event: NotificationEvent) -> str | None:
    """Why access came back: the window refreshed, a manual suspension ended, or an operator acted."""
    if event.type != "restored":
        return None
    if event.actor == SYSTEM_ACTOR:
        return "until" if is_manual_window(event.window) else "refresh"
    return "operator" if is_manual_window(event.window) else "emergency"


def transition_key(event: NotificationEvent) -> str:
    """One transition, however many times it is published.

    A task Step Functions retries after its event was published publishes it again with a later
    `at`; the run, the budget and the kind of transition identify it (the daily summary: its day).
    Events from outside a run and any window (the reconciler's) are told apart by their time.
    """
    parts = [event.type, event.scope, event.window, event.window_id, event.execution, event.actor]
    if not event.execution and not event.window_id:
        parts.append(event.at)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:32]


def money(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return f"USD {Decimal(value):,.2f}"
    except InvalidOperation:
        return value


def percent(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        return value
    return str(number.quantize(Decimal(1))) if number == number.to_integral() or number >= 10 else str(number)


def moment(value: str | None) -> str | None:
    """An ISO time as people read it: `2026-06-11 00:00 UTC`."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return parsed.strftime("%Y-%m-%d %H:%M UTC")


def notice_for(
    event: NotificationEvent,
    *,
    contact: str | None = None,
    failed_channel: str | None = None,
    summary: dict[str, Any] | None = None,
) -> Notice:
    """The template and variables for one event. `actor` is shown only when a person acted."""
    template = template_for(event)
    actor = None if event.actor == SYSTEM_ACTOR else event.actor
    context = {
        "scope": event.scope,
        "window": None if is_manual_window(event.window) else event.window,
        "spent": money(event.spent_usd),
        "billed": money(event.billed_usd),
        "limit": money(event.limit_usd),
        "percent": percent(event.percent),
        "window_end": moment(event.refresh_at),
        "actor": actor,
        "reason": event.reason,
        "note": event.note,
        "execution": event.execution,
        "dry_run": event.dry_run,
        "cause": restore_cause(event),
        "contact": contact,
        "failed_channel": failed_channel,
        "summary": summary,
        "day": event.window_id if summary else None,
    }
    urgent = template in URGENT_NOTICES and not event.routine
    return Notice(template=template, context=context, key=transition_key(event), urgent=urgent)
