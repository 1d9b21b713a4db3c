"""The usage calculator: meters one Firehose data-transformation batch.

Every record gets a result: `Ok` with its enriched lines (a gzip member of JSON lines),
`Dropped` for CloudWatch control messages and for payloads with nothing to archive, and
`ProcessingFailed` only for data that cannot be decoded at all. A bad event inside a good payload
is quarantined verbatim and counted; its neighbours are metered.
"""

from __future__ import annotations

import base64
import functools
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from budgetkeeper.budgets.rules import Budget, crossing
from budgetkeeper.core import clock
from budgetkeeper.core.observability import logger
from budgetkeeper.core.settings import Settings
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.log_records import (
    MalformedEvent,
    PayloadKind,
    UndecodableRecord,
    decode_base64,
    decode_firehose_data,
)
from budgetkeeper.domain.scopes import parse_identity_arn
from budgetkeeper.enforcement.runs import ThresholdCrossed, ThresholdPublisher, WorkflowStarter
from budgetkeeper.metering.archive import ArchiveBucket, BadEvent, enriched_line, gzip_lines
from budgetkeeper.metering.caps import Folded, MintedNames
from budgetkeeper.metering.deltas import UsageDeltas, check_store_keys, usage_deltas
from budgetkeeper.metering.meter import Meter, Metered
from budgetkeeper.metering.org_units import OrganizationUnits
from budgetkeeper.metering.repository import DynamoUsageStore
from budgetkeeper.metering.writer import (
    CommitResult,
    PayloadUsage,
    UsageWriter,
    first_estimate_of,
    payload_slot,
)
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import PriceStatus
from budgetkeeper.pricing.table import Rates
from budgetkeeper.pricing.versions import ActivePrices
from budgetkeeper.storage.keys import TotalKey
from budgetkeeper.storage.readers import load_teams_and_people
from budgetkeeper.storage.tables import bind_tables, transaction_connection

OK, DROPPED, FAILED = "Ok", "Dropped", "ProcessingFailed"
# Lambda's synchronous response limit is 6 MB; keep a margin for the JSON around the records.
RESPONSE_BUDGET_BYTES = 5_500_000
# Failures that are not about one event: they fail the batch, and Firehose delivers it again.
AWS_ERRORS = (ClientError, BotoCoreError, PynamoDBException)


class BudgetSource(Protocol):
    pending: set[str]  # scopes whose default budgets are in memory only (store.BudgetBook)

    def for_scope(self, scope: str) -> list[Budget]: ...

    def all(self) -> list[Budget]: ...


class UsageStore(Protocol):
    """What the calculator needs from DynamoDB (store.DynamoUsageStore in Lambda)."""

    def load_budgets(self, scopes: Iterable[str]) -> BudgetSource: ...

    def commit(self, payloads: Sequence[PayloadUsage]) -> CommitResult: ...

    def spent(self, keys: Iterable[TotalKey]) -> dict[TotalKey, Decimal]: ...

    def quarantined_events(self, payloads: Iterable[tuple[str, str | None]]) -> dict[str, frozenset[str]]: ...

    def mark_due(self, budgets: Iterable[tuple[str, str]]) -> None: ...

    def record_models_seen(self, seen: Iterable[tuple[str, str, str]]) -> None: ...

    def store_default_budgets(self, budgets: Any, scopes: Iterable[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class RecordResult:
    record_id: str
    result: str
    data: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"recordId": self.record_id, "result": self.result, "data": self.data}


@dataclass(slots=True)
class BatchReport:
    records: list[RecordResult] = field(default_factory=list)
    metered_events: int = 0
    bad_events: int = 0
    failed_records: int = 0
    dropped_records: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)
    unknown_models: Counter[str] = field(default_factory=Counter)
    provisioned_models: Counter[str] = field(default_factory=Counter)
    estimated_models: Counter[str] = field(default_factory=Counter)  # calls at an estimate, by model
    new_estimated_models: list[str] = field(default_factory=list)  # estimated for the first time ever
    fallback_calls: Counter[str] = field(default_factory=Counter)  # calls at a fallback rate, by basis
    commit: CommitResult = field(default_factory=CommitResult)
    crossings: list[ThresholdCrossed] = field(default_factory=list)
    quarantine_uri: str | None = None
    overflow_records: int = 0
    folded: Folded = field(default_factory=Folded)
    named_models: set[str] = field(default_factory=set)  # priced or provisioned: metric dimensions
    profile_lookups_deferred: int = 0

    def to_response(self) -> dict[str, list[dict[str, str]]]:
        return {"records": [record.to_dict() for record in self.records]}


