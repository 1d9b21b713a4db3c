"""Usage deltas and their exactly-once writer.

Metered invocations become deltas (`usage_deltas`): hourly rollups per scope, usage lines and
window totals per budget, aggregated by item key. A usage line is the finest hourly rollup: one item
per hour, model, region, caller (identity ARN) and attribution (principal, role, app, team), in the
rollups table under the day's partition (`usage#YYYY-MM-DD`), so that a report over a time range
reads a few day partitions and can group and filter by every field at once. `UsageWriter` adds
them to the rollups and totals tables exactly once per CloudWatch Logs payload, through markers in
the dedupe table, and a journal (the deltas' `to_bytes` format) when a group of payloads is too
large for one transaction. Usage charged at an estimate (an unknown model) also goes to an estimate
ledger item in the same transaction, and `commit_correction` applies its exact re-pricing once
(budgetkeeper.metering.estimates).

Markers are grouped: a CloudWatch Logs payload is marked by an 8-byte digest of its id in a slot
item shared by the payloads whose first event falls in the same minute (`seen#<minute>#<shard>`),
so a batch claims its payloads with a handful of items instead of one per payload. Payloads
without event timestamps (Firehose-extracted messages, redriven events) keep a marker of their own,
and so does a payload with quarantined events, for the redrive to know which ones were left out.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from budgetkeeper.budgets.rules import Budget
from budgetkeeper.core import clock
from budgetkeeper.core.settings import Tunables
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.log_records import LogPayload, PayloadKind
from budgetkeeper.domain.record_rules import PARTITION_KEY_BYTES_MAX, SORT_KEY_BYTES_MAX, MalformedEvent
from budgetkeeper.domain.usage import OFF_LOG_OPERATIONS, ServiceTier
from budgetkeeper.metering.meter import Metered
from budgetkeeper.pricing.rates import LONG_CONTEXT_THRESHOLD_TOKENS, PriceBasis, PriceStatus
from budgetkeeper.storage.tables import DedupeItem, RollupItem, TotalItem, budget_key

# DynamoDB's limit on the items of one TransactWriteItems request.
TRANSACTION_ITEM_LIMIT = 100
# Rollups and totals expire (TTL) this long after their hour or window: the tunable's default.
DEFAULT_RETENTION_SECONDS = Tunables.defaults().usage_retention_days * 86_400
# Slot items per minute: bounds a slot's size (what each update of it is charged on) and contention.
MARKER_SHARDS = 4


# ----------------------------------------------------------------------------- deltas


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
    ALWAYS: ClassVar[tuple[str, ...]] = (
        "calls",
        "errors",
        "unpriced_calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cost_usd",
    )
    FLAGS: ClassVar[tuple[str, ...]] = (
        "region_fallback_calls",
        "tier_fallback_calls",
        "kept_bundled_calls",
        "estimated_calls",
        "estimated_cost_usd",
    )
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


RollupKey = tuple[str, str, str, str, str]  # scope, hour, model, region, service tier
TotalKey = tuple[str, str, str]  # scope, window spec, window id
# hour, model, region, identity ARN, principal, role, app, team, operation (role, app and team may be
# None; the operation is None for runtime calls, else usage.OFF_LOG_OPERATIONS: batch jobs, mantle)
LineKey = tuple[str, str, str, str, str, str | None, str | None, str | None, str | None]
LINE_PARTITION_PREFIX = "usage#"


def line_partition(day: str) -> str:
    """The rollups-table partition of the usage lines of one UTC day (`YYYY-MM-DD`)."""
    return f"{LINE_PARTITION_PREFIX}{day}"


def line_key(key: Sequence[str | None]) -> LineKey:
    """A usage line's key as stored in a journal or a ledger: those written before operations have
    8 parts (runtime calls)."""
    return (*key, None) if len(key) == 8 else tuple(key)  # type: ignore[return-value]


def line_bucket(key: LineKey) -> str:
    """A usage line's sort key: its hour, then a digest of the rest (any length, any characters).
    A runtime line's digest leaves its operation out: the same bucket as before lines had one."""
    rest = key[1:] if key[8] is not None else key[1:8]
    digest = hashlib.sha256(json.dumps(rest).encode()).hexdigest()[:32]
    return f"{key[0]}#{digest}"


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
        for key, total in other.totals.items():
            if key in self.totals:
                self.totals[key].merge(total)
            else:
                self.totals[key] = replace(total)
        for bucket, estimate in other.estimates.items():
            self.add_estimate(estimate, bucket)

    def add_estimate(self, estimate: EstimateDelta, bucket: str | None = None) -> None:
        bucket = bucket or estimate.bucket
        if bucket in self.estimates:
            self.estimates[bucket].usage.merge(estimate.usage)
        else:
            self.estimates[bucket] = replace(estimate, usage=replace(estimate.usage))

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
        deltas = cls(rollups=rollups, totals=totals, lines=lines)  # type: ignore[arg-type]
        for key, values in document.get("estimates", ()):  # none in journals written before estimates
            deltas.add_estimate(EstimateDelta(*key, usage=_rollup_from_strings(values)))
        return deltas


