"""Budget rows: the one module that writes them.

Every write to the budgets table is a function here, named for what it means, with the condition
that guards it beside it. The workflow's tasks, the monitor, the usage calculator's repository and
the CLI call these; they read rows themselves. A transition's audit line
(storage.audit_rows) is written after the row, and only when the row's write won.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from budgetkeeper.budgets.rules import DEFAULT_BUDGET_WINDOWS, ENFORCING, Level, Status, is_manual_window
from budgetkeeper.budgets.targets import Target
from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.storage.audit_rows import Change, write_audit, write_operator_audit
from budgetkeeper.storage.conditional import won
from budgetkeeper.storage.tables import SWEEP_DUE, BudgetItem, budget_key, index_kind


class BudgetExists(Exception):
    """A budget was created meanwhile (by a call or another operator)."""


class BudgetGone(Exception):
    """The budget was deleted meanwhile."""


class BudgetEnforcing(Exception):
    """The budget started a suspension meanwhile: it is not deleted."""


def _next_revision() -> Any:
    """revision + 1; a default budget the usage calculator created has none stored: it reads as 1."""
    return BudgetItem.revision.set((BudgetItem.revision | 1) + 1)


def _indexed_by_operator(item: BudgetItem) -> list[Any]:
    """Actions that put a budget an operator now changes or protects into the KindIndex, where the
    operators' views read it (storage.readers)."""
    kind = index_kind(item.scope, item.window, by_operator=True)
    if kind is None:
        return []
    return [BudgetItem.kind.set(kind), BudgetItem.kind_key.set(budget_key(item.scope, item.window))]


def _is_enforcing() -> Any:
    """The row is on its way to, or in, a suspension."""
    return BudgetItem.status.is_in(*sorted(str(status) for status in ENFORCING))


# ----------------------------------------------------------------------------- creating


def create_budget(scope: str, window: str, values: dict[str, Any], what: str, change: Change) -> BudgetItem:
    """An operator's new budget with the values given (None: follow the tunables)."""
    item = BudgetItem(
        scope,
        window,
        origin="explicit",
        created_at=change.at_iso,
        updated_at=change.at_iso,
        **{name: value for name, value in values.items() if value is not None},
    )
    if not won(item.save, condition=BudgetItem.scope.does_not_exist()):
        raise BudgetExists(f"{scope} {window}")
    write_operator_audit(scope, window, "-", item.status, what, change)
    return item


# The usage calculator's writes to budget rows name only these attributes and ask nothing back:
# IAM lets its role write nothing else (template.yaml, dynamodb:Attributes), so the role that
# parses log content cannot move a budget's status, protection or limit.
CALCULATOR_ATTRIBUTES = ("scope", "window", "origin", "created_at", "updated_at", "sweep", "sweep_key")


def _calculator_update(scope: str, window: str, actions: list[Any], condition: Any) -> None:
    BudgetItem._get_connection().update_item(
        scope, window, actions=actions, condition=condition, return_values="NONE"
    )


def create_default_budgets(scope: str, now_iso: str) -> list[BudgetItem]:
    """The default budgets of a principal seen for the first time.

    They have no limit of their own, so they follow the default limits an operator sets in SSM; the
    attributes not written read as their defaults (status ok, revision 1). One created meanwhile
    (by an operator or a concurrent batch) stands.
    """
    items = []
    for window in DEFAULT_BUDGET_WINDOWS:
        item = BudgetItem(scope, window, origin="default", created_at=now_iso, updated_at=now_iso)
        fields = (BudgetItem.origin, BudgetItem.created_at, BudgetItem.updated_at)
        if not won(
            _calculator_update,
            scope,
            window,
            [field.set(getattr(item, field.attr_name)) for field in fields],
            BudgetItem.scope.does_not_exist(),
        ):
            item = BudgetItem.get(scope, window, consistent_read=True)
        items.append(item)
    return items


# ----------------------------------------------------------------------------- the monitor's sweep


def mark_due(budgets: Iterable[tuple[str, str]]) -> None:
    """Put existing budgets in the monitor's sparse index (SWEEP_DUE)."""
    for scope, window in sorted(budgets):
        _calculator_update(
            scope,
            window,
            [BudgetItem.sweep.set(SWEEP_DUE), BudgetItem.sweep_key.set(budget_key(scope, window))],
            BudgetItem.scope.exists(),
        )


