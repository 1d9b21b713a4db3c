"""DynamoDB storage: one pynamodb model per table, and the exactly-once usage writer.

Table names and the endpoint are bound from settings by `bind_tables()` (called by each handler
and by the local harness), never at import time.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pynamodb.attributes import (
    Attribute,
    BinaryAttribute,
    BooleanAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
)
from pynamodb.connection import Connection
from pynamodb.constants import NUMBER
from pynamodb.exceptions import TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from budgetkeeper import clock
from budgetkeeper.budgets import MANUAL_WINDOW, Budget, Status, gets_default_budget
from budgetkeeper.settings import Settings, Tunables
from budgetkeeper.usage import RollupDelta, RollupKey, TotalDelta, TotalKey, UsageDeltas

# The value of BudgetItem.sweep on budgets the monitor must look at.
SWEEP_DUE = "due"
# DynamoDB's limit on the items of one TransactWriteItems request.
TRANSACTION_ITEM_LIMIT = 100


class DecimalAttribute(Attribute[Decimal]):
    """An exact number: pynamodb's NumberAttribute goes through float and would lose cents."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return str(value)

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class RollupItem(Model):
    """Usage of one scope in one UTC hour, for one model in one region."""

    class Meta:
        table_name = "unbound-rollups"

    scope = UnicodeAttribute(hash_key=True)
    bucket = UnicodeAttribute(range_key=True)  # "<YYYY-MM-DDTHH>#<model>#<region>"
    hour = UnicodeAttribute(null=True)
    model = UnicodeAttribute(null=True)
    region = UnicodeAttribute(null=True)
    calls = NumberAttribute(default=0)
    errors = NumberAttribute(default=0)
    unpriced_calls = NumberAttribute(default=0)
    input_tokens = NumberAttribute(default=0)
    output_tokens = NumberAttribute(default=0)
    cache_read_tokens = NumberAttribute(default=0)
    cache_write_5m_tokens = NumberAttribute(default=0)
    cache_write_1h_tokens = NumberAttribute(default=0)
    cost_usd = DecimalAttribute(default=Decimal)


class TotalItem(Model):
    """Spend of one budget (scope and window spec) in one window."""

    class Meta:
        table_name = "unbound-totals"

    budget = UnicodeAttribute(hash_key=True)  # "<scope>|<window spec>"
    window_id = UnicodeAttribute(range_key=True)
    scope = UnicodeAttribute(null=True)
    window = UnicodeAttribute(null=True)
    window_start = UnicodeAttribute(null=True)
    window_end = UnicodeAttribute(null=True)
    calls = NumberAttribute(default=0)
    spent_usd = DecimalAttribute(default=Decimal)


class SweepIndex(GlobalSecondaryIndex["BudgetItem"]):
    class Meta:
        index_name = "SweepIndex"
        projection = AllProjection()

    sweep = UnicodeAttribute(hash_key=True)
    sweep_key = UnicodeAttribute(range_key=True)


