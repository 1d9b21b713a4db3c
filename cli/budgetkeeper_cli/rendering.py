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
import re
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
    # A table too wide for `table_width` leaves out the columns with a drop order, lowest first
    # (never those without), then wraps the `wraps` columns (names and ids) anywhere in a word.
    drop_order: int | None = None
    wraps: bool = False

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
    onto the next lines, between words where they can; if that is not enough, the columns with a
    drop order are left out (a last line names them), then the columns that wrap are narrowed
    (`budgetkeeper --wide`: every column, one line a row)."""
    left_out: list[Column] = []
    if table_width is not None:
        columns, left_out = _fitting_columns(columns, rows, footer, table_width)
    header = [column.heading for column in columns]
    body = [[column.text(row.get(column.key)) for column in columns] for row in rows]
    tail = [[_footer_text(column, footer) for column in columns]] if footer is not None else []
    widths = _widths(columns, [header], body, tail)
    if table_width is not None:
        prose = _wrapping(columns, body)
        widths = _narrowed([MIN_WRAPPED_WIDTH if words else None for words in prose], widths, table_width)
        id_floors = [max(len(c.heading), MIN_ID_FLOOR) if c.wraps else None for c in columns]
        widths = _narrowed(id_floors, widths, table_width)

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
    if left_out:
        names = ", ".join(column.heading for column in left_out)
        note = f"(not shown, to fit {table_width} columns: {names}; --wide shows them)"
        lines.append(textwrap.fill(note, table_width or TABLE_WIDTH))
    return "\n".join(lines) + "\n"


def _widths(columns: Sequence[Column], *cell_rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(cells[i]) for group in cell_rows for cells in group) for i in range(len(columns))]


def _wrapping(columns: Sequence[Column], body: Sequence[Sequence[str]]) -> list[bool]:
    """Columns of words: a cell of four words or more."""
    return [any(cells[i].count(" ") >= PROSE_SPACES for cells in body) for i in range(len(columns))]


def _fitting_columns(
    columns: Sequence[Column], rows: Sequence[Row], footer: Row | None, limit: int
) -> tuple[list[Column], list[Column]]:
    """The columns to show within `limit` once words and ids wrap, and those left out for it."""
    shown, left_out = list(columns), []
    droppable = sorted((c for c in columns if c.drop_order is not None), key=lambda c: c.drop_order or 0)
    while droppable and _narrowest_width(shown, rows, footer) > limit:
        column = droppable.pop(0)
        shown.remove(column)
        left_out.append(column)
    return shown, left_out


def _narrowest_width(columns: Sequence[Column], rows: Sequence[Row], footer: Row | None) -> int:
    """The table's width once its columns of words and ids are as narrow as wrapping makes them."""
    header = [column.heading for column in columns]
    body = [[column.text(row.get(column.key)) for column in columns] for row in rows]
    tail = [[_footer_text(column, footer) for column in columns]] if footer is not None else []
    widths = _widths(columns, [header], body, tail)
    prose = _wrapping(columns, body)
    narrowest = [
        min(width, MIN_WRAPPED_WIDTH if prose[i] else MIN_ID_WIDTH if columns[i].wraps else width)
        for i, width in enumerate(widths)
    ]
    return sum(narrowest) + 2 * (len(narrowest) - 1)


# Tables fit this many columns (a terminal, a ticket, a mail); None: as wide as their cells.
TABLE_WIDTH = 120
MIN_WRAPPED_WIDTH = 12
MIN_ID_WIDTH = 40  # ids wrap to this width before a column is left out, and narrower only after
MIN_ID_FLOOR = 8  # ... down to this (or their heading's width) when nothing is left to leave out
PROSE_SPACES = 3  # a column with a cell of four words or more is text, and may wrap
table_width: int | None = TABLE_WIDTH


def _narrowed(floors: Sequence[int | None], widths: list[int], limit: int) -> list[int]:
    """Widths that fit `limit`, taken one column at a time from the widest column that may wrap,
    down to its floor (None: never narrowed, as numbers are): a table may stay wider."""
    widths = list(widths)
    excess = sum(widths) + 2 * (len(widths) - 1) - limit
    while excess > 0:
        narrowable = [i for i, floor in enumerate(floors) if floor is not None and widths[i] > floor]
        if not narrowable:
            break
        widths[max(narrowable, key=lambda i: widths[i])] -= 1
        excess -= 1
    return widths


def _wrapped(cell: str, width: int) -> list[str]:
    if len(cell) <= width:
        return [cell]
    if " " not in cell:  # a name or an id: cut after its separators where it can
        cell = re.sub(r"(?<=[/:@])", " ", cell)
        return [part.replace(" ", "") for part in textwrap.wrap(cell, width, break_long_words=True)]
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
