"""A scope's own page: its spend over time (with its daily budget's limit and forecast), its
budgets with their buttons, its audit trail, its members or team, and its top models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from budgetkeeper.domain.scopes import InvalidScope, ScopeKind, parse_scope
from budgetkeeper.storage.tables import TeamItem
from budgetkeeper_cli.console.pages import (
    Page,
    Section,
    _page_number,
    audit_page,
    budget_rows,
    scope_filter,
    status_section,
)
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.rendering import Column
from budgetkeeper_cli.reports.aggregation import UsageReport
from budgetkeeper_cli.reports.html import budget_bar, build_chart
from budgetkeeper_cli.reports.rollups import ReportWindow, fill
from budgetkeeper_cli.reports.timeline import build_time_chart
from budgetkeeper_cli.stack_config import Stack
from budgetkeeper_cli.views import AUDIT_COLUMNS

TOP_MODELS = 5
MEMBER_COLUMNS = (Column("member"), Column("team"))


def scope_page(stack: Stack, scope: str, window: ReportWindow, args: Any) -> Page:
    """Everything about one scope on one page."""
    try:
        parse_scope(scope)
    except InvalidScope as error:
        raise UsageError(f"{error}: pick a scope from the suggestions, e.g. user:alice") from None
    pairs = budget_rows(stack, scope)
    rows = [row for _, row in pairs]
    days, hours, models = UsageReport(["day"]), UsageReport(["hour"]), UsageReport(["model"])
    fill([days, hours, models], window, None, scope_filter(scope))
    previous_days = UsageReport(["day"])
    fill([previous_days], window.previous(), None, scope_filter(scope))
    page = Page("scope", [status_section("budgets", f"Budgets of {scope}", rows)])
    page.timelines = [
        build_time_chart(
            "day", "Spend per day", "day", days, window, previous=previous_days, levels=_daily_levels(rows)
        ),
        build_time_chart("hour", "Spend per hour (UTC)", "hour", hours, window),
    ]
    page.charts = [build_chart("model", "Top models", "model", "bars", models, TOP_MODELS)]
    page.sections.append(Section("members", _members_title(scope), MEMBER_COLUMNS, _members(scope)))
    number = _page_number(args.get("audit_page"))
    audit, older = audit_page(scope, number)
    page.sections.append(Section("audit", f"Audit trail of {scope}, newest first", AUDIT_COLUMNS, audit))
    page.extra.update(
        scope=scope,
        bars=[budget_bar(state.budget, row) for state, row in pairs if state.budget is not None],
        window=window,
        total_cost=days.total.cost_usd,
        total_calls=days.total.calls,
        audit_page=number,
        audit_older=older,
    )
    return page


def _daily_levels(rows: list[dict[str, Any]]) -> list[tuple[str, str, Decimal]]:
    """The daily budget's limit and today's forecast, as lines across the day chart."""
    daily = next((row for row in rows if row["window"] == "daily" and row["limit_usd"] is not None), None)
    if daily is None:
        return []
    levels = [("budget", "daily limit", daily["limit_usd"])]
    if daily["forecast_usd"] is not None:
        levels.append(("forecast", "today's forecast", daily["forecast_usd"]))
    return levels


def _members_title(scope: str) -> str:
    return f"Members of {scope}" if scope.startswith(f"{ScopeKind.TEAM}:") else f"Team of {scope}"


def _members(scope: str) -> list[dict[str, Any]]:
    kind, _, name = scope.partition(":")
    if kind == ScopeKind.TEAM:
        found = [item for item in TeamItem.scan() if item.team == name]
    else:
        found = [item for item in TeamItem.scan() if item.principal == scope]
    return [{"member": item.principal, "team": f"team:{item.team}"} for item in found]
