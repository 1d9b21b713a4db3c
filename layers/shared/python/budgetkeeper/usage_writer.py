"""Usage deltas and their exactly-once writer.

Metered invocations become deltas (`usage_deltas`): hourly rollups per scope, usage lines and
window totals per budget, aggregated by item key. A usage line is the finest hourly rollup: one item
per hour, model, region, caller (identity ARN) and attribution (principal, role, app, team), in the
rollups table under the day's partition (`usage#YYYY-MM-DD`), so that a report over a time range
reads a few day partitions and can group and filter by every field at once. `UsageWriter` adds
them to the rollups and totals tables exactly once per CloudWatch Logs payload, through markers in
the dedupe table, and a journal (the deltas' `to_bytes` format) when a group of payloads is too
large for one transaction.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from budgetkeeper import clock
from budgetkeeper.budgets import Budget
from budgetkeeper.metering import Metered
from budgetkeeper.pricing import PriceStatus
from budgetkeeper.store import DedupeItem, RollupItem, TotalItem, budget_key
from budgetkeeper.usage import ServiceTier
from budgetkeeper.windows import iso_utc

# DynamoDB's limit on the items of one TransactWriteItems request.
TRANSACTION_ITEM_LIMIT = 100


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

    COUNTERS: ClassVar[tuple[str, ...]] = (
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
# hour, model, region, identity ARN, principal, role, app, team (role, app and team may be None)
LineKey = tuple[str, str, str, str, str, str | None, str | None, str | None]
LINE_PARTITION_PREFIX = "usage#"


def line_partition(day: str) -> str:
    """The rollups-table partition of the usage lines of one UTC day (`YYYY-MM-DD`)."""
    return f"{LINE_PARTITION_PREFIX}{day}"


def line_bucket(key: LineKey) -> str:
    """A usage line's sort key: its hour, then a digest of the rest (any length, any characters)."""
    digest = hashlib.sha256(json.dumps(key[1:]).encode()).hexdigest()[:32]
    return f"{key[0]}#{digest}"


@dataclass(slots=True)
class UsageDeltas:
    """What a set of payloads adds to the tables, aggregated by item key."""

    rollups: dict[RollupKey, RollupDelta] = field(default_factory=dict)
    totals: dict[TotalKey, TotalDelta] = field(default_factory=dict)
    lines: dict[LineKey, RollupDelta] = field(default_factory=dict)

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

    @property
    def item_count(self) -> int:
        return len(self.rollups) + len(self.totals) + len(self.lines)

    def split(self, max_items: int) -> list[UsageDeltas]:
        """Deterministic chunks of at most `max_items` item keys each."""
        chunks: list[UsageDeltas] = []
        entries: list[tuple[str, Any, Any]] = [("rollups", k, d) for k, d in self.rollups.items()]
        entries += [("totals", k, d) for k, d in self.totals.items()]
        entries += [("lines", k, d) for k, d in self.lines.items()]
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
        lines = {tuple(key): _rollup_from_strings(values) for key, values in document.get("lines", ())}
        totals = {
            tuple(key): TotalDelta(start, end, calls, Decimal(spent), Decimal(claimed), set(claimers))
            for key, (start, end, calls, spent, claimed, claimers) in document["totals"]
        }
        return cls(rollups=rollups, totals=totals, lines=lines)  # type: ignore[arg-type]


def _rollup_from_strings(values: dict[str, str]) -> RollupDelta:
    return RollupDelta(**{n: (Decimal(v) if n == "cost_usd" else int(v)) for n, v in values.items()})


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
    rollups, totals, lines = deltas.rollups, deltas.totals, deltas.lines
    for item in metered:
        invocation = item.invocation
        delta = rollup_delta(item)
        hour, model, region, tier = item.hour, item.model, invocation.region, invocation.service_tier
        who = item.attribution
        line_key = (hour, model, region, invocation.identity_arn, who.principal, who.role, who.app, who.team)
        line = lines.get(line_key)
        if line is None:
            lines[line_key] = replace(delta)
        else:
            line.merge(delta)
        for scope in item.attribution.scopes:
            key = (scope, hour, model, region, str(tier))
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
                if scope == item.attribution.app and item.attribution.app_claimed:
                    total.claimed_usd += delta.cost_usd
                    total.claimers.add(item.attribution.principal)
    return deltas


# ----------------------------------------------------------------------------- table updates


def _rollup_update(key: RollupKey, delta: RollupDelta) -> tuple[RollupItem, list[Any]]:
    scope, hour, model, region, tier = key
    tier_part = "" if tier == ServiceTier.STANDARD else f"#{tier}"
    item = RollupItem(scope, f"{hour}#{model}#{region}{tier_part}")
    actions = [
        RollupItem.hour.set(hour),
        RollupItem.model.set(model),
        RollupItem.region.set(region),
        RollupItem.service_tier.set(tier),
    ]
    actions += [getattr(RollupItem, name).add(getattr(delta, name)) for name in RollupDelta.COUNTERS]
    return item, actions


def _line_update(key: LineKey, delta: RollupDelta) -> tuple[RollupItem, list[Any]]:
    hour, model, region, identity_arn, principal, role, app, team = key
    item = RollupItem(line_partition(hour[:10]), line_bucket(key))
    actions = [
        RollupItem.hour.set(hour),
        RollupItem.model.set(model),
        RollupItem.region.set(region),
        RollupItem.identity_arn.set(identity_arn),
        RollupItem.principal.set(principal),
        *(
            getattr(RollupItem, name).set(value)
            for name, value in (("role", role), ("app", app), ("team", team))
            if value
        ),
    ]
    actions += [getattr(RollupItem, name).add(getattr(delta, name)) for name in RollupDelta.COUNTERS]
    return item, actions


