"""The console's pages: what each tab shows, as sections (a table each, exported as the CLI's CSV)
and charts, read through the CLI's own rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from budgetkeeper.budgets.rules import ENFORCING, MANUAL_WINDOW, Status
from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.storage.tables import BudgetItem
from budgetkeeper_cli.diagnosis import COLUMNS as DOCTOR_COLUMNS
from budgetkeeper_cli.diagnosis import diagnose
from budgetkeeper_cli.price_rows import (
    BUNDLED,
    OVERRIDE_COLUMNS,
    VERSION_COLUMNS,
    override_rows_in_force,
    version_rows,
)
from budgetkeeper_cli.rendering import Column
from budgetkeeper_cli.reports.aggregation import UsageReport
from budgetkeeper_cli.reports.html import (
    Chart,
    HeatRow,
    Table,
    budget_bar,
    build_chart,
    build_heat,
    html_table,
)
from budgetkeeper_cli.reports.rollups import ReportWindow, fill
from budgetkeeper_cli.reports.rows import report_rows
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
SORTS = ("scope", "window", "spent_usd", "limit_usd", "percent", "status", "next_refresh")
STATUSES = tuple(str(status) for status in Status)
EXECUTION_COLUMNS = (Column("name"), Column("status"), Column("started"), Column("console"))
SOURCE_COLUMNS = (Column("source"), Column("as_of", "as of"), Column("rows", numeric=True))


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

    @property
    def table(self) -> Table:
        return html_table(self.columns, self.rows, self.footer)


@dataclass(slots=True)
class Page:
    tab: str
    sections: list[Section] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, section_id: str) -> Section | None:
        return next((section for section in self.sections if section.id == section_id), None)


def _states(stack: Stack) -> list[BudgetState]:
    items = sorted(BudgetItem.scan(), key=lambda item: (item.scope, item.window))
    return budget_states(items, stack.tunables(), clock.now())


def _status_rows(stack: Stack, states: Sequence[BudgetState]) -> list[dict[str, Any]]:
    runs = execution_statuses(
        stack.client("stepfunctions"), [s.item.execution_arn for s in states if s.item.execution_arn]
    )
    return [status_row(state, runs.get(state.item.execution_arn or "")) for state in states]


def _sort_key(name: str) -> Callable[[dict[str, Any]], Any]:
    def key(row: dict[str, Any]) -> Any:
        value = row.get(name)
        # Rows with no value sort last whatever the order; numbers as numbers.
        if isinstance(value, Decimal | int):
            return (0, value, "")
        return (0 if value is not None else 1, Decimal(0), str(value or ""))

    return key


def scopes_page(stack: Stack, args: Any) -> Page:
    """Every budget and operator's suspension: spend, limit, percent, status, next refresh."""
    text = (args.get("q") or "").strip().lower()
    status = args.get("status") or ""
    sort = args.get("sort") if args.get("sort") in SORTS else "percent"
    descending = (args.get("order") or ("desc" if sort in ("percent", "spent_usd") else "asc")) == "desc"
    states = _states(stack)
    pairs = list(zip(states, _status_rows(stack, states), strict=True))
    pairs = [
        (state, row)
        for state, row in pairs
        if text in row["scope"].lower() and (not status or row["status"] == status)
    ]
    pairs.sort(key=lambda pair: _sort_key(sort)(pair[1]), reverse=descending)
    bars = [budget_bar(state.budget, row) for state, row in pairs if state.budget is not None]
    page = Page("scopes", [Section("budgets", "Budgets", STATUS_COLUMNS, [row for _, row in pairs])])
    page.extra.update(
        bars=bars, q=args.get("q") or "", status=status, sort=sort, descending=descending, statuses=STATUSES
    )
    return page


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
) -> Page:
    """Charts and tables of `budgetkeeper report` rows over one window, from one read of it."""
    chart_reports = {chart_id: UsageReport([group]) for chart_id, _, group, _, _ in charts}
    table_reports = {table_id: UsageReport(list(groups)) for table_id, _, groups in tables}
    hour_report = UsageReport(["hour"])
    fill([*chart_reports.values(), *table_reports.values(), hour_report], window, None)
    previous_reports: dict[str, UsageReport] = {}
    if compare:
        previous_reports = {table_id: UsageReport(list(groups)) for table_id, _, groups in tables}
        fill(list(previous_reports.values()), window.previous(), None)
    page = Page(tab)
    page.charts = [
        build_chart(chart_id, title, group, kind, chart_reports[chart_id], top)
        for chart_id, title, group, top, kind in charts
    ]
    for chart, (chart_id, title, _, top, _) in zip(page.charts, charts, strict=True):
        rows = report_rows(chart_reports[chart_id], top=top)
        page.sections.append(Section(chart.id, title, rows.columns, rows.rows, rows.total))
    for table_id, title, _ in tables:
        rows = report_rows(table_reports[table_id], previous=previous_reports.get(table_id))
        page.sections.append(Section(table_id, title, rows.columns, rows.rows, rows.total))
    heat: list[HeatRow] = build_heat(hour_report, window) if hours else []
    if hours:
        rows = report_rows(hour_report)
        page.sections.append(Section("hour", "Spend per hour", rows.columns, rows.rows, rows.total))
    total = hour_report.total
    page.extra.update(
        window=window,
        previous=window.previous() if compare else None,
        heat=heat,
        total_cost=total.cost_usd,
        total_calls=total.calls,
        since=iso_utc(window.since),
        until=iso_utc(window.until),
    )
    return page