def clear_due(item: BudgetItem) -> bool:
    """Take an ok budget out of the sweep; False if a run moved its status meanwhile."""
    return won(
        item.update,
        actions=[BudgetItem.sweep.remove(), BudgetItem.sweep_key.remove()],
        condition=(BudgetItem.status == str(Status.OK)) | BudgetItem.status.does_not_exist(),
    )


def reset_for_new_window(item: BudgetItem, window_id: str) -> bool:
    """A warning or critical status of another window: ok in `window_id`, unless a run moved it."""
    if item.status not in (Status.WARNING, Status.CRITICAL) or item.status_window_id == window_id:
        return False
    return won(
        item.update,
        actions=[BudgetItem.status.set(str(Status.OK)), BudgetItem.status_window_id.set(window_id)],
        condition=(BudgetItem.status == item.status) & (BudgetItem.status_window_id == item.status_window_id),
    )


# ----------------------------------------------------------------------------- the workflow's transitions


def _unchanged(item: BudgetItem) -> Any:
    """The fields a decision reads are as `item` holds them (absent attributes read as defaults)."""
    condition = None
    for attribute, value, default in (
        (BudgetItem.revision, item.revision, 1),
        (BudgetItem.status, item.status, str(Status.OK)),
        (BudgetItem.notified_level, item.notified_level, 0),
    ):
        same = attribute == value
        clause = (same | attribute.does_not_exist()) if value == default else same
        condition = clause if condition is None else condition & clause
    for attribute, value in (
        (BudgetItem.notified_window_id, item.notified_window_id),
        (BudgetItem.forecast_window_id, item.forecast_window_id),
    ):
        condition &= attribute.does_not_exist() if value is None else attribute == value
    return condition


def record_notified(
    item: BudgetItem,
    *,
    window_id: str,
    level: Level,
    forecast: bool,
    to_status: Status | None,
    change: Change,
) -> bool:
    """An evaluation's outcome: the level (or this window's forecast) notified, and the status it
    moves the budget to, written only if the budget is still as it was read.

    False when another run changed it meanwhile: the caller evaluates afresh. Two runs evaluating
    one budget at once never both notify or start a grace period.
    """
    from_status = item.status
    if forecast:
        actions = [BudgetItem.forecast_window_id.set(window_id)]
    else:
        actions = [
            BudgetItem.notified_window_id.set(window_id),
            BudgetItem.notified_revision.set(item.revision),
            BudgetItem.notified_level.set(int(level)),
        ]
    if to_status is not None:
        actions += [
            BudgetItem.status.set(str(to_status)),
            BudgetItem.status_window_id.set(window_id),
            BudgetItem.sweep.set(SWEEP_DUE),
            BudgetItem.sweep_key.set(budget_key(item.scope, item.window)),
            BudgetItem.updated_at.set(change.at_iso),
        ]
        if to_status == Status.GRACE:
            actions.append(BudgetItem.execution_arn.set(change.execution_arn))
    if not won(item.update, actions=actions, condition=_unchanged(item)):
        return False
    if to_status is not None:
        write_audit(item.scope, item.window, from_status, item.status, change)
    return True


def _leave_grace(item: BudgetItem, to_status: Status, change: Change) -> bool:
    if item.status != Status.GRACE:
        return False
    if not won(
        item.update,
        actions=[BudgetItem.status.set(str(to_status)), BudgetItem.execution_arn.remove()],
        condition=BudgetItem.status == str(Status.GRACE),
    ):
        return False
    write_audit(item.scope, item.window, Status.GRACE, to_status, change)
    return True


def stand_down(item: BudgetItem, to_status: Status, change: Change) -> bool:
    """After the grace period the suspension is called off: grace -> the level spend is at now."""
    return _leave_grace(item, to_status, change)


def recover_from_grace(item: BudgetItem, change: Change) -> bool:
    """The run that put this budget in grace ended without suspending it (it failed): back to
    critical, with the exceeded level no longer counted as notified, so a new run enforces it."""
    if item.status != Status.GRACE:
        return False
    if is_manual_window(item.window):  # an operator's suspension whose run died before it applied
        return drop_manual_reservation(item.scope, item.window, change)
    if not won(
        item.update,
        actions=[
            BudgetItem.status.set(str(Status.CRITICAL)),
            BudgetItem.notified_level.set(int(Level.CRITICAL)),
            BudgetItem.execution_arn.remove(),
            BudgetItem.updated_at.set(change.at_iso),
        ],
        condition=(BudgetItem.status == str(Status.GRACE))
        & (
            BudgetItem.execution_arn == item.execution_arn
            if item.execution_arn
            else BudgetItem.execution_arn.does_not_exist()
        ),
    ):
        return False
    write_audit(item.scope, item.window, Status.GRACE, Status.CRITICAL, change)
    return True


