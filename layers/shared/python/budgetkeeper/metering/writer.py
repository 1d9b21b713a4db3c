"""The exactly-once usage writer: adds usage deltas (metering.deltas) to the rollups and totals
tables once per CloudWatch Logs payload, through markers in the dedupe table: the window totals at
once, the rollups and usage lines as usage-journal entries in the same transaction (folded into
their rows by `fold_entries`, which the compactor calls), and through a journal of the dedupe table
when a group of payloads is too large for one transaction; and applies an estimate's exact
re-pricing once (`commit_correction`, metering.estimates). docs/architecture.md, "Exactly once",
tells how markers are grouped in slots.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pynamodb.connection import Connection
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from budgetkeeper.core import clock
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.domain.log_records import LogPayload, PayloadKind
from budgetkeeper.metering.deltas import UsageDeltas
from budgetkeeper.metering.updates import table_updates, usage_rows_of
from budgetkeeper.storage.conditional import failed_conditions, won
from budgetkeeper.storage.keys import (
    ESTIMATED_MODELS_PARTITION,
    marker_slot,
    payload_digest,
    payload_marker_id,
)
from budgetkeeper.storage.tables import DedupeItem, RollupItem
from budgetkeeper.storage.usage_journal import (
    ENTRY_TIME_FORMAT,
    entry_rows,
    fold_counter_update,
    journal_entries,
    merge_rows,
    row_actions,
)

# DynamoDB's limit on the items of one TransactWriteItems request.
TRANSACTION_ITEM_LIMIT = 100
# A group with fewer rollups and usage lines adds them at once: the rows of a few lone calls seldom
# repeat within a fold, so the journal would add its entry's write and delete to the same updates
# (bench/README.md: at 1,000 calls a day, 17.7 -> 19.7 write units a batch through the journal).
JOURNAL_ROWS_MIN = 8
# Rollups and totals expire (TTL) this long after their hour or window: the tunable's default.
DEFAULT_RETENTION_SECONDS = Tunables.defaults().usage_retention_days * 86_400
# Slot items per minute: bounds a slot's size (what each update of it is charged on) and contention.


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


def payload_slot(payload: LogPayload) -> str | None:
    """A decoded payload's marker slot: None unless it is a CloudWatch Logs payload with events."""
    if payload.kind != PayloadKind.DATA_MESSAGE or not payload.events:
        return None
    return marker_slot(payload.payload_id, min(event.timestamp_ms for event in payload.events))


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
        rows = usage_rows_of(combined, self._retention_seconds)
        if len(rows) >= JOURNAL_ROWS_MIN:
            entries, at_once = self._journal_entries(rows, fresh), combined.without_rows()
        else:
            entries, at_once = [], combined
        claim_items = sum(claim.item_count for claim in claims)
        if claim_items + at_once.item_count + len(entries) <= TRANSACTION_ITEM_LIMIT:
            self._commit_directly(claims, markers, at_once, entries, result)
            result.applied.merge(combined)
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

    def _journal_entries(self, rows: list[RollupItem], payloads: Sequence[PayloadUsage]) -> list[RollupItem]:
        """The usage-journal entries of these payloads' rollups and usage lines, under an id that
        starts with the time written (the compactor folds the oldest first)."""
        written = datetime.fromtimestamp(self._epoch_seconds(), UTC).strftime(ENTRY_TIME_FORMAT)
        digest = hashlib.sha256("\n".join(sorted(p.payload_id for p in payloads)).encode()).hexdigest()
        return journal_entries(rows, f"{written}#{digest[:24]}")

    def _commit_directly(
        self,
        claims: list[_Claim],
        markers: _Markers,
        at_once: UsageDeltas,
        entries: list[RollupItem],
        result: CommitResult,
    ) -> None:
        expires_at = self._expiry()
        try:
            with TransactWrite(connection=self._connection) as transaction:
                for claim in claims:
                    self._claim(transaction, claim, markers, None, expires_at)
                for item, actions in table_updates(at_once, self._retention_seconds):
                    transaction.update(item, actions=actions)
                for entry in entries:
                    transaction.save(entry, condition=RollupItem.scope.does_not_exist())
        except TransactWriteError as error:
            raise _as_concurrent_claim(error) from error
        result.transactions += 1
        result.items_written += sum(claim.item_count for claim in claims) + at_once.item_count + len(entries)

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
                    for item, actions in table_updates(chunk, self._retention_seconds):
                        transaction.update(item, actions=actions)
            except TransactWriteError as error:
                if _cancelled_on_first_item(error):
                    continue  # this chunk was applied before (by us, or by another delivery)
                raise
            result.transactions += 1
            result.items_written += chunk.item_count + 1
            result.applied.merge(chunk)


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


def _cancelled_on_first_item(error: TransactWriteError) -> bool:
    return failed_conditions(error)[:1] == [True]


def _as_concurrent_claim(error: TransactWriteError) -> Exception:
    if any(failed_conditions(error)):
        return ConcurrentClaim(str(error))
    return error


# ----------------------------------------------------------------------------- the journal's fold


def fold_entries(connection: Connection, entries: Sequence[RollupItem]) -> int:
    """Add usage-journal entries to their rows and delete them, in one transaction, and count the
    fold (readers see whether one ran while they read). Exactly once: each delete is conditioned on
    the entry being there, so an entry folded meanwhile (another run) cancels it all. Returns the
    rows updated; 0 when cancelled. At most 99 entries and rows together (with the counter, 100)."""
    rows = merge_rows(row for entry in entries for row in entry_rows(entry))
    try:
        with TransactWrite(connection=connection) as transaction:
            for entry in entries:
                transaction.delete(RollupItem(entry.scope, entry.bucket), condition=RollupItem.scope.exists())
            for row in rows:
                transaction.update(RollupItem(row.scope, row.bucket), actions=row_actions(row))
            counter, actions = fold_counter_update()
            transaction.update(counter, actions=actions)
    except TransactWriteError as error:
        if any(failed_conditions(error)):
            return 0
        raise
    return len(rows)


# ----------------------------------------------------------------------------- estimate corrections


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
            for item, actions in table_updates(deltas, retention_seconds):
                transaction.update(item, actions=actions)
    except TransactWriteError as error:
        if _cancelled_on_first_item(error):
            return False
        raise
    return True


def first_estimate_of(model: str, at: str) -> bool:
    """Mark `model` as estimated; True only the first time ever (who alerts on it)."""
    marker = RollupItem(ESTIMATED_MODELS_PARTITION, model, model=model, hour=at[:13])
    return won(marker.save, RollupItem.scope.does_not_exist())