def _total_update(key: TotalKey, delta: TotalDelta) -> tuple[TotalItem, list[Any]]:
    scope, window, window_id = key
    item = TotalItem(budget_key(scope, window), window_id)
    actions = [
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


def _updates(deltas: UsageDeltas) -> list[tuple[Model, list[Any]]]:
    return [
        *(_rollup_update(k, d) for k, d in deltas.rollups.items()),
        *(_total_update(k, d) for k, d in deltas.totals.items()),
        *(_line_update(k, d) for k, d in deltas.lines.items()),
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


class UsageWriter:
    """Writes usage exactly once per CloudWatch Logs payload.

    A payload's marker and the counters it adds are committed in one transaction when they fit
    (markers + distinct item keys <= 100). Larger groups go through a journal: one transaction
    claims up to 98 payloads and stores their aggregated deltas in a journal item; chunks of at
    most 99 counter updates then commit, each with its own chunk marker. A crash anywhere leaves
    either nothing, or a journal whose remaining chunks any later delivery of those payloads
    finishes: no total is ever counted twice or lost.
    """

    MAX_CLAIM_PAYLOADS = TRANSACTION_ITEM_LIMIT - 2
    MAX_CHUNK_UPDATES = TRANSACTION_ITEM_LIMIT - 1
    MAX_ATTEMPTS = 5

    def __init__(
        self, connection: Connection, ttl_seconds: int, epoch_seconds: Callable[[], int] = clock.epoch_seconds
    ) -> None:
        self._connection = connection
        self._ttl_seconds = ttl_seconds
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
        markers = self._read_markers(pending)
        # A payload claimed by a journal is metered once that journal's chunks are all applied.
        for journal_id in sorted({marker.journal for marker in markers.values() if marker.journal}):
            self._finish_journal(journal_id, result)
        for payload_id in markers:
            result.duplicate_payloads += 1
            result.duplicates.merge(pending.pop(payload_id).deltas)
        fresh = list(pending.values())
        if not fresh:
            return
        combined = _combine(fresh)
        if len(fresh) + combined.item_count <= TRANSACTION_ITEM_LIMIT:
            self._commit_directly(fresh, combined, result)
        else:
            for group in _chunks(fresh, self.MAX_CLAIM_PAYLOADS):
                self._commit_through_journal(group, result)
        result.metered_payloads += len(fresh)
        pending.clear()

    def _read_markers(self, pending: dict[str, PayloadUsage]) -> dict[str, DedupeItem]:
        keys = [payload_marker_id(payload_id) for payload_id in pending]
        found: dict[str, DedupeItem] = {}
        for marker in DedupeItem.batch_get(keys, consistent_read=True):
            found[marker.id.removeprefix("payload#")] = marker
        return found

    def _expiry(self) -> int:
        return self._epoch_seconds() + self._ttl_seconds

    def _commit_directly(
        self, fresh: list[PayloadUsage], combined: UsageDeltas, result: CommitResult
    ) -> None:
        expires_at = self._expiry()
        try:
            with TransactWrite(connection=self._connection) as transaction:
                for payload in fresh:
                    marker = DedupeItem(
                        payload_marker_id(payload.payload_id),
                        quarantined=set(payload.quarantined) or None,
                        expires_at=expires_at,
                    )
                    transaction.save(marker, condition=DedupeItem.id.does_not_exist())
                for item, actions in _updates(combined):
                    transaction.update(item, actions=actions)
        except TransactWriteError as error:
            raise _as_concurrent_claim(error) from error
        result.transactions += 1
        result.items_written += len(fresh) + combined.item_count
        result.applied.merge(combined)

    def _commit_through_journal(self, group: list[PayloadUsage], result: CommitResult) -> None:
        deltas = _combine(group)
        journal_id = (
            "journal#" + hashlib.sha256("\n".join(sorted(p.payload_id for p in group)).encode()).hexdigest()
        )
        expires_at = self._expiry()
        chunk_count = -(-deltas.item_count // self.MAX_CHUNK_UPDATES)
        try:
            with TransactWrite(connection=self._connection) as transaction:
                journal = DedupeItem(
                    journal_id, chunks=chunk_count, deltas=deltas.to_bytes(), expires_at=expires_at
                )
                transaction.save(journal, condition=DedupeItem.id.does_not_exist())
                for payload in group:
                    marker = DedupeItem(
                        payload_marker_id(payload.payload_id),
                        journal=journal_id,
                        quarantined=set(payload.quarantined) or None,
                        expires_at=expires_at,
                    )
                    transaction.save(marker, condition=DedupeItem.id.does_not_exist())
        except TransactWriteError as error:
            raise _as_concurrent_claim(error) from error
        result.transactions += 1
        result.items_written += len(group) + 1
        self._apply_journal(journal_id, deltas, expires_at, result)

    def _finish_journal(self, journal_id: str, result: CommitResult) -> None:
        journal = DedupeItem.get(journal_id, consistent_read=True)
        if journal.deltas is None:
            return
        self._apply_journal(journal_id, UsageDeltas.from_bytes(journal.deltas), journal.expires_at, result)

    def _apply_journal(
        self, journal_id: str, deltas: UsageDeltas, expires_at: int, result: CommitResult
    ) -> None:
        for number, chunk in enumerate(deltas.split(self.MAX_CHUNK_UPDATES)):
            try:
                with TransactWrite(connection=self._connection) as transaction:
                    done = DedupeItem(f"{journal_id}#{number}", expires_at=expires_at)
                    transaction.save(done, condition=DedupeItem.id.does_not_exist())
                    for item, actions in _updates(chunk):
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


def _chunks(items: list[PayloadUsage], size: int) -> Iterator[list[PayloadUsage]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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
