"""The usage journal: rollup and usage-line deltas that metered batches wrote as journal entries,
not yet added to their rows, and the reads that fold them in.

A batch writes its window totals (what enforcement reads) as they are, and the deltas of its rollups
and usage lines as a few journal entries (`journal_entries`), in the same exactly-once transaction:
one write of a few KB instead of a counter update per row. The compactor (metering.compactor) adds
entries to their rows and deletes them in one transaction per group of entries, and counts each
fold on the journal's fold counter. So a delta is, at any moment, in exactly one place: an entry or
its row. Readers (`usage_rows`) read the open entries, the rows, then the fold counter again: when a
fold ran meanwhile they read again, so a report made right after a batch shows it, never twice.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pynamodb.expressions.condition import Condition

from budgetkeeper.storage.journal_codec import ROW_STRINGS, decode_rows, encode_rows
from budgetkeeper.storage.keys import LINE_PARTITION_PREFIX, USAGE_JOURNAL_PARTITION
from budgetkeeper.storage.tables import (
    ROLLUP_COUNTERS,
    ROLLUP_COUNTERS_ALWAYS,
    ROLLUP_FLAG_COUNTERS,
    RollupItem,
)

# The fold counter's sort key: after every entry's (which start with the time they were written).
FOLDS_BUCKET = "~folds"
# An entry's sort key starts with the time it was written, to the second, in this format.
ENTRY_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Rows in one entry at most: a fold adds an entry's rows and deletes it in one transaction (100 items).
ENTRY_ROWS_MAX = 96
# Rows an entry holds about: few enough that a fold's transaction takes the same part of many
# batches (their rows mostly the same ones: 15 batches' parts and their ~50 rows), as many as that
# allows, since each entry's write and delete are rounded up to whole KB (bench/README.md).
ENTRY_ROWS_TARGET = 48
# Parts of a batch at most: its entries share its transaction with its totals and markers.
ENTRY_PARTS_MAX = 16
# Reads of the rows made again at most when a fold keeps running meanwhile.
READ_ATTEMPTS = 5
# What a row is, besides its key and counters: set (not added) by every update.
_DESCRIPTIVE = (*ROW_STRINGS, "expires_at")


def row_actions(row: RollupItem) -> list[Any]:
    """The update that adds `row`'s counters to its stored row and sets what describes it."""
    actions = [getattr(RollupItem, name).set(value) for name in _DESCRIPTIVE if (value := getattr(row, name))]
    actions += [getattr(RollupItem, name).add(getattr(row, name) or 0) for name in ROLLUP_COUNTERS_ALWAYS]
    actions += [
        getattr(RollupItem, name).add(value) for name in ROLLUP_FLAG_COUNTERS if (value := getattr(row, name))
    ]
    return actions


def merge_rows(rows: Iterable[RollupItem]) -> list[RollupItem]:
    """Rows of the same key as one (counters summed), in key order."""
    merged: dict[tuple[str, str], RollupItem] = {}
    for row in rows:
        key = (row.scope, row.bucket)
        if key not in merged:
            merged[key] = RollupItem.from_raw_data(row.serialize())  # a copy: the caller's row stays
            continue
        into = merged[key]
        for name in ROLLUP_COUNTERS:
            mine, theirs = getattr(into, name), getattr(row, name)
            if theirs is not None:
                setattr(into, name, theirs if mine is None else mine + theirs)
        for name in _DESCRIPTIVE:
            if getattr(into, name) is None:
                setattr(into, name, getattr(row, name))
    return [merged[key] for key in sorted(merged)]


def row_hash(row: RollupItem) -> int:
    """Stable across batches: a row falls in part `row_hash % parts` of every batch's entries. A hash
    of the caller (a usage line's principal, a rollup's scope), not of the row: a caller's rows
    share strings and counters, which an entry then holds once (storage.journal_codec)."""
    line = row.scope.startswith(LINE_PARTITION_PREFIX) and row.principal is not None
    return zlib.crc32((row.principal if line else row.scope).encode())