def record_cannot_suspend(item: BudgetItem, change: Change) -> bool:
    """Every deny fell back to an alert: nothing is suspended, the budget stays critical."""
    return _leave_grace(item, Status.CRITICAL, change)


def record_suspended(
    item: BudgetItem, *, target: Target, until: str | None, window_id: str | None, change: Change
) -> BudgetItem:
    """The deny is attached (or, in dry run, would be): the budget is suspended until `until`."""
    return _write_suspension(item, Status(item.status), target, until, window_id, change)


def reserve_manual_suspension(scope: str, window: str, change: Change) -> bool:
    """Reserve the row of an operator's suspension (`window`: `manual` or `manual#<hold>`) for the
    run in `change`, before its denies are applied: in grace, marked due (the monitor drops it if
    the run dies). False if another suspension holds that row."""
    item = BudgetItem(
        scope,
        window,
        origin="manual",
        created_at=change.at_iso,
        updated_at=change.at_iso,
        status=str(Status.GRACE),
        execution_arn=change.execution_arn,
        sweep=SWEEP_DUE,
        sweep_key=budget_key(scope, window),
    )
    return won(item.save, condition=BudgetItem.scope.does_not_exist() | _run_holds(change))


def _run_holds(change: Change) -> Any:
    """The row is reserved by the run making this change."""
    return (BudgetItem.status == str(Status.GRACE)) & (BudgetItem.execution_arn == change.execution_arn)


def drop_manual_reservation(scope: str, window: str, change: Change) -> bool:
    """The run that reserved an operator's suspension row applied nothing (it failed, or nothing
    could be denied): the row goes; False if it is not this run's reservation (any more)."""
    if not won(BudgetItem(scope, window).delete, condition=_run_holds(change)):
        return False
    write_audit(scope, window, Status.GRACE, "-", replace(change, reason="nothing was suspended"))
    return True


def record_manual_suspension(
    scope: str, window: str, *, target: Target, until: str | None, change: Change
) -> BudgetItem:
    """An operator's suspension: the row this run reserved (`reserve_manual_suspension`), beside
    the scope's budgets and its other suspensions, never a budget."""
    item = BudgetItem(scope, window, origin="manual", created_at=change.at_iso)
    condition = _run_holds(change) | (
        (BudgetItem.status == str(Status.SUSPENDED)) & (BudgetItem.execution_arn == change.execution_arn)
    )
    return _write_suspension(item, Status.OK, target, until, None, change, condition=condition)


def _write_suspension(
    item: BudgetItem,
    from_status: Status,
    target: Target,
    until: str | None,
    window_id: str | None,
    change: Change,
    *,
    condition: Any = None,
) -> BudgetItem:
    item.status = str(Status.SUSPENDED)
    item.status_window_id = window_id
    item.suspended_until = until
    item.suspended_by = change.actor
    item.suspended_reason = change.reason
    item.target_kind, item.target_name = str(target.kind), target.name
    item.target_sessions = list(target.sessions) or None
    item.execution_arn = change.execution_arn
    item.sweep, item.sweep_key = SWEEP_DUE, budget_key(item.scope, item.window)
    item.updated_at = change.at_iso
    item.save(condition=condition)
    write_audit(item.scope, item.window, from_status, Status.SUSPENDED, change)
    return item


def claim_for_restore(item: BudgetItem) -> bool:
    """Mark a suspended (or grace) row as being restored by this run; False if another run restored it."""
    if item.status == Status.RESTORING:
        return True  # this step is running again
    if item.status not in (Status.SUSPENDED, Status.GRACE):
        return False
    return won(
        item.update,
        actions=[
            BudgetItem.status.set(str(Status.RESTORING)),
            # When the claim was made: a restore that died after it is finished by the monitor.
            BudgetItem.updated_at.set(iso_utc(clock.now())),
        ],
        condition=BudgetItem.status == item.status,
    )


