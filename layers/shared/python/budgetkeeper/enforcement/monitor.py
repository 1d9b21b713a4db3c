"""The scheduled budget monitor: the backstop behind the usage calculator's events.

It reads only budgets marked due in the sparse SweepIndex (near or over a threshold, suspended,
or marked by the calculator when a batch crossed one), so its cost grows with those and not with
every budget. For each it:
- starts the evaluation a crossing calls for, under the same run name the calculator uses, so a
  crossing handled already is not handled twice;
- starts a restore for a suspension whose end has passed with no run waiting for it;
- resets a warning or critical status when its window has rolled over;
- warns ahead when the recent burn rate projects spend over the limit by the window's end;
- recovers a budget whose run died half way: in grace with no run left (back to critical, then
  enforced by a new run), or restoring for longer than a restore takes (restored by a new run).
It starts evaluation-machine runs only, and never invokes the DenyFunction: that reconciles IAM
with the deny records on its own schedule (README, "Who may start what").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3

from budgetkeeper.budgets.rules import Budget, Level, Status, forecast_spend, is_manual_window
from budgetkeeper.core.actors import MONITOR_ACTOR
from budgetkeeper.core.money import cents
from budgetkeeper.core.settings import Settings
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.enforcement.runs import (
    ThresholdCrossed,
    WorkflowStarter,
    due_restore_request,
    evaluation_request,
)
from budgetkeeper.storage import budget_rows
from budgetkeeper.storage.audit_rows import Change
from budgetkeeper.storage.readers import due_budget_rows, spent_in_hours, spent_in_windows
from budgetkeeper.storage.tables import BudgetItem, bind_tables, budget_key

# A suspension's end plus this much with no run waiting for it is overdue.
OVERDUE_AFTER = timedelta(minutes=2)
# A restore claims its rows, releases the denies and records: far less than this when it works.
RESTORING_STUCK_AFTER = timedelta(minutes=10)
BURN_RATE_HOURS = 3


@dataclass(slots=True)
class SweepReport:
    budgets: int = 0
    evaluations: list[str] = field(default_factory=list)
    restores: list[str] = field(default_factory=list)
    rolled_over: list[str] = field(default_factory=list)
    forecasts: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)


def _recent_burn_per_hour(scope: str, now: datetime, hours: int = BURN_RATE_HOURS) -> Decimal:
    """Spend per hour over the last `hours` full UTC hours, from the scope's hourly rollups: the
    rate budgets.forecast_spend projects with."""
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours)
    low, high = start.strftime("%Y-%m-%dT%H"), end.strftime("%Y-%m-%dT%H")
    return spent_in_hours(scope, low, high) / hours


def sweep(
    *,
    now: datetime,
    tunables: Tunables,
    starter: WorkflowStarter,
    is_running: Callable[[str], bool],
) -> SweepReport:
    report = SweepReport()
    due = due_budget_rows()
    # Every total a due budget may be evaluated on, read together: 100 a request, not one each.
    spent_by_window = spent_in_windows(
        _current_window(item, tunables, now) for item in due if _evaluable(item)
    )
    for item in due:
        report.budgets += 1
        label = budget_key(item.scope, item.window)
        if item.status in (Status.SUSPENDED, Status.RESTORING):
            restore = _due_restore(item, now, is_running)
            if restore is not None:
                starter.start(*restore)
                report.restores.append(label)
            continue
        if item.status == Status.GRACE:
            if item.execution_arn and is_running(item.execution_arn):
                continue
            change = Change(
                actor=MONITOR_ACTOR,
                at=now,
                reason="the run that started the grace period ended without suspending",
                execution_arn=item.execution_arn,
            )
            if not budget_rows.recover_from_grace(item, change):
                continue
            report.recovered.append(label)
            if is_manual_window(item.window):
                continue  # its row is gone: the run applied nothing
            item.refresh(consistent_read=True)
        if is_manual_window(item.window):
            continue
        budget = Budget.resolve(item, tunables)
        span = budget.span_at(now)
        if budget_rows.reset_for_new_window(item, span.window_id):
            report.rolled_over.append(label)
        spent = spent_by_window.get((item.scope, item.window, span.window_id), Decimal(0))
        level = budget.level_of(spent)
        notified = Level(item.notified_level_in(span.window_id))
        event = ThresholdCrossed(
            scope=item.scope,
            window=item.window,
            window_id=span.window_id,
            level=level.label,
            forecast=False,
            spent_usd=spent,
            limit_usd=budget.limit_usd,
            percent=budget.percent_of(spent),
            window_end=iso_utc(span.end),
            revision=int(item.revision),
            closed_window=False,
        )
        if level > notified:
            starter.start(*evaluation_request(event, actor=MONITOR_ACTOR))
            report.evaluations.append(label)
            continue
        if level < Level.EXCEEDED and item.forecast_window_id != span.window_id:
            burn = _recent_burn_per_hour(item.scope, now)
            projected = forecast_spend(spent, span, now, recent_burn_per_hour=burn)
            if projected is not None and projected >= budget.limit_usd:
                reason = f"projected {cents(projected)} by {iso_utc(span.end)}"
                starter.start(
                    *evaluation_request(
                        replace(event, forecast=True),
                        actor=MONITOR_ACTOR,
                        reason=reason,
                        projected_usd=projected,
                    )
                )
                report.forecasts.append(label)
                continue
        if item.status == Status.OK and level == Level.OK and budget_rows.clear_due(item):
            report.cleared.append(label)
    return report


def _due_restore(
    item: BudgetItem, now: datetime, is_running: Callable[[str], bool]
) -> tuple[str, dict[str, Any]] | None:
    """The restore run a suspended or restoring budget calls for now, if any: a suspension past its
    end with no run waiting for it, or a restore that claimed the budget and did not finish."""
    if item.status == Status.SUSPENDED:
        if _overdue(item, now) and not (item.execution_arn and is_running(item.execution_arn)):
            return due_restore_request(
                item.scope,
                item.window,
                reason=f"suspension ended at {item.suspended_until}, no run waiting to restore it",
                occasion=(item.suspended_until, item.revision),
            )
        return None
    if _restoring_too_long(item, now):
        return due_restore_request(
            item.scope,
            item.window,
            reason=f"a restore claimed it at {item.updated_at} and did not finish",
            occasion=("restoring", item.updated_at),
        )
    return None


def _evaluable(item: BudgetItem) -> bool:
    """Whether the sweep may compare this budget's spend with its limit (see `sweep`)."""
    return not is_manual_window(item.window) and item.status not in (Status.SUSPENDED, Status.RESTORING)