def _rollup_from_strings(values: dict[str, str]) -> RollupDelta:
    return RollupDelta(
        **{n: (Decimal(v) if n in RollupDelta.DECIMALS else int(v)) for n, v in values.items()}
    )


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

ESTIMATES_PARTITION = "estimates"


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


# ----------------------------------------------------------------------------- table updates


def rollup_bucket(hour: str, model: str, region: str, tier: str) -> str:
    """A rollup's sort key: `<hour>#<model>#<region>`, and `#<tier>` for a tier other than standard."""
    tier_part = "" if tier == ServiceTier.STANDARD else f"#{tier}"
    return f"{hour}#{model}#{region}{tier_part}"


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


def _expires_at(moment: str, retention_seconds: int) -> int:
    """When a row of an hour (`YYYY-MM-DDTHH`) or a window ending at `moment` (ISO) expires (TTL)."""
    at = datetime.fromisoformat(moment if len(moment) > 13 else f"{moment}:00+00:00")
    return int(at.timestamp()) + retention_seconds


def _rollup_update(key: RollupKey, delta: RollupDelta, retention: int) -> tuple[RollupItem, list[Any]]:
    scope, hour, model, region, tier = key
    item = RollupItem(scope, rollup_bucket(hour, model, region, tier))
    actions = [
        RollupItem.expires_at.set(_expires_at(hour, retention)),
        RollupItem.hour.set(hour),
        RollupItem.model.set(model),
        RollupItem.region.set(region),
        RollupItem.service_tier.set(tier),
    ]
    return item, actions + _counter_actions(delta)


def _counter_actions(delta: RollupDelta) -> list[Any]:
    return [
        getattr(RollupItem, name).add(value)
        for name in RollupDelta.COUNTERS
        if (value := getattr(delta, name)) or name in RollupDelta.ALWAYS
    ]


def _estimate_update(bucket: str, estimate: EstimateDelta, retention: int) -> tuple[RollupItem, list[Any]]:
    item = RollupItem(ESTIMATES_PARTITION, bucket)
    actions = [
        RollupItem.expires_at.set(_expires_at(estimate.hour, retention)),
        RollupItem.hour.set(estimate.hour),
        RollupItem.model.set(estimate.model),
        RollupItem.region.set(estimate.region),
        RollupItem.service_tier.set(estimate.tier),
        RollupItem.charged.set(estimate.charged),
    ]
    return item, actions + _counter_actions(estimate.usage)


def _line_update(key: LineKey, delta: RollupDelta, retention: int) -> tuple[RollupItem, list[Any]]:
    hour, model, region, identity_arn, principal, role, app, team, operation = key
    item = RollupItem(line_partition(hour[:10]), line_bucket(key))
    actions = [
        RollupItem.expires_at.set(_expires_at(hour, retention)),
        RollupItem.hour.set(hour),
        RollupItem.model.set(model),
        RollupItem.region.set(region),
        RollupItem.identity_arn.set(identity_arn),
        RollupItem.principal.set(principal),
        *(
            getattr(RollupItem, name).set(value)
            for name, value in (("role", role), ("app", app), ("team", team), ("operation", operation))
            if value
        ),
    ]
    return item, actions + _counter_actions(delta)


