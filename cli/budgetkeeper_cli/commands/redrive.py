"""`budgetkeeper redrive`: re-feed Firehose's processing-failed records and quarantined events, after
a fix, through the usage calculator's own path and dedupe (budgetkeeper.metering.redrive)."""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from budgetkeeper.domain.log_records import UndecodableRecord, decode_base64, decode_firehose_data
from budgetkeeper.metering.archive import BadEvent
from budgetkeeper.metering.calculator import UsageCalculator, build_usage_calculator
from budgetkeeper.metering.redrive import (
    PROCESSING_FAILED_PREFIX,
    QUARANTINE_PREFIX,
    REDRIVEN_PREFIX,
    FailedRecord,
    NotReplayable,
    failed_records,
    quarantined_events,
    redriven_key,
)
from budgetkeeper.metering.writer import payload_slot
from budgetkeeper_cli import options
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_command
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

DESCRIPTION = """\
Meter again what metering could not take, once its cause is fixed (a bad tunable, a DynamoDB
outage longer than Firehose's retries, a parser fix): the records Firehose wrote under
errors/processing-failed/ and the events the usage calculator quarantined under quarantine/, both in
the archive bucket. They go through the usage calculator's own code and its dedupe: a record or
event already metered is not counted again, and a budget they take over a threshold is enforced as
live spend is. A processing-failed object whose records are all metered then moves to
redriven/<its key>, so no later redrive reads it again, however long after (the dedupe markers
expire after dedupe_ttl_days); one with a record still undecodable stays. A quarantined event is
counted only if the delivery that metered its payload left it out, within the dedupe period, and
once. Events that still cannot be metered stay where they are, with today's reason."""

EPILOG = """\
examples:
  budgetkeeper redrive --dry-run
  budgetkeeper redrive --since 2026-11-23
  budgetkeeper redrive --prefix errors/processing-failed/2026/11/23/
  budgetkeeper redrive --prefix quarantine/2026/11/ --since 2026-11-20T08:00:00Z
  budgetkeeper redrive --bucket my-copy-of-the-archive --prefix quarantine/
"""

# Records fed to the calculator at a time: Firehose's own batches are of this order.
BATCH_RECORDS = 500


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "redrive",
        "meter again processing-failed records and quarantined events, after a fix, each once",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument(
        "--bucket", metavar="NAME", help="the bucket to read (default: the stack's archive bucket)"
    )
    parser.add_argument(
        "--prefix",
        action="append",
        metavar="PREFIX",
        help=f"a key prefix under {PROCESSING_FAILED_PREFIX} or {QUARANTINE_PREFIX}; repeatable "
        "(default: both)",
    )
    parser.add_argument(
        "--since",
        metavar="ISO",
        help="only objects written at or after this time: a date (midnight UTC) or e.g. 2026-11-23T09:00:00Z",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="read and parse everything, say what would be metered, write nothing",
    )
    add_stack_options(parser)
    parser.set_defaults(func=run)


def _prefixes(given: list[str] | None) -> list[str]:
    prefixes = given or [PROCESSING_FAILED_PREFIX, QUARANTINE_PREFIX]
    for prefix in prefixes:
        if not prefix.startswith((PROCESSING_FAILED_PREFIX, QUARANTINE_PREFIX)):
            raise UsageError(
                f"--prefix {prefix!r} holds nothing to redrive: type a prefix under "
                f"{PROCESSING_FAILED_PREFIX} or {QUARANTINE_PREFIX}, e.g. --prefix "
                f"{PROCESSING_FAILED_PREFIX}2026/11/23/ or --prefix {QUARANTINE_PREFIX}2026/11/"
            )
    return prefixes


