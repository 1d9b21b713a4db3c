"""Setting a budget: the values an operator gives, checked, and the audited create or change.

`budget set` and the console's budget form call `budget_values` and `set_budget`: one set of checks,
one set of messages.
"""

from __future__ import annotations

import argparse
from typing import Any

from budgetkeeper.budgets.rules import ENFORCING, Status
from budgetkeeper.core import clock
from budgetkeeper.domain.scopes import ScopeKind, parse_scope
from budgetkeeper.storage import budget_rows
from budgetkeeper.storage.audit_rows import Change
from budgetkeeper.storage.budget_rows import BudgetExists, BudgetGone
from budgetkeeper.storage.tables import BudgetItem
from budgetkeeper_cli import options
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.stack_config import Stack
from budgetkeeper_cli.views import (
    DEFAULTABLE,
    budget_items,
)


def budget_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values given, checked; None for the ones not given."""
    return {
        "limit_usd": options.limit_usd(args.limit) if args.limit is not None else None,
        "time_zone": options.time_zone(args.time_zone) if args.time_zone is not None else None,
        "warning_percent": options.percent(args.warning_percent, "--warning-percent")
        if args.warning_percent is not None
        else None,
        "critical_percent": options.percent(args.critical_percent, "--critical-percent")
        if args.critical_percent is not None
        else None,
        "grace_seconds": options.duration_seconds(args.grace, "--grace") if args.grace is not None else None,
        "owner_email": options.email(args.owner) if args.owner is not None else None,
        "language": options.language(args.language) if args.language is not None else None,
        "dry_run": args.dry_run,
    }


LABELS = {
    "limit_usd": "limit",
    "time_zone": "time zone",
    "warning_percent": "warning",
    "critical_percent": "critical",
    "grace_seconds": "grace",
    "owner_email": "owner",
    "language": "language",
    "dry_run": "dry run",
}


def shown_value(name: str, value: Any) -> str:
    if value is None:
        return "default" if name in DEFAULTABLE else "none"
    if name == "limit_usd":
        return f"{value} USD"
    if name in ("warning_percent", "critical_percent"):
        return f"{value}%"
    if name == "grace_seconds":
        return options.duration_text(int(value))
    return str(value)


def set_budget(
    stack: Stack, scope: str, window: str | None, values: dict[str, Any], reason: str | None
) -> tuple[str, str | None]:
    """Create a budget or change the values given (`budget_values`), audited with the caller as the
    actor: (what was done, a note for the operator or None). `budget set` and the console call it."""
    if values["warning_percent"] is not None and values["critical_percent"] is not None:
        options.thresholds(values["warning_percent"], values["critical_percent"])
    window = window or only_window(scope, "set")
    tunables = stack.tunables()
    try:
        item: BudgetItem | None = BudgetItem.get(scope, window, consistent_read=True)
    except BudgetItem.DoesNotExist:
        item = None
    # The thresholds the budget will have, given ones over stored ones over the tunables.
    warning = _first(values["warning_percent"], item and item.warning_percent, tunables.warning_percent)
    critical = _first(values["critical_percent"], item and item.critical_percent, tunables.critical_percent)
    options.thresholds(warning, critical)
    change = Change(actor=stack.caller_arn(), at=clock.now(), reason=reason)
    if item is None:
        if values["limit_usd"] is None:
            raise UsageError(
                f"{scope} has no {window} budget yet: a new budget needs --limit, e.g. --limit 25"
            )
        return _create(scope, window, values, change), None
    return _update(item, values, change)


def _first(*values: Any) -> Any:
    return next(value for value in values if value is not None and value != "")


def _create(scope: str, window: str, values: dict[str, Any], change: Change) -> str:
    given = ", ".join(
        f"{LABELS[name]} {shown_value(name, value)}" for name, value in values.items() if value is not None
    )
    try:
        budget_rows.create_budget(scope, window, values, f"budget created: {given}", change)
    except BudgetExists:
        raise CommandFailed(
            f"{scope} {window} was created meanwhile (by a call or another operator): "
            "run the command again to change it"
        ) from None
    return f"{scope} {window}: budget created ({given}), revision 1"


def _update(item: BudgetItem, values: dict[str, Any], change: Change) -> tuple[str, str | None]:
    scope, window = item.scope, item.window
    changed: dict[str, Any] = {}
    changes: list[str] = []
    for name, value in values.items():
        current = getattr(item, name)
        if value is None or value == current:
            continue
        changed[name] = value
        changes.append(f"{LABELS[name]} {shown_value(name, current)} -> {shown_value(name, value)}")
    if not changed:
        return f"{scope} {window}: nothing to change (revision {item.revision})", None
    try:
        summary = budget_rows.change_budget(item, changed, ", ".join(changes), change)
    except BudgetGone:
        raise CommandFailed(f"{scope} {window} was deleted meanwhile: nothing changed") from None
    note = None
    if item.status in ENFORCING and "limit_usd" in changed:
        note = f"{scope} {window} is {item.status}: " + (
            "the suspension stands down after the grace period if spend is below the new limit"
            if item.status == Status.GRACE
            else f"a new limit does not lift it; run: budgetkeeper restore {scope} --window {window} "
            "--reason '...'"
        )
    return f"{scope} {window}: {summary}", note


def only_window(scope: str, action: str) -> str:
    """The window of a scope's only budget, when the operator did not name one."""
    windows = [item.window for item in budget_items(scope)]
    if len(windows) == 1:
        return windows[0]
    if not windows:
        raise UsageError(
            f"{scope} has no budget yet: say which window, e.g. budget {action} {scope} --window daily"
        )
    raise UsageError(
        f"{scope} has budgets for {', '.join(windows)}: say which one, e.g. --window {windows[0]}"
    )


# What a budget on a principal IAM does not have means, said by `budget set` and the console.
MISSING_MEANS = "a budget on it would see no spend and deny no one"
# Scopes that name one IAM principal, which IAM has or not.
PRINCIPAL_KINDS = frozenset({ScopeKind.USER, ScopeKind.APIKEY, ScopeKind.ROLE, ScopeKind.SESSION})


def missing_principal(stack: Stack, scope: str, window: str | None) -> str | None:
    """For a new budget on a user, API key, role or session: what IAM does not have, if anything
    (a budget on a principal that does not exist is most often a typo; it may also come first)."""
    from budgetkeeper.enforcement.principals import why_not_suspendable

    if parse_scope(scope).kind not in PRINCIPAL_KINDS:
        return None
    if any(window in (None, item.window) for item in BudgetItem.query(scope, consistent_read=True)):
        return None  # a change to a budget that exists: its principal was checked when it was set
    why_not = why_not_suspendable(stack.client("iam"), scope)
    return why_not.partition(": ")[2] if why_not else None