def _total_update(key: TotalKey, delta: TotalDelta, retention: int) -> tuple[TotalItem, list[Any]]:
    scope, window, window_id = key
    item = TotalItem(budget_key(scope, window), window_id)
    actions = [
        TotalItem.expires_at.set(_expires_at(delta.window_end, retention)),
        TotalItem.scope.set(scope),
        TotalItem.window.set(window),
        TotalItem.window_start.set(delta.window_start),
        TotalItem.window_end.set(delta.window_end),
        TotalItem.calls.add(delta.calls),
        TotalItem.spent_usd.add(delta.spent_usd),
        *([TotalItem.claimed_usd.add(delta.claimed_usd)] if delta.claimed_usd else []),
        *([TotalItem.claimed_by.add(delta.claimers)] if delta.claimers else []),
    ]
    return item, actions


def _updates(deltas: UsageDeltas, retention_seconds: int) -> list[tuple[Model, list[Any]]]:
    """The updates of every item; each sets its TTL `retention_seconds` after its hour or window."""
    return [
        *(_rollup_update(k, d, retention_seconds) for k, d in deltas.rollups.items()),
        *(_total_update(k, d, retention_seconds) for k, d in deltas.totals.items()),
        *(_line_update(k, d, retention_seconds) for k, d in deltas.lines.items()),
        *(_estimate_update(k, d, retention_seconds) for k, d in deltas.estimates.items()),
    ]


# ----------------------------------------------------------------------------- exactly-once writer


@dataclass(frozen=True, slots=True)
class PayloadUsage:
    """The usage one CloudWatch Logs payload adds, under the payload's stable id."""

    payload_id: str
    deltas: UsageDeltas
    # Ids of the payload's events that were quarantined, not metered: kept on its marker, so that a
    # redrive counts such an event only if this delivery was the one that left it out.
    quarantined: frozenset[str] = frozenset()
    # The payload's marker slot (`marker_slot`), or None for a marker of its own.
    slot: str | None = None


