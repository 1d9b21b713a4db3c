"""The metering pipeline: a log message becomes attributed, priced usage; usage becomes deltas.

Shared by the usage calculator (Lambda) and `budgetkeeper meter` (offline), so both price and
attribute the same record the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from budgetkeeper.budgets import Budget
from budgetkeeper.pricing import (
    InferenceProfiles,
    Priced,
    PriceStatus,
    PriceTable,
    decimal_text,
    price_invocation,
)
from budgetkeeper.records import parse_invocation
from budgetkeeper.scopes import Attribution, attribute
from budgetkeeper.usage import Invocation, RollupDelta, TotalDelta, UsageDeltas
from budgetkeeper.windows import iso_utc


@dataclass(frozen=True, slots=True)
class Metered:
    invocation: Invocation
    attribution: Attribution
    priced: Priced

    @property
    def hour(self) -> str:
        return self.invocation.timestamp.strftime("%Y-%m-%dT%H")

    @property
    def model(self) -> str:
        """The model a report shows: the priced key, or the id as logged when it has none."""
        return self.priced.model_key or self.invocation.model_id

    def to_archive_line(self, price_version: str) -> str:
        """The enriched record Firehose archives: no prompt or completion bodies."""
        invocation, attribution, tokens = self.invocation, self.attribution, self.invocation.tokens
        return json.dumps(
            {
                "request_id": invocation.request_id,
                "timestamp": iso_utc(invocation.timestamp),
                "account": invocation.account_id,
                "region": invocation.region,
                "inference_region": invocation.inference_region,
                "operation": invocation.operation,
                "model_id": invocation.model_id,
                "model": self.model,
                "price_status": str(self.priced.status),
                "price_version": price_version,
                "principal": attribution.principal,
                "role": attribution.role,
                "app": attribution.app,
                "team": attribution.team,
                "identity_arn": invocation.identity_arn,
                "tokens": {
                    "input": tokens.input,
                    "output": tokens.output,
                    "cache_read": tokens.cache_read,
                    "cache_write_5m": tokens.cache_write_5m,
                    "cache_write_1h": tokens.cache_write_1h,
                },
                "cost_usd": decimal_text(self.priced.cost_usd),
                "error_code": invocation.error_code,
            },
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class Meter:
    """Parses, attributes and prices one invocation log message (raises MalformedEvent)."""

    prices: PriceTable
    teams: Mapping[str, str]
    profiles: InferenceProfiles | None = None

    def meter(self, message: str | bytes) -> Metered:
        invocation = parse_invocation(message)
        attribution = attribute(
            invocation, teams=self.teams, profile_tags=self.profiles.tags_for if self.profiles else None
        )
        priced = price_invocation(
            self.prices, invocation.model_id, invocation.region, invocation.tokens, self.profiles
        )
        return Metered(invocation, attribution, priced)


def rollup_delta(metered: Metered) -> RollupDelta:
    tokens = metered.invocation.tokens
    return RollupDelta(
        calls=1,
        errors=1 if metered.invocation.error_code else 0,
        unpriced_calls=0 if metered.priced.status == PriceStatus.PRICED else 1,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_5m_tokens=tokens.cache_write_5m,
        cache_write_1h_tokens=tokens.cache_write_1h,
        cost_usd=metered.priced.cost_usd,
    )


def usage_deltas(metered: Iterable[Metered], budgets_of: Callable[[str], list[Budget]]) -> UsageDeltas:
    """Hourly rollups for every scope charged, and window totals for every budget of those scopes.

    A record counts in the window of its own timestamp, even when that window has closed.
    """
    deltas = UsageDeltas()
    rollups, totals = deltas.rollups, deltas.totals
    for item in metered:
        invocation = item.invocation
        delta = rollup_delta(item)
        hour, model, region = item.hour, item.model, invocation.region
        for scope in item.attribution.scopes:
            key = (scope, hour, model, region)
            existing = rollups.get(key)
            if existing is None:
                rollups[key] = RollupDelta(**{name: getattr(delta, name) for name in RollupDelta.COUNTERS})
            else:
                existing.merge(delta)
            for budget in budgets_of(scope):
                span = budget.span_at(invocation.timestamp)
                total_key = (scope, budget.window, span.window_id)
                total = totals.get(total_key)
                if total is None:
                    totals[total_key] = TotalDelta(iso_utc(span.start), iso_utc(span.end), 1, delta.cost_usd)
                else:
                    total.calls += 1
                    total.spent_usd += delta.cost_usd
    return deltas


def money(value: Decimal) -> str:
    """A dollar amount for people: cents, or more digits when below a cent."""
    if value == 0:
        return "$0.00"
    if abs(value) < Decimal("0.000001"):
        return f"${decimal_text(value)}"  # exact: never a nonzero cost shown as zero
    if abs(value) < Decimal("0.01"):
        return f"${value:.6f}"
    return f"${value:,.2f}"
