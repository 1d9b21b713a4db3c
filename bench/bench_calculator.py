"""The usage calculator end to end: the real Firehose handler on in-process moto, every AWS call counted.

Realistic invocation records (demo_data.generate_day: 21 principals, bodies of a few KB; with
`--population K` every principal becomes K of them) in two packings:
- 25 events per CloudWatch Logs payload, one payload per Firehose record (what a busy log group
  sends: CloudWatch Logs combines events into one Firehose record);
- 1 event per payload, the worst case for dedupe markers (one per payload).

A batch is what Firehose hands the processor at `--rate` invocations an hour (default 1,000,000):
the invocations that arrive in the processor buffer interval, or fewer when the buffer fills first
(template.yaml's defaults, read from it: 3 MB, 60 s; the size counts the gzipped payloads). At a
million an hour the buffer fills in under 30 s; at 30,000 an hour a batch is the minute's 500
invocations.
`--batch N` sets the batch size instead (10 to 50: the processor buffer interval at 0 s).

Each variant runs on a fresh stack: a cold batch first (every principal is new: default budgets are
created), then warm batches of fresh records, as a running deployment sees them. Every botocore call
is counted by wrapping `BaseClient._make_api_call` (pynamodb and boto3 both go through it); capacity
units are computed from the requests and responses by DynamoDB's rules (below), and the AWS cost of
metering 1,000,000 invocations follows from the warm batches' counts.

Timestamps: each batch's records are restamped, in order, into the time its invocations take to
arrive at the rate (at most the buffer interval). Rollup items are per scope, hour, model and region:
records spread over hours would multiply them. The write units per invocation follow from the
distinct items a batch touches (scopes x models x regions, usage lines, budget totals) over its
invocations: bigger batches and fewer principals cost less per invocation.

Run from the repository root:
.venv/bin/python bench/bench_calculator.py [--rate N] [--population K] [--batch N] [--warm-batches N]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import platform
import random
import shlex
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any
from unittest import mock

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `functions.usage_calculator.app`, as the harness imports handlers
sys.path.insert(0, str(REPO / "layers" / "shared" / "python"))  # this checkout's layer, not an installed one

import botocore.client  # noqa: E402
from aws_lambda_powertools.utilities import parameters  # noqa: E402
from moto import mock_aws  # noqa: E402

from budgetkeeper.core import clock  # noqa: E402
from budgetkeeper.domain.scopes import parse_identity_arn  # noqa: E402
from budgetkeeper.storage.tables import TeamItem  # noqa: E402
from devkit.demo_data import generate_day  # noqa: E402
from devkit.demo_data import teams as demo_teams  # noqa: E402
from devkit.harness.clock import ManualClock  # noqa: E402
from devkit.harness.lambdas import invoke  # noqa: E402
from devkit.harness.lean_moto import lean  # noqa: E402
from devkit.harness.logs import cloudwatch_payload, firehose_event, log_message  # noqa: E402
from devkit.harness.stack import FAKE_CREDENTIALS, LocalStack  # noqa: E402
from devkit.harness.template import load_template, resources_of_type  # noqa: E402

RATE_PER_HOUR = 1_000_000  # invocations an hour unless --rate says
EVENTS_PER_PAYLOAD = 25
DAY = date(2026, 11, 23)
SEED = 7
MOTO_CONFIG = {"lambda": {"use_docker": False}}
FUNCTION = "UsageCalculatorFunction"
COMPACTOR = "UsageCompactorFunction"

# us-east-1 list prices, as of 2025-11 (aws.amazon.com/{lambda,dynamodb,firehose,s3}/pricing; DynamoDB
# on-demand as cut on 2024-11-01). Written here by hand, not fetched: check them before quoting.
LAMBDA_ARM_USD_PER_GB_SECOND = 0.0000133334  # first 7.5 billion GB-s a month
LAMBDA_USD_PER_REQUEST = 0.20 / 1_000_000
DYNAMODB_USD_PER_WRU = 0.625 / 1_000_000  # on-demand write request unit
DYNAMODB_USD_PER_RRU = 0.125 / 1_000_000  # on-demand read request unit
FIREHOSE_USD_PER_GB = 0.029  # Direct PUT ingestion, first 500 TB a month; each record rounded up to 5 KB
S3_USD_PER_PUT = 0.005 / 1_000  # S3 Standard PUT, COPY, POST, LIST

GIB = 1024**3
FIREHOSE_INCREMENT = 5 * 1024
FIREHOSE_S3_BUFFER_BYTES = 64 * 1024**2  # template.yaml: BufferingHints SizeInMBs 64 ...
FIREHOSE_S3_BUFFER_SECONDS = 300  # ... IntervalInSeconds 300, for the archive and the raw backup
INVOCATIONS = 1_000_000
# An assumed round trip per AWS request from Lambda (DynamoDB documents single-digit milliseconds;
# a TransactWriteItems of 100 items takes longer): the estimate of Lambda duration on AWS.
ROUND_TRIP_SECONDS = 0.010

WRITE_OPERATIONS = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
CAPACITY_RULES = (
    "DynamoDB on-demand units: a write is ceil(item KB) WRU (1 KB = 1,024 bytes), x2 inside "
    "TransactWriteItems; a strongly consistent read (BatchGetItem, GetItem) is ceil(item / 4 KB) RRU, "
    "at least 1 even when the item is missing; Query and Scan are ceil(sum of items returned / 4 KB), "
    "halved when eventually consistent (pynamodb's default), at least 0.5. Item size = attribute "
    "names + values (strings in UTF-8, numbers 1 byte per 2 significant digits + 1). An update is charged "
    "on the larger of the item before and after it: the item as stored after the write (read back "
    "from moto, uncounted), or its request (key + every attribute it sets or adds) if larger; a delete "
    "on the item it deletes (read before, uncounted)."
)


# ----------------------------------------------------------------------------- DynamoDB item sizes


def _number_size(text: str) -> int:
    digits = text.lstrip("-+").split("e")[0].split("E")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return _number_size(data)
    if kind == "B":
        return len(data if isinstance(data, bytes) else base64.b64decode(data))
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(item.encode()) for item in data)
    if kind == "NS":
        return sum(_number_size(item) for item in data)
    if kind == "BS":
        return sum(len(item) for item in data)
    if kind == "L":
        return 3 + sum(1 + value_size(item) for item in data)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(item) for name, item in data.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def update_size(request: dict[str, Any]) -> int:
    key = request["Key"]
    names = [name for name in request.get("ExpressionAttributeNames", {}).values() if name not in key]
    values = request.get("ExpressionAttributeValues", {}).values()
    return item_size(key) + sum(len(name.encode()) for name in names) + sum(map(value_size, values))


def item_kind(table: str, key: dict[str, Any], transactional: bool) -> str:
    """What a written item is, for the write units' breakdown: its table, and in the rollups and
    dedupe tables the kind its key names (store.py: rollups and usage lines; slots, payload markers,
    journals)."""
    short = table.removeprefix(f"{LocalStack.stack_name}-")
    if "scope" in key and short.startswith("Rollups"):
        scope = key["scope"]["S"]
        short += (
            ": usage lines"
            if scope.startswith("usage#")
            else ": usage journal"
            if scope == "usage-journal"
            else ": rollups"
        )
    elif "id" in key and short.startswith("Dedupe"):
        short += ": " + key["id"]["S"].split("#", 1)[0]
    return short + (" (in a transaction)" if transactional else "")


def write_units(size: int, transactional: bool) -> int:
    return max(1, math.ceil(size / 1024)) * (2 if transactional else 1)


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / 4096))
    return units if consistent else units / 2


# ----------------------------------------------------------------------------- counting AWS calls


def deleted_keys(operation: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a DynamoDB request deletes."""
    if operation == "DeleteItem":
        return [(params["TableName"], params["Key"])]
    if operation == "BatchWriteItem":
        return [
            (table, request["DeleteRequest"]["Key"])
            for table, requests in params["RequestItems"].items()
            for request in requests
            if "DeleteRequest" in request
        ]
    if operation == "TransactWriteItems":
        return [
            (action["Delete"]["TableName"], action["Delete"]["Key"])
            for action in params["TransactItems"]
            if "Delete" in action
        ]
    return []


