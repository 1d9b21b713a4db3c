"""The price tables as rows: price versions, the rows of a table, operators' overrides.

`prices show` prints them and the console's Prices tab shows them.
"""

from __future__ import annotations

from typing import Any, cast

from budgetkeeper.pricing.table import TOKEN_KINDS, resolve_model_id
from budgetkeeper.pricing.versions import (
    active_table,
    overrides,
    versions,
)
from budgetkeeper_cli.rendering import Column

VERSION_COLUMNS = (
    Column("version"),
    Column("status"),
    Column("created_at"),
    Column("rows", numeric=True),
    Column("refusals"),
)
ROW_COLUMNS = (
    Column("model"),
    Column("region"),
    Column("tier"),
    *(Column(kind, numeric=True) for kind in TOKEN_KINDS),
    Column("long_context"),
    Column("source"),
    Column("as_of"),
)
OVERRIDE_COLUMNS = (
    Column("model"),
    Column("region"),
    Column("tier"),
    *(Column(kind, numeric=True) for kind in TOKEN_KINDS),
    Column("version"),
    Column("in_force"),
    Column("source"),
)
BUNDLED = "none (the bundled table)"
CHANGE_COLUMNS = (
    Column("model"),
    Column("region"),
    Column("tier"),
    Column("kind"),
    Column("old", numeric=True),
    Column("new", numeric=True),
)


def price_row(row: Any) -> dict[str, Any]:
    data = row.to_dict()
    return {**data, "long_context": None if row.long_context is None else row.long_context.threshold_tokens}


def version_rows() -> list[dict[str, Any]]:
    """The stored price versions, as `prices show` lists them."""
    return [
        {
            "version": item.version,
            "status": item.status,
            "created_at": item.created_at,
            "rows": item.row_count,
            # pynamodb's stubs type a ListAttribute's elements as the attribute class, not str.
            "refusals": "; ".join(cast(list[str], item.refusals or [])) or None,
        }
        for item in versions()
    ]


def override_rows_in_force() -> list[dict[str, Any]]:
    table = active_table()
    rows = []
    for row in overrides():
        priced_by = table.match(resolve_model_id(row.model), row.region, row.tier).row
        in_force = "yes" if priced_by is None else f"no: {table.version} prices it"
        rows.append({**row.to_dict(), "in_force": in_force})
    return rows
