"""The scheduled budget monitor: the backstop behind the usage calculator's events.

It reads only budgets marked due in the sparse SweepIndex (near or over a threshold, suspended,
or marked by the calculator when a batch crossed one), so its cost grows with those and not with
every budget. For each it:
- starts the evaluation a crossing calls for, under the same run name the calculator uses, so a
  crossing handled already is not handled twice;
- starts a restore for a suspension whose end has passed with no run waiting for it;
- resets a warning or critical status when its window has rolled over;
- warns ahead when the recent burn rate projects spend over the limit by the window's end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal

import boto3

from budgetkeeper.budgets import MANUAL_WINDOW, Budget, Level
from budgetkeeper.enforcement import Status, execution_name
from budgetkeeper.publisher import ThresholdCrossed
from budgetkeeper.settings import Settings, Tunables
from budgetkeeper.store import SWEEP_DUE, BudgetItem, RollupItem, bind_tables, budget_key, spent_in_window
from budgetkeeper.windows import iso_utc
from budgetkeeper.workflow import WorkflowStarter, evaluation_name, evaluation_request

MONITOR_ACTOR = "budgetkeeper-monitor"
# A suspension's end plus this much with no run waiting for it is overdue.
OVERDUE_AFTER = timedelta(minutes=2)
BURN_RATE_HOURS = 3


@dataclass(slots=True)
class SweepReport:
    budgets: int = 0
    evaluations: list[str] = field(default_factory=list)
    restores: list[str] = field(default_factory=list)
    rolled_over: list[str] = field(default_factory=list)
    forecasts: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)


def recent_burn_per_hour(scope: str, now: datetime, hours: int = BURN_RATE_HOURS) -> Decimal:
    """Spend per hour over the last `hours` full UTC hours, from the scope's hourly rollups."""
    end = now.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours)
    low, high = start.strftime("%Y-%m-%dT%H"), end.strftime("%Y-%m-%dT%H")
    # Buckets are "<hour>#<model>#<region>": between(low, high) takes the hours low to high - 1.
    rollups = RollupItem.query(scope, RollupItem.bucket.between(low, high))
    return sum((item.cost_usd for item in rollups), Decimal(0)) / hours


def sweep(
    *,
    now: datetime,
    tunables: Tunables,
    starter: WorkflowStarter,
    is_running: Callable[[str], bool],
) -> SweepReport:
    report = SweepReport()
    for item in BudgetItem.sweep_index.query(SWEEP_DUE):
        report.budgets += 1
        label = budget_key(item.scope, item.window)
        if item.status == Status.SUSPENDED:
            if _overdue(item, now) and not (item.execution_arn and is_running(item.execution_arn)):
                _start_restore(starter, item, now)
                report.restores.append(label)
            continue
        if item.window == MANUAL_WINDOW or item.status in (Status.GRACE, Status.RESTORING):
            continue
        budget = Budget.resolve(item, tunables)
        span = budget.span_at(now)
        if item.status in (Status.WARNING, Status.CRITICAL) and item.status_window_id != span.window_id:
            item.update(
                actions=[
                    BudgetItem.status.set(str(Status.OK)),
                    BudgetItem.status_window_id.set(span.window_id),
                ]
            )
            report.rolled_over.append(label)
        spent = spent_in_window(item.scope, item.window, span.window_id)
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
            starter.start(evaluation_name(event), {**evaluation_request(event), "actor": MONITOR_ACTOR})
            report.evaluations.append(label)
            continue
        if level < Level.EXCEEDED and item.forecast_window_id != span.window_id:
            projected = spent + recent_burn_per_hour(item.scope, now) * Decimal(
                (span.end - now).total_seconds() / 3600
            )
            if projected >= budget.limit_usd:
                forecast = replace(event, forecast=True)
                request = {
                    **evaluation_request(forecast),
                    "actor": MONITOR_ACTOR,
                    "reason": f"projected {projected.quantize(Decimal('0.01'))} USD by {iso_utc(span.end)}",
                }
                starter.start(evaluation_name(forecast), request)
                report.forecasts.append(label)
                continue
        if item.status == Status.OK and level == Level.OK:
            item.update(actions=[BudgetItem.sweep.remove(), BudgetItem.sweep_key.remove()])
            report.cleared.append(label)
    return report


def _overdue(item: BudgetItem, now: datetime) -> bool:
    if not item.suspended_until:
        return False  # a manual suspension with no end: only a restore ends it
    return datetime.fromisoformat(item.suspended_until) + OVERDUE_AFTER <= now


def _start_restore(starter: WorkflowStarter, item: BudgetItem, now: datetime) -> None:
    request = {
        "action": "restore",
        "scope": item.scope,
        "window": item.window,
        "actor": MONITOR_ACTOR,
        "reason": f"suspension ended at {item.suspended_until} with no run waiting to restore it",
    }
    starter.start(
        execution_name("restore", item.scope, item.window, item.suspended_until, item.revision), request
    )


def build_sweep(settings: Settings, tunables: Tunables) -> Callable[[datetime], SweepReport]:
    """Wire the sweep to DynamoDB and Step Functions."""
    bind_tables(settings)
    sfn = boto3.client("stepfunctions", region_name=settings.region)
    starter = WorkflowStarter(sfn, settings.state_machine_arn)

    def is_running(execution_arn: str) -> bool:
        try:
            return sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"
        except sfn.exceptions.ExecutionDoesNotExist:
            return False

    return lambda now: sweep(now=now, tunables=tunables, starter=starter, is_running=is_running)