def _item_id(table: str, key: dict[str, Any]) -> str:
    return json.dumps([table, key], sort_keys=True)


@dataclass(frozen=True)
class Sizes:
    """Sizes of stored items, read without being counted: as stored now, and as before the request
    deleted them."""

    stored: Callable[[str, dict[str, Any]], int]
    deleted: Callable[[str, dict[str, Any]], int]


@dataclass
class Tally:
    """Every AWS call of a stretch of time, with DynamoDB capacity units."""

    requests: Counter[str] = field(default_factory=Counter)  # "dynamodb.TransactWriteItems"
    items_written: Counter[str] = field(default_factory=Counter)  # by table
    largest_by_table: Counter[str] = field(default_factory=Counter)  # bytes of the largest item written
    write_request_units: int = 0
    write_units_by_kind: Counter[str] = field(default_factory=Counter)  # by item_kind
    read_request_units: float = 0.0
    largest_item: int = 0
    s3_put_bytes: int = 0
    seconds_in_calls: float = 0.0  # wall time inside botocore calls: moto's work here, the network on AWS

    def add_share(self, other: Tally, fraction: float) -> None:
        """Add `fraction` of `other`'s counts (a fold's, shared among the batches it folded)."""
        for mine, theirs in (
            (self.requests, other.requests),
            (self.items_written, other.items_written),
            (self.write_units_by_kind, other.write_units_by_kind),
        ):
            for key, count in theirs.items():
                mine[key] += count * fraction
        for table, size in other.largest_by_table.items():
            self.largest_by_table[table] = max(self.largest_by_table[table], size)
        self.write_request_units += other.write_request_units * fraction
        self.read_request_units += other.read_request_units * fraction
        self.largest_item = max(self.largest_item, other.largest_item)
        self.seconds_in_calls += other.seconds_in_calls * fraction

    def dynamodb_requests(self) -> Counter[str]:
        return Counter(
            {name.split(".", 1)[1]: n for name, n in self.requests.items() if name.startswith("dynamodb.")}
        )

    def write_requests(self) -> int:
        return sum(n for operation, n in self.dynamodb_requests().items() if operation in WRITE_OPERATIONS)

    def _written(self, table: str, size: int, transactional: bool, key: dict[str, Any]) -> None:
        self.items_written[table] += 1
        units = write_units(size, transactional)
        self.write_request_units += units
        self.write_units_by_kind[item_kind(table, key, transactional)] += units
        self.largest_item = max(self.largest_item, size)
        self.largest_by_table[table] = max(self.largest_by_table[table], size)

    def record(
        self,
        service: str,
        operation: str,
        params: dict[str, Any],
        response: dict[str, Any],
        sizes: Sizes,
    ) -> None:
        self.requests[f"{service}.{operation}"] += 1
        if service == "s3" and operation == "PutObject":
            body = params.get("Body", b"")
            self.s3_put_bytes += len(body) if isinstance(body, bytes | str) else 0
        if service != "dynamodb":
            return
        if operation == "PutItem":
            self._written(params["TableName"], item_size(params["Item"]), False, params["Item"])
        elif operation == "UpdateItem":
            size = max(update_size(params), sizes.stored(params["TableName"], params["Key"]))
            self._written(params["TableName"], size, False, params["Key"])
        elif operation == "DeleteItem":
            size = max(item_size(params["Key"]), sizes.deleted(params["TableName"], params["Key"]))
            self._written(params["TableName"], size, False, params["Key"])
        elif operation == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        self._written(table, item_size(item), False, item)
                    else:
                        key = request["DeleteRequest"]["Key"]
                        self._written(table, max(item_size(key), sizes.deleted(table, key)), False, key)
        elif operation == "TransactWriteItems":
            for action in params["TransactItems"]:
                ((kind, request),) = action.items()
                if kind == "Put":
                    size = item_size(request["Item"])
                elif kind == "Update":
                    size = max(update_size(request), sizes.stored(request["TableName"], request["Key"]))
                elif kind == "Delete":
                    size = max(item_size(request["Key"]), sizes.deleted(request["TableName"], request["Key"]))
                else:  # ConditionCheck: the key only
                    size = item_size(request["Key"])
                self._written(request["TableName"], size, True, request.get("Item") or request["Key"])
        elif operation == "BatchGetItem":
            for table, wanted in params["RequestItems"].items():
                consistent = bool(wanted.get("ConsistentRead"))
                found = response.get("Responses", {}).get(table, [])
                unprocessed = len(response.get("UnprocessedKeys", {}).get(table, {}).get("Keys", []))
                missing = len(wanted["Keys"]) - unprocessed - len(found)
                self.read_request_units += sum(read_units(item_size(i), consistent) for i in found)
                self.read_request_units += missing * read_units(0, consistent)
        elif operation == "GetItem":
            size = item_size(response.get("Item", {}))
            self.read_request_units += read_units(size, bool(params.get("ConsistentRead")))
        elif operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in response.get("Items", []))
            self.read_request_units += read_units(size, bool(params.get("ConsistentRead")))


