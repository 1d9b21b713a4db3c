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
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape

from budgetkeeper.budgets.rules import Budget, is_manual_window
from budgetkeeper.core import money
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.scopes import ScopeKind
from budgetkeeper.pricing.table import resolve_model_id
from budgetkeeper.pricing.versions import active_table
from budgetkeeper.storage.readers import MOST_WATCHED, budgets_to_watch
from budgetkeeper_cli.errors import CommandFailed
from budgetkeeper_cli.rendering import Column, plain_text
from budgetkeeper_cli.reports.aggregation import GROUP_FIELDS, ROW_FIELDS, UsageReport
from budgetkeeper_cli.reports.rollups import ReportWindow, fill
from budgetkeeper_cli.reports.rows import OTHERS, report_rows
from budgetkeeper_cli.reports.timeline import TimeChart, build_time_chart
from budgetkeeper_cli.reports.token_kinds import KIND_TITLES, cost_by_token_kind
from budgetkeeper_cli.views import STATUS_COLUMNS, budget_states, status_row

TOP_PRINCIPALS = 10
BAR_WIDTH = 520  # pixels of the longest bar
LABEL_WIDTH = 300  # pixels left of the bars for their labels
LABEL_CHARACTERS = 44  # a label longer than this is cut in its middle (11 px text fits 300 px)
COLUMN_HEIGHT = 200  # pixels of the highest day column
BUDGET_COLUMNS = (
    "scope",
    "window",
    "window_id",
    "spent_usd",
    "limit_usd",
    "percent",
    "forecast_usd",
    "level",
    "status",
)

# (chart id, title, group field, keep the N most expensive (--top), drawn as)
CHARTS: tuple[tuple[str, str, str], ...] = (
    ("team", "Spend per team", "team"),
    ("model", "Spend per model (all endpoints of a model together)", "model"),
    ("principal", "Spend per principal", "principal"),
)
# Where the spend went, by kind of token (the calculator prices each kind at its own rate).
TOKEN_KIND_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@dataclass(frozen=True, slots=True)
class Mark:
    """One bar or column: its label, exact values and its length in pixels."""

    label: str
    cost: str  # exact decimal string, as the JSON output has it
    calls: int
    shown: str  # the cost as people read it
    length: float
    short: str = ""  # the label as drawn: cut in its middle when long
    detail: str = ""  # e.g. the endpoint kinds of a model family
    link: str | None = None  # the scope's own page, in the console


@dataclass(frozen=True, slots=True)
class Table:
    headings: list[str]
    numeric: list[bool]
    rows: list[list[str]]
    footer: list[str] | None = None
    links: list[list[str | None]] | None = None  # per cell: the page a cell links to (a scope's)


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
    window_id: str
    spent: str
    limit: str
    percent: str
    level: str
    status: str
    width: float  # pixels, capped at the full bar
    warning_at: float  # pixels where the warning and critical thresholds sit
    critical_at: float
    warning_percent: str = ""
    critical_percent: str = ""
    forecast: str | None = None  # exact projected spend at the window's end, as `status` has it
    forecast_at: float | None = None  # pixels, capped at the full bar
    short: str = ""


@dataclass(slots=True)
class Page:
    window: ReportWindow
    arn_pattern: str | None
    generated_at: str
    total_cost: str
    total_shown: str
    total_calls: int
    timelines: list[TimeChart] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    heat: list[HeatRow] = field(default_factory=list)
    budgets: list[BudgetBar] = field(default_factory=list)
    budget_table: Table | None = None
    budgets_at: str = ""
    heat_legend: list[tuple[str, str]] = field(default_factory=list)


