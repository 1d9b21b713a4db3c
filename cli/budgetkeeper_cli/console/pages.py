"""The console's pages: what each tab shows, as sections (a table each, exported as the CLI's CSV)
and charts, read through the CLI's own rows. Data is read in a few functions only (`budget_rows`,
`known_scopes`, `fill`, `audit_page`), so the storage readers can be swapped in one place."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from budgetkeeper.budgets.rules import ENFORCING, MANUAL_WINDOW, Status
from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.pricing.table import resolve_model_id
from budgetkeeper.storage.readers import (
    MOST_WATCHED,
    BudgetList,
    budgets_to_watch,
    operator_budgets,
    scope_budgets,
)
from budgetkeeper.storage.tables import RollupItem, TeamItem
from budgetkeeper_cli.rendering import Column
from budgetkeeper_cli.reports.aggregation import UsageReport, account_of
from budgetkeeper_cli.reports.html import (
    Chart,
    HeatRow,
    Table,
    budget_bar,
    build_chart,
    build_heat,
    heat_legend,
    html_table,
)
from budgetkeeper_cli.reports.rollups import ReportWindow, fill
from budgetkeeper_cli.reports.rows import report_rows
from budgetkeeper_cli.reports.timeline import TimeChart, build_time_chart
from budgetkeeper_cli.stack_config import Stack
from budgetkeeper_cli.views import (
    AUDIT_COLUMNS,
    STATUS_COLUMNS,
    BudgetState,
    audit_items,
    audit_row,
    budget_states,
    execution_statuses,
    status_row,
)

AUDIT_LINES = 50
SORTS = ("scope", "window", "spent_usd", "limit_usd", "percent", "forecast_usd", "status", "next_refresh")
SORT_CHOICES = tuple((column.key, column.heading) for column in STATUS_COLUMNS if column.key in SORTS)
STATUSES = tuple(str(status) for status in Status)
EXECUTION_COLUMNS = (Column("name"), Column("status"), Column("started"), Column("console"))
# The Scopes and Enforcement tables: what tells budgets apart and what to act on (the CSV has all).
SHOWN_STATUS = (
    "scope",
    "window",
    "spent_usd",
    "limit_usd",
    "percent",
    "forecast_usd",
    "status",
    "status_note",
)
SHOWN_STATUS += ("next_refresh", "suspended_by")
FILTERS = ("team", "model", "principal")  # the usage tabs' filters


def step_functions_link(region: str, execution_arn: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


@dataclass(slots=True)
class Section:
    """One table of a page, drawn as HTML and exported as the CLI's CSV (`?csv=<id>`)."""

    id: str
    title: str
    columns: Sequence[Column]
    rows: Sequence[dict[str, Any]]
    footer: dict[str, Any] | None = None
    shown: Sequence[str] | None = None  # the columns drawn on the page (default: all)
    actions: list[list[tuple[str, str]]] | None = None  # per row: (button, link)

    @property
    def table(self) -> Table:
        columns = self.columns
        if self.shown is not None:  # and of those, none that is empty in every row
            columns = [
                column
                for column in self.columns
                if column.key in self.shown and any(row.get(column.key) is not None for row in self.rows)
            ]
        return html_table(columns, self.rows, self.footer)


@dataclass(slots=True)
class Page:
    tab: str
    sections: list[Section] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    timelines: list[TimeChart] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, section_id: str) -> Section | None:
        return next((section for section in self.sections if section.id == section_id), None)


# ----------------------------------------------------------------------------- reading


def budget_rows(
    stack: Stack, scope: str | None = None, watched: BudgetList | None = None
) -> list[tuple[BudgetState, dict[str, Any]]]:
    """Each budget of one scope, or else the operators' budgets and the watched ones
    (storage.readers: never every default budget), now, with its `status` row and its run's state."""
    found = scope_budgets(scope) if scope else (watched or budgets_to_watch(MOST_WATCHED)).items
    items = sorted(found, key=lambda item: (item.scope, item.window))
    states = budget_states(items, stack.tunables(), clock.now())
    runs = execution_statuses(
        stack.client("stepfunctions"), [s.item.execution_arn for s in states if s.item.execution_arn]
    )
    return [(state, status_row(state, runs.get(state.item.execution_arn or ""))) for state in states]


def known_scopes() -> list[str]:
    """Every scope with a budget or a team, for the scope fields' suggestions."""
    scopes = {item.scope for item in operator_budgets()}
    for member in TeamItem.scan():
        scopes.update((member.principal, f"team:{member.team}"))
    return sorted(scopes)


