"""How batches' rows are cut into usage-journal entries, and how the compactor groups the entries of
many batches into transactions: pure, no table."""

from __future__ import annotations

from budgetkeeper.metering.compactor import fold_groups
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper.storage.usage_journal import (
    ENTRY_ROWS_MAX,
    entry_part,
    entry_rows,
    journal_entries,
    row_hash,
)


def rows(count: int, first: int = 0) -> list[RollupItem]:
    return [
        RollupItem(f"user:u{n:04d}", "2026-11-23T10#amazon.nova-lite-v1:0#us-east-1", calls=1)
        for n in range(first, first + count)
    ]


def keys(entries: list[RollupItem]) -> list[tuple[str, str]]:
    return sorted((row.scope, row.bucket) for entry in entries for row in entry_rows(entry))


def test_a_batch_rows_are_in_entries_each_row_once_each_entry_one_part():
    for count in (1, 31, 33, 200, 3000):
        batch = rows(count)
        entries = journal_entries(batch, f"2026-11-23T10:00:00Z#b{count}")
        assert keys(entries) == sorted((row.scope, row.bucket) for row in batch)
        for entry in entries:
            parts, part = entry_part(entry)
            assert parts & (parts - 1) == 0  # a power of two
            assert len(entry_rows(entry)) <= ENTRY_ROWS_MAX
            assert all(row_hash(row) % parts == part for row in entry_rows(entry))
    assert len(journal_entries(rows(20), "2026-11-23T10:00:00Z#small")) == 1  # a small batch: one write


def test_the_entries_of_many_batches_fold_in_groups_that_fit_a_transaction_and_share_rows():
    # Given four batches of about 100 rows over the same users (4 parts each), each a minute after
    batches = [journal_entries(rows(100 + n), f"2026-11-23T10:0{n}:00Z#b{n}") for n in range(4)]
    entries = [entry for batch in batches for entry in batch]
    groups = fold_groups(entries)
    # Then every entry is in one group, each group fits one transaction with the fold counter
    assert sorted(e.bucket for group in groups for e in group) == sorted(e.bucket for e in entries)
    assert all(len(group) + len(set(keys(group))) + 1 <= 100 for group in groups)
    # and a group per part: each row is added once for the four batches
    assert len(groups) == 4
    row_groups = [set(keys(group)) for group in groups]
    assert sum(map(len, row_groups)) == len(set().union(*row_groups)) == 103


def test_a_small_batch_between_large_ones_folds_apart_and_nothing_is_left_out():
    entries = [
        *journal_entries(rows(100), "2026-11-23T10:00:00Z#a"),
        *journal_entries(rows(5), "2026-11-23T10:01:00Z#b"),
        *journal_entries(rows(100), "2026-11-23T10:02:00Z#c"),
    ]
    groups = fold_groups(entries)
    assert sorted(e.bucket for group in groups for e in group) == sorted(e.bucket for e in entries)
    assert [e.bucket for group in groups for e in group if e.bucket.startswith("2026-11-23T10:01")] == [
        "2026-11-23T10:01:00Z#b#1.0.0"
    ]
