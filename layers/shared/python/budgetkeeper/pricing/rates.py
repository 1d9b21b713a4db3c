"""What a call costs: `price_invocation`, the one pricing function, prices an invocation's tokens
with the row the price table matches (pricing.table), in exact `Decimal` (a cost is `tokens * price
/ 1,000,000`), and says how the price was found (`PriceBasis`): exact, a fallback, or a
conservative estimate for a model the table does not price. docs/architecture.md, "Pricing", tells
the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import msgspec

from budgetkeeper.core import money
from budgetkeeper.domain.usage import ServiceTier, TokenCounts
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.table import (
    TOKEN_KINDS,
    TOKENS_PER_PRICE_UNIT,
    ZERO_USD,
    ModelKind,
    ModelRef,
    PriceBasis,
    PriceMatch,
    PriceRow,
    PriceTable,
    Rates,
    resolve_model_id,
)


class PriceStatus(StrEnum):
    PRICED = "priced"
    ESTIMATED = "estimated"  # an unknown model at a conservative estimate: counted, kept apart, re-priced
    UNKNOWN_MODEL = "unknown_model"  # cost 0: not priced per token; the caller counts and alerts
    PROVISIONED = "provisioned"  # cost 0: billed per hour of provisioned throughput, not per token


@dataclass(frozen=True, slots=True)
class Charge:
    """One token kind of one invocation: its tokens at the unit price charged for them."""

    kind: str
    tokens: int
    usd_per_million: Decimal
    rate_of: str  # the kind whose unit price was charged: `kind` itself unless the row has no price for it

    @property
    def cost_usd(self) -> Decimal:
        return self.tokens * self.usd_per_million / TOKENS_PER_PRICE_UNIT


class Priced(msgspec.Struct, frozen=True):  # a Struct: one is built per record (domain/usage.py)
    cost_usd: Decimal
    status: PriceStatus
    model_key: str
    row: PriceRow | None
    tokens: TokenCounts
    note: str | None = None
    long_context: bool = False  # charged at the row's long-context rates
    tier: ServiceTier = ServiceTier.STANDARD  # the service tier priced
    basis: PriceBasis = PriceBasis.EXACT
    estimate: Rates | None = None  # the rates of an estimate (status `estimated`, no row)
    # The rates charged when they are not the row's own: a batch row's cache kinds it has no price
    # for, charged at the standard row's (_cache_at_standard_rates).
    borrowed: Rates | None = None

    @property
    def flagged(self) -> bool:
        """Priced at anything but the exact rate of the call's model, Region and tier."""
        return self.basis is not PriceBasis.EXACT

    @property
    def rates(self) -> Rates | None:
        """The rates charged: the row's, or its long-context tier's, or the estimate's."""
        if self.borrowed is not None:
            return self.borrowed
        if self.row is None:
            return self.estimate
        tier = self.row.long_context
        return tier.rates if tier is not None and self.long_context else self.row.rates

    def charges(self) -> tuple[Charge, ...]:
        """The cost by token kind, for kinds with tokens; they add up to `cost_usd`."""
        rates = self.rates
        return () if rates is None else tuple(Charge(*billed) for billed in rates.billed(self.tokens))

    def to_dict(self) -> dict[str, Any]:
        return {
            "cost_usd": money.exact(self.cost_usd),
            "status": str(self.status),
            "price_basis": str(self.basis),
            "model_key": self.model_key,
            "tier": str(self.tier),
            "long_context": self.long_context,
            "charges": [
                {
                    "kind": charge.kind,
                    "tokens": charge.tokens,
                    "usd_per_million": money.exact(charge.usd_per_million),
                    "cost_usd": money.exact(charge.cost_usd),
                    "rate_of": charge.rate_of,
                }
                for charge in self.charges()
            ],
            "price_row": None if self.row is None else self.row.to_dict(),
            "note": self.note,
        }


def price_invocation(
    table: PriceTable,
    model_id: str,
    region: str,
    tokens: TokenCounts,
    profiles: InferenceProfiles | None = None,
    tier: ServiceTier = ServiceTier.STANDARD,
    *,
    request_prompt_tokens: int | None = None,
    unknown_model_rates: Rates | None = None,
) -> Priced:
    """THE pricing function: what one invocation of `model_id` from source `region` at `tier` costs.

    The row is chosen by the rules in the module docstring. Each token kind is charged at its unit
    price; a cache kind the row has no price for at the next kind's (1-hour write -> 5-minute write
    -> input, cache read -> input), and the note says so. When the prompt (input + cache reads +
    cache writes) exceeds the row's long-context threshold, every token of the request, output
    included, is charged at the long-context rates: that is how AWS and Anthropic bill prompts over
    200K tokens. Application-profile ARNs are resolved through `profiles`; without it, or when
    Bedrock does not answer, they are unknown. A model without a price at `tier` is charged at its
    standard rate (`tier_fallback`); one the table does not price at all at `unknown_model_rates`
    (the operators' rate) when given, else at the table's conservative estimate (status `estimated`).

    `tokens` may also be the sum of several requests that all fall on the same side of every
    long-context threshold (the Athena engine's groups): `request_prompt_tokens` is then the prompt
    of one such request, which decides the long-context rates instead of the sum. Prices are linear
    per token kind within a row and tier, so the group's cost is exactly the sum of its requests' costs.
    """
    ref = resolve_model_id(model_id)
    if ref.kind is ModelKind.APPLICATION_PROFILE:
        resolved = profiles.model_id_for(ref.key) if profiles is not None else None
        if resolved is None:
            return _unknown(table, ref.key, tokens, tier, "application inference profile not resolved")
        ref = resolve_model_id(resolved)
    if ref.kind is ModelKind.PROVISIONED:
        note = "billed per hour of provisioned throughput"
        return Priced(ZERO_USD, PriceStatus.PROVISIONED, ref.key, None, tokens, note, tier=tier)
    if ref.kind is ModelKind.OTHER_ARN:
        return _unknown(table, ref.key, tokens, tier, "no per-token price for this kind of ARN")
    match = table.match(ref, region, tier)
    if match.row is None:
        return _estimated(table, ref, region, tokens, tier, match.note, unknown_model_rates)
    prompt = tokens.prompt_total if request_prompt_tokens is None else request_prompt_tokens
    priced = _charge(match, ref.key, tokens, prompt)
    if tier is ServiceTier.BATCH and priced.tier is tier:
        return _cache_at_standard_rates(table, ref, region, priced, prompt)
    return priced


