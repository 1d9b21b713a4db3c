"""The compactor: folds the usage journal (storage.usage_journal) into the rollups and usage lines.

Each metered batch writes its rollup and usage-line deltas as a few journal entries; the compactor
(every 5 minutes) adds every open entry to its rows and deletes it, once the oldest has waited the
tunable `usage_fold_minutes`. Entries of the
same part of several batches share most rows (a scope's hour of one model), so a group of them is
added with one update per row, however many batches it holds: that is the saving. Each group is one
transaction (metering.writer.fold_entries): a crash between groups leaves the rest for the next run,
and a run that finds a group folded by another is cancelled whole. Nothing is counted twice or lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import groupby

from pynamodb.connection import Connection

from budgetkeeper.metering.writer import TRANSACTION_ITEM_LIMIT, fold_entries
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper.storage.usage_journal import entry_part, entry_rows, entry_written, open_journal

# A fold's transaction: the entries deleted, the rows updated, and the fold counter.
_GROUP_ITEMS_MAX = TRANSACTION_ITEM_LIMIT - 1


@dataclass(slots=True)
class FoldReport:
    entries: int = 0  # entries folded
    rows: int = 0  # row updates written
    transactions: int = 0
    cancelled: int = 0  # groups another run folded first (left as they are)


def fold_groups(entries: Sequence[RollupItem]) -> list[list[RollupItem]]:
    """Entries in groups that fit one transaction each: by part (the same part of batches cut in as
    many parts holds the same rows), oldest first; an entry joins its part's group while the
    group's entries and distinct rows stay under the transaction's limit."""
    groups: list[list[RollupItem]] = []
    for _, same_part in groupby(sorted(entries, key=lambda e: (entry_part(e), e.bucket)), key=entry_part):
        group: list[RollupItem] = []
        keys: set[tuple[str, str]] = set()
        for entry in same_part:
            entry_keys = {(row.scope, row.bucket) for row in entry_rows(entry)}
            together = keys | entry_keys
            if group and len(group) + 1 + len(together) > _GROUP_ITEMS_MAX:
                groups.append(group)
                group, together = [], entry_keys
            group.append(entry)
            keys = together
        groups.append(group)
    return groups


def fold_usage_journal(connection: Connection, now: datetime, wait: timedelta) -> FoldReport:
    """Fold every open entry of the usage journal into its rows, once the oldest was written `wait`
    before `now` (so that a fold adds many batches' deltas with one update per row)."""
    report = FoldReport()
    entries = open_journal().entries
    if not entries or entry_written(min(entries, key=entry_written)) > now - wait:
        return report
    for group in fold_groups(entries):
        rows = fold_entries(connection, group)
        if rows == 0:
            report.cancelled += 1
            continue
        report.entries += len(group)
        report.rows += rows
        report.transactions += 1
    return report
