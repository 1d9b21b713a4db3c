"""The operators' daily summary: spend today and this month per team, the top spenders, who is
suspended, in grace or near a limit, and the unknown models seen today.

Reads, none of it growing with the budget rows callers mint (storage.readers): the teams table
(scanned: operators' data), each team's rollups of the month (a query per team), today's usage lines
(one query of the day's partition: today's spend per caller, the top spenders and the unknown
models), the rollups of the month of each account seen today (a query per account), and the budgets
the monitor watches (the SweepIndex: suspended, in grace, near a limit), never every budget.

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

from budgetkeeper.budgets.rules import Status, is_manual_window
from budgetkeeper.core.actors import SYSTEM_ACTOR
from budgetkeeper.core.money import exact
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.scopes import ScopeKind, parse_identity_arn
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.storage.readers import due_budgets, rollup_costs, team_scopes, usage_lines_of_day

NEAR = (Status.WARNING, Status.CRITICAL)
NAME_CHARS = 100


def _short(name: str) -> str:
    return name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…"


def capped(rows: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The first `limit` rows, names shortened, and a row counting the others."""
    kept = [{**row, "name": _short(row["name"])} for row in rows[:limit]]
    if len(rows) > limit:
        kept.append({"name": "…", "more": len(rows) - limit})
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


def gather_summary(now: datetime, rows: int = 10) -> dict[str, Any]:
    day, month = now.date().isoformat(), now.strftime("%Y-%m")
    team_rows = []
    for team in team_scopes():
        month_spend = today_spend = Decimal(0)
        for bucket, cost_usd in rollup_costs(team, f"{month}-"):
            month_spend += cost_usd
            if bucket.startswith(day):
                today_spend += cost_usd
        team_rows.append({"name": team, "today": exact(today_spend), "month": exact(month_spend)})

    by_principal: dict[str, Decimal] = defaultdict(Decimal)
    unknown: dict[str, int] = defaultdict(int)
    accounts: set[str] = set()
    for line in usage_lines_of_day(day):
        by_principal[line.principal or "unknown"] += line.cost_usd
        if line.identity_arn:
            accounts.add(parse_identity_arn(line.identity_arn).account or "")
        # Calls counted at 0 and calls of models without a price, counted at an estimate
        not_priced = int(line.unpriced_calls) + int(line.estimated_calls or 0)
        if line.model and not_priced:
            unknown[line.model] += not_priced
    month_total = sum(
        (
            cost_usd
            for account in sorted(accounts - {""})
            for _, cost_usd in rollup_costs(f"{ScopeKind.ACCOUNT}:{account}", f"{month}-")
        ),
        Decimal(0),
    )
    top = sorted(((usd, scope) for scope, usd in by_principal.items()), reverse=True)[:rows]
    budgets = due_budgets().items

    def listed(statuses: tuple[str, ...]) -> list[dict[str, str]]:
        return [
            {"name": item.scope, "window": item.window, "status": item.status}
            for item in sorted(budgets, key=lambda item: (item.scope, item.window))
            if item.status in statuses and not is_manual_window(item.window)
        ]

    suspended_manually = [
        {"name": item.scope, "until": item.suspended_until}
        for item in budgets
        if is_manual_window(item.window) and item.status == Status.SUSPENDED
    ]
    suspended = listed((Status.SUSPENDED, Status.RESTORING)) + suspended_manually
    grace = listed((Status.GRACE,))
    return {
        # Amounts exact: the renderer writes them in the reader's format (notify.locale).
        "total_today": exact(sum(by_principal.values(), Decimal(0))),
        "total_month": exact(month_total),
        "teams": team_rows,
        "top_scopes": [{"name": _short(scope), "today": exact(usd)} for usd, scope in top if usd > 0],
        "suspended": capped(suspended, rows),
        "grace": capped(grace, rows),
        "near": capped(listed(NEAR), rows),
        "unknown_models": capped(
            [
                {"name": model, "calls": calls}
                for model, calls in sorted(unknown.items(), key=lambda pair: (-pair[1], pair[0]))
            ],
            rows,
        ),
        "counts": {"suspended": len(suspended), "grace": len(grace)},
    }