CONSUMPTION_CHARTS = (
    ("day", "Spend per day", "day", None, "columns"),
    ("model", "Spend per model", "model", None, "bars"),
    ("region", "Spend per Region", "region", None, "bars"),
)
COSTS_CHARTS = (("app", "Spend per app", "app", None, "bars"),)
COSTS_TABLES = (
    ("model-compare", "Per model, against the window before", ("model",)),
    ("region-compare", "Per Region, against the window before", ("region",)),
    ("app-compare", "Per app, against the window before", ("app",)),
)


def consumption_page(window: ReportWindow) -> Page:
    return usage_page("consumption", window, CONSUMPTION_CHARTS, (), hours=True)


def costs_page(window: ReportWindow) -> Page:
    return usage_page("costs", window, COSTS_CHARTS, COSTS_TABLES, compare=True)


def enforcement_page(stack: Stack) -> Page:
    """Budgets warned, in grace, suspended or protected; the runs going on; the audit trail."""
    states = [
        state
        for state in _states(stack)
        if state.needs_attention or state.item.protected or state.item.status in ENFORCING
    ]
    rows = _status_rows(stack, states)
    bars = [
        budget_bar(state.budget, row)
        for state, row in zip(states, rows, strict=True)
        if state.budget is not None
    ]
    page = Page(
        "enforcement",
        [Section("attention", "Warned, in grace, suspended or protected", STATUS_COLUMNS, rows)],
    )
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
    page.sections.append(Section("runs", "Runs going on", EXECUTION_COLUMNS, runs))
    audit = [audit_row(item) for item in audit_items(None, last=AUDIT_LINES)]
    audit.reverse()  # newest first
    page.sections.append(Section("audit", f"Audit trail (newest {AUDIT_LINES})", AUDIT_COLUMNS, audit))
    page.extra.update(bars=bars, runs=runs, manual=MANUAL_WINDOW)
    return page


def prices_page() -> Page:
    from budgetkeeper.pricing.versions import active_table, active_version

    table = active_table()
    sources: dict[tuple[str, str], int] = {}
    for row in table:
        key = (str(row.source), str(row.as_of))
        sources[key] = sources.get(key, 0) + 1
    page = Page(
        "prices",
        [
            Section(
                "sources",
                f"Sources of the table in force ({table.version})",
                SOURCE_COLUMNS,
                [{"source": s, "as_of": a, "rows": n} for (s, a), n in sorted(sources.items())],
            ),
            Section("versions", "Price versions from the AWS Price List", VERSION_COLUMNS, version_rows()),
            Section("overrides", "Operators' overrides", OVERRIDE_COLUMNS, override_rows_in_force()),
        ],
    )
    page.extra.update(active=active_version() or BUNDLED, table_version=table.version)
    return page


def health_page(stack: Stack) -> Page:
    findings = [finding.row() for finding in diagnose(stack, None)]
    return Page("health", [Section("checks", "Checks (budgetkeeper doctor)", DOCTOR_COLUMNS, findings)])
