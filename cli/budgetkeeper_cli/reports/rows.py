"""The rows a usage report prints (through the one renderer, `budgetkeeper_cli.rendering`): group
fields, counters, cost, the comparison with the window before, `--top` and `--max-rows`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from budgetkeeper.core import money
from budgetkeeper.pricing.table import PriceBasis
from budgetkeeper_cli import rendering
from budgetkeeper_cli.rendering import Column
from budgetkeeper_cli.reports.aggregation import ROW_FIELDS, ReportRow, Totals, UsageReport

# --- rendering ---------------------------------------------------------------------------------
# Through the one renderer every command uses (budgetkeeper_cli.rendering).

_COUNTER_TITLES: Mapping[str, str] = {
    "calls": "calls",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
}
# The columns a table too wide leaves out first (rendering.Column.drop_order; the comparison's
# are 3, 8 and 9): never calls, cost or the change in percent.
_DROP_ORDER: Mapping[str, int] = {
    "cache_write_tokens": 1,
    "cache_read_tokens": 2,
    "output_tokens": 4,
    "input_tokens": 5,
    "estimated_usd": 6,
    "price_basis": 7,
}


OTHERS = "(others)"  # the group value of the row that sums the groups --top leaves out


COMPARE_COLUMNS: tuple[Column, ...] = (
    Column("previous_calls", "prev calls", numeric=True, show="{:,}".format, drop_order=3),
    Column("previous_cost_usd", "prev cost", numeric=True, show=money.dollars, drop_order=8),
    Column("change_usd", "change", numeric=True, show=money.dollars, drop_order=9),
    Column("change_percent", "change %", numeric=True, show=lambda value: f"{value:+.1f}%"),
)


def columns(group_by: Sequence[str], *, compare: bool = False) -> list[Column]:
    """The columns of a usage report: group fields, counters, cost (and the comparison)."""
    return [
        *(Column(name, wraps=True) for name in group_by),
        *(
            Column(name, title, numeric=True, show="{:,}".format, drop_order=_DROP_ORDER.get(name))
            for name, title in _COUNTER_TITLES.items()
        ),
        Column("cost_usd", "cost", numeric=True, show=money.dollars),
        Column("estimated_usd", "estimated", numeric=True, show=money.dollars, drop_order=6),
        Column("price_basis", "price basis", drop_order=7),
        *(COMPARE_COLUMNS if compare else ()),
    ]


def _row(group: Sequence[str | None], group_by: Sequence[str], totals: Totals) -> dict[str, Any]:
    return {
        **dict(zip(group_by, group, strict=True)),
        **{name: getattr(totals, name) for name in ROW_FIELDS},
    }


def _comparison(current: Totals, previous: Totals) -> dict[str, Any]:
    change = current.cost_usd - previous.cost_usd
    percent = (change * 100 / previous.cost_usd).quantize(Decimal("0.1")) if previous.cost_usd else None
    return {
        "previous_calls": previous.calls,
        "previous_cost_usd": previous.cost_usd,
        "change_usd": change,
        "change_percent": percent,
    }


@dataclass(frozen=True, slots=True)
class ReportRows:
    """The rows a report prints, and what it left out of them."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any]  # the footer of the table: every group, also those not printed
    left_out: int = 0  # groups --max-rows did not print


def report_rows(
    report: UsageReport,
    *,
    previous: UsageReport | None = None,
    top: int | None = None,
    max_rows: int | None = None,
) -> ReportRows:
    """Rows, the most expensive first; with `previous`, each group against the window before.

    `top` keeps the N most expensive groups and sums the rest in one row whose group values are
    `(others)`, so the rows still add up to the total; `max_rows` prints at most N rows.
    """
    group_by = report.group_by
    ranked = report.rows()
    if previous is not None:  # groups only the previous window had, at zero now
        seen = {row.group for row in ranked}
        ranked += [ReportRow(row.group, Totals()) for row in previous.rows() if row.group not in seen]
    rows: list[tuple[tuple[str | None, ...], Totals, Totals | None]] = [
        (row.group, row.totals, previous.totals_of(row.group) if previous is not None else None)
        for row in ranked
    ]
    if top is not None and len(rows) > top:
        others, others_before = Totals(), Totals() if previous is not None else None
        for _, totals, before in rows[top:]:
            others.merge(totals)
            if others_before is not None and before is not None:
                others_before.merge(before)
        rows = [*rows[:top], ((OTHERS,) * len(group_by), others, others_before)]
    shown = rows if max_rows is None else rows[:max_rows]
    printed = [
        {**_row(group, group_by, totals), **(_comparison(totals, before) if before is not None else {})}
        for group, totals, before in shown
    ]
    total = _row(["TOTAL", *([""] * (len(group_by) - 1))], group_by, report.total)
    if previous is not None:
        total.update(_comparison(report.total, previous.total))
    return ReportRows(columns(group_by, compare=previous is not None), printed, total, len(rows) - len(shown))


FLAG_COLUMNS = frozenset({"estimated_usd", "price_basis"})


def render_rows(rows: ReportRows, output_format: str) -> str:
    """Table (costs rounded for people, a total line), csv or json (exact costs). A table shows
    the estimated cost and price basis only when some call was not priced exactly; csv and json
    always carry them."""
    columns = rows.columns
    if output_format == "table" and rows.total["price_basis"] == PriceBasis.EXACT:
        columns = [column for column in columns if column.key not in FLAG_COLUMNS]
    return rendering.render(columns, rows.rows, output_format, footer=rows.total)


def render(report: UsageReport, output_format: str, *, max_rows: int | None = None) -> str:
    """Table (costs rounded for people, the most expensive group first, a total line), csv or json."""
    return render_rows(report_rows(report, max_rows=max_rows), output_format)


def left_out_line(rows: ReportRows) -> list[str]:
    """What --max-rows left out, for stderr."""
    if not rows.left_out:
        return []
    return [f"note: {rows.left_out:,} more row{'s' if rows.left_out > 1 else ''} not shown (--max-rows)"]
