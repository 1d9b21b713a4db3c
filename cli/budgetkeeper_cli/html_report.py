"""The HTML report: one self-contained file, charts drawn here as inline SVG, no script, no network.

Each chart is the rows of one `budgetkeeper report` query over the same window and ARN pattern
(spend per day, per team, per model, the top principals, per hour for the heat map), built by the
same `report_rows`, so the page shows the numbers `--format json` prints. Every bar and cell carries
its exact values in `data-` attributes (cost as the exact decimal string of the JSON), and each
chart has its table under it. Budgets come from the budgets and totals tables, as `status` reads
them. The page is rendered by jinja2 with autoescape on: every name, scope and value is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from budgetkeeper.budgets.rules import Budget, is_manual_window
from budgetkeeper.core import money
from budgetkeeper.core.settings import Tunables
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.storage.readers import MOST_WATCHED, budgets_to_watch
from budgetkeeper_cli.errors import CommandFailed
from budgetkeeper_cli.rendering import Column, plain_text
from budgetkeeper_cli.rollup_report import ReportWindow, fill
from budgetkeeper_cli.usage_report import UsageReport, report_rows
from budgetkeeper_cli.views import STATUS_COLUMNS, budget_states, status_row

TOP_PRINCIPALS = 10
BAR_WIDTH = 520  # pixels of the longest bar
COLUMN_HEIGHT = 200  # pixels of the highest day column
BUDGET_COLUMNS = ("scope", "window", "window_id", "spent_usd", "limit_usd", "percent", "level", "status")

# (chart id, title, group field, keep the N most expensive, drawn as)
CHARTS: tuple[tuple[str, str, str, int | None, str], ...] = (
    ("day", "Spend per day", "day", None, "columns"),
    ("team", "Spend per team", "team", None, "bars"),
    ("model", "Spend per model", "model", None, "bars"),
    ("principal", f"Top {TOP_PRINCIPALS} principals", "principal", TOP_PRINCIPALS, "bars"),
)


@dataclass(frozen=True, slots=True)
class Mark:
    """One bar or column: its label, exact values and its length in pixels."""

    label: str
    cost: str  # exact decimal string, as the JSON output has it
    calls: int
    shown: str  # the cost as people read it
    length: float


@dataclass(frozen=True, slots=True)
class Table:
    headings: list[str]
    numeric: list[bool]
    rows: list[list[str]]
    footer: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Chart:
    id: str
    title: str
    field: str
    kind: str
    marks: list[Mark]
    table: Table


@dataclass(frozen=True, slots=True)
class HeatCell:
    hour: int
    cost: str | None  # None: no usage in that hour
    calls: int
    fill: str
    title: str


@dataclass(frozen=True, slots=True)
class HeatRow:
    day: str
    cells: list[HeatCell]


@dataclass(frozen=True, slots=True)
class BudgetBar:
    scope: str
    window: str
    spent: str
    limit: str
    percent: str
    level: str
    status: str
    width: float  # pixels, capped at the full bar
    warning_at: float  # pixels where the warning and critical thresholds sit
    critical_at: float


@dataclass(slots=True)
class Page:
    window: ReportWindow
    arn_pattern: str | None
    generated_at: str
    total_cost: str
    total_shown: str
    total_calls: int
    charts: list[Chart] = field(default_factory=list)
    heat: list[HeatRow] = field(default_factory=list)
    budgets: list[BudgetBar] = field(default_factory=list)
    budget_table: Table | None = None


def html_table(
    columns: Sequence[Column], rows: Sequence[dict[str, Any]], footer: dict[str, Any] | None
) -> Table:
    return Table(
        headings=[column.heading for column in columns],
        numeric=[column.numeric for column in columns],
        rows=[[column.text(row.get(column.key)) for column in columns] for row in rows],
        footer=[column.text(footer[column.key]) if column.key in footer else "" for column in columns]
        if footer is not None
        else None,
    )


def build_chart(
    chart_id: str, title: str, group: str, kind: str, report: UsageReport, top: int | None
) -> Chart:
    rows = report_rows(report, top=top)
    ordered = sorted(rows.rows, key=lambda row: plain_text(row[group])) if kind == "columns" else rows.rows
    highest = max((row["cost_usd"] for row in ordered), default=Decimal(0))
    full = COLUMN_HEIGHT if kind == "columns" else BAR_WIDTH
    marks = [
        Mark(
            label=plain_text(row[group]),
            cost=money.exact(row["cost_usd"]),
            calls=row["calls"],
            shown=money.dollars(row["cost_usd"]),
            length=round(float(row["cost_usd"] / highest) * full, 2) if highest > 0 else 0.0,
        )
        for row in ordered
    ]
    return Chart(chart_id, title, group, kind, marks, html_table(rows.columns, rows.rows, rows.total))


def build_heat(report: UsageReport, window: ReportWindow) -> list[HeatRow]:
    """Days down, hours of the day (UTC) across; darker is more spend."""
    by_hour = {row["hour"]: row for row in report_rows(report).rows}
    highest = max((row["cost_usd"] for row in by_hour.values()), default=Decimal(0))
    heat = []
    day = window.since.replace(hour=0)
    while day < window.until:
        cells = []
        for hour in range(24):
            moment = day + timedelta(hours=hour)
            row = by_hour.get(moment.strftime("%Y-%m-%dT%H"))
            share = float(row["cost_usd"] / highest) if row is not None and highest > 0 else 0.0
            cells.append(
                HeatCell(
                    hour=hour,
                    cost=money.exact(row["cost_usd"]) if row is not None else None,
                    calls=row["calls"] if row is not None else 0,
                    fill=_heat_colour(share) if row is not None else "#f4f4f4",
                    title=f"{moment.strftime('%Y-%m-%d %H:00')} UTC: "
                    + (f"{money.dollars(row['cost_usd'])}, {row['calls']:,} calls" if row else "no calls"),
                )
            )
        heat.append(HeatRow(day.strftime("%Y-%m-%d"), cells))
        day += timedelta(days=1)
    return heat


def _heat_colour(share: float) -> str:
    # From a pale amber (a little spend) to a deep red (the hour that spent the most).
    low, high = (255, 237, 160), (189, 0, 38)
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(low, high, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _budgets(tunables: Tunables, now: datetime) -> tuple[list[BudgetBar], Table]:
    """The budgets operators set and those needing attention (no operator's suspensions) in their
    current window, the fullest first."""
    # The operators' budgets and the watched ones (storage.readers): never every default budget.
    items = [item for item in budgets_to_watch(MOST_WATCHED).items if not is_manual_window(item.window)]
    states = [state for state in budget_states(items, tunables, now) if state.budget is not None]
    pairs = [(state.budget, status_row(state)) for state in states]
    pairs.sort(key=lambda pair: (-(pair[1]["percent"] or 0), pair[1]["scope"], pair[1]["window"]))
    bars = [budget_bar(budget, row) for budget, row in pairs if budget is not None]
    columns = [column for column in STATUS_COLUMNS if column.key in BUDGET_COLUMNS]
    return bars, html_table(columns, [row for _, row in pairs], None)


def budget_bar(budget: Budget, row: dict[str, Any]) -> BudgetBar:
    """The usage bar of a budget from its `status_row`, thresholds marked."""
    return BudgetBar(
        scope=row["scope"],
        window=row["window"],
        spent=money.exact(row["spent_usd"]),
        limit=money.exact(budget.limit_usd),
        percent=plain_text(row["percent"]),
        level=row["level"] or "",
        status=row["status"],
        width=round(min(float(row["percent"]) / 100, 1.0) * BAR_WIDTH, 2),
        warning_at=round(float(budget.warning_percent) / 100 * BAR_WIDTH, 2),
        critical_at=round(float(budget.critical_percent) / 100 * BAR_WIDTH, 2),
    )


def build_page(window: ReportWindow, arn_pattern: str | None, tunables: Tunables, now: datetime) -> Page:
    """Every chart of the page from one read of the window's usage lines."""
    reports = {chart_id: UsageReport([group]) for chart_id, _, group, _, _ in CHARTS}
    hours = UsageReport(["hour"])
    fill([*reports.values(), hours], window, arn_pattern)
    total = hours.total
    page = Page(
        window=window,
        arn_pattern=arn_pattern,
        generated_at=iso_utc(now),
        total_cost=money.exact(total.cost_usd),
        total_shown=money.dollars(total.cost_usd),
        total_calls=total.calls,
    )
    page.charts = [
        build_chart(chart_id, title, group, kind, reports[chart_id], top)
        for chart_id, title, group, top, kind in CHARTS
    ]
    page.heat = build_heat(hours, window)
    page.budgets, page.budget_table = _budgets(tunables, now)
    return page


_ENVIRONMENT = Environment(
    loader=PackageLoader("budgetkeeper_cli", "templates"),
    autoescape=select_autoescape(("html", "html.j2"), default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
# The sizes the chart macros (templates/charts.html.j2) draw to.
CHART_SIZES = {"bar_width": BAR_WIDTH, "column_height": COLUMN_HEIGHT}
_ENVIRONMENT.globals.update(CHART_SIZES)


def render_page(page: Page) -> str:
    return _ENVIRONMENT.get_template("report.html.j2").render(page=page)


def write_html_report(
    path: Path, window: ReportWindow, arn_pattern: str | None, tunables: Tunables, now: datetime
) -> None:
    text = render_page(build_page(window, arn_pattern, tunables, now))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CommandFailed(f"cannot write {path}: {error.strerror or error}") from None