def marker_slot(payload_id: str, first_event_ms: int) -> str:
    """The slot item of a payload (a sha256 hex id) whose first event was logged at `first_event_ms`."""
    minute = datetime.fromtimestamp(first_event_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")
    return f"seen#{minute}#{int(payload_id[0], 16) % MARKER_SHARDS}"


def payload_slot(payload: LogPayload) -> str | None:
    """A decoded payload's marker slot: None unless it is a CloudWatch Logs payload with events."""
    if payload.kind != PayloadKind.DATA_MESSAGE or not payload.events:
        return None
    return marker_slot(payload.payload_id, min(event.timestamp_ms for event in payload.events))


def payload_digest(payload_id: str) -> bytes:
    """What a slot holds of a payload id: its first 8 bytes (a collision within one minute and shard
    has odds of about n^2 / 2^65)."""
    return bytes.fromhex(payload_id[:16])


@dataclass(slots=True)
class CommitResult:
    applied: UsageDeltas = field(default_factory=UsageDeltas)  # what this call added to the tables
    # What the payloads found metered already add: a delivery that died after its write and before
    # it acted on the crossings is redelivered as duplicates, and their crossings must still be seen.
    duplicates: UsageDeltas = field(default_factory=UsageDeltas)
    metered_payloads: int = 0
    duplicate_payloads: int = 0
    transactions: int = 0
    items_written: int = 0


class ConcurrentClaim(RuntimeError):
    """Another invocation claimed some of the same payloads first; re-read and retry."""


@dataclass(slots=True)
class _Markers:
    """What the markers say about a set of payloads, read before a commit."""

    duplicates: set[str] = field(default_factory=set)  # payload ids metered (or claimed) already
    journals: set[str] = field(default_factory=set)  # journals that may hold some of them
    slot_versions: dict[str, int] = field(default_factory=dict)  # slot id -> version read (absent: new)


@dataclass(frozen=True, slots=True)
class _Claim:
    """The marker items one group of payloads writes: a slot update, or one payload's own marker."""

    slot: str | None
    payloads: tuple[PayloadUsage, ...]

    @property
    def item_count(self) -> int:
        if self.slot is None:
            return 1
        return 1 + sum(1 for payload in self.payloads if payload.quarantined)


class UsageWriter:
    """Writes usage exactly once per CloudWatch Logs payload.

    A group's markers and the counters it adds are committed in one transaction when they fit
    (marker items + distinct item keys <= 100). Larger groups go through a journal: one transaction
    claims the payloads (at most 98 marker items) and stores their aggregated deltas in a journal
    item; chunks of at most 99 counter updates then commit, each with its own chunk marker. A crash
    anywhere leaves either nothing, or a journal whose remaining chunks any later delivery of those
    payloads finishes: no total is ever counted twice or lost. A slot item is updated under its
    version, read before: two deliveries claiming into one slot at once cannot both succeed.
    """

    MAX_CLAIM_ITEMS = TRANSACTION_ITEM_LIMIT - 2
    MAX_CHUNK_UPDATES = TRANSACTION_ITEM_LIMIT - 1
    MAX_ATTEMPTS = 5

    def __init__(
        self,
        connection: Connection,
        ttl_seconds: int,
        epoch_seconds: Callable[[], int] = clock.epoch_seconds,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
    ) -> None:
        self._connection = connection
        self._ttl_seconds = ttl_seconds
        self._retention_seconds = retention_seconds
        self._epoch_seconds = epoch_seconds

    def commit(self, payloads: Sequence[PayloadUsage]) -> CommitResult:
        result = CommitResult()
        pending = {payload.payload_id: payload for payload in payloads}
        for attempt in range(self.MAX_ATTEMPTS):
            try:
                self._commit_once(pending, result)
                return result
            except ConcurrentClaim:
                if attempt == self.MAX_ATTEMPTS - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        return result

    def _commit_once(self, pending: dict[str, PayloadUsage], result: CommitResult) -> None:
        markers = self._read_markers(pending.values())
        # A payload claimed by a journal is metered once that journal's chunks are all applied.
        for journal_id in sorted(markers.journals):
            self._finish_journal(journal_id, result)
        for payload_id in sorted(markers.duplicates):
            result.duplicate_payloads += 1
            result.duplicates.merge(pending.pop(payload_id).deltas)
        fresh = list(pending.values())
        if not fresh:
            return
        claims = _claims(fresh)
        combined = _combine(fresh)
        if sum(claim.item_count for claim in claims) + combined.item_count <= TRANSACTION_ITEM_LIMIT:
            self._commit_directly(claims, markers, combined, result)
        else:
            for group in _claim_groups(claims, self.MAX_CLAIM_ITEMS):
                self._commit_through_journal(group, markers, result)
        result.metered_payloads += len(fresh)
        pending.clear()

    def _read_markers(self, payloads: Iterable[PayloadUsage]) -> _Markers:
        by_slot: dict[str, list[PayloadUsage]] = {}
        own: dict[str, str] = {}  # marker id -> payload id
        for payload in payloads:
            if payload.slot is None:
                own[payload_marker_id(payload.payload_id)] = payload.payload_id
            else:
                by_slot.setdefault(payload.slot, []).append(payload)
        markers = _Markers()
        for item in DedupeItem.batch_get([*own, *by_slot], consistent_read=True):
            if item.id in own:
                markers.duplicates.add(own[item.id])
                if item.journal:
                    markers.journals.add(item.journal)
                continue
            markers.slot_versions[item.id] = int(item.version or 0)
            seen = item.seen or set()
            found = [p.payload_id for p in by_slot[item.id] if payload_digest(p.payload_id) in seen]
            markers.duplicates.update(found)
            if found:
                markers.journals.update(item.journals or ())
        return markers

    def _expiry(self) -> int:
        return self._epoch_seconds() + self._ttl_seconds

    def _claim(
        self,
        transaction: TransactWrite,
        claim: _Claim,
        markers: _Markers,
        journal_id: str | None,
        expires_at: int,
    ) -> None:
        own = [payload for payload in claim.payloads if claim.slot is None or payload.quarantined]
        for payload in own:
            marker = DedupeItem(
                payload_marker_id(payload.payload_id),
                journal=journal_id,
                quarantined=set(payload.quarantined) or None,
                expires_at=expires_at,
            )
            # In a slot, the slot's version guards the claim; this marker only tells the redrive.
            condition = DedupeItem.id.does_not_exist() if claim.slot is None else None
            transaction.save(marker, condition=condition)
        if claim.slot is None:
            return
        version = markers.slot_versions.get(claim.slot)
        actions = [
            DedupeItem.seen.add({payload_digest(payload.payload_id) for payload in claim.payloads}),
            DedupeItem.expires_at.set(expires_at),
            DedupeItem.version.set((version or 0) + 1),
            *([DedupeItem.journals.add({journal_id})] if journal_id else []),
        ]
        condition = DedupeItem.id.does_not_exist() if version is None else DedupeItem.version == version
        transaction.update(DedupeItem(claim.slot), actions=actions, condition=condition)

    def _commit_directly(
        self, claims: list[_Claim], markers: _Markers, combined: UsageDeltas, result: CommitResult
    ) -> None:
        expires_at = self._expiry()
        try:
            with TransactWrite(connection=self._connection) as transaction:
                for claim in claims:
                    self._claim(transaction, claim, markers, None, expires_at)
                for item, actions in _updates(combined, self._retention_seconds):
                    transaction.update(item, actions=actions)
        except TransactWriteError as error:
            raise _as_concurrent_claim(error) from error
        result.transactions += 1
        result.items_written += sum(claim.item_count for claim in claims) + combined.item_count
        result.applied.merge(combined)

    def _commit_through_journal(self, group: list[_Claim], markers: _Markers, result: CommitResult) -> None:
        payloads = [payload for claim in group for payload in claim.payloads]
        deltas = _combine(payloads)
        digest = hashlib.sha256("\n".join(sorted(p.payload_id for p in payloads)).encode()).hexdigest()
        journal_id = "journal#" + digest[:32]
        expires_at = self._expiry()
        chunk_count = -(-deltas.item_count // self.MAX_CHUNK_UPDATES)
        try:
            with TransactWrite(connection=self._connection) as transaction:
                journal = DedupeItem(
                    journal_id, chunks=chunk_count, deltas=deltas.to_bytes(), expires_at=expires_at
                )
                transaction.save(journal, condition=DedupeItem.id.does_not_exist())
                for claim in group:
                    self._claim(transaction, claim, markers, journal_id, expires_at)
        except TransactWriteError as error:
            raise _as_concurrent_claim(error) from error
        result.transactions += 1
        result.items_written += sum(claim.item_count for claim in group) + 1
        self._apply_journal(journal_id, deltas, expires_at, result, done=set())

    def _finish_journal(self, journal_id: str, result: CommitResult) -> None:
        try:
            journal = DedupeItem.get(journal_id, consistent_read=True)
        except DedupeItem.DoesNotExist:
            return  # expired with its payloads' markers
        if journal.deltas is None:
            return
        chunk_ids = [f"{journal_id}#{number}" for number in range(int(journal.chunks or 0))]
        done = {item.id for item in DedupeItem.batch_get(chunk_ids, consistent_read=True)}
        if len(done) == len(chunk_ids):
            return
        deltas = UsageDeltas.from_bytes(journal.deltas)
        self._apply_journal(journal_id, deltas, journal.expires_at, result, done)

    def _apply_journal(
        self, journal_id: str, deltas: UsageDeltas, expires_at: int, result: CommitResult, done: set[str]
    ) -> None:
        for number, chunk in enumerate(deltas.split(self.MAX_CHUNK_UPDATES)):
            chunk_id = f"{journal_id}#{number}"
            if chunk_id in done:
                continue
            try:
                with TransactWrite(connection=self._connection) as transaction:
                    transaction.save(
                        DedupeItem(chunk_id, expires_at=expires_at), condition=DedupeItem.id.does_not_exist()
                    )
                    for item, actions in _updates(chunk, self._retention_seconds):
                        transaction.update(item, actions=actions)
            except TransactWriteError as error:
                if _cancelled_on_first_item(error):
                    continue  # this chunk was applied before (by us, or by another delivery)
                raise
            result.transactions += 1
            result.items_written += chunk.item_count + 1
            result.applied.merge(chunk)


def payload_marker_id(payload_id: str) -> str:
    return f"payload#{payload_id}"


def _combine(payloads: Iterable[PayloadUsage]) -> UsageDeltas:
    combined = UsageDeltas()
    for payload in payloads:
        combined.merge(payload.deltas)
    return combined


def _claims(payloads: Iterable[PayloadUsage]) -> list[_Claim]:
    """One claim per slot (all its payloads), one per payload without a slot; in a stable order."""
    by_slot: dict[str, list[PayloadUsage]] = {}
    claims: list[_Claim] = []
    for payload in payloads:
        if payload.slot is None:
            claims.append(_Claim(None, (payload,)))
        else:
            by_slot.setdefault(payload.slot, []).append(payload)
    claims += [_Claim(slot, tuple(group)) for slot, group in sorted(by_slot.items())]
    return claims


def _claim_groups(claims: list[_Claim], max_items: int) -> Iterator[list[_Claim]]:
    """Claims in groups of at most `max_items` marker items (a slot with more quarantined payloads
    than that, which no real payload mix reaches, goes alone and fails loudly in DynamoDB)."""
    group: list[_Claim] = []
    items = 0
    for claim in claims:
        if group and items + claim.item_count > max_items:
            yield group
            group, items = [], 0
        group.append(claim)
        items += claim.item_count
    if group:
        yield group


def _cancellation_codes(error: TransactWriteError) -> list[str | None]:
    reasons = getattr(error, "cancellation_reasons", None) or []
    return [reason.code if reason else None for reason in reasons]


def _cancelled_on_first_item(error: TransactWriteError) -> bool:
    codes = _cancellation_codes(error)
    return bool(codes) and codes[0] == "ConditionalCheckFailed"


def _as_concurrent_claim(error: TransactWriteError) -> Exception:
    if "ConditionalCheckFailed" in _cancellation_codes(error):
        return ConcurrentClaim(str(error))
    return error


# ----------------------------------------------------------------------------- estimate corrections


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
        deltas.rollups[tuple(key)] = moved()  # type: ignore[index]
    deltas.lines[line_key(charged["line"])] = moved()
    for scope, window, window_id, start, end, claimed in charged["totals"]:
        difference = exact_cost - estimated
        deltas.totals[(scope, window, window_id)] = TotalDelta(
            start, end, spent_usd=difference, claimed_usd=difference if claimed else Decimal(0)
        )
    return deltas


def commit_correction(
    connection: Connection, ledger: RollupItem, deltas: UsageDeltas, retention_seconds: int
) -> bool:
    """Apply a correction and delete its ledger item in one transaction, exactly once: the delete is
    conditioned on the ledger holding what was read, so a second run, or a calculator adding to the
    item in between, cancels the whole transaction (False: read the ledger again)."""
    unchanged = (RollupItem.calls == ledger.calls) & (RollupItem.cost_usd == ledger.cost_usd)
    try:
        with TransactWrite(connection=connection) as transaction:
            transaction.delete(RollupItem(ledger.scope, ledger.bucket), condition=unchanged)
            for item, actions in _updates(deltas, retention_seconds):
                transaction.update(item, actions=actions)
    except TransactWriteError as error:
        if _cancelled_on_first_item(error):
            return False
        raise
    return True


ESTIMATED_MODELS_PARTITION = "estimated-models"


def first_estimate_of(model: str, at: str) -> bool:
    """Mark `model` as estimated; True only the first time ever (who alerts on it)."""
    try:
        RollupItem(ESTIMATED_MODELS_PARTITION, model, model=model, hour=at[:13]).save(
            RollupItem.scope.does_not_exist()
        )
    except PutError as error:
        if error.cause_response_code == "ConditionalCheckFailedException":
            return False
        raise
    return True