def _current_window(item: BudgetItem, tunables: Tunables, now: datetime) -> tuple[str, str, str]:
    return item.scope, item.window, Budget.resolve(item, tunables).span_at(now).window_id


def _restoring_too_long(item: BudgetItem, now: datetime) -> bool:
    claimed_at = datetime.fromisoformat(item.updated_at) if item.updated_at else None
    return claimed_at is None or claimed_at + RESTORING_STUCK_AFTER <= now


def _overdue(item: BudgetItem, now: datetime) -> bool:
    if not item.suspended_until:
        return False  # a manual suspension with no end: only a restore ends it
    return datetime.fromisoformat(item.suspended_until) + OVERDUE_AFTER <= now


def build_sweep(settings: Settings, tunables: Tunables) -> Callable[[datetime], SweepReport]:
    """Wire the sweep to DynamoDB and the evaluation state machine."""
    bind_tables(settings)
    sfn = boto3.client("stepfunctions", region_name=settings.region)
    starter = WorkflowStarter(sfn, settings.evaluation_machine_arn)

    def is_running(execution_arn: str) -> bool:
        try:
            return sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
        except sfn.exceptions.ExecutionDoesNotExist:
            return False

    return lambda now: sweep(now=now, tunables=tunables, starter=starter, is_running=is_running)