def _estimated(
    table: PriceTable,
    ref: ModelRef,
    region: str,
    tokens: TokenCounts,
    tier: ServiceTier,
    match_note: str | None,
    operator_rates: Rates | None,
) -> Priced:
    estimate = (
        (operator_rates, "the operators' rate for unknown models")
        if operator_rates
        else table.estimate(ref, tier)
    )
    reason = match_note or f"no price for {ref.key} in {region}"
    if estimate is None:
        return _unknown(table, ref.key, tokens, tier, reason)
    rates, source = estimate
    note = f"{reason}; unknown model: estimated at {source}, re-priced when its price arrives"
    cost = sum((count * usd for _, count, usd, _ in rates.billed(tokens)), ZERO_USD) / TOKENS_PER_PRICE_UNIT
    return Priced(
        cost,
        PriceStatus.ESTIMATED,
        ref.key,
        None,
        tokens,
        note,
        tier=tier,
        basis=PriceBasis.ESTIMATE,
        estimate=rates,
    )


def _unknown(
    table: PriceTable, model_key: str, tokens: TokenCounts, tier: ServiceTier, reason: str
) -> Priced:
    note = f"{reason}; unknown model: counted at 0 USD, never another model's price (table {table.version})"
    return Priced(ZERO_USD, PriceStatus.UNKNOWN_MODEL, model_key, None, tokens, note, tier=tier)


CACHE_KINDS = ("cache_read", "cache_write_5m", "cache_write_1h")


def _rates_for(row: PriceRow, prompt_tokens: int) -> tuple[Rates, bool]:
    """The row's rates for a request with this prompt, and whether they are its long-context ones."""
    tier = row.long_context
    long_context = tier is not None and prompt_tokens > tier.threshold_tokens
    return (tier.rates if tier is not None and long_context else row.rates), long_context


def _cache_at_standard_rates(
    table: PriceTable, ref: ModelRef, region: str, priced: Priced, prompt_tokens: int
) -> Priced:
    """A batch row prices cache tokens only when its source gives a price for them. A cache kind it
    has no price for is charged at the model's standard rate for that kind (batch is never dearer
    than on demand: a conservative bound, where the batch input rate, the stand-in `_charge` uses,
    is neither AWS's price nor a bound) and flagged `tier_fallback`, as a call whose tier has no
    price at all. (Flex and priority keep the stand-in: priority is dearer than standard.)"""
    own = priced.rates
    assert own is not None and priced.row is not None
    missing = [kind for kind in CACHE_KINDS if getattr(priced.tokens, kind) and getattr(own, kind) is None]
    if not missing:
        return priced
    standard = table.match(ref, region, ServiceTier.STANDARD).row
    if standard is None:
        return priced  # no standard row either: the tier's stand-in rates, as noted
    standard_rates, _ = _rates_for(standard, prompt_tokens)
    charged = dict(zip(TOKEN_KINDS, (rate for rate, _ in standard_rates.charged), strict=True))
    borrowed = Rates(
        input=own.input,
        output=own.output,
        **{kind: charged[kind] if kind in missing else getattr(own, kind) for kind in CACHE_KINDS},
    )
    cost = sum((count * usd for _, count, usd, _ in borrowed.billed(priced.tokens)), ZERO_USD)
    stand_ins = tuple(f"no {kind} price:" for kind in missing)  # _charge's notes, replaced by this one
    notes = [note for note in (priced.note or "").split("; ") if note and not note.startswith(stand_ins)]
    why = f"no {priced.tier} price for {', '.join(missing)}: charged at the standard rate"
    return msgspec.structs.replace(
        priced,
        cost_usd=cost / TOKENS_PER_PRICE_UNIT,
        note="; ".join([*notes, why]),
        basis=PriceBasis.TIER_FALLBACK if priced.basis is PriceBasis.EXACT else priced.basis,
        borrowed=borrowed,
    )


def _charge(match: PriceMatch, model_key: str, tokens: TokenCounts, prompt_tokens: int) -> Priced:
    row = match.row
    assert row is not None
    rates, long_context = _rates_for(row, prompt_tokens)
    total = ZERO_USD
    notes = [match.note] if match.note else []
    for kind, count, usd_per_million, rate_of in rates.billed(tokens):
        total += count * usd_per_million
        if rate_of != kind:
            notes.append(f"no {kind} price: charged at the {rate_of} rate")
    return Priced(
        cost_usd=total / TOKENS_PER_PRICE_UNIT,
        status=PriceStatus.PRICED,
        model_key=model_key,
        row=row,
        tokens=tokens,
        note="; ".join(notes) or None,
        long_context=long_context,
        tier=row.tier,
        basis=match.basis,
    )
