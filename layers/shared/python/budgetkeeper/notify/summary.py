"""The operators' daily summary: spend today and this month per team, the top spenders, who is
suspended, in grace or near a limit, and the unknown models seen today.

Reads, all small: the teams table (scanned), each team's rollups of the month (a query per team),
the budgets (scanned: one row per budget), the totals of the budgets' current daily and monthly
windows (a batch get), and today's rollups of each principal that spent today (a query each).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from budgetkeeper.budgets import DEFAULT_BUDGET_KINDS, MANUAL_WINDOW, Status, is_manual_window
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.notices import money
from budgetkeeper.runs import SYSTEM_ACTOR
from budgetkeeper.scopes import ScopeKind
from budgetkeeper.store import BudgetItem, RollupItem, TeamItem, TotalItem, budget_key
from budgetkeeper.windows import iso_utc, parse_window, window_span

TOP_SCOPES = 10
NEAR = (Status.WARNING, Status.CRITICAL)


def summary_event(now: datetime) -> NotificationEvent:
    """The summary as an event of its own: one per UTC day, whatever retries the schedule makes."""
    day = now.date().isoformat()
    return NotificationEvent(
        type="daily_summary",
        scope="",
        window=None,
        window_id=day,
        spent_usd=None,
        limit_usd=None,
        percent=None,
        refresh_at=None,
        actor=SYSTEM_ACTOR,
        reason=None,
        execution=None,
        at=iso_utc(now),
    )


def gather_summary(now: datetime, default_time_zone: str = "UTC") -> dict[str, Any]:
    day, month = now.date().isoformat(), now.strftime("%Y-%m")
    teams = sorted({f"{ScopeKind.TEAM}:{item.team}" for item in TeamItem.scan()})
    team_rows = []
    for team in teams:
        month_spend = today_spend = Decimal(0)
        for rollup in RollupItem.query(team, RollupItem.bucket.startswith(f"{month}-")):
            month_spend += rollup.cost_usd
            if rollup.bucket.startswith(day):
                today_spend += rollup.cost_usd
        team_rows.append({"name": team, "today": money(str(today_spend)), "month": money(str(month_spend))})

    budgets = [item for item in BudgetItem.scan() if not is_manual_window(item.window)]
    current: dict[tuple[str, str], str] = {}
    for item in budgets:
        span = window_span(parse_window(item.window), item.time_zone or default_time_zone, now)
        current[(budget_key(item.scope, item.window), span.window_id)] = item.window
    spent: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for total in TotalItem.batch_get(list(current)):
        spent[total.scope or total.budget.rpartition("|")[0]][current[(total.budget, total.window_id)]] = (
            total.spent_usd
        )

    principals = {
        scope: by_window for scope, by_window in spent.items() if scope.split(":")[0] in DEFAULT_BUDGET_KINDS
    }
    top = sorted(
        ((by_window.get("daily", Decimal(0)), scope) for scope, by_window in principals.items()),
        reverse=True,
    )[:TOP_SCOPES]
    unknown: dict[str, int] = defaultdict(int)
    for scope, by_window in principals.items():
        if by_window.get("daily"):
            for rollup in RollupItem.query(scope, RollupItem.bucket.startswith(day)):
                if rollup.unpriced_calls and rollup.model:
                    unknown[rollup.model] += int(rollup.unpriced_calls)

    def listed(statuses: tuple[str, ...]) -> list[dict[str, str]]:
        return [
            {"name": item.scope, "detail": f"{item.window}, {item.status}"}
            for item in sorted(budgets, key=lambda item: (item.scope, item.window))
            if item.status in statuses
        ]

    suspended_manually = [
        {"name": item.scope, "detail": f"manual, until {item.suspended_until or 'a restore'}"}
        for item in BudgetItem.scan(BudgetItem.window.startswith(MANUAL_WINDOW))
        if item.status == Status.SUSPENDED
    ]
    return {
        "total_today": money(
            str(sum((by.get("daily", Decimal(0)) for by in principals.values()), Decimal(0)))
        ),
        "total_month": money(
            str(sum((by.get("monthly", Decimal(0)) for by in principals.values()), Decimal(0)))
        ),
        "teams": team_rows,
        "top_scopes": [{"name": scope, "today": money(str(usd))} for usd, scope in top if usd > 0],
        "suspended": listed((Status.SUSPENDED, Status.RESTORING)) + suspended_manually,
        "grace": listed((Status.GRACE,)),
        "near": listed(NEAR),
        "unknown_models": [
            {"name": model, "detail": f"{calls} calls"} for model, calls in sorted(unknown.items())
        ],
    }