class BudgetItem(Model):
    """A budget on one scope for one window spec. A null limit follows the default budget."""

    class Meta:
        table_name = "unbound-budgets"

    scope = UnicodeAttribute(hash_key=True)
    window = UnicodeAttribute(range_key=True)
    limit_usd = DecimalAttribute(null=True)
    time_zone = UnicodeAttribute(null=True)
    warning_percent = DecimalAttribute(null=True)
    critical_percent = DecimalAttribute(null=True)
    grace_seconds = NumberAttribute(null=True)
    origin = UnicodeAttribute(default="explicit")  # explicit | default
    protected = BooleanAttribute(default=False)
    protected_by = UnicodeAttribute(null=True)
    protected_reason = UnicodeAttribute(null=True)
    dry_run = BooleanAttribute(null=True)
    owner_email = UnicodeAttribute(null=True)
    language = UnicodeAttribute(null=True)
    status = UnicodeAttribute(default=str(Status.OK))
    status_window_id = UnicodeAttribute(null=True)  # the window the status belongs to
    revision = NumberAttribute(default=1)
    # The highest level notified in a window and revision, so no level is announced twice.
    notified_level = NumberAttribute(default=0)
    notified_window_id = UnicodeAttribute(null=True)
    notified_revision = NumberAttribute(null=True)
    forecast_window_id = UnicodeAttribute(null=True)
    # Spend at the last restore: only spend beyond it suspends again in the same window.
    baseline_usd = DecimalAttribute(null=True)
    baseline_window_id = UnicodeAttribute(null=True)
    suspended_until = UnicodeAttribute(null=True)
    suspended_by = UnicodeAttribute(null=True)
    suspended_reason = UnicodeAttribute(null=True)
    target_kind = UnicodeAttribute(null=True)
    target_name = UnicodeAttribute(null=True)
    target_sessions = ListAttribute(of=UnicodeAttribute, null=True)
    execution_arn = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    # Present only while the budget needs the monitor's attention (sparse index).
    sweep = UnicodeAttribute(null=True)
    sweep_key = UnicodeAttribute(null=True)
    sweep_index = SweepIndex()

    def notified_level_in(self, window_id: str) -> int:
        """The level already notified in this window at the current revision (0: none)."""
        if self.notified_window_id == window_id and self.notified_revision == self.revision:
            return int(self.notified_level)
        return 0


class AuditItem(Model):
    """One transition of a budget's status. The system never deletes these."""

    class Meta:
        table_name = "unbound-audit"

    scope = UnicodeAttribute(hash_key=True)
    at_id = UnicodeAttribute(range_key=True)  # "<ISO time>#<id>"
    window = UnicodeAttribute(null=True)
    from_status = UnicodeAttribute(null=True)
    to_status = UnicodeAttribute(null=True)
    actor = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    execution_arn = UnicodeAttribute(null=True)


class DedupeItem(Model):
    """Markers that make metering exactly once; every one expires through the table's TTL.

    - `payload#<sha256>`: this CloudWatch Logs payload is metered (or claimed by `journal`);
    - `journal#<id>`: deltas of a group of payloads too large for one transaction;
    - `journal#<id>#<n>`: chunk n of that journal is applied.
    """

    class Meta:
        table_name = "unbound-dedupe"

    id = UnicodeAttribute(hash_key=True)
    journal = UnicodeAttribute(null=True)
    chunks = NumberAttribute(null=True)
    deltas = BinaryAttribute(null=True, legacy_encoding=False)
    expires_at = NumberAttribute(null=True)


class TeamItem(Model):
    """Which team a principal (or role, or app) scope belongs to."""

    class Meta:
        table_name = "unbound-teams"

    principal = UnicodeAttribute(hash_key=True)
    team = UnicodeAttribute()


TABLE_MODELS: dict[str, type[Model]] = {
    "rollups_table": RollupItem,
    "totals_table": TotalItem,
    "budgets_table": BudgetItem,
    "audit_table": AuditItem,
    "dedupe_table": DedupeItem,
    "teams_table": TeamItem,
}


def bind_tables(settings: Settings) -> None:
    """Point every model at the deployed table names and endpoint."""
    for setting_name, model in TABLE_MODELS.items():
        meta: Any = model.Meta
        table_name = getattr(settings, setting_name)
        if (meta.table_name, getattr(meta, "host", None)) != (table_name, settings.dynamodb_endpoint):
            meta.table_name = table_name
            meta.host = settings.dynamodb_endpoint
            meta.region = settings.region
            model._connection = None  # rebuilt lazily against the new table


def transaction_connection(settings: Settings) -> Connection:
    return Connection(region=settings.region, host=settings.dynamodb_endpoint)