@dataclass(slots=True)
class _DecodedRecord:
    record_id: str
    payload_id: str
    metered: list[Metered]
    quarantined: frozenset[str] = frozenset()  # ids of the payload's events left out
    slot: str | None = None  # its marker slot (metering.writer.payload_slot)


def redriven_payload_id(event: BadEvent) -> str:
    """The dedupe id of a quarantined event metered by a redrive: one marker per event."""
    return f"{event.payload_id}#event#{event.event_id}"


@dataclass(slots=True)
class QuarantineReport:
    """What a redrive of quarantined events did with each (counted by outcome)."""

    metered: list[BadEvent] = field(default_factory=list)
    still_bad: list[tuple[BadEvent, str]] = field(default_factory=list)  # with today's reason
    metered_with_payload: list[BadEvent] = field(default_factory=list)  # a later delivery counted it
    payload_not_metered: list[BadEvent] = field(default_factory=list)  # or its marker has expired
    redriven_before: list[BadEvent] = field(default_factory=list)  # metered by an earlier redrive
    batch: BatchReport = field(default_factory=lambda: BatchReport())


@dataclass
class UsageCalculator:
    meter: Meter
    store: UsageStore
    publisher: ThresholdPublisher
    archive: ArchiveBucket
    price_version: str
    clock: Callable[[], datetime]
    tunables: Tunables = field(default_factory=Tunables.defaults)

    def process(self, batch_id: str, records: Sequence[tuple[str, str]]) -> BatchReport:
        """Meter a batch of (recordId, base64 data) pairs, as Firehose sends them, exactly once.

        The base64 is decoded here, record by record, so that data that is not base64 fails its own
        record (`ProcessingFailed`) instead of raising out of the handler and failing the batch.
        """
        report = BatchReport()
        if self.meter.profiles is not None:
            self.meter.profiles.begin_batch(self.tunables.profile_lookups_per_batch)
        results: dict[str, RecordResult] = {}
        decoded: list[_DecodedRecord] = []
        bad: list[BadEvent] = []
        for record_id, text in records:
            try:
                payload = decode_firehose_data(decode_base64(text))
            except UndecodableRecord:
                results[record_id] = RecordResult(record_id, FAILED, _failed_data(text))
                report.failed_records += 1
                continue
            if payload.kind == PayloadKind.CONTROL_MESSAGE:
                results[record_id] = RecordResult(record_id, DROPPED)
                report.dropped_records += 1
                continue
            metered: list[Metered] = []
            bad_before = len(bad)
            slot = payload_slot(payload)
            for event in payload.events:
                try:
                    metered.append(self.meter_event(event.message, owner=payload.owner))
                except MalformedEvent as error:
                    bad.append(
                        BadEvent(
                            record_id,
                            payload.payload_id,
                            payload.log_group,
                            payload.log_stream,
                            event.id,
                            error.reason,
                            event.message,
                            slot,
                            payload.owner,
                        )
                    )
            left_out = frozenset(event.event_id for event in bad[bad_before:])
            decoded.append(_DecodedRecord(record_id, payload.payload_id, metered, left_out, slot))

        now = self.clock()
        if bad:
            report.bad_events = len(bad)
            report.quarantine_uri = self.archive.quarantine(batch_id, bad, now)

        self._write_usage(decoded, report, now)
        self._archive_lines(batch_id, decoded, results, report, now)
        report.records = [results[record_id] for record_id, _ in records]
        if self.meter.profiles is not None:
            report.profile_lookups_deferred = self.meter.profiles.deferred
        return report

    def meter_event(self, message: str, owner: str | None = None) -> Metered:
        """Parse, attribute and price one log message, and check the keys it would write.

        Any failure that comes from the message is MalformedEvent, so it is quarantined with its
        reason and its neighbours are metered; only AWS's own errors (the store or a service
        unreachable, throttled beyond retries) are left to fail the batch, which Firehose retries.
        In organization mode a member account's log reaches this stack: whoever may write to that
        log group may write any caller into it, so a caller of another account than the log's
        `owner` (which CloudWatch Logs sets) is a claim, quarantined, never charged.
        """
        try:
            metered = self.meter.meter(message)
            caller_account = parse_identity_arn(metered.invocation.identity_arn).account
            if self.meter.home_account is not None and owner is not None and caller_account != owner:
                raise MalformedEvent(
                    f"caller of account {caller_account} in the log of account {owner}: not charged"
                )
            check_store_keys(metered)
        except (MalformedEvent, *AWS_ERRORS):
            raise
        except Exception as error:  # a defect this message exposed: its failure, not the batch's
            logger.exception("event not metered: quarantined", error=describe_error(error))
            raise MalformedEvent(f"cannot be metered: {describe_error(error)}"[:500]) from error
        return metered

    def redrive_quarantined(self, events: Sequence[BadEvent], *, dry_run: bool = False) -> QuarantineReport:
        """Meter quarantined events again, after a fix, through the same dedupe as live batches.

        An event is counted only if the delivery that metered its payload left it out (the
        payload's marker lists it), and only once (its own marker): a later delivery of the
        payload that did count it, or a second redrive, changes nothing.
        """
        report = QuarantineReport()
        unique = list({(event.payload_id, event.event_id): event for event in events}.values())
        left_out = self.store.quarantined_events((event.payload_id, event.slot) for event in unique)
        done = self.store.quarantined_events((redriven_payload_id(event), None) for event in unique)
        decoded: list[_DecodedRecord] = []
        for event in unique:
            if redriven_payload_id(event) in done:
                report.redriven_before.append(event)
            elif event.payload_id not in left_out:
                report.payload_not_metered.append(event)
            elif event.event_id not in left_out[event.payload_id]:
                report.metered_with_payload.append(event)
            else:
                try:
                    metered = self.meter_event(event.message, owner=event.owner)
                except MalformedEvent as error:
                    report.still_bad.append((event, error.reason))
                    continue
                report.metered.append(event)
                decoded.append(_DecodedRecord(event.record_id, redriven_payload_id(event), [metered]))
        if decoded and not dry_run:
            self._write_usage(decoded, report.batch, self.clock())
        return report

    def charge(self, usage_id: str, metered: Sequence[Metered]) -> BatchReport:
        """Charge usage no invocation log records (a batch job, a mantle metric period) exactly once
        under `usage_id`: the same writer, scopes, budgets and crossings as a log payload, whose
        marker a second delivery or a retry finds (its crossings are still acted on, once)."""
        report = BatchReport()
        self._write_usage([_DecodedRecord(usage_id, usage_id, list(metered))], report, self.clock())
        return report

    def _write_usage(self, decoded: list[_DecodedRecord], report: BatchReport, now: datetime) -> None:
        minted = MintedNames(self.tunables.app_claims_per_principal, self.tunables.unknown_models_per_batch)
        for record in decoded:
            record.metered = minted.cap(record.metered)
        report.folded = minted.folded
        scopes = {scope for record in decoded for item in record.metered for scope in item.attribution.scopes}
        budgets = self.store.load_budgets(scopes)
        payloads = [
            PayloadUsage(
                record.payload_id,
                usage_deltas(record.metered, budgets.for_scope),
                record.quarantined,
                record.slot,
            )
            for record in decoded
        ]
        priced: set[tuple[str, str, str]] = set()  # (day, model, region): what the price refresh reads
        for record in decoded:
            for item in record.metered:
                report.metered_events += 1
                report.cost_usd += item.priced.cost_usd
                if item.priced.status == PriceStatus.UNKNOWN_MODEL:
                    report.unknown_models[item.invocation.model_id] += 1
                elif item.priced.status == PriceStatus.ESTIMATED:
                    # A name no table prices: never a metric dimension of its own (callers mint them).
                    report.estimated_models[item.model] += 1
                else:
                    report.named_models.add(item.model)
                    if item.priced.status == PriceStatus.PRICED:
                        priced.add((item.hour[:10], item.model, item.invocation.region))
                    if item.priced.status == PriceStatus.PROVISIONED:
                        report.provisioned_models[item.invocation.model_id] += 1
                    elif item.priced.flagged:
                        report.fallback_calls[str(item.priced.basis)] += 1
        report.commit = self.store.commit(payloads)
        self.store.record_models_seen(priced)
        report.new_estimated_models = [
            model for model in sorted(report.estimated_models) if first_estimate_of(model, iso_utc(now))
        ]
        report.crossings = self._crossings(report.commit, budgets, now)

    def _crossings(
        self, commit: CommitResult, budgets: BudgetSource, now: datetime
    ) -> list[ThresholdCrossed]:
        # The totals this delivery added, and those its duplicate payloads added when first metered:
        # a crossing found twice starts one run (runs are named by the crossing, not the batch).
        changed = UsageDeltas()
        changed.merge(commit.duplicates)
        changed.merge(commit.applied)
        applied = changed.totals
        if not applied:
            return []
        after = self.store.spent(applied)
        floor = self.tunables.default_budget_floor_usd
        to_store = {
            scope for (scope, _, _), spent in after.items() if scope in budgets.pending and spent >= floor
        }
        by_key = {(budget.scope, budget.window): budget for budget in budgets.all()}
        events = []
        for key, delta in applied.items():
            scope, window, window_id = key
            budget = by_key.get((scope, window))
            if budget is None or key not in after:
                continue
            span = budget.span_at(datetime.fromisoformat(delta.window_start))
            spent_after = after[key]
            crossed = crossing(budget, spent_after - delta.spent_usd, spent_after, span, now)
            if crossed is None:
                continue
            events.append(
                ThresholdCrossed(
                    scope=scope,
                    window=window,
                    window_id=window_id,
                    level=crossed.level.label,
                    forecast=crossed.forecast,
                    spent_usd=spent_after,
                    limit_usd=budget.limit_usd,
                    percent=budget.percent_of(spent_after),
                    window_end=delta.window_end,
                    revision=budget.revision,
                    closed_window=span.end <= now,
                )
            )
        to_store |= {event.scope for event in events}
        if to_store & budgets.pending:
            self.store.store_default_budgets(budgets, to_store)
        if events:
            # Marked first: should starting the workflow fail, the monitor's next sweep finds them.
            self.store.mark_due({(event.scope, event.window) for event in events})
            self.publisher.publish(events)
        return events

    def _archive_lines(
        self,
        batch_id: str,
        decoded: list[_DecodedRecord],
        results: dict[str, RecordResult],
        report: BatchReport,
        now: datetime,
    ) -> None:
        budget = RESPONSE_BUDGET_BYTES - sum(len(r.data) + 64 for r in results.values())
        for record in decoded:
            if not record.metered:
                results[record.record_id] = RecordResult(record.record_id, DROPPED)
                report.dropped_records += 1
                continue
            compressed = gzip_lines([enriched_line(item, self.price_version) for item in record.metered])
            data = base64.b64encode(compressed).decode()
            if len(data) + 64 > budget:
                # Too big for the response: the lines go to S3 and the archive points at them.
                uri = self.archive.overflow(batch_id, record.record_id, compressed, now)
                pointer = json.dumps({"overflow": uri, "lines": len(record.metered)})
                data = base64.b64encode(gzip_lines([pointer])).decode()
                report.overflow_records += 1
            budget -= len(data) + 64
            results[record.record_id] = RecordResult(record.record_id, OK, data)


