"""The usage calculator's repository: the budgets of a batch's scopes (`BudgetBook`, default budgets
created as they are first needed) and `DynamoUsageStore`, the calculator's view of DynamoDB (the
exactly-once writer, totals read back, payloads' markers, the monitor's sweep index)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal

from budgetkeeper.budgets.rules import DEFAULT_BUDGET_WINDOWS, Budget, gets_default_budget
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.domain.scopes import ScopeKind
from budgetkeeper.metering.writer import CommitResult, PayloadUsage, UsageWriter
from budgetkeeper.storage.budget_rows import create_default_budgets, mark_due
from budgetkeeper.storage.keys import TotalKey, payload_digest, payload_marker_id
from budgetkeeper.storage.models_seen import record_models_seen
from budgetkeeper.storage.readers import spent_in_windows
from budgetkeeper.storage.tables import BudgetItem, DedupeItem


class BudgetBook:
    """The budgets of the scopes in one batch, read once per batch: the daily and monthly ones by
    key (BatchGetItem, 100 a request), the others with one query per scope kind (KindIndex), so the
    requests grow with the scopes a hundred at a time, never one sequential query per scope.

    A principal seen without any budget gets the default budgets, stored with `origin=default` and
    no limit of their own, so they follow the default limits an operator sets in SSM. A session (a
    name any caller of AssumeRole picks) gets them in memory first: its totals count from its first
    call, and the rows are stored only once a window's spend reaches `default_budget_floor_usd` or
    crosses a threshold (`store_pending`), so minted session names create no budget rows.
    """

    def __init__(self, budgets: dict[str, list[Budget]], pending: set[str] | None = None) -> None:
        self._budgets = budgets
        self.pending = pending or set()  # session scopes whose default budgets are not stored yet

    @classmethod
    def load(cls, scopes: Iterable[str], tunables: Tunables, now_iso: str) -> BudgetBook:
        wanted = sorted(set(scopes))
        found: dict[str, list[BudgetItem]] = {}
        keys = [(scope, window) for scope in wanted for window in DEFAULT_BUDGET_WINDOWS]
        for item in BudgetItem.batch_get(keys, consistent_read=True):
            found.setdefault(item.scope, []).append(item)
        wanted_set = set(wanted)
        for kind in sorted({scope.split(":", 1)[0] for scope in wanted}):
            for item in BudgetItem.kind_index.query(kind):
                if item.scope in wanted_set:
                    found.setdefault(item.scope, []).append(item)
        budgets: dict[str, list[Budget]] = {}
        pending: set[str] = set()
        for scope in wanted:
            items = sorted(found.get(scope, ()), key=lambda item: item.window)
            if not items and gets_default_budget(scope):
                if scope.startswith(f"{ScopeKind.SESSION}:"):
                    items = [BudgetItem(scope, window, origin="default") for window in DEFAULT_BUDGET_WINDOWS]
                    pending.add(scope)
                else:
                    items = create_default_budgets(scope, now_iso)
            budgets[scope] = [Budget.resolve(item, tunables) for item in items]
        return cls(budgets, pending)

    def store_pending(self, scopes: Iterable[str], now_iso: str) -> None:
        """Store the default budgets of these sessions (pending ones only)."""
        for scope in sorted(set(scopes) & self.pending):
            create_default_budgets(scope, now_iso)
            self.pending.discard(scope)

    def for_scope(self, scope: str) -> list[Budget]:
        return self._budgets.get(scope, [])

    def all(self) -> list[Budget]:
        return [budget for budgets in self._budgets.values() for budget in budgets]


class DynamoUsageStore:
    """The calculator's view of DynamoDB: budgets, the exactly-once writer, totals read back."""

    def __init__(self, writer: UsageWriter, tunables: Tunables, now_iso: str) -> None:
        self._writer = writer
        self._tunables = tunables
        self._now_iso = now_iso

    def load_budgets(self, scopes: Iterable[str]) -> BudgetBook:
        return BudgetBook.load(scopes, self._tunables, self._now_iso)

    def store_default_budgets(self, budgets: BudgetBook, scopes: Iterable[str]) -> None:
        budgets.store_pending(scopes, self._now_iso)

    def commit(self, payloads: Sequence[PayloadUsage]) -> CommitResult:
        return self._writer.commit(payloads)

    def record_models_seen(self, seen: Iterable[tuple[str, str, str]]) -> None:
        """(day, model, region) of calls priced from a table: what the price refresh reads."""
        record_models_seen(seen, self._tunables.usage_retention_days * 86_400)

    def mark_due(self, budgets: Iterable[tuple[str, str]]) -> None:
        """Put budgets in the monitor's sparse index (SWEEP_DUE)."""
        mark_due(budgets)

    def quarantined_events(self, payloads: Iterable[tuple[str, str | None]]) -> dict[str, frozenset[str]]:
        """The events each metered payload left out (quarantined); a payload not metered is absent.

        `payloads` are (payload id, marker slot or None) pairs: a payload found only in its slot was
        metered with none of its events left out.
        """
        slots = dict(payloads)
        keys = {payload_marker_id(payload_id): payload_id for payload_id in slots}
        found = {
            keys[marker.id]: frozenset(marker.quarantined or ())
            for marker in DedupeItem.batch_get(list(keys), consistent_read=True)
        }
        wanted = {slot for payload_id, slot in slots.items() if slot and payload_id not in found}
        for item in DedupeItem.batch_get(sorted(wanted), consistent_read=True):
            seen = item.seen or set()
            for payload_id, slot in slots.items():
                if slot == item.id and payload_id not in found and payload_digest(payload_id) in seen:
                    found[payload_id] = frozenset()
        return found

    def spent(self, keys: Iterable[TotalKey]) -> dict[TotalKey, Decimal]:
        return spent_in_windows(keys)