def record_restored(item: BudgetItem, *, baseline_usd: Decimal, change: Change) -> bool:
    """The suspension is over: the budget is ok again, and only spend beyond `baseline_usd` (spent
    so far in its window) suspends it again. A manual suspension's row goes. False if the row
    was not on its way to or in a suspension (restored meanwhile)."""
    if item.status not in ENFORCING:
        return False
    # `restoring` is this run's own claim: the transition people see is from suspended.
    from_status = Status.SUSPENDED if item.status == Status.RESTORING else Status(item.status)
    if is_manual_window(item.window):
        restored = won(item.delete, condition=_is_enforcing())
    else:
        restored = won(
            item.update,
            actions=[
                BudgetItem.status.set(str(Status.OK)),
                _next_revision(),
                BudgetItem.baseline_usd.set(baseline_usd),
                BudgetItem.baseline_window_id.set(item.status_window_id),
                BudgetItem.suspended_until.remove(),
                BudgetItem.execution_arn.remove(),
                BudgetItem.sweep.remove(),
                BudgetItem.sweep_key.remove(),
                BudgetItem.updated_at.set(change.at_iso),
            ],
            condition=_is_enforcing(),
        )
    if not restored:
        return False
    write_audit(item.scope, item.window, from_status, Status.OK, change)
    return True


def set_protection(item: BudgetItem, protect: bool, change: Change) -> bool:
    """Protect a budget (alerts only, never a suspension) or lift that; False if it was deleted."""
    actions = [
        BudgetItem.protected.set(protect),
        BudgetItem.protected_by.set(change.actor),
        BudgetItem.protected_reason.set(change.reason or "unprotected"),
        *(_indexed_by_operator(item) if protect else []),
    ]
    if not protect and not is_manual_window(item.window):
        # A new revision, marked due: an overspend that protection let pass is enforced on the
        # monitor's next sweep (or the next metered call), not forgotten for the window.
        actions += [
            _next_revision(),
            BudgetItem.sweep.set(SWEEP_DUE),
            BudgetItem.sweep_key.set(budget_key(item.scope, item.window)),
        ]
    if not won(item.update, actions=actions, condition=BudgetItem.scope.exists()):
        return False
    label = "protected" if protect else "unprotected"
    write_audit(item.scope, item.window, item.status, f"{item.status} ({label})", change)
    return True


# ----------------------------------------------------------------------------- operators' edits


def change_budget(item: BudgetItem, changed: dict[str, Any], what: str, change: Change) -> str:
    """Set the values in `changed` (field name to new value) on an existing budget.

    A new limit starts a new revision: spend that crossed the old limit can warn and suspend
    again under the new one. Returns `what` with the revision change, as the audit line says it.
    """
    revision = int(item.revision)
    actions: list[Any] = [getattr(BudgetItem, name).set(value) for name, value in changed.items()]
    limit_changed = "limit_usd" in changed
    if limit_changed:
        actions.append(_next_revision())
    if item.origin != "explicit":
        actions += [BudgetItem.origin.set("explicit"), *_indexed_by_operator(item)]
    actions.append(BudgetItem.updated_at.set(change.at_iso))
    if not won(item.update, actions=actions, condition=BudgetItem.scope.exists()):
        raise BudgetGone(f"{item.scope} {item.window}")
    summary = what + (f", revision {revision} -> {item.revision}" if limit_changed else "")
    write_operator_audit(
        item.scope, item.window, item.status, item.status, f"budget changed: {summary}", change
    )
    return summary


def delete_budget(item: BudgetItem, change: Change) -> None:
    """Delete a budget that is not on its way to or in a suspension (its deny would have no row)."""
    status = item.status
    if not won(item.delete, condition=~_is_enforcing()):
        raise BudgetEnforcing(f"{item.scope} {item.window}")
    write_operator_audit(item.scope, item.window, status, "deleted", "budget deleted", change)


# ----------------------------------------------------------------------------- one-off backfill


def index_operator_budgets() -> list[str]:
    """Put into the KindIndex the operators' budgets written before it held them (weekly and days:N
    budgets from before the index, daily and monthly ones from before `<kind>#set`): a one-off scan
    of the budgets table (`budgetkeeper budget reindex`). Returns the keys it indexed."""
    indexed = []
    for item in BudgetItem.scan():
        kind = index_kind(item.scope, item.window, by_operator=item.by_operator)
        key = budget_key(item.scope, item.window)
        if kind is None or (item.kind, item.kind_key) == (kind, key):
            continue
        if won(
            item.update,
            actions=[BudgetItem.kind.set(kind), BudgetItem.kind_key.set(key)],
            condition=BudgetItem.scope.exists(),
        ):  # else deleted meanwhile
            indexed.append(key)
    return sorted(indexed)