def _objects(s3: Any, bucket: str, prefix: str, since: datetime | None) -> Iterator[tuple[str, bytes]]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", ()):
            if since is None or item["LastModified"] >= since:
                yield item["Key"], s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    prefixes = _prefixes(args.prefix)
    since = options.since(args.since) if args.since is not None else None
    needs = ("dedupe_table", "rollups_table", "totals_table", "budgets_table", "teams_table")
    stack = connect(args, needs=(*needs, *(() if args.bucket else ("archive_bucket",))))
    bucket = args.bucket or stack.settings.archive_bucket
    calculator = build_usage_calculator(stack.settings, stack.tunables())
    s3 = stack.client("s3")
    out = sys.stdout
    verb = "would meter" if args.dry_run else "metered"
    unreadable: list[str] = []
    for prefix in prefixes:
        failed: dict[str, list[FailedRecord]] = {}
        quarantined: list[BadEvent] = []
        for key, body in _objects(s3, bucket, prefix, since):
            try:
                if prefix.startswith(PROCESSING_FAILED_PREFIX):
                    failed[key] = failed_records(key, body)
                else:
                    quarantined += quarantined_events(key, body)
            except NotReplayable as error:
                unreadable.append(str(error))
        if prefix.startswith(PROCESSING_FAILED_PREFIX):
            if args.dry_run:
                summary = _dry_run_failed(calculator, [r for records in failed.values() for r in records])
            else:
                summary = _redrive_failed(calculator, failed, _Mover(s3, bucket))
            out.write(f"s3://{bucket}/{prefix}: {summary}")
        else:
            out.write(
                f"s3://{bucket}/{prefix}: {_redrive_quarantine(calculator, quarantined, args.dry_run, verb)}"
            )
    for problem in unreadable:
        sys.stderr.write(f"skipped: {problem}\n")
    if unreadable:
        raise CommandFailed(
            f"{len(unreadable)} object(s) could not be read (listed above); the rest was redriven"
        )
    return 0


def _dry_run_failed(calculator: UsageCalculator, records: list[FailedRecord]) -> str:
    payloads: list[tuple[str, str | None]] = []
    undecodable = 0
    for record in records:
        try:
            payload = decode_firehose_data(decode_base64(record.data))
        except UndecodableRecord:
            undecodable += 1
            continue
        payloads.append((payload.payload_id, payload_slot(payload)))
    payload_ids = [payload_id for payload_id, _ in payloads]
    metered = calculator.store.quarantined_events(payloads)
    fresh = len(set(payload_ids) - set(metered))
    return (
        f"{len(records)} record(s); would meter {fresh} payload(s), {len(set(metered))} metered already, "
        f"{undecodable} undecodable\n"
    )


@dataclass(frozen=True, slots=True)
class _Mover:
    """Moves a processing-failed object whose records are all metered out of the redrive's way."""

    s3: Any
    bucket: str

    def move(self, key: str) -> None:
        # Copied before it is deleted: a failure in between leaves the object in both places, and the
        # original is read again only while its payload markers still make that a no-op.
        self.s3.copy_object(
            Bucket=self.bucket, Key=redriven_key(key), CopySource={"Bucket": self.bucket, "Key": key}
        )
        self.s3.delete_object(Bucket=self.bucket, Key=key)


def _redrive_failed(
    calculator: UsageCalculator, objects: dict[str, list[FailedRecord]], mover: _Mover
) -> str:
    """Each object's records through the calculator; an object with none left undecodable is moved."""
    records = events = payloads = duplicates = undecodable = moved = 0
    for key, object_records in objects.items():
        object_undecodable = 0
        for start in range(0, len(object_records), BATCH_RECORDS):
            chunk = object_records[start : start + BATCH_RECORDS]
            batch_id = (
                "redrive-" + hashlib.sha256("\n".join(r.record_id for r in chunk).encode()).hexdigest()[:16]
            )
            report = calculator.process(batch_id, [(record.record_id, record.data) for record in chunk])
            events += report.metered_events
            payloads += report.commit.metered_payloads
            duplicates += report.commit.duplicate_payloads
            object_undecodable += report.failed_records
        records += len(object_records)
        undecodable += object_undecodable
        if object_undecodable == 0:
            mover.move(key)
            moved += 1
    return (
        f"{records} record(s); metered {payloads} payload(s) ({events} call(s) read), "
        f"{duplicates} metered already, {undecodable} still undecodable; "
        f"{moved} object(s) moved to {REDRIVEN_PREFIX}\n"
    )


def _redrive_quarantine(calculator: UsageCalculator, events: list[BadEvent], dry_run: bool, verb: str) -> str:
    report = calculator.redrive_quarantined(events, dry_run=dry_run)
    lines = [
        f"{len(events)} event(s); {verb} {len(report.metered)}, "
        f"{len(report.redriven_before)} by an earlier redrive, "
        f"{len(report.metered_with_payload)} metered with their payload already, "
        f"{len(report.still_bad)} still bad, {len(report.payload_not_metered)} whose payload is not "
        "metered (redrive its processing-failed record first, or its dedupe marker expired)\n"
    ]
    lines += [
        f"  still bad: {event.event_id} of {event.payload_id}: {reason}\n"
        for event, reason in report.still_bad
    ]
    return "".join(lines)
