"""The one renderer of rows for every command: `--format table|csv|json`.

A command describes its columns once (`Column`) and hands over rows as mappings of plain values
(str, int, bool, Decimal, None). Then:
- table: aligned columns for people; `Column.show` formats a value (e.g. money), numbers are
  right-aligned, a missing value is `-`; an optional footer (a total) sits under a second rule;
- csv: a header of column keys, exact values (a Decimal in plain notation), `-` for missing ones;
- json: a list of objects keyed by column key, Decimals as exact strings, missing values as null.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from budgetkeeper.core import money
from budgetkeeper_cli.errors import UsageError

FORMATS: tuple[str, ...] = ("table", "csv", "json")
MISSING = "-"  # a value a row has none of, in table and CSV

Row = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    key: str  # JSON key and CSV header
    title: str | None = None  # table header; default: the key
    numeric: bool = False  # right-aligned in the table
    show: Callable[[Any], str] | None = None  # table text of a present value; default: plain text

    @property
    def heading(self) -> str:
        return self.key if self.title is None else self.title

    def text(self, value: Any) -> str:
        if value is None:
            return MISSING
        if self.show is not None:
            return self.show(value)
        return plain_text(value)


def plain_text(value: Any) -> str:
    """A value as CSV and the table write it when no column formats it."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return money.exact(value)
    if isinstance(value, (list, tuple)):
        return ",".join(plain_text(item) for item in value) if value else MISSING
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return money.exact(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_text(document: Any) -> str:
    """Any document of plain values (Decimals become exact strings), indented, with a newline."""
    return json.dumps(document, indent=2, default=_json_default) + "\n"


def json_rows(columns: Sequence[Column], rows: Sequence[Row]) -> list[dict[str, Any]]:
    return [{column.key: row.get(column.key) for column in columns} for row in rows]


def render_json(columns: Sequence[Column], rows: Sequence[Row]) -> str:
    return json_text(json_rows(columns, rows))


def render_csv(columns: Sequence[Column], rows: Sequence[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.key for column in columns])
    for row in rows:
        writer.writerow(
            [
                ("true" if value else "false") if isinstance(value, bool) else plain_text(value)
                for value in (row.get(column.key) for column in columns)
            ]
        )
    return buffer.getvalue()


def render_table(columns: Sequence[Column], rows: Sequence[Row], *, footer: Row | None = None) -> str:
    """Aligned columns under a header and a rule; a footer row (e.g. a total) under a second rule.

    Within `table_width` columns: the widest columns of words are narrowed and their cells wrap
    onto the next lines, between words where they can (`budgetkeeper --wide`: one line a row)."""
    header = [column.heading for column in columns]
    body = [[column.text(row.get(column.key)) for column in columns] for row in rows]
    tail = [[_footer_text(column, footer) for column in columns]] if footer is not None else []
    widths = [max(len(cells[i]) for cells in (header, *body, *tail)) for i in range(len(columns))]
    if table_width is not None:
        prose = [any(cells[i].count(" ") >= PROSE_SPACES for cells in body) for i in range(len(columns))]
        widths = _narrowed(prose, widths, table_width)

    def line(cells: Sequence[str]) -> str:
        wrapped = [_wrapped(cell, width) for cell, width in zip(cells, widths, strict=True)]
        return "\n".join(
            "  ".join(
                (parts[index] if index < len(parts) else "").rjust(width)
                if column.numeric
                else (parts[index] if index < len(parts) else "").ljust(width)
                for column, parts, width in zip(columns, wrapped, widths, strict=True)
            ).rstrip()
            for index in range(max(len(parts) for parts in wrapped))
        )

    rule = "  ".join("-" * width for width in widths)
    lines = [line(header), rule, *(line(cells) for cells in body)]
    if tail:
        lines += [rule, line(tail[0])]
    return "\n".join(lines) + "\n"


# Tables fit this many columns (a terminal, a ticket, a mail); None: as wide as their cells.
TABLE_WIDTH = 120
MIN_WRAPPED_WIDTH = 12
PROSE_SPACES = 3  # a column with a cell of four words or more is text, and may wrap
table_width: int | None = TABLE_WIDTH


def _narrowed(prose: Sequence[bool], widths: list[int], limit: int) -> list[int]:
    """Widths that fit `limit`, taken from the widest columns of words (`prose`): names, ids and
    numbers are never cut, so a table of them only may stay wider."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - limit
    while excess > 0:
        text = [i for i, is_prose in enumerate(prose) if is_prose and widths[i] > MIN_WRAPPED_WIDTH]
        if not text:
            break
        widest = max(text, key=lambda i: widths[i])
        others = [widths[i] for i in text if i != widest]
        step = min(excess, widths[widest] - max([*others, MIN_WRAPPED_WIDTH - 1]) or 1)
        widths[widest] -= max(step, 1)
        excess -= max(step, 1)
    return widths


def _wrapped(cell: str, width: int) -> list[str]:
    if len(cell) <= width:
        return [cell]
    return textwrap.wrap(cell, width, break_long_words=True, break_on_hyphens=False) or [""]


def _footer_text(column: Column, footer: Row) -> str:
    # A footer names only some columns (a label, the totals); the others stay blank, not `-`.
    return column.text(footer[column.key]) if column.key in footer else ""


def render(
    columns: Sequence[Column], rows: Sequence[Row], output_format: str, *, footer: Row | None = None
) -> str:
    """Rows in one of FORMATS; the footer is shown in the table only (csv and json hold the rows)."""
    if output_format == "json":
        return render_json(columns, rows)
    if output_format == "csv":
        return render_csv(columns, rows)
    if output_format == "table":
        return render_table(columns, rows, footer=footer)
    raise UsageError(f"unknown format {output_format!r}: use one of {', '.join(FORMATS)}")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 call`, `2 calls`, `1,204 calls`: a count with its noun in agreement."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def key_value_table(pairs: Sequence[tuple[str, str]]) -> str:
    """`name  value` lines with the names aligned, for one record shown to people."""
    width = max((len(name) for name, _ in pairs), default=0)
    return "".join(f"{name.ljust(width)}  {value}".rstrip() + "\n" for name, value in pairs)
