"""Cross-check the bundled price table against a second, independent public source: `make prices`.

The second source is Pydantic's `genai-prices` package (MIT), pinned in requirements-dev.txt and
read offline from the installed package: its `aws` (Bedrock) provider. Each standard-tier row of
the bundled table is compared, token kind by token kind, with the genai-prices model that matches
its model id by genai-prices' own match rules, at the rates each source would charge: a cache kind
a source gives no price for is charged at the next kind's rate (pricing.Rates' stand-in rule, the
same on both sides). Every disagreement is listed with both figures; models genai-prices does not
know are counted, not listed. genai-prices has no service tiers and no per-Region prices: priority
and flex rows are not compared, and every Region's row of a model is compared with the one price.

The bundled table stays as built: this is a check for a human to read (README: which source wins).

    .venv/bin/python scripts/cross_check_prices.py [--format table|csv]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.pricing.table import ANY_REGION, TOKEN_KINDS, PriceTable, Rates

# genai-prices' price fields, by our token kind.
THEIR_FIELDS: Mapping[str, str] = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cache_read": "cache_read_mtok",
    "cache_write_5m": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
}

# (their model id, their rates) for one of our model ids, or None when they do not know it.
Lookup = Callable[[str], "tuple[str, Rates] | None"]


@dataclass(frozen=True, slots=True)
class Disagreement:
    model: str
    region: str | None  # None: the row prices every Region
    kind: str
    ours: Decimal
    theirs: Decimal
    their_model: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "region": self.region or "",
            "kind": self.kind,
            "ours": str(self.ours),
            "theirs": str(self.theirs),
            "genai_prices_model": self.their_model,
        }


@dataclass(frozen=True, slots=True)
class CrossCheck:
    disagreements: tuple[Disagreement, ...]
    compared_rows: int
    unknown_to_them: tuple[str, ...]  # our model ids genai-prices does not match


def compare(table: Iterable[Any], lookup: Lookup) -> CrossCheck:
    """Every (row, token kind) whose charged rate differs between our table and theirs."""
    disagreements = []
    compared = 0
    unknown = set()
    for row in table:
        if row.tier is not ServiceTier.STANDARD:
            continue
        found = lookup(row.model)
        if found is None:
            unknown.add(row.model)
            continue
        their_model, theirs = found
        compared += 1
        region = None if row.region == ANY_REGION else row.region
        for kind, (ours, _), (their_rate, _) in zip(
            TOKEN_KINDS, row.rates.charged, theirs.charged, strict=True
        ):
            if ours != their_rate:
                disagreements.append(Disagreement(row.model, region, kind, ours, their_rate, their_model))
    return CrossCheck(tuple(disagreements), compared, tuple(sorted(unknown)))


def _base(value: Any) -> Decimal | None:
    """A flat price, or a tiered one's base (the tiers are long-context rates)."""
    return None if value is None else Decimal(getattr(value, "base", value))


def their_rates(model_price: Any) -> Rates | None:
    """genai-prices' ModelPrice as our Rates (None when it has no input or output price)."""
    values = {kind: _base(getattr(model_price, field, None)) for kind, field in THEIR_FIELDS.items()}
    if values["input"] is None or values["output"] is None:
        return None
    return Rates(**values)  # type: ignore[arg-type]


def current_price(prices: Any, on: date) -> Any:
    """The price in force on `on`: a flat ModelPrice, or the last conditional price that has started."""
    if not isinstance(prices, list):
        return prices
    started = [
        conditional.prices
        for conditional in prices
        if conditional.constraint is None or getattr(conditional.constraint, "start_date", on) <= on
    ]
    return started[-1] if started else None


def genai_prices_lookup(on: date) -> Lookup:
    """Their Bedrock models, matched in their order by their own rules."""
    from genai_prices.data import providers

    [aws] = [provider for provider in providers if provider.id == "aws"]

    def lookup(model_id: str) -> tuple[str, Rates] | None:
        for model in aws.models:
            if model.is_match(model_id):
                rates = their_rates(current_price(model.prices, on))
                return None if rates is None else (model.id, rates)
        return None

    return lookup


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--format", choices=("table", "csv"), default="table")
    args = parser.parse_args()
    from importlib.metadata import version

    table = PriceTable.bundled()
    # As of the day the bundled table was built: its rows' newest as-of date.
    on = max(row.as_of for row in table)
    check = compare(table, genai_prices_lookup(on))
    rows = [item.to_dict() for item in check.disagreements]
    columns = ["model", "region", "kind", "ours", "theirs", "genai_prices_model"]
    if args.format == "csv":
        writer = csv.DictWriter(sys.stdout, columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return 0
    widths = {column: max([len(column), *(len(row[column]) for row in rows)]) for column in columns}
    lines = ["  ".join(column.ljust(widths[column]) for column in columns).rstrip()]
    lines += ["  ".join(row[column].ljust(widths[column]) for column in columns).rstrip() for row in rows]
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.write(
        f"{table.version} against genai-prices {version('genai-prices')} (USD per 1M tokens, as of {on}): "
        f"{len(check.disagreements)} disagreements in {check.compared_rows} standard-tier rows compared; "
        f"{len(check.unknown_to_them)} of our model ids unknown to genai-prices\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