@contextmanager
def counting(tally: Tally) -> Iterator[None]:
    original = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
        def stored_size(table: str, key: dict[str, Any]) -> int:
            read = original(client, "GetItem", {"TableName": table, "Key": key, "ConsistentRead": True})
            return item_size(read.get("Item", {}))

        service = client.meta.service_model.service_name
        # A delete is charged on the item it deletes: its size is read (uncounted) before it is gone.
        deleted = {
            _item_id(table, key): stored_size(table, key)
            for table, key in (deleted_keys(operation, params) if service == "dynamodb" else [])
        }
        response: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            response = original(client, operation, params)
            return response
        finally:
            tally.seconds_in_calls += time.perf_counter() - started
            sizes = Sizes(stored=stored_size, deleted=lambda table, key: deleted[_item_id(table, key)])
            tally.record(service, operation, params, response, sizes)

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", counted):
        yield


@dataclass
class Written:
    """What a stretch of handler time wrote to fd 1: in Lambda, log events in CloudWatch Logs."""

    lines: list[str] = field(default_factory=list)

    def emf(self) -> list[str]:
        """The EMF metric lines (CloudWatch turns each into metrics; they are log events too)."""
        return [line for line in self.lines if '"_aws"' in line]


@contextmanager
def quiet_stdout(path: str | None = None) -> Iterator[Written]:
    """Powertools logs and EMF metrics go to fd 1: kept out of the figures, written to `path` (a
    temporary file unless given) and read back when the block ends (what Lambda would send to
    CloudWatch Logs)."""
    sys.stdout.flush()
    saved = os.dup(1)
    written = Written()
    with open(path, "w+b") if path else tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield written
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            written.lines = sink.read().decode("utf-8", "replace").splitlines()