def middle(text: str, characters: int = LABEL_CHARACTERS) -> str:
    """`text` cut in its middle when long: both ends tell rows apart (the e-mail at the end of an SSO
    session name, the service at the start of an ARN)."""
    if len(text) <= characters:
        return text
    tail = max(characters // 2, len(text.rsplit("/", 1)[-1]) if "/" in text else 0)
    tail = min(tail, characters - 8)
    return text[: characters - tail - 1] + "…" + text[-tail:]


def no_value(group: str) -> str:
    """What stands for a group a call has none of: `(no team)`, `(no app)`."""
    return f"(no {group})"


def scope_link(value: Any) -> str | None:
    """The console page of a scope (`user:alice`); None for anything that is not one."""
    if not isinstance(value, str) or value.partition(":")[0] not in SCOPE_KINDS:
        return None
    return "/scope?" + urlencode({"name": value})


SCOPE_KINDS = frozenset(str(kind) for kind in ScopeKind)
LINKED = frozenset({"scope", "principal", "role", "app", "team"})


def html_table(
    columns: Sequence[Column], rows: Sequence[dict[str, Any]], footer: dict[str, Any] | None
) -> Table:
    def text(column: Column, row: dict[str, Any]) -> str:
        value = row.get(column.key)
        if value is None and column.key in GROUP_FIELDS:
            return no_value(column.key)
        return column.text(value)

    return Table(
        headings=[column.heading for column in columns],
        numeric=[column.numeric for column in columns],
        rows=[[text(column, row) for column in columns] for row in rows],
        footer=[column.text(footer[column.key]) if column.key in footer else "" for column in columns]
        if footer is not None
        else None,
        links=[
            [scope_link(row.get(column.key)) if column.key in LINKED else None for column in columns]
            for row in rows
        ],
    )


def _label(row: dict[str, Any], group: str) -> str:
    value = row[group]
    return no_value(group) if value is None else plain_text(value)


def model_families(rows: Sequence[dict[str, Any]], top: int | None = None) -> list[dict[str, Any]]:
    """Report rows per model id summed per model (`us.`, `eu.`, `global.`, ... endpoints together),
    the most expensive first; `endpoints`: the cost of each endpoint kind. `top`: the N most
    expensive models, the rest summed in an `(others)` row."""
    families: dict[str, dict[str, Any]] = {}
    for row in rows:
        reference = resolve_model_id(row["model"]) if row["model"] else None
        family = reference.base_model if reference is not None else row["model"]
        kind = f"{reference.profile_prefix}." if reference and reference.profile_prefix else "in-Region"
        _add(families.setdefault(family, {"model": family, "endpoints": {}}), row, kind)
    ranked = sorted(families.values(), key=lambda entry: (-entry["cost_usd"], -entry["calls"]))
    if top is not None and len(ranked) > top:
        others: dict[str, Any] = {"model": OTHERS, "endpoints": {}}
        for entry in ranked[top:]:
            _add(others, entry, None)
        ranked = [*ranked[:top], others]
    for entry in ranked:
        entry["endpoints"] = ", ".join(
            f"{kind} {money.dollars(cost)}"
            for kind, cost in sorted(entry["endpoints"].items(), key=lambda item: -item[1])
        )
    return ranked


def _add(entry: dict[str, Any], row: dict[str, Any], kind: str | None) -> None:
    for name in ROW_FIELDS[:-1]:
        entry[name] = entry.get(name, 0) + row[name]
    bases = [basis for basis in (entry.get("price_basis"), row["price_basis"]) if basis]
    entry["price_basis"] = bases[0] if len(set(bases)) == 1 else "; ".join(dict.fromkeys(bases))
    if kind is not None:
        entry["endpoints"][kind] = entry["endpoints"].get(kind, Decimal(0)) + row["cost_usd"]


def build_chart(
    chart_id: str, title: str, group: str, kind: str, report: UsageReport, top: int | None
) -> Chart:
    rows = report_rows(report, top=None if group == "model" else top)
    shown = model_families(rows.rows, top) if group == "model" else rows.rows
    columns = (
        [*rows.columns[:1], Column("endpoints"), *rows.columns[1:]] if group == "model" else rows.columns
    )
    ordered = sorted(shown, key=lambda row: plain_text(row[group])) if kind == "columns" else shown
    highest = max((row["cost_usd"] for row in ordered), default=Decimal(0))
    full = COLUMN_HEIGHT if kind == "columns" else BAR_WIDTH
    marks = [
        Mark(
            label=_label(row, group),
            cost=money.exact(row["cost_usd"]),
            calls=row["calls"],
            shown=money.dollars(row["cost_usd"]),
            length=round(float(row["cost_usd"] / highest) * full, 2) if highest > 0 else 0.0,
            short=middle(_label(row, group)),
            detail=row.get("endpoints") or "",
            link=scope_link(row[group]),
        )
        for row in ordered
    ]
    return Chart(chart_id, title, group, kind, marks, html_table(columns, shown, rows.total))


def token_kind_chart(report: UsageReport, prices: Any) -> Chart:
    """The window's cost split by kind of token (input, output, cache read, cache write)."""
    split = cost_by_token_kind(report, prices)
    highest = max(split.values(), default=Decimal(0))
    marks = [
        Mark(
            label=KIND_TITLES[kind],
            cost=money.exact(cost),
            calls=0,
            shown=money.dollars(cost),
            length=round(float(cost / highest) * BAR_WIDTH, 2) if highest > 0 else 0.0,
            short=KIND_TITLES[kind],
        )
        for kind, cost in split.items()
    ]
    rows = [{"kind": KIND_TITLES[kind], "cost_usd": cost} for kind, cost in split.items()]
    columns = (Column("kind"), Column("cost_usd", "cost", numeric=True, show=money.dollars))
    table = html_table(columns, rows, {"kind": "TOTAL", "cost_usd": sum(split.values(), Decimal(0))})
    return Chart("token-kind", "Cost by kind of token", "kind", "bars", marks, table)


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


def heat_legend(report: UsageReport) -> list[tuple[str, str]]:
    """(colour, amount) from a little spend to the hour that spent the most, for the map's legend."""
    highest = max((row.totals.cost_usd for row in report.rows()), default=Decimal(0))
    return [(_heat_colour(share), money.dollars(highest * Decimal(str(share)))) for share in (0.0, 0.5, 1.0)]


def _heat_colour(share: float) -> str:
    # From a pale amber (a little spend) to a deep red (the hour that spent the most).
    low, high = (255, 237, 160), (189, 0, 38)
    red, green, blue = (round(a + (b - a) * share) for a, b in zip(low, high, strict=True))
    return f"#{red:02x}{green:02x}{blue:02x}"


def _budgets(tunables: Tunables, at: datetime) -> tuple[list[BudgetBar], Table, list[dict[str, Any]]]:
    """The budgets operators set and those needing attention (no operator's suspensions) in the
    window `at` falls in, the fullest first."""
    # The operators' budgets and the watched ones (storage.readers): never every default budget.
    items = [item for item in budgets_to_watch(MOST_WATCHED).items if not is_manual_window(item.window)]
    states = [state for state in budget_states(items, tunables, at) if state.budget is not None]
    pairs = [(state.budget, status_row(state)) for state in states]
    pairs.sort(key=lambda pair: (-(pair[1]["percent"] or 0), pair[1]["scope"], pair[1]["window"]))
    bars = [budget_bar(budget, row) for budget, row in pairs if budget is not None]
    columns = [column for column in STATUS_COLUMNS if column.key in BUDGET_COLUMNS]
    rows = [row for _, row in pairs]
    return bars, html_table(columns, rows, None), rows


def account_levels(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, Decimal]]:
    """An account's daily budgets: lines across a chart of everyone's spend per day."""
    return [
        ("budget", f"{row['scope']} daily limit", row["limit_usd"])
        for row in rows
        if row["scope"].startswith("account:") and row["window"] == "daily" and row["limit_usd"] is not None
    ]


