"""From a budget event to the notice people read: which template, which words, who reads it.

Pure: no AWS here. The notifier (budgetkeeper.notify.notifier) resolves owners and delivers.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Any

from budgetkeeper.budgets.rules import MANUAL_WINDOW, is_manual_window
from budgetkeeper.core.actors import (
    BATCH_JOBS_ACTOR,
    BILLING_ACTOR,
    MONITOR_ACTOR,
    PRICE_REFRESH_ACTOR,
    SYSTEM_ACTOR,
)
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

# Notices that name what drove the spend (the scope's costliest model and app in the window).
DRIVEN_NOTICES = frozenset({"forecast", "warning", "critical", "grace", "suspended", "protected_alert"})
# Notices of a suspension an operator can end (or of a grace period before one).
RESTORABLE_NOTICES = frozenset({"grace", "suspended", "manual_suspension"})
# Actors that are Budgetkeeper itself: their reasons are its own words, not a person's (a notice
# words a run's reason from its fields, an operator alert's from its causes).
AUTOMATIC_ACTORS = frozenset(
    {SYSTEM_ACTOR, MONITOR_ACTOR, PRICE_REFRESH_ACTOR, BILLING_ACTOR, BATCH_JOBS_ACTOR}
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


def run_id(execution: str | None) -> str | None:
    """The run's name, shortened: `warning-3f2a9c1d`, never a whole execution ARN."""
    if not execution:
        return None
    name = execution.rsplit(":", 1)[-1]
    prefix, _, digest = name.rpartition("-")
    return f"{prefix}-{digest[:8]}" if prefix and len(digest) > 8 else name[:40]


def restore_command(event: NotificationEvent, template: str) -> str | None:
    """The operator's command that ends this suspension (or the grace period before it)."""
    if template not in RESTORABLE_NOTICES or event.dry_run:
        return None
    window = MANUAL_WINDOW if is_manual_window(event.window) else event.window
    return (
        f"budgetkeeper restore {shlex.quote(event.scope)} --window {shlex.quote(str(window))} --reason '...'"
    )


def person_reason(event: NotificationEvent) -> str | None:
    """The reason, when a person wrote it; a run's own reasons are told by the notice's fields."""
    return None if event.actor in AUTOMATIC_ACTORS else event.reason


def notice_for(
    event: NotificationEvent,
    *,
    contact: str | None = None,
    failed_channel: str | None = None,
    summary: dict[str, Any] | None = None,
    operator: bool = False,
    console_url: str | None = None,
) -> Notice:
    """The template and variables for one event. `actor` is shown only when a person acted.

    Amounts, times and windows stay raw here: the renderer words them in the reader's language.
    Operators get the command that restores; owners the command that shows their own spend.
    """
    template = template_for(event)
    actor = None if event.actor == SYSTEM_ACTOR else event.actor
    context = {
        "scope": event.scope,
        "window": None if is_manual_window(event.window) else event.window,
        "spent": event.spent_usd,
        "billed": event.billed_usd,
        "limit": event.limit_usd,
        "percent": event.percent,
        "projected": event.projected_usd,
        "crosses_at": event.crosses_at,
        "suspend_at": event.suspend_at,
        "top_model": event.top_model,
        "top_model_spent": event.top_model_usd,
        "top_app": event.top_app,
        "top_app_spent": event.top_app_usd,
        "top_app_hours": event.top_app_hours,
        "window_end": event.refresh_at,
        "actor": actor,
        "reason": person_reason(event),
        "causes": event.causes,
        # Details for operators (which IAM entity, which error), in the words of the step that wrote them.
        "note": event.note if operator or template not in OWNER_NOTICES else None,
        "run_id": run_id(event.execution),
        "restore_command": restore_command(event, template) if operator else None,
        "self_service": None if operator or template not in OWNER_NOTICES else "budgetkeeper me",
        "console_url": console_url or None,
        "dry_run": event.dry_run,
        "cause": restore_cause(event),
        "contact": contact,
        "failed_channel": failed_channel,
        "summary": summary,
        "day": event.window_id if summary else None,
    }
    urgent = template in URGENT_NOTICES and not event.routine
    return Notice(template=template, context=context, key=transition_key(event), urgent=urgent)