# ----------------------------------------------------------------------------- records and batches


@dataclass(frozen=True)
class Buffer:
    """The Firehose processor buffer in front of the calculator: template.yaml's parameter defaults."""

    size_bytes: int
    interval_seconds: int


def processor_buffer() -> Buffer:
    parameters = load_template()["Parameters"]
    return Buffer(
        size_bytes=int(float(parameters["ProcessorBufferSizeMB"]["Default"]) * 1024**2),
        interval_seconds=int(parameters["ProcessorBufferIntervalSeconds"]["Default"]),
    )


def realistic_records(count: int, population: int) -> list[dict[str, Any]]:
    """`count` records of the demo day, in time order; with `population` > 1 each caller's calls are
    shared among that many principals of the same kind, role, app and team."""
    records = generate_day(DAY, records=count, seed=SEED)
    rng = random.Random(SEED)
    for record in records:
        copy = rng.randrange(population)
        if copy:
            record["identity"] = {**record["identity"], "arn": f"{record['identity']['arn']}-{copy}"}
    records.sort(key=lambda record: record["timestamp"])
    return records


def buffer_fill(messages: Sequence[str], per_payload: int, size_bytes: int) -> int:
    """How many of `messages`, `per_payload` to a payload, the buffer holds before it is full."""
    held = size = 0
    for start in range(0, len(messages), per_payload):
        size += len(cloudwatch_payload(messages[start : start + per_payload]))
        if size > size_bytes:
            break
        held = min(len(messages), start + per_payload)
    return max(held, min(per_payload, len(messages)))  # one payload larger than the buffer goes alone


@dataclass(frozen=True)
class Plan:
    """The batches of one packing: invocations each (the warm batches' mean), the seconds they take
    to arrive, and what sets their size."""

    per_payload: int
    invocations: float
    seconds: float
    sized_by: str


def plan_batches(
    per_payload: int, rate: int, population: int, buffer: Buffer, forced: int | None, count: int
) -> tuple[Plan, list[list[str]]]:
    """`count` batches of log messages as Firehose makes them at `rate`: the invocations of one
    buffer interval, or fewer when the buffer fills first; each restamped into its arrival time."""
    in_interval = forced or max(1, round(rate * buffer.interval_seconds / 3600))
    records = realistic_records(in_interval * count, population)
    messages = [log_message(r) for r in records]
    batches: list[list[str]] = []
    start, filled = 0, 0
    # One after the other, as they would arrive at `rate` (the usage journal's fold adds the rows the
    # batches of a few minutes share once): from the first record's minute of the demo day.
    arrival = datetime.fromisoformat(records[0]["timestamp"]).astimezone(UTC).replace(second=0)
    while len(batches) < count:
        size = forced or buffer_fill(messages[start : start + in_interval], per_payload, buffer.size_bytes)
        filled += size < in_interval
        chunk = records[start : start + size]
        seconds = min(buffer.interval_seconds, size / rate * 3600)
        batches.append([log_message(r) for r in restamp(chunk, arrival, seconds)])
        arrival += timedelta(seconds=seconds)
        start += size
    sizes = [len(batch) for batch in batches[1:]]
    invocations = sum(sizes) / len(sizes)
    if forced:
        sized_by = "--batch, not the buffer"
    elif filled:
        sized_by = f"the {buffer.size_bytes / 1024**2:g} MB buffer filling: {filled} of {count} batches"
    else:
        sized_by = f"the {buffer.interval_seconds} s interval ending"
    each = Plan(per_payload, invocations, min(buffer.interval_seconds, invocations / rate * 3600), sized_by)
    return each, batches