class BudgetBook:
    """The budgets of the scopes in one batch, read once per batch.

    A principal seen without any budget gets the default budgets, stored with `origin=default` and
    no limit of their own, so they follow the default limits an operator sets in SSM.
    """

    def __init__(self, budgets: dict[str, list[Budget]]) -> None:
        self._budgets = budgets

    @classmethod
    def load(cls, scopes: Iterable[str], tunables: Tunables, now_iso: str) -> BudgetBook:
        # budget_rows writes this module's models: imported when called, not at import.
        from budgetkeeper.budget_rows import create_default_budgets

        budgets: dict[str, list[Budget]] = {}
        for scope in sorted(set(scopes)):
            items = [item for item in BudgetItem.query(scope) if item.window != MANUAL_WINDOW]
            if not items and gets_default_budget(scope):
                items = create_default_budgets(scope, now_iso)
            budgets[scope] = [Budget.resolve(item, tunables) for item in items]
        return cls(budgets)

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

    def commit(self, payloads: Sequence[PayloadUsage]) -> CommitResult:
        return self._writer.commit(payloads)

    def mark_due(self, budgets: Iterable[tuple[str, str]]) -> None:
        """Put budgets in the monitor's sparse index (SWEEP_DUE)."""
        from budgetkeeper.budget_rows import mark_due  # see BudgetBook.load

        mark_due(budgets)

    def spent(self, keys: Iterable[TotalKey]) -> dict[TotalKey, Decimal]:
        wanted = {
            (budget_key(scope, window), window_id): (scope, window, window_id)
            for scope, window, window_id in keys
        }
        return {
            wanted[(item.budget, item.window_id)]: item.spent_usd
            for item in TotalItem.batch_get(list(wanted), consistent_read=True)
        }


def spent_in_window(scope: str, window: str, window_id: str) -> Decimal:
    try:
        return TotalItem.get(budget_key(scope, window), window_id, consistent_read=True).spent_usd
    except TotalItem.DoesNotExist:
        return Decimal(0)


def team_session_scopes(team: str) -> tuple[str, ...]:
    """Session scopes mapped to `team` in the team table (members calling through shared roles)."""
    return tuple(
        sorted(
            item.principal
            for item in TeamItem.scan(TeamItem.team == team)
            if item.principal.startswith("session:")
        )
    )


def load_teams() -> dict[str, str]:
    """The whole team mapping; it is small (one item per mapped principal)."""
    return {item.principal: item.team for item in TeamItem.scan()}


# ----------------------------------------------------------------------------- usage deltas


def budget_key(scope: str, window: str) -> str:
    return f"{scope}|{window}"


def _rollup_update(key: RollupKey, delta: RollupDelta) -> tuple[RollupItem, list[Any]]:
    scope, hour, model, region = key
    item = RollupItem(scope, f"{hour}#{model}#{region}")
    actions = [RollupItem.hour.set(hour), RollupItem.model.set(model), RollupItem.region.set(region)]
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
    ]
    return item, actions


def _updates(deltas: UsageDeltas) -> list[tuple[Model, list[Any]]]:
    return [_rollup_update(k, d) for k, d in deltas.rollups.items()] + [
        _total_update(k, d) for k, d in deltas.totals.items()
    ]


# ----------------------------------------------------------------------------- exactly-once writer


@dataclass(frozen=True, slots=True)
class PayloadUsage:
    """The usage one CloudWatch Logs payload adds, under the payload's stable id."""

    payload_id: str
    deltas: UsageDeltas


@dataclass(slots=True)
class CommitResult:
    applied: UsageDeltas = field(default_factory=UsageDeltas)  # what this call added to the tables
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
            del pending[payload_id]
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
        keys = [_payload_marker_id(payload_id) for payload_id in pending]
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
                    marker = DedupeItem(_payload_marker_id(payload.payload_id), expires_at=expires_at)
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
                        _payload_marker_id(payload.payload_id), journal=journal_id, expires_at=expires_at
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


def _payload_marker_id(payload_id: str) -> str:
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
