"""Bounded reads of the budgets table for what operators look at: `status`, the console, the HTML
report and the daily summary.

A caller mints session names at will, and each session that spends gets default budget rows: no
read here grows with those. Each reads a sparse index instead of scanning the table:
- `operator_budgets`: the budgets operators wrote, from the KindIndex, two queries per scope kind
  (the kind's other-window budgets and its `#set` daily and monthly ones); its size is what
  operators wrote;
- `due_budgets`: the budgets the monitor watches, from the SweepIndex (near or over a threshold, in
  grace, suspended, restoring, and operators' suspensions), at most `limit` of them and a count of
  the rest (a COUNT query, which returns no items);
- `budgets_to_watch`: both, once each.
A default budget appears in these only while it needs attention; `scope_budgets` reads any one
scope (one query).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from budgetkeeper.domain.scopes import SCOPE_KINDS
from budgetkeeper.storage.tables import OPERATOR_SET, SWEEP_DUE, BudgetItem

# Watched budgets the operators' views read at most; the rest are counted, not read.
MOST_WATCHED = 500


@dataclass(frozen=True, slots=True)
class BudgetList:
    """Budgets read, by scope and window, and how many due ones were left unread past the limit."""

    items: list[BudgetItem]
    more: int = 0


def _by_key(items: Iterable[BudgetItem]) -> list[BudgetItem]:
    unique = {(item.scope, item.window): item for item in items}
    return [unique[key] for key in sorted(unique)]


def operator_budgets() -> list[BudgetItem]:
    """Every budget an operator wrote (no default budget, no operator's suspension)."""
    partitions = [partition for kind in SCOPE_KINDS for partition in (kind, f"{kind}#{OPERATOR_SET}")]
    return _by_key(item for partition in partitions for item in BudgetItem.kind_index.query(partition))


def due_budgets(limit: int | None = None) -> BudgetList:
    """The budgets the monitor watches, first `limit` by scope and window (None: all of them)."""
    items = list(BudgetItem.sweep_index.query(SWEEP_DUE, limit=limit))
    more = 0
    if limit is not None and len(items) == limit:
        more = BudgetItem.sweep_index.count(SWEEP_DUE) - limit
    return BudgetList(_by_key(items), more)


def budgets_to_watch(limit: int | None = None) -> BudgetList:
    """The operators' budgets and the due ones (default budgets in trouble, suspensions)."""
    due = due_budgets(limit)
    return BudgetList(_by_key([*operator_budgets(), *due.items]), due.more)


def scope_budgets(scope: str) -> list[BudgetItem]:
    """Every row of one scope: its budgets, default or not, and its operators' suspensions."""
    return list(BudgetItem.query(scope, consistent_read=True))
