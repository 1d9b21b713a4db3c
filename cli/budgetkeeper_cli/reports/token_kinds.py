"""The cost of a window split by kind of token: input, output, cache read, cache write.

A usage line keeps its tokens by kind and one exact cost. Each (model, Region) group's cost is
shared among its kinds in proportion to tokens times the rate the price table charges each kind
(`Rates.charged`, the calculator's own rates), and the last share takes the rounding, so the kinds
add up to the report's total exactly.
"""

from __future__ import annotations

from decimal import Decimal

from budgetkeeper.pricing.table import TOKEN_KINDS, PriceTable, resolve_model_id
from budgetkeeper_cli.reports.aggregation import Totals, UsageReport

KINDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
KIND_TITLES = {
    "input_tokens": "input",
    "output_tokens": "output",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
}
# The rate of each kind above, as an index into TOKEN_KINDS (a write is charged at the 5-minute rate).
_RATE_INDEX = {
    "input_tokens": TOKEN_KINDS.index("input"),
    "output_tokens": TOKEN_KINDS.index("output"),
    "cache_read_tokens": TOKEN_KINDS.index("cache_read"),
    "cache_write_tokens": TOKEN_KINDS.index("cache_write_5m"),
}


def cost_by_token_kind(report: UsageReport, prices: PriceTable) -> dict[str, Decimal]:
    """`report` grouped by ("model", "region"): its cost per kind of token, in KINDS order."""
    if report.group_by != ("model", "region"):
        raise ValueError(f"a split by token kind needs a report by model and region, not {report.group_by}")
    split = dict.fromkeys(KINDS, Decimal(0))
    for row in report.rows():
        model, region = row.group
        for kind, cost in _shares(row.totals, _rates(prices, model, region)).items():
            split[kind] += cost
    return split


def _rates(prices: PriceTable, model: str | None, region: str | None) -> dict[str, Decimal] | None:
    if not model or not region:
        return None
    found = prices.match(resolve_model_id(model), region).row
    if found is None:
        return None
    return {kind: found.rates.charged[index][0] for kind, index in _RATE_INDEX.items()}


def _shares(totals: Totals, rates: dict[str, Decimal] | None) -> dict[str, Decimal]:
    tokens = {kind: Decimal(getattr(totals, kind)) for kind in KINDS}
    weights = {kind: count * rates[kind] for kind, count in tokens.items()} if rates else tokens
    whole = sum(weights.values(), Decimal(0))
    if whole == 0:  # no rate known for any kind the calls used: by token count
        weights, whole = tokens, sum(tokens.values(), Decimal(0))
    if whole == 0:
        return {}
    shares = {kind: totals.cost_usd * weight / whole for kind, weight in weights.items() if weight}
    last = next(reversed(shares))
    shares[last] = totals.cost_usd - sum((cost for kind, cost in shares.items() if kind != last), Decimal(0))
    return shares
