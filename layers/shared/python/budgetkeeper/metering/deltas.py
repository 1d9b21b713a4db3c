"""Usage deltas: what metered invocations add to the usage tables, aggregated by item key (hourly
rollups per scope, usage lines, window totals per budget, estimate ledger items), and their journal
format (`UsageDeltas.to_bytes`), which the writer stores when a group is too large for one
transaction. No table is read or written here."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from budgetkeeper.budgets.rules import Budget
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.record_rules import PARTITION_KEY_BYTES_MAX, SORT_KEY_BYTES_MAX, MalformedEvent
from budgetkeeper.domain.usage import OFF_LOG_OPERATIONS, ServiceTier
from budgetkeeper.metering.meter import Metered
from budgetkeeper.pricing.rates import PriceStatus
from budgetkeeper.pricing.table import LONG_CONTEXT_THRESHOLD_TOKENS, PriceBasis
from budgetkeeper.storage.keys import LineKey, RollupKey, TotalKey, line_key, rollup_bucket
from budgetkeeper.storage.tables import ROLLUP_COUNTERS_ALWAYS, ROLLUP_FLAG_COUNTERS

if TYPE_CHECKING:
    from budgetkeeper.storage.tables import RollupItem


@dataclass(slots=True)
class RollupDelta:
    calls: int = 0
    errors: int = 0
    unpriced_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)
    region_fallback_calls: int = 0
    tier_fallback_calls: int = 0
    kept_bundled_calls: int = 0
    estimated_calls: int = 0
    estimated_cost_usd: Decimal = field(default_factory=Decimal)

    # Written on every update; the flag counters (FLAGS) only when not zero.
    ALWAYS: ClassVar[tuple[str, ...]] = ROLLUP_COUNTERS_ALWAYS
    FLAGS: ClassVar[tuple[str, ...]] = ROLLUP_FLAG_COUNTERS
    COUNTERS: ClassVar[tuple[str, ...]] = ALWAYS + FLAGS
    DECIMALS: ClassVar[frozenset[str]] = frozenset({"cost_usd", "estimated_cost_usd"})

    def merge(self, other: RollupDelta) -> None:
        for name in self.COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class TotalDelta:
    window_start: str
    window_end: str
    calls: int = 0
    spent_usd: Decimal = field(default_factory=Decimal)
    claimed_usd: Decimal = field(default_factory=Decimal)  # an app's spend only claimed by callers
    claimers: set[str] = field(default_factory=set)  # the principals who claimed it

    def merge(self, other: TotalDelta) -> None:
        self.calls += other.calls
        self.spent_usd += other.spent_usd
        self.claimed_usd += other.claimed_usd
        self.claimers = self.claimers | other.claimers  # a new set: copies share the old one


@dataclass(slots=True)
class UsageDeltas:
    """What a set of payloads adds to the tables, aggregated by item key."""

    rollups: dict[RollupKey, RollupDelta] = field(default_factory=dict)
    totals: dict[TotalKey, TotalDelta] = field(default_factory=dict)
    lines: dict[LineKey, RollupDelta] = field(default_factory=dict)
    estimates: dict[str, EstimateDelta] = field(default_factory=dict)  # by ledger bucket

    def merge(self, other: UsageDeltas) -> None:
        for mine, theirs in ((self.rollups, other.rollups), (self.lines, other.lines)):
            for key, rollup in theirs.items():
                if key in mine:
                    mine[key].merge(rollup)  # type: ignore[index]
                else:
                    mine[key] = replace(rollup)  # type: ignore[index]  # a copy: `other` stays as it is
        for total_key, total in other.totals.items():
            if total_key in self.totals:
                self.totals[total_key].merge(total)
            else:
                self.totals[total_key] = replace(total)
        for bucket, estimate in other.estimates.items():
            self.add_estimate(estimate, bucket)

    def add_estimate(self, estimate: EstimateDelta, bucket: str | None = None) -> None:
        bucket = bucket or estimate.bucket
        if bucket in self.estimates:
            self.estimates[bucket].usage.merge(estimate.usage)
        else:
            self.estimates[bucket] = replace(estimate, usage=replace(estimate.usage))

    def without_rows(self) -> UsageDeltas:
        """The window totals and estimate ledger items alone: what a batch adds at once, beside the
        usage journal that holds its rollups and usage lines (metering.writer)."""
        return UsageDeltas(totals=self.totals, estimates=self.estimates)

    @property
    def item_count(self) -> int:
        return len(self.rollups) + len(self.totals) + len(self.lines) + len(self.estimates)

    def split(self, max_items: int) -> list[UsageDeltas]:
        """Deterministic chunks of at most `max_items` item keys each."""
        chunks: list[UsageDeltas] = []
        entries: list[tuple[str, Any, Any]] = [("rollups", k, d) for k, d in self.rollups.items()]
        entries += [("totals", k, d) for k, d in self.totals.items()]
        entries += [("lines", k, d) for k, d in self.lines.items()]
        entries += [("estimates", k, d) for k, d in self.estimates.items()]
        for start in range(0, len(entries), max_items):
            chunk = UsageDeltas()
            for kind, key, delta in entries[start : start + max_items]:
                getattr(chunk, kind)[key] = delta
            chunks.append(chunk)
        return chunks

    def to_bytes(self) -> bytes:
        document = {
            "rollups": [
                [list(key), {n: str(getattr(d, n)) for n in RollupDelta.COUNTERS}]
                for key, d in self.rollups.items()
            ],
            "totals": [
                [
                    list(key),
                    [
                        d.window_start,
                        d.window_end,
                        d.calls,
                        str(d.spent_usd),
                        str(d.claimed_usd),
                        sorted(d.claimers),
                    ],
                ]
                for key, d in self.totals.items()
            ],
            "lines": [
                [list(key), {n: str(getattr(d, n)) for n in RollupDelta.COUNTERS}]
                for key, d in self.lines.items()
            ],
            "estimates": [
                [
                    [e.model, e.region, e.tier, e.hour, e.charged],
                    {n: str(getattr(e.usage, n)) for n in RollupDelta.COUNTERS},
                ]
                for e in self.estimates.values()
            ],
        }
        return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> UsageDeltas:
        document = json.loads(gzip.decompress(data))
        rollups = {
            # A journal written before tiers has 4-part keys: its usage was all standard.
            (tuple(key) if len(key) == 5 else (*key, str(ServiceTier.STANDARD))): _rollup_from_strings(values)
            for key, values in document["rollups"]
        }
        # A journal written before usage lines existed has none.
        lines = {line_key(key): _rollup_from_strings(values) for key, values in document.get("lines", ())}
        totals = {
            tuple(key): TotalDelta(start, end, calls, Decimal(spent), Decimal(claimed), set(claimers))
            for key, (start, end, calls, spent, claimed, claimers) in document["totals"]
        }
        deltas = cls(rollups=rollups, totals=totals, lines=lines)
        for key, values in document.get("estimates", ()):  # none in journals written before estimates
            model, region, tier, hour, charged = key
            deltas.add_estimate(
                EstimateDelta(model, region, tier, hour, charged, _rollup_from_strings(values))
            )
        return deltas


def _rollup_from_strings(values: dict[str, str]) -> RollupDelta:
    counters: dict[str, Any] = {
        n: (Decimal(v) if n in RollupDelta.DECIMALS else int(v)) for n, v in values.items()
    }
    return RollupDelta(**counters)


def calls_counter(basis: PriceBasis) -> str:
    """The RollupDelta counter (and RollupItem attribute) of calls priced at `basis` (not exact)."""
    return "estimated_calls" if basis is PriceBasis.ESTIMATE else f"{basis}_calls"


def rollup_delta(metered: Metered) -> RollupDelta:
    tokens = metered.invocation.tokens
    priced = metered.priced
    delta = RollupDelta(
        calls=1,
        errors=1 if metered.invocation.error_code else 0,
        unpriced_calls=0 if priced.status in (PriceStatus.PRICED, PriceStatus.ESTIMATED) else 1,
        input_tokens=tokens.input,
        output_tokens=tokens.output,
        cache_read_tokens=tokens.cache_read,
        cache_write_5m_tokens=tokens.cache_write_5m,
        cache_write_1h_tokens=tokens.cache_write_1h,
        cost_usd=priced.cost_usd,
    )
    if priced.basis is PriceBasis.ESTIMATE:
        delta.estimated_calls, delta.estimated_cost_usd = 1, priced.cost_usd
    elif priced.flagged:
        setattr(delta, calls_counter(priced.basis), 1)
    return delta


# ----------------------------------------------------------------------------- estimate ledger
# Usage charged at an estimate (an unknown model) is also written to a ledger item that lists every
# item it was charged to (budgetkeeper.metering.estimates re-prices it): one per model, Region, tier, hour,
# caller and set of budget windows, in the rollups table's ESTIMATES partition.


@dataclass(slots=True)
class EstimateDelta:
    model: str
    region: str
    tier: str
    hour: str
    charged: str  # JSON: the rollup, line and total keys the usage was charged to (`charged_keys`)
    usage: RollupDelta

    @property
    def bucket(self) -> str:
        digest = hashlib.sha256(f"{self.model}|{self.region}|{self.tier}|{self.charged}".encode()).hexdigest()
        return f"{self.hour}#{digest[:32]}"


def charged_keys(
    rollups: list[RollupKey], line: LineKey, totals: list[tuple[TotalKey, str, str, bool]], long_prompt: bool
) -> str:
    """The ledger's record of what estimated usage was charged to; `totals` with each window's start
    and end and whether the charge was an app claim. `long_prompt`: the calls' prompts exceeded
    pricing.LONG_CONTEXT_THRESHOLD_TOKENS (a ledger item holds calls on one side of it only)."""
    return json.dumps(
        {
            "rollups": [list(key) for key in rollups],
            "line": list(line),
            "totals": [[*key, start, end, claimed] for key, start, end, claimed in totals],
            "long_prompt": long_prompt,
        },
        separators=(",", ":"),
    )


def usage_deltas(metered: Iterable[Metered], budgets_of: Callable[[str], list[Budget]]) -> UsageDeltas:
    """Hourly rollups for every scope charged, and window totals for every budget of those scopes.

    A record counts in the window of its own timestamp, even when that window has closed.
    """
    deltas = UsageDeltas()
    rollups, totals, lines = deltas.rollups, deltas.totals, deltas.lines
    for item in metered:
        invocation = item.invocation
        delta = rollup_delta(item)
        hour, model, region, tier = item.hour, item.model, invocation.region, invocation.service_tier
        who = item.attribution
        operation = invocation.operation if invocation.operation in OFF_LOG_OPERATIONS else None
        caller = (invocation.identity_arn, who.principal, who.role, who.app, who.team)
        line_id: LineKey = (hour, model, region, *caller, operation)
        line = lines.get(line_id)
        if line is None:
            lines[line_id] = replace(delta)
        else:
            line.merge(delta)
        charged_rollups: list[RollupKey] = []
        charged_totals: list[tuple[TotalKey, str, str, bool]] = []
        for scope in item.attribution.scopes:
            key = (scope, hour, model, region, str(tier))
            charged_rollups.append(key)
            existing = rollups.get(key)
            if existing is None:
                rollups[key] = replace(delta)  # a copy: `delta` is added to every scope's rollup
            else:
                existing.merge(delta)
            for budget in budgets_of(scope):
                span = budget.span_at(invocation.timestamp)
                total_key = (scope, budget.window, span.window_id)
                total = totals.get(total_key)
                if total is None:
                    total = totals[total_key] = TotalDelta(iso_utc(span.start), iso_utc(span.end))
                total.calls += 1
                total.spent_usd += delta.cost_usd
                claimed = scope == item.attribution.app and item.attribution.app_claimed
                if claimed:
                    total.claimed_usd += delta.cost_usd
                    total.claimers.add(item.attribution.principal)
                charged_totals.append((total_key, total.window_start, total.window_end, claimed))
        if delta.estimated_calls:
            long_prompt = invocation.tokens.prompt_total > LONG_CONTEXT_THRESHOLD_TOKENS
            charged = charged_keys(charged_rollups, line_id, charged_totals, long_prompt)
            deltas.add_estimate(EstimateDelta(model, region, str(tier), hour, charged, replace(delta)))
    return deltas


# Room left in a partition key after a scope for a totals key's `|<window spec>` (`days:999@...`).
_WINDOW_SUFFIX_BYTES = 32


def check_store_keys(metered: Metered) -> None:
    """MalformedEvent when a key this call would write is over DynamoDB's limits: the store would
    reject the whole transaction, everyone's counters with it. The parse rules (record_rules) keep
    every field in bounds; this is the last check, on the keys themselves."""
    invocation = metered.invocation
    bucket = rollup_bucket(metered.hour, metered.model, invocation.region, invocation.service_tier)
    if len(bucket.encode()) > SORT_KEY_BYTES_MAX:
        raise MalformedEvent(f"rollup sort key of {len(bucket.encode())} bytes is over DynamoDB's limit")
    for scope in metered.attribution.scopes:
        if len(scope.encode()) > PARTITION_KEY_BYTES_MAX - _WINDOW_SUFFIX_BYTES:
            raise MalformedEvent(f"scope of {len(scope.encode())} bytes is over DynamoDB's key limit")


def correction_deltas(ledger: RollupItem, exact_cost: Decimal, basis: PriceBasis) -> UsageDeltas:
    """What re-pricing one ledger item changes: every item it was charged to gets the difference
    between the exact cost and the estimate, and its calls move from `estimated` to `basis`."""
    charged = json.loads(str(ledger.charged))
    calls, estimated = int(ledger.calls), ledger.cost_usd

    def moved() -> RollupDelta:
        delta = RollupDelta(
            cost_usd=exact_cost - estimated, estimated_calls=-calls, estimated_cost_usd=-estimated
        )
        if basis is not PriceBasis.EXACT:
            setattr(delta, calls_counter(basis), calls)
        return delta

    deltas = UsageDeltas()
    for key in charged["rollups"]:
        deltas.rollups[tuple(key)] = moved()
    deltas.lines[line_key(charged["line"])] = moved()
    for scope, window, window_id, start, end, claimed in charged["totals"]:
        difference = exact_cost - estimated
        deltas.totals[(scope, window, window_id)] = TotalDelta(
            start, end, spent_usd=difference, claimed_usd=difference if claimed else Decimal(0)
        )
    return deltas