def journal_entries(rows: Sequence[RollupItem], entry_id: str) -> list[RollupItem]:
    """The journal entries that hold `rows`, under sort keys `<entry_id>#<parts>.<part>.<chunk>`
    (`entry_id` starts with the time written and is unique to the batch): the rows in a power of two
    of parts by `row_hash`, about ENTRY_ROWS_TARGET each (a part over ENTRY_ROWS_MAX, by hash luck,
    in chunks). Batches of about the same size are cut in as many parts, and part p of each holds
    the same rows: the compactor folds those entries together (compactor.fold_groups), adding each
    row once for all of them."""
    parts = 1
    while len(rows) > parts * ENTRY_ROWS_TARGET and parts < ENTRY_PARTS_MAX:
        parts *= 2
    by_part: dict[int, list[RollupItem]] = {}
    for row in rows:
        by_part.setdefault(row_hash(row) % parts, []).append(row)
    entries = []
    for part, group in sorted(by_part.items()):
        for start in range(0, len(group), ENTRY_ROWS_MAX):
            data = encode_rows(group[start : start + ENTRY_ROWS_MAX])
            bucket = f"{entry_id}#{parts}.{part}.{start // ENTRY_ROWS_MAX}"
            entries.append(RollupItem(USAGE_JOURNAL_PARTITION, bucket, deltas=data))
    return entries


def entry_rows(entry: RollupItem) -> list[RollupItem]:
    """The rows one journal entry holds, each with the deltas as its counters."""
    return decode_rows(entry.deltas or b"")


def entry_written(entry: RollupItem) -> datetime:
    """When an entry was written: its sort key starts with the time (`<YYYY-MM-DDTHH:MM:SSZ>#...`)."""
    return datetime.strptime(entry.bucket.split("#", 1)[0], ENTRY_TIME_FORMAT).replace(tzinfo=UTC)


def entry_part(entry: RollupItem) -> tuple[int, int]:
    """(parts, part): which part of its batch's rows an entry holds (`journal_entries`)."""
    parts, part, _ = entry.bucket.rsplit("#", 1)[1].split(".")
    return int(parts), int(part)


@dataclass(frozen=True, slots=True)
class OpenJournal:
    entries: list[RollupItem]
    folds: int  # the fold counter when they were read


def open_journal() -> OpenJournal:
    """Every open entry and the fold counter, read at once (one query of the journal's partition)."""
    entries, folds = [], 0
    for item in RollupItem.query(USAGE_JOURNAL_PARTITION, consistent_read=True):
        if item.bucket == FOLDS_BUCKET:
            folds = int(item.folds or 0)
        else:
            entries.append(item)
    return OpenJournal(entries, folds)


def folds_so_far() -> int:
    try:
        return int(RollupItem.get(USAGE_JOURNAL_PARTITION, FOLDS_BUCKET, consistent_read=True).folds or 0)
    except RollupItem.DoesNotExist:
        return 0


def fold_counter_update() -> tuple[RollupItem, list[Any]]:
    """The update a fold's transaction makes to the fold counter."""
    return RollupItem(USAGE_JOURNAL_PARTITION, FOLDS_BUCKET), [RollupItem.folds.add(1)]


@dataclass(frozen=True, slots=True)
class RowRange:
    """Rows of one partition (a scope, or a day's usage lines) whose sort key is from `low` to
    `high` (both included), or starts with `prefix`; neither: every row of the partition."""

    partition: str
    low: str | None = None
    high: str | None = None
    prefix: str | None = None

    def holds(self, row: RollupItem) -> bool:
        if row.scope != self.partition:
            return False
        if self.prefix is not None:
            return row.bucket.startswith(self.prefix)
        return (self.low is None or row.bucket >= self.low) and (self.high is None or row.bucket <= self.high)

    def stored(self) -> list[RollupItem]:
        condition: Condition | None
        if self.prefix is not None:
            condition = RollupItem.bucket.startswith(self.prefix)
        elif self.low is not None and self.high is not None:
            condition = RollupItem.bucket.between(self.low, self.high)
        else:
            condition = None
        return [row for row in RollupItem.query(self.partition, condition) if self.holds(row)]


def usage_rows(ranges: Sequence[RowRange]) -> list[RollupItem]:
    """The rollups or usage lines of `ranges` as they stand: the stored rows plus the open journal's
    deltas for them, each row once, in key order."""
    for attempt in range(READ_ATTEMPTS):
        time.sleep(0.2 * attempt)  # a fold's run takes a few transactions: let it end
        journal = open_journal()
        stored = [row for wanted in ranges for row in wanted.stored()]
        if folds_so_far() == journal.folds:
            break  # no fold ran while the rows were read: no delta is counted twice or missed
    pending = [
        row
        for entry in journal.entries
        for row in entry_rows(entry)
        if any(wanted.holds(row) for wanted in ranges)
    ]
    return merge_rows([*stored, *pending])
