"""Budgets, their spend and their audit lines as rows for `budget`, `status` and `audit`.

Reads only: budgets and audit lines through the pynamodb models, the spend of a budget's current
window from the totals table (what the usage calculator keeps, the figure the workflow decides on).
Every row is a mapping of plain values for `budgetkeeper_cli.rendering`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.budgets.rules import ENFORCING, Budget, Level, Status, forecast_spend, is_manual_window
from budgetkeeper.core import money
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.core.windows import WindowSpan, iso_utc
from budgetkeeper.storage.audit_rows import audit_at
from budgetkeeper.storage.tables import AuditItem, BudgetItem, TotalItem, budget_key
from budgetkeeper_cli.options import duration_text
from budgetkeeper_cli.rendering import Column

# Budget fields that follow the deployment's tunables when the budget leaves them unset.
DEFAULTABLE: tuple[str, ...] = (
    "limit_usd",
    "time_zone",
    "warning_percent",
    "critical_percent",
    "grace_seconds",
    "dry_run",
)


def _percent(value: Any) -> str:
    return f"{value}%"


def _execution_name(arn: str) -> str:
    return arn.rsplit(":", 1)[-1]


# ----------------------------------------------------------------------------- budgets


def defaults_of(item: BudgetItem) -> list[str]:
    """The fields of a stored budget that follow the tunables (unset on the item)."""
    return [name for name in DEFAULTABLE if getattr(item, name) in (None, "")]


def budget_items(scope: str | None = None) -> list[BudgetItem]:
    """Budgets of one scope (a query) or of every scope (a scan), by scope and window; no manual rows."""
    items = BudgetItem.query(scope, consistent_read=True) if scope else BudgetItem.scan()
    return sorted(
        (item for item in items if not is_manual_window(item.window)),
        key=lambda item: (item.scope, item.window),
    )


def budget_row(item: BudgetItem, tunables: Tunables) -> dict[str, Any]:
    budget = Budget.resolve(item, tunables)
    return {
        "scope": item.scope,
        "window": item.window,
        "limit_usd": budget.limit_usd,
        "time_zone": budget.time_zone,
        "warning_percent": budget.warning_percent,
        "critical_percent": budget.critical_percent,
        "grace_seconds": budget.grace_seconds,
        "dry_run": budget.dry_run,
        "defaults": defaults_of(item),
        "protected": budget.protected,
        "protected_by": item.protected_by if budget.protected else None,
        "protected_reason": item.protected_reason if budget.protected else None,
        "owner_email": item.owner_email,
        "language": item.language,
        "status": item.status,
        "revision": int(item.revision),
        "origin": item.origin,
        "created_at": item.created_at,
        "updated_at": item.updated_at,
    }


BUDGET_COLUMNS: tuple[Column, ...] = (
    Column("scope"),
    Column("window"),
    Column("limit_usd", "limit", numeric=True, show=money.cents),
    Column("warning_percent", "warn", numeric=True, show=_percent),
    Column("critical_percent", "crit", numeric=True, show=_percent),
    Column("grace_seconds", "grace", numeric=True, show=duration_text),
    Column("time_zone", "time zone"),
    Column("dry_run", "dry run"),
    Column("defaults", "from defaults"),
    Column("protected"),
    Column("protected_by", "protected by"),
    Column("protected_reason", "protected why"),
    Column("owner_email", "owner"),
    Column("language"),
    Column("status"),
    Column("revision", numeric=True),
    Column("origin"),
    Column("created_at", "created"),
    Column("updated_at", "updated"),
)
# The list table: the columns people compare across budgets; csv and json keep every column.
LIST_TABLE_KEYS = (
    "scope",
    "window",
    "limit_usd",
    "warning_percent",
    "critical_percent",
    "grace_seconds",
    "time_zone",
    "dry_run",
    "protected",
    "status",
    "owner_email",
    "defaults",
)


def columns(all_columns: Sequence[Column], keys: Iterable[str]) -> list[Column]:
    by_key = {column.key: column for column in all_columns}
    return [by_key[key] for key in keys]


def budget_details(row: dict[str, Any]) -> list[tuple[str, str]]:
    """One budget as `name  value` lines, values that follow the tunables marked `(default)`."""
    defaults = set(row["defaults"])
    pairs = []
    for column in BUDGET_COLUMNS:
        if column.key == "defaults":
            continue
        text = column.text(row[column.key])
        if column.key in defaults:
            text += "  (default)"
        pairs.append((column.heading, text))
    return pairs


# ----------------------------------------------------------------------------- spend and status


@dataclass(frozen=True, slots=True)
class BudgetState:
    """A budget (or an operator's suspension) now: its window, spend, level and enforcement state."""

    item: BudgetItem
    budget: Budget | None  # None for an operator's suspension (the manual row): no limit, no window
    span: WindowSpan | None
    spent: Decimal | None
    level: Level | None
    at: datetime | None = None  # the moment whose window this is

    @property
    def status(self) -> str:
        """The status to show: a warning or critical status of a window that has since rolled over
        is over (the workflow only moves it at the next batch); a suspension stands until restored."""
        return str(Status.OK) if self.rolled_over else str(self.item.status)

    @property
    def rolled_over(self) -> bool:
        item, span = self.item, self.span
        return (
            span is not None
            and item.status not in ENFORCING
            and item.status != Status.OK
            and item.status_window_id is not None
            and item.status_window_id != span.window_id
        )

    @property
    def is_enforcing(self) -> bool:
        return self.item.status in ENFORCING

    @property
    def needs_attention(self) -> bool:
        """At or over its warning threshold, or on its way to or in a suspension."""
        return self.is_enforcing or (self.level is not None and self.level >= Level.WARNING)


def budget_states(items: Iterable[BudgetItem], tunables: Tunables, now: datetime) -> list[BudgetState]:
    """Each budget with the spend of the window `now` falls in, read in one batch."""
    pending: list[tuple[BudgetItem, Budget | None, WindowSpan | None]] = []
    for item in items:
        if is_manual_window(item.window):
            pending.append((item, None, None))
            continue
        resolved = Budget.resolve(item, tunables)
        pending.append((item, resolved, resolved.span_at(now)))
    # One BatchGetItem per scope kind: the self-service policy grants each kind in a statement of its
    # own, and IAM checks all the keys of one request against one statement (`budgetkeeper me`).
    keys_by_kind: dict[str, set[tuple[str, str]]] = {}
    for item, _, span in pending:
        if span is not None:
            keys_by_kind.setdefault(item.scope.split(":", 1)[0], set()).add(
                (budget_key(item.scope, item.window), span.window_id)
            )
    spent = {
        (total.budget, total.window_id): total.spent_usd
        for _, keys in sorted(keys_by_kind.items())
        for total in TotalItem.batch_get(sorted(keys))
    }
    states = []
    for item, budget, span in pending:
        if budget is None or span is None:
            states.append(BudgetState(item, None, None, None, None, now))
            continue
        amount = spent.get((budget_key(item.scope, item.window), span.window_id), Decimal(0))
        states.append(BudgetState(item, budget, span, amount, budget.level_of(amount), now))
    return states


def _forecast(state: BudgetState) -> Decimal | None:
    """Spend projected to the window's end at the window's average pace so far (as the calculator
    forecasts); None before enough of the window has passed."""
    if state.span is None or state.spent is None or state.at is None:
        return None
    projected = forecast_spend(state.spent, state.span, state.at)
    return projected.quantize(Decimal("0.000001")) if projected is not None else None


def status_row(state: BudgetState, execution_status: str | None = None) -> dict[str, Any]:
    item, budget, span = state.item, state.budget, state.span
    if item.status == Status.SUSPENDED and item.suspended_until:
        next_change = item.suspended_until  # a suspension ends at its own time, not at the refresh
    elif span is not None:
        next_change = iso_utc(span.end)
    else:
        next_change = None  # an operator's suspension with no end: only a restore ends it
    return {
        "scope": item.scope,
        "window": item.window,
        "window_id": span.window_id if span else None,
        "spent_usd": state.spent,
        "limit_usd": budget.limit_usd if budget else None,
        "percent": budget.percent_of(state.spent) if budget and state.spent is not None else None,
        "level": state.level.label if state.level is not None else None,
        "forecast_usd": _forecast(state),
        "status": state.status,
        "status_note": f"{item.status} in window {item.status_window_id}, which has rolled over"
        if state.rolled_over
        else None,
        "protected": bool(item.protected),
        "next_refresh": next_change,
        "suspended_by": item.suspended_by if item.status in ENFORCING else None,
        "execution_arn": item.execution_arn,
        "execution_status": execution_status,
    }


STATUS_COLUMNS: tuple[Column, ...] = (
    Column("scope"),
    Column("window"),
    Column("window_id", "window id"),
    Column("spent_usd", "spent", numeric=True, show=money.cents),
    Column("limit_usd", "limit", numeric=True, show=money.cents),
    Column("percent", numeric=True, show=_percent),
    Column("forecast_usd", "forecast", numeric=True, show=money.dollars),
    Column("level"),
    Column("status"),
    Column("status_note", "status note"),
    Column("protected"),
    Column("next_refresh", "next refresh"),
    Column("suspended_by", "suspended by"),
    Column("execution_arn", "execution", show=_execution_name),
    Column("execution_status", "run"),
)


def execution_statuses(sfn: Any, arns: Iterable[str]) -> dict[str, str]:
    """RUNNING, SUCCEEDED, ... of each run a budget points at; `?` where it cannot be told."""
    found: dict[str, str] = {}
    for arn in sorted(set(arns)):
        try:
            found[arn] = str(sfn.describe_execution(executionArn=arn)["status"])
        except (ClientError, BotoCoreError):  # a hint only: a run that is gone must not hide the budget
            found[arn] = "?"
    return found


# ----------------------------------------------------------------------------- audit


def audit_items(scope: str | None, since: datetime | None = None, last: int | None = None) -> list[AuditItem]:
    """Audit lines, oldest first: of one scope (a query), or of every scope (a scan)."""
    if scope:
        condition = AuditItem.at_id >= audit_at(since) if since else None
        if last:  # newest first from DynamoDB, only as many as asked
            newest = AuditItem.query(scope, condition, scan_index_forward=False, limit=last)
            return sorted(newest, key=lambda item: item.at_id)
        items = list(AuditItem.query(scope, condition))
    else:
        items = list(AuditItem.scan(AuditItem.at_id >= audit_at(since) if since else None))
    items.sort(key=lambda item: (item.at_id, item.scope))
    return items[-last:] if last else items


def audit_row(item: AuditItem) -> dict[str, Any]:
    at, _, _ = item.at_id.partition("#")
    return {
        "time": at,
        "scope": item.scope,
        "window": item.window,
        "from_status": item.from_status,
        "to_status": item.to_status,
        "actor": item.actor,
        "reason": item.reason,
        "execution_arn": item.execution_arn,
    }


def _to_the_second(at: str) -> str:
    """An audit time for people: `2026-11-23T09:00:00Z`; JSON and CSV keep the microseconds that
    order lines written in one second."""
    return re.sub(r"\.\d+Z$", "Z", at)


AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("time", show=_to_the_second),
    Column("scope"),
    Column("window"),
    Column("from_status", "from"),
    Column("to_status", "to"),
    Column("actor"),
    Column("reason"),
    Column("execution_arn", "execution", show=_execution_name),
)
