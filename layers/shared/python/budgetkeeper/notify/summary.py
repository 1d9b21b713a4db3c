"""The operators' daily summary: spend today and this month per team, the top spenders, who is
suspended, in grace or near a limit, and the unknown models seen today.

Reads: the teams table (scanned), each team's rollups of the month (a query per team), the
budgets (scanned: one row per budget; a session's default budgets are stored only once it spends,
so minted session names add none), the totals of the budgets' current windows (a batch get), and
today's usage lines (one query of the day's partition) for the unknown models.

Every list is capped at `rows` rows (the tunable notify/summary_rows), a last row counting the
rest, and every name at NAME_CHARS: a caller can mint any number of model ids and scope names,
and the summary must still fit a Slack section (3,000 characters), an SNS message (256 KB) and an
SES e-mail.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from budgetkeeper.budgets.rules import DEFAULT_BUDGET_KINDS, Status, is_manual_window
from budgetkeeper.core.actors import SYSTEM_ACTOR
from budgetkeeper.core.windows import iso_utc, parse_window, window_span
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.notices import money
from budgetkeeper.storage.readers import (
    all_budget_rows,
    manual_suspension_rows,
    rollup_costs,
    spent_in_windows,
    team_scopes,
    unpriced_calls_by_model,
)

NEAR = (Status.WARNING, Status.CRITICAL)
NAME_CHARS = 100


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def capped(rows: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    """The first `limit` rows, names shortened, and a row counting the others."""
    kept = [{**row, "name": _short(row["name"])} for row in rows[:limit]]
    if len(rows) > limit:
        kept.append({"name": "…", "detail": f"+{len(rows) - limit}"})
    return kept


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


def gather_summary(now: datetime, default_time_zone: str = "UTC", rows: int = 10) -> dict[str, Any]:
    day, month = now.date().isoformat(), now.strftime("%Y-%m")
    team_rows = []
    for team in team_scopes():
        month_spend = today_spend = Decimal(0)
        for bucket, cost_usd in rollup_costs(team, f"{month}-"):
            month_spend += cost_usd
            if bucket.startswith(day):
                today_spend += cost_usd
        team_rows.append({"name": team, "today": money(str(today_spend)), "month": money(str(month_spend))})

    budgets = [item for item in all_budget_rows() if not is_manual_window(item.window)]
    current = [
        (
            item.scope,
            item.window,
            window_span(parse_window(item.window), item.time_zone or default_time_zone, now).window_id,
        )
        for item in budgets
    ]
    spent: dict[str, dict[str, Decimal]] = defaultdict(dict)
    for (scope, window, _), spent_usd in spent_in_windows(current, consistent_read=False).items():
        spent[scope][window] = spent_usd

    principals = {
        scope: by_window for scope, by_window in spent.items() if scope.split(":")[0] in DEFAULT_BUDGET_KINDS
    }
    top = sorted(
        ((by_window.get("daily", Decimal(0)), scope) for scope, by_window in principals.items()),
        reverse=True,
    )[:rows]
    unknown = unpriced_calls_by_model(day)

    def listed(statuses: tuple[str, ...]) -> list[dict[str, str]]:
        return [
            {"name": item.scope, "detail": f"{item.window}, {item.status}"}
            for item in sorted(budgets, key=lambda item: (item.scope, item.window))
            if item.status in statuses
        ]

    suspended_manually = [
        {"name": item.scope, "detail": f"manual, until {item.suspended_until or 'a restore'}"}
        for item in manual_suspension_rows()
        if item.status == Status.SUSPENDED
    ]
    suspended = listed((Status.SUSPENDED, Status.RESTORING)) + suspended_manually
    grace = listed((Status.GRACE,))
    return {
        "total_today": money(
            str(sum((by.get("daily", Decimal(0)) for by in principals.values()), Decimal(0)))
        ),
        "total_month": money(
            str(sum((by.get("monthly", Decimal(0)) for by in principals.values()), Decimal(0)))
        ),
        "teams": team_rows,
        "top_scopes": [{"name": _short(scope), "today": money(str(usd))} for usd, scope in top if usd > 0],
        "suspended": capped(suspended, rows),
        "grace": capped(grace, rows),
        "near": capped(listed(NEAR), rows),
        "unknown_models": capped(
            [
                {"name": model, "detail": f"{calls} calls"}
                for model, calls in sorted(unknown.items(), key=lambda pair: (-pair[1], pair[0]))
            ],
            rows,
        ),
        "counts": {"suspended": len(suspended), "grace": len(grace)},
    }