def _failed_data(text: str) -> str:
    """A failed record's data, handed back as received: the response must hold valid base64 even when
    the record's data was not, so such data goes back base64-encoded as the text it was."""
    try:
        decode_base64(text)
        return text
    except UndecodableRecord:
        return base64.b64encode(str(text).encode("utf-8", "backslashreplace")).decode()


@functools.cache
def _inference_profiles(region: str) -> InferenceProfiles:
    # One per container: resolved profiles (and, for a while, their tags) are cached across batches.
    return InferenceProfiles(boto3.client("bedrock", region_name=region))


@functools.cache
def _organization_units() -> OrganizationUnits:
    # One per container: each account's OUs are re-read at most every OU_CACHE_TTL.
    return OrganizationUnits(boto3.client("organizations"))


@functools.cache
def _active_prices(enabled: bool) -> ActivePrices:
    # One per container: the active price version is re-read at most every CACHE_TTL.
    return ActivePrices(enabled=enabled)


def build_usage_calculator(settings: Settings, tunables: Tunables) -> UsageCalculator:
    """Wire the calculator to DynamoDB, S3 and the active price version (else the bundled table)."""
    bind_tables(settings)
    prices = _active_prices(settings.prices_table is not None).table()
    now = clock.now()
    teams, people = load_teams_and_people()
    writer = UsageWriter(
        transaction_connection(settings),
        ttl_seconds=tunables.dedupe_ttl_days * 86_400,
        retention_seconds=tunables.usage_retention_days * 86_400,
    )
    return UsageCalculator(
        meter=Meter(
            prices=prices,
            teams=teams,
            people=people,
            home_account=settings.qualifying_account,
            org_units=_organization_units().of if settings.organization_id else None,
            profiles=_inference_profiles(settings.region),
            registered_profiles=dict(tunables.app_profiles),
            unknown_model_rates=unknown_model_rates(tunables),
        ),
        store=DynamoUsageStore(writer, tunables, iso_utc(now)),
        publisher=WorkflowStarter(
            boto3.client("stepfunctions", region_name=settings.region), settings.evaluation_machine_arn
        ),
        archive=ArchiveBucket(boto3.client("s3", region_name=settings.region), settings.archive_bucket),
        price_version=prices.version,
        clock=clock.now,
        tunables=tunables,
    )


def unknown_model_rates(tunables: Tunables) -> Rates | None:
    """The operators' rate for models the price table does not know, if they set one."""
    rate = tunables.unknown_model_usd_per_million
    return None if rate is None else Rates(input=rate[0], output=rate[1])


def describe_error(error: BaseException) -> str:
    """`TransactWriteError: ThrottlingException: ...`: the AWS error code, which pynamodb wraps."""
    code = getattr(error, "cause_response_code", None)
    if code is None and isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
    return f"{type(error).__name__}: {f'{code}: ' if code else ''}{error}"