def restamp(batch: Sequence[dict[str, Any]], start: datetime, seconds: float) -> list[dict[str, Any]]:
    """The batch's records, in order, spread over `seconds` from `start`."""
    step = seconds / len(batch)
    return [
        {**record, "timestamp": (start + timedelta(seconds=int(i * step))).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for i, record in enumerate(batch)
    ]


def pack(messages: Sequence[str], per_payload: int) -> list[bytes]:
    return [
        cloudwatch_payload(messages[start : start + per_payload])
        for start in range(0, len(messages), per_payload)
    ]


def seed_teams(population: int) -> None:
    """The demo's team mapping (users, roles, apps and API keys to teams), as an operator keeps it;
    the copies of a user or an API key (`--population`) in the team of the original."""
    for scope, team in demo_teams().items():
        TeamItem(scope, team=team).save()
        if scope.startswith(("user:", "apikey:")):
            for copy in range(1, population):
                TeamItem(f"{scope}-{copy}", team=team).save()


@dataclass
class BatchRun:
    invocations: int
    seconds: float
    tally: Tally
    firehose_records: int
    input_bytes: int  # the Firehose records' data (gzipped CloudWatch payloads)
    firehose_billed_bytes: int  # each record rounded up to 5 KB
    output_bytes: int  # decoded data of the transformed records (what Firehose delivers to S3)
    results: Counter[str]
    written: Written  # the handler's log lines and EMF metrics
    compactor_runs: float = 0.0  # its share of the compactor's runs (share_fold)
    fold: FoldRun | None = None  # the fold that added its journal entries to the rows


def run_batch(messages: list[str], per_payload: int, index: int) -> BatchRun:
    datas = pack(messages, per_payload)
    event = firehose_event(datas, invocation_id=f"bench-batch-{index}")
    tally = Tally()
    with quiet_stdout() as written, counting(tally):
        started = time.perf_counter()
        response = invoke(FUNCTION, event)
        seconds = time.perf_counter() - started
    records = response["records"]
    return BatchRun(
        invocations=len(messages),
        seconds=seconds,
        tally=tally,
        firehose_records=len(datas),
        input_bytes=sum(map(len, datas)),
        firehose_billed_bytes=sum(math.ceil(len(d) / FIREHOSE_INCREMENT) * FIREHOSE_INCREMENT for d in datas),
        output_bytes=sum(len(base64.b64decode(r["data"])) for r in records if r["data"]),
        results=Counter(r["result"] for r in records),
        written=written,
    )


@dataclass
class FoldRun:
    seconds: float
    tally: Tally
    outcome: dict[str, int]  # the compactor's report: entries, rows, transactions, cancelled


def run_fold() -> FoldRun:
    tally = Tally()
    with quiet_stdout(), counting(tally):
        started = time.perf_counter()
        outcome = invoke(COMPACTOR, {})
        seconds = time.perf_counter() - started
    return FoldRun(seconds, tally, outcome)


def share_fold(runs: list[BatchRun], fold: FoldRun) -> None:
    """Each batch of `runs` bears its share of the fold that added their journal entries to the rows."""
    for run in runs:
        run.tally.add_share(fold.tally, 1 / len(runs))
        run.seconds += fold.seconds / len(runs)
        run.compactor_runs += 1 / len(runs)
        run.fold = fold


def run_variant(batches: list[list[str]], per_payload: int, population: int) -> list[BatchRun]:
    """The batches, the first cold; then one run of the compactor (UsageCompactorFunction) folds the
    warm batches' journal entries, and each warm batch bears its share: a fold every as many
    batches as there are warm ones (`--warm-batches`)."""
    # The calculator meters DAY's records on DAY (its last second), as it would live: no late spend.
    end_of_day = datetime(DAY.year, DAY.month, DAY.day, 23, 59, 59, tzinfo=UTC)
    with clock.use(ManualClock(end_of_day)), mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        stack = LocalStack().create()
        with stack.activated() as settings:
            seed_teams(population)
            # Fold whatever is in the journal when the compactor runs (the clock stands still here).
            stack.client("ssm").put_parameter(
                Name=f"{settings.parameter_prefix}metering/fold_minutes", Value="0", Type="String"
            )
            runs = [run_batch(batches[0], per_payload, 0)]
            run_fold()  # the cold batch's entries, not measured
            runs += [run_batch(batch, per_payload, index) for index, batch in enumerate(batches[1:], 1)]
            if len(runs) > 1:
                share_fold(runs[1:], run_fold())
        parameters.clear_caches()
    return runs


# ----------------------------------------------------------------------------- report


def command() -> str:
    """How this run was started, with paths relative to the repository root when they are inside it."""
    words = [sys.executable, *sys.argv]
    return shlex.join(os.path.relpath(w, REPO) if w.startswith(str(REPO)) else w for w in words)


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def function_memory_mb() -> int:
    function = resources_of_type(load_template(), "AWS::Serverless::Function")[FUNCTION]
    return int(function["Properties"]["MemorySize"])


def report_variant(title: str, runs: list[BatchRun], memory_mb: int, plan: Plan, buffer: Buffer) -> None:
    cold, warm = runs[0], runs[1:]
    n = len(warm)
    batch_records = plan.invocations
    print(f"\n== {title}")
    print(
        f"batches: 1 cold (all principals new: default budgets created) + {n} warm, "
        f"{batch_records:,.0f} invocations each (warm mean; cold {cold.invocations:,}), "
        f"arriving in {plan.seconds:,.1f} s (sized by {plan.sized_by})"
    )
    results = Counter[str]()
    for run in runs:
        results.update(run.results)
    print(f"Firehose results over all batches: {dict(results)}")
    input_bytes, output_bytes = mean([r.input_bytes for r in warm]), mean([r.output_bytes for r in warm])
    firehose_records = mean([r.firehose_records for r in warm])
    print(
        f"Firehose records per batch: {firehose_records:,.0f}; input {input_bytes:,.0f} bytes gzipped "
        f"(processor buffer: {buffer.size_bytes:,} bytes); output {output_bytes:,.0f} bytes"
    )
    times = [r.seconds for r in warm]
    inside = mean([r.tally.seconds_in_calls for r in warm])
    print(
        f"handler time per batch (moto-bound, in-process): cold {cold.seconds:.3f} s; warm mean "
        f"{mean(times):.3f} s, min {min(times):.3f} s -> {batch_records / mean(times):,.0f} records/s "
        f"through the whole handler (warm mean)"
    )
    outside = mean(times) - inside
    print(
        f"  of which inside botocore calls (moto serving them): {inside:.3f} s; outside them (our code, "
        f"pynamodb, Powertools): {outside:.3f} s -> {batch_records / outside:,.0f} records/s if AWS "
        "answered instantly"
    )
    operations = sorted(set(cold.tally.requests) | {op for r in warm for op in r.tally.requests})
    print(f"{'AWS requests per batch':<40}{'cold':>8}{'warm mean':>12}")
    for operation in operations:
        warm_mean = mean([r.tally.requests[operation] for r in warm])
        print(f"  {operation:<38}{cold.tally.requests[operation]:>8}{warm_mean:>12.1f}")
    print(
        f"  {'DynamoDB write requests':<38}{cold.tally.write_requests():>8}"
        f"{mean([r.tally.write_requests() for r in warm]):>12.1f}"
    )
    tables = sorted(set(cold.tally.items_written) | {t for r in warm for t in r.tally.items_written})
    print(f"{'items written per batch, by table':<40}{'cold':>8}{'warm mean':>12}{'largest item':>16}")
    for table in tables:
        short = table.removeprefix(f"{LocalStack.stack_name}-")
        warm_mean = mean([r.tally.items_written[table] for r in warm])
        largest = max(r.tally.largest_by_table[table] for r in runs)
        print(f"  {short:<38}{cold.tally.items_written[table]:>8}{warm_mean:>12.1f}{largest:>10,} bytes")
    cold_items = sum(cold.tally.items_written.values())
    warm_items = mean([sum(r.tally.items_written.values()) for r in warm])
    print(f"  {'all tables':<38}{cold_items:>8}{warm_items:>12.1f}")
    per_thousand = 1000 / batch_records
    wru = mean([r.tally.write_request_units for r in warm]) * per_thousand
    rru = mean([r.tally.read_request_units for r in warm]) * per_thousand
    print(
        f"per 1,000 invocations (warm): {wru:,.1f} write request units, {rru:,.1f} read request units "
        f"(cold batch: {cold.tally.write_request_units * 1000 / cold.invocations:,.1f} WRU, "
        f"{cold.tally.read_request_units * 1000 / cold.invocations:,.1f} RRU)"
    )
    warm_units = mean([r.tally.write_request_units for r in warm])
    by_kind = {
        k: mean([r.tally.write_units_by_kind[k] for r in warm])
        for r in runs
        for k in r.tally.write_units_by_kind
    }
    print(f"{'write units per batch, by item kind':<52}{'cold':>8}{'warm mean':>12}{'share':>8}")
    for kind, warm_mean in sorted(by_kind.items(), key=lambda kind_units: -kind_units[1]):
        print(
            f"  {kind:<50}{cold.tally.write_units_by_kind[kind]:>8}{warm_mean:>12.1f}"
            f"{warm_mean / warm_units if warm_units else 0:>8.0%}"
        )
    fold = warm[-1].fold if warm else None
    if fold is not None:
        print(
            f"the compactor's fold of the {n} warm batches' journal (one run, shared among them above): "
            f"{fold.outcome['entries']} entries into {fold.outcome['rows']} rows in "
            f"{fold.outcome['transactions']} transactions; {fold.tally.write_request_units:,.0f} WRU, "
            f"{fold.tally.read_request_units:,.1f} RRU, {fold.seconds:.3f} s: a fold every {n} batches "
            "(the tunable metering/fold_minutes over the batches' interval: --warm-batches)"
        )
    report_cost(warm, memory_mb, plan)


def report_cost(warm: list[BatchRun], memory_mb: int, plan: Plan) -> None:
    batch_records = plan.invocations
    batches = INVOCATIONS / batch_records
    scale = INVOCATIONS / batch_records  # per-batch means times batches
    seconds = mean([r.seconds for r in warm])
    gb_seconds = batches * seconds * memory_mb / 1024
    own_seconds = seconds - mean([r.tally.seconds_in_calls for r in warm])
    own_gb_seconds = batches * own_seconds * memory_mb / 1024
    wru = mean([r.tally.write_request_units for r in warm]) * scale
    rru = mean([r.tally.read_request_units for r in warm]) * scale
    firehose_bytes = mean([r.firehose_billed_bytes for r in warm]) * scale
    raw_bytes = mean([r.input_bytes for r in warm]) * scale
    archive_bytes = mean([r.output_bytes for r in warm]) * scale
    # The S3 buffers flush every 300 s unless 64 MB fill.
    intervals = math.ceil(batches * plan.seconds / FIREHOSE_S3_BUFFER_SECONDS)
    objects = max(intervals, math.ceil(archive_bytes / FIREHOSE_S3_BUFFER_BYTES)) + max(
        intervals, math.ceil(raw_bytes / FIREHOSE_S3_BUFFER_BYTES)
    )
    handler_puts = mean([r.tally.requests["s3.PutObject"] for r in warm]) * scale
    compactor_runs = mean([r.compactor_runs for r in warm]) * scale
    lines = [
        (
            "Lambda requests",
            f"{batches:,.0f} + {compactor_runs:,.0f} compactor invocations x $0.20/1M",
            (batches + compactor_runs) * LAMBDA_USD_PER_REQUEST,
        ),
        (
            "Lambda duration (upper bound)",
            f"{batches:,.0f} x {seconds:.3f} s x {memory_mb} MB = {gb_seconds:,.0f} GB-s arm64",
            gb_seconds * LAMBDA_ARM_USD_PER_GB_SECOND,
        ),
        ("DynamoDB writes", f"{wru:,.0f} WRU x $0.625/1M", wru * DYNAMODB_USD_PER_WRU),
        ("DynamoDB reads", f"{rru:,.0f} RRU x $0.125/1M", rru * DYNAMODB_USD_PER_RRU),
        (
            "Firehose ingestion",
            f"{firehose_bytes / GIB:,.3f} GB billed (5 KB steps) x $0.029",
            firehose_bytes / GIB * FIREHOSE_USD_PER_GB,
        ),
        (
            "S3 PUT",
            f"{objects:,} Firehose objects + {handler_puts:,.0f} handler PUTs x $0.005/1K",
            (objects + handler_puts) * S3_USD_PER_PUT,
        ),
    ]
    total = sum(cost for _, _, cost in lines)
    own_duration = own_gb_seconds * LAMBDA_ARM_USD_PER_GB_SECOND
    requests = mean([sum(r.tally.requests.values()) for r in warm])
    aws_seconds = own_seconds + requests * ROUND_TRIP_SECONDS
    aws_duration = batches * aws_seconds * memory_mb / 1024 * LAMBDA_ARM_USD_PER_GB_SECOND
    print(f"AWS cost of metering {INVOCATIONS:,} invocations, us-east-1 list prices (as of 2025-11):")
    for name, how, cost in lines:
        print(f"  {name:<30}{how:<62}${cost:>9.4f}")
    print(f"  {'total':<92}${total:>9.4f}  (${total / INVOCATIONS * 1000:.6f} per 1,000 invocations)")
    print(
        f"  Lambda duration without the time inside botocore calls (a lower bound): {batches:,.0f} x "
        f"{own_seconds:.3f} s = {own_gb_seconds:,.0f} GB-s = ${own_duration:.4f}; "
        f"total then ${total - lines[1][2] + own_duration:.4f}"
    )
    print(
        f"  Lambda duration estimated for AWS: our time + {requests:,.1f} requests x "
        f"{ROUND_TRIP_SECONDS * 1000:.0f} ms = {aws_seconds:.3f} s per batch = ${aws_duration:.4f}; "
        f"total then ${total - lines[1][2] + aws_duration:.4f} per million invocations"
    )
    print(
        f"  assumes a {batch_records:,.0f}-invocation batch every {plan.seconds:,.1f} s (smaller batches "
        "cost more per invocation); "
        f"Firehose writes the archive and the raw backup every {FIREHOSE_S3_BUFFER_SECONDS} s "
        f"(64 MB is never reached): {intervals:,} objects each"
    )
    print(
        "  not included: Step Functions runs started on threshold crossings, Lambda logs and EMF "
        "metrics in CloudWatch, X-Ray traces, S3 storage, the invocation log itself in CloudWatch Logs"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-batches", type=int, default=3, help="warm batches per variant (default 3)")
    parser.add_argument(
        "--rate",
        type=int,
        default=RATE_PER_HOUR,
        help=f"invocations an hour, which sets the batch size (default {RATE_PER_HOUR:,})",
    )
    parser.add_argument(
        "--population",
        type=int,
        default=1,
        help="principals per demo principal (default 1: the demo's 21; 10 makes 210)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        help="invocations a batch instead of what the rate and the buffer make (10 to 50: the processor "
        "buffer interval at 0 s)",
    )
    arguments = parser.parse_args()
    if min(arguments.rate, arguments.population, arguments.batch or 1, arguments.warm_batches) < 1:
        parser.error("--rate, --population, --batch and --warm-batches take whole numbers of 1 or more")
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    lean()
    population, count = arguments.population, 1 + arguments.warm_batches
    buffer = processor_buffer()
    variants = [
        plan_batches(per_payload, arguments.rate, population, buffer, arguments.batch, count)
        for per_payload in (EVENTS_PER_PAYLOAD, 1)
    ]
    message_bytes = [len(m.encode()) for _, batches in variants for batch in batches for m in batch]
    principals = {
        parse_identity_arn(json.loads(m)["identity"]["arn"]).principal_scope
        for _, batches in variants
        for batch in batches
        for m in batch
    }
    memory_mb = function_memory_mb()

    print("bench_calculator: functions/usage_calculator/app.py through the harness, on in-process moto")
    print(f"command: {command()}")
    print(
        f"python {platform.python_version()} ({platform.machine()}), moto {version('moto')}, "
        f"pynamodb {version('pynamodb')}, botocore {version('botocore')}"
    )
    print(
        f"records: devkit.demo_data.generate_day({DAY}, seed={SEED}), population x{population}: "
        f"{len(principals)} principals, messages {mean(message_bytes):,.0f} bytes mean, "
        f"{max(message_bytes):,} max"
    )
    print(
        f"rate {arguments.rate:,} invocations an hour; Firehose processor buffer {buffer.size_bytes:,} bytes "
        f"or {buffer.interval_seconds} s (template.yaml defaults), whichever comes first"
    )
    print(f"Lambda memory {memory_mb} MB (template.yaml)")
    print(CAPACITY_RULES)
    print(
        "Time is moto-bound: every DynamoDB call is served by moto in the same process "
        "(devkit/harness/lean_moto.py: without its whole-table copy per transaction), so handler "
        "times are an upper bound on Lambda duration (pessimistic)."
    )
    started = time.perf_counter()
    for each, batches in variants:
        records_per_batch = math.ceil(each.invocations / each.per_payload)
        title = (
            f"{each.per_payload} events per CloudWatch Logs payload: {each.invocations:,.0f} invocations = "
            f"{records_per_batch:,} Firehose records per batch"
        )
        if each.per_payload == 1:
            title += " (worst case for dedupe markers)"
        report_variant(title, run_variant(batches, each.per_payload, population), memory_mb, each, buffer)
    print(f"\nbench wall time {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