def _pixels(amount: Decimal, budget: Budget) -> float:
    return round(min(float(amount / budget.limit_usd), 1.0) * BAR_WIDTH, 2) if budget.limit_usd else 0.0


def budget_bar(budget: Budget, row: dict[str, Any]) -> BudgetBar:
    """The usage bar of a budget from its `status_row`, thresholds and forecast marked."""
    forecast = row.get("forecast_usd")
    return BudgetBar(
        scope=row["scope"],
        window=row["window"],
        window_id=row["window_id"] or "",
        spent=money.exact(row["spent_usd"]),
        limit=money.exact(budget.limit_usd),
        percent=plain_text(row["percent"]),
        level=row["level"] or "",
        status=row["status"],
        width=round(min(float(row["percent"]) / 100, 1.0) * BAR_WIDTH, 2),
        warning_at=round(float(budget.warning_percent) / 100 * BAR_WIDTH, 2),
        critical_at=round(float(budget.critical_percent) / 100 * BAR_WIDTH, 2),
        warning_percent=plain_text(budget.warning_percent),
        critical_percent=plain_text(budget.critical_percent),
        forecast=money.exact(forecast) if forecast is not None else None,
        forecast_at=_pixels(forecast, budget) if forecast is not None else None,
        short=middle(f"{row['scope']} · {row['window']}"),
    )


def budgets_moment(window: ReportWindow, now: datetime) -> datetime:
    """The moment whose budget windows a report shows: now, or the report window's last second."""
    return min(now, window.until - timedelta(seconds=1))


def build_page(
    window: ReportWindow, arn_pattern: str | None, tunables: Tunables, now: datetime, top: int | None = None
) -> Page:
    """Every chart of the page from one read of the window's usage lines (and one of the window
    before, for the overlay); `top`: the N most expensive groups of each chart (`--top`)."""
    reports = {chart_id: UsageReport([group]) for chart_id, _, group in CHARTS}
    days, hours = UsageReport(["day"]), UsageReport(["hour"])
    model_regions = UsageReport(["model", "region"])
    fill([*reports.values(), days, hours, model_regions], window, arn_pattern)
    previous_days = UsageReport(["day"])
    fill([previous_days], window.previous(), arn_pattern)
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
        build_chart(
            chart_id,
            title,
            group,
            "bars",
            reports[chart_id],
            top or (TOP_PRINCIPALS if chart_id == "principal" else None),
        )
        for chart_id, title, group in CHARTS
    ]
    page.charts.append(token_kind_chart(model_regions, active_table()))
    page.heat = build_heat(hours, window)
    page.heat_legend = heat_legend(hours)
    at = budgets_moment(window, now)
    page.budgets, page.budget_table, budget_rows = _budgets(tunables, at)
    page.budgets_at = iso_utc(at)
    levels = account_levels(budget_rows) if arn_pattern is None else []
    page.timelines = [
        build_time_chart("day", "Spend per day", "day", days, window, previous=previous_days, levels=levels),
        build_time_chart("hour", "Spend per hour (UTC)", "hour", hours, window),
    ]
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
_ENVIRONMENT.filters["middle"] = middle


def render_page(page: Page) -> str:
    return _ENVIRONMENT.get_template("report.html.j2").render(page=page)


def write_html_report(
    path: Path,
    window: ReportWindow,
    arn_pattern: str | None,
    tunables: Tunables,
    now: datetime,
    top: int | None = None,
) -> None:
    text = render_page(build_page(window, arn_pattern, tunables, now, top))
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise CommandFailed(f"cannot write {path}: {error.strerror or error}") from None