def audit_page(scope: str | None, page: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of the audit trail, newest first, and whether older lines are left."""
    newest = audit_items(scope, last=AUDIT_LINES * (page + 1) + 1)
    newest.reverse()
    shown = newest[AUDIT_LINES * page : AUDIT_LINES * (page + 1)]
    return [audit_row(item) for item in shown], len(newest) > AUDIT_LINES * (page + 1)


# ----------------------------------------------------------------------------- rows and actions


def row_actions(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The buttons of a budget's row: Restore when suspended (or on its way), else Suspend; Edit."""
    scope, window = row["scope"], row["window"]
    actions = []
    if row["status"] in ENFORCING:
        actions.append(("Restore", _form_link("/enforcement", "restore", scope, window)))
    elif window == MANUAL_WINDOW:
        return actions
    else:
        actions.append(("Suspend", _form_link("/enforcement", "suspend", scope, None)))
    actions.append(("Edit", _form_link("/scopes", "budget", scope, window)))
    protection = "unprotect" if row.get("protected") else "protect"
    actions.append((protection.capitalize(), _form_link("/enforcement", protection, scope, window)))
    return actions


def _form_link(path: str, action: str, scope: str, window: str | None) -> str:
    fields = {"action": action, "scope": scope, **({"window": window} if window else {})}
    return f"{path}?{urlencode(fields)}#form-{action}"


def _sort_key(name: str) -> Callable[[dict[str, Any]], Any]:
    def key(row: dict[str, Any]) -> Any:
        value = row.get(name)
        # Rows with no value sort last whatever the order; numbers as numbers.
        if isinstance(value, Decimal | int):
            return (0, value, "")
        return (0 if value is not None else 1, Decimal(0), str(value or ""))

    return key


def status_section(section_id: str, title: str, rows: list[dict[str, Any]]) -> Section:
    return Section(
        section_id,
        title,
        STATUS_COLUMNS,
        rows,
        shown=SHOWN_STATUS,
        actions=[row_actions(row) for row in rows],
    )


def _budgets_title(watched: BudgetList) -> str:
    unread = f"; {watched.more} more watched budgets not read" if watched.more else ""
    return f"Budgets operators set, and default budgets needing attention{unread}"


def scopes_page(stack: Stack, args: Any) -> Page:
    """Every budget and operator's suspension: spend, limit, percent, status, next refresh."""
    text = (args.get("q") or "").strip().lower()
    status = args.get("status") or ""
    sort = args.get("sort") if args.get("sort") in SORTS else "percent"
    descending = (args.get("order") or ("desc" if sort in ("percent", "spent_usd") else "asc")) == "desc"
    watched = budgets_to_watch(MOST_WATCHED)
    pairs = [
        (state, row)
        for state, row in budget_rows(stack, watched=watched)
        if text in row["scope"].lower() and (not status or row["status"] == status)
    ]
    pairs.sort(key=lambda pair: _sort_key(sort)(pair[1]), reverse=descending)
    bars = [budget_bar(state.budget, row) for state, row in pairs if state.budget is not None]
    page = Page("scopes", [status_section("budgets", _budgets_title(watched), [row for _, row in pairs])])
    page.extra.update(
        bars=bars,
        q=args.get("q") or "",
        status=status,
        sort=sort,
        sorts=SORT_CHOICES,
        descending=descending,
        statuses=STATUSES,
    )
    return page


# ----------------------------------------------------------------------------- usage tabs


def line_filter(args: Any) -> Callable[[RollupItem], bool] | None:
    """The usage lines the page's team, model, principal and account fields keep (None: every line)."""
    team = (args.get("team") or "").strip()
    model = (args.get("model") or "").strip()
    principal = (args.get("principal") or "").strip()
    account = (args.get("account") or "").strip()
    if not (team or model or principal or account):
        return None
    team_scope = team if not team or team.startswith("team:") else f"team:{team}"

    def keep(line: RollupItem) -> bool:
        if team_scope and line.team != team_scope:
            return False
        if principal and line.principal != principal:
            return False
        if account and account_of(line.identity_arn) != account:
            return False
        return not model or model in (line.model, resolve_model_id(line.model or "").base_model)

    return keep


def scope_filter(scope: str) -> Callable[[RollupItem], bool]:
    """The usage lines of one scope: its principal, role, app or team; an account's every line."""
    kind, _, name = scope.partition(":")
    if kind == "account":
        return lambda line: account_of(line.identity_arn) == name
    return lambda line: scope in (line.principal, line.role, line.app, line.team)


# (chart id, title, group, top, drawn as) as in the HTML report; tables: (id, title, group fields)
TEAMS_CHARTS = (("team", "Spend per team", "team", None, "bars"),)
TEAMS_TABLES = (("team-principal", "Spend per team and member", ("team", "principal")),)


def usage_page(
    tab: str,
    window: ReportWindow,
    charts: Sequence[tuple[str, str, str, int | None, str]],
    tables: Sequence[tuple[str, str, Sequence[str]]],
    *,
    hours: bool = False,
    compare: bool = False,
    keep: Callable[[RollupItem], bool] | None = None,
) -> Page:
    """Charts and tables of `budgetkeeper report` rows over one window, from one read of it (and
    one of the window before for the day chart's overlay and the comparisons)."""
    chart_reports = {chart_id: UsageReport([group]) for chart_id, _, group, _, _ in charts}
    table_reports = {table_id: UsageReport(list(groups)) for table_id, _, groups in tables}
    hour_report = UsageReport(["hour"])
    fill([*chart_reports.values(), *table_reports.values(), hour_report], window, None, keep)
    previous_reports: dict[str, UsageReport] = {}
    if compare or any(kind == "time" for *_, kind in charts):
        previous_reports = {table_id: UsageReport(list(groups)) for table_id, _, groups in tables}
        previous_reports["day"] = UsageReport(["day"])
        fill(list(previous_reports.values()), window.previous(), None, keep)
    page = Page(tab)
    for chart_id, title, group, top, kind in charts:
        report = chart_reports[chart_id]
        if kind == "time":
            page.timelines.append(
                build_time_chart(chart_id, title, group, report, window, previous=previous_reports.get(group))
            )
        else:
            page.charts.append(build_chart(chart_id, title, group, kind, report, top))
        rows = report_rows(report, top=top)
        page.sections.append(Section(chart_id, title, rows.columns, rows.rows, rows.total))
    for table_id, title, _ in tables:
        rows = report_rows(table_reports[table_id], previous=previous_reports.get(table_id))
        page.sections.append(Section(table_id, title, rows.columns, rows.rows, rows.total))
    heat: list[HeatRow] = build_heat(hour_report, window) if hours else []
    if hours:
        page.timelines.append(build_time_chart("hour", "Spend per hour (UTC)", "hour", hour_report, window))
    total = hour_report.total
    page.extra.update(
        window=window,
        previous=window.previous() if compare else None,
        heat=heat,
        heat_legend=heat_legend(hour_report) if hours else [],
        total_cost=total.cost_usd,
        total_calls=total.calls,
        since=iso_utc(window.since),
        until=iso_utc(window.until),
    )
    return page


CONSUMPTION_CHARTS = (
    ("day", "Spend per day", "day", None, "time"),
    ("model", "Spend per model (all endpoints together)", "model", None, "bars"),
    ("region", "Spend per Region", "region", None, "bars"),
)
COSTS_CHARTS = (("app", "Spend per app", "app", None, "bars"),)
COSTS_TABLES = (
    ("model-compare", "Per model, against the window before", ("model",)),
    ("region-compare", "Per Region, against the window before", ("region",)),
    ("app-compare", "Per app, against the window before", ("app",)),
)


def consumption_page(window: ReportWindow, args: Any) -> Page:
    return usage_page("consumption", window, CONSUMPTION_CHARTS, (), hours=True, keep=line_filter(args))


# In organization mode: spend per member account (the account the caller's ARN names).
ACCOUNT_CHARTS = (("account", "Spend per account", "account", None, "bars"),)
ACCOUNT_TABLES = (("account-compare", "Per account, against the window before", ("account",)),)


def costs_page(window: ReportWindow, args: Any, *, organization: bool = False) -> Page:
    charts = (*COSTS_CHARTS, *(ACCOUNT_CHARTS if organization else ()))
    tables = (*COSTS_TABLES, *(ACCOUNT_TABLES if organization else ()))
    return usage_page("costs", window, charts, tables, compare=True, keep=line_filter(args))


def teams_page(window: ReportWindow, args: Any) -> Page:
    return usage_page("teams", window, TEAMS_CHARTS, TEAMS_TABLES, keep=line_filter(args))


# ----------------------------------------------------------------------------- enforcement


def enforcement_page(stack: Stack, args: Any) -> Page:
    """Budgets warned, in grace, suspended or protected; the runs going on; the audit trail."""
    pairs = [
        (state, row)
        for state, row in budget_rows(stack)
        if state.needs_attention or state.item.protected or state.item.status in ENFORCING
    ]
    rows = [row for _, row in pairs]
    bars = [budget_bar(state.budget, row) for state, row in pairs if state.budget is not None]
    page = Page(
        "enforcement", [status_section("attention", "Warned, in grace, suspended or protected", rows)]
    )
    runs = _running(stack)
    page.sections.append(Section("runs", "Runs going on", EXECUTION_COLUMNS, runs))
    number = _page_number(args.get("audit_page"))
    audit, older = audit_page(None, number)
    page.sections.append(Section("audit", "Audit trail, newest first", AUDIT_COLUMNS, audit))
    page.extra.update(bars=bars, runs=runs, manual=MANUAL_WINDOW, audit_page=number, audit_older=older)
    return page


def _page_number(text: str | None) -> int:
    return int(text) if text and text.isdigit() else 0


def _running(stack: Stack) -> list[dict[str, Any]]:
    runs = []
    paginator = stack.client("stepfunctions").get_paginator("list_executions")
    machines = (stack.settings.evaluation_machine_arn_value, stack.settings.operator_machine_arn_value)
    for machine in filter(None, machines):
        for result in paginator.paginate(stateMachineArn=machine, statusFilter="RUNNING"):
            runs += [
                {
                    "name": execution["name"],
                    "status": execution["status"],
                    "started": execution["startDate"].isoformat(),
                    "console": step_functions_link(stack.settings.region, execution["executionArn"]),
                    "arn": execution["executionArn"],
                }
                for execution in result["executions"]
            ]
    return runs
