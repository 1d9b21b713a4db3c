"""What the cost model counts, measured on in-process moto with the real handlers (bench/cost_model.py
turns it into monthly bills).

- The invocation log's record sizes with text delivery on and off (bodies stripped), and gzipped.
- What text delivery off loses: the demo day metered with and without its bodies.
- The usage calculator at a traffic level's batch size: bench_calculator's batches, runs and counts
  (requests, DynamoDB units, Firehose records, archive bytes), its log lines and EMF metrics, and the
  same batches packed without bodies.
- One sweep of the budget monitor on a stack with budgets and no traffic, and the DenyFunction
  reconcile it invokes.
- A user's daily budget crossed at warning, critical and exceeded through the calculator, each run
  through the real ASL (moto's executor, the real handlers) to the deny and the restore at midnight:
  the states entered (Step Functions bills a transition per state), Lambda invocations, SNS publishes.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import bench_calculator as calc
from aws_lambda_powertools.utilities import parameters
from bench_calculator import BatchRun, Tally, counting, mean, quiet_stdout
from moto import mock_aws

from budgetkeeper.core import clock
from budgetkeeper.domain.log_records import MalformedEvent
from budgetkeeper.metering.meter import Meter
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper.storage.tables import BudgetItem
from devkit.demo_data import teams as demo_teams
from devkit.harness import workflow as harness_workflow
from devkit.harness.clock import ManualClock
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event, log_message
from devkit.harness.server import MOTO_CONFIG
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import WaitControl, real_handlers

HOURS_A_MONTH = 730
CWL_EVENT_OVERHEAD_BYTES = 26  # CloudWatch Logs bills each event as its message's UTF-8 bytes + 26
PRINCIPALS = 21  # the demo's callers


@dataclass(frozen=True)
class Level:
    name: str
    calls_an_hour: float
    per_payload: int  # events CloudWatch Logs packs into one subscription payload at this rate

    @property
    def calls_a_month(self) -> float:
        return self.calls_an_hour * HOURS_A_MONTH


def without_bodies(record: dict[str, Any]) -> dict[str, Any]:
    """A record as Bedrock logs it with text delivery off: the request and response bodies left out."""
    stripped = copy.deepcopy(record)
    for section, body in (("input", "inputBodyJson"), ("output", "outputBodyJson")):
        if isinstance(stripped.get(section), dict):
            stripped[section].pop(body, None)
    return stripped


@dataclass(frozen=True)
class LogSizes:
    records: int
    on_bytes: float  # mean message bytes, text delivery on
    off_bytes: float
    on_stored: float  # gzipped bytes per record (what CloudWatch Logs stores and bills)
    off_stored: float


def log_sizes(records: Sequence[dict[str, Any]]) -> LogSizes:
    on = [log_message(r).encode() for r in records]
    off = [log_message(without_bodies(r)).encode() for r in records]
    return LogSizes(
        records=len(records),
        on_bytes=mean([len(m) for m in on]),
        off_bytes=mean([len(m) for m in off]),
        on_stored=len(gzip.compress(b"\n".join(on))) / len(on),
        off_stored=len(gzip.compress(b"\n".join(off))) / len(off),
    )


@dataclass(frozen=True)
class TextOffLoss:
    records: int
    cost_on: Decimal
    cost_off: Decimal
    one_hour_records: int  # records whose 1-hour cache writes are priced as 5-minute writes when off
    malformed_off: int


def text_off_loss(records: Sequence[dict[str, Any]]) -> TextOffLoss:
    meter = Meter(prices=PriceTable.bundled(), teams=demo_teams())
    cost_on = cost_off = Decimal(0)
    one_hour = malformed = 0
    for record in records:
        metered = meter.meter(log_message(record))
        cost_on += metered.priced.cost_usd
        one_hour += metered.invocation.tokens.cache_write_1h > 0
        try:
            cost_off += meter.meter(log_message(without_bodies(record))).priced.cost_usd
        except MalformedEvent:
            malformed += 1
    return TextOffLoss(len(records), cost_on, cost_off, one_hour, malformed)


# ------------------------------------------------------------------ the calculator at a level


@dataclass(frozen=True)
class CalculatorMonth:
    batch_invocations: float
    batches: float  # Lambda invocations a month
    batch_seconds_on_aws: float  # our time + requests x round trip
    requests: float  # AWS requests a batch
    wru: float  # a batch
    rru: float
    firehose_billed_bytes: float  # a batch
    firehose_billed_bytes_off: float  # the same batch packed without bodies (text delivery off)
    raw_bytes: float
    raw_bytes_off: float
    archive_bytes: float
    log_bytes: float  # handler log lines and EMF, a batch, with the per-event overhead
    log_events: float
    log_stored: float  # gzipped bytes per byte logged
    rollup_items: float  # rollup items written a batch
    metrics: frozenset[tuple[str, ...]]


def stored_ratio(lines: Sequence[str]) -> float:
    """Gzipped bytes per byte of these log lines (CloudWatch Logs stores and bills them compressed)."""
    text = "\n".join(lines).encode()
    return len(gzip.compress(text)) / max(1, len(text))


def emf_metrics(lines: Sequence[str]) -> set[tuple[str, ...]]:
    """Every distinct metric (namespace, dimensions with values, name) in EMF lines: what CloudWatch bills."""
    found = set()
    for line in lines:
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimensions in directive["Dimensions"]:
                values = tuple(f"{d}={document.get(d)}" for d in dimensions)
                for metric in directive["Metrics"]:
                    found.add((directive["Namespace"], *values, metric["Name"]))
    return found


def billed(datas: Sequence[bytes]) -> int:
    """Firehose's billed bytes for these records: each rounded up to 5 KB."""
    return sum(math.ceil(len(d) / calc.FIREHOSE_INCREMENT) * calc.FIREHOSE_INCREMENT for d in datas)


def calculator_month(level: Level, warm_batches: int) -> CalculatorMonth:
    buffer = calc.processor_buffer()
    plan, batches = calc.plan_batches(
        level.per_payload, round(level.calls_an_hour), 1, buffer, None, 1 + warm_batches
    )
    warm: list[BatchRun] = calc.run_variant(batches, level.per_payload, 1)[1:]
    off = [
        calc.pack([log_message(without_bodies(json.loads(m))) for m in batch], level.per_payload)
        for batch in batches[1:]
    ]
    seconds_on_aws = mean(
        [
            r.seconds - r.tally.seconds_in_calls + sum(r.tally.requests.values()) * calc.ROUND_TRIP_SECONDS
            for r in warm
        ]
    )
    lines = [line for r in warm for line in r.written.lines]
    metrics = frozenset(emf_metrics([line for r in warm for line in r.written.emf()]))
    return CalculatorMonth(
        batch_invocations=plan.invocations,
        batches=level.calls_a_month / plan.invocations,
        batch_seconds_on_aws=seconds_on_aws,
        requests=mean([sum(r.tally.requests.values()) for r in warm]),
        wru=mean([r.tally.write_request_units for r in warm]),
        rru=mean([r.tally.read_request_units for r in warm]),
        firehose_billed_bytes=mean([r.firehose_billed_bytes for r in warm]),
        firehose_billed_bytes_off=mean([billed(datas) for datas in off]),
        raw_bytes=mean([r.input_bytes for r in warm]),
        raw_bytes_off=mean([sum(map(len, datas)) for datas in off]),
        archive_bytes=mean([r.output_bytes for r in warm]),
        log_bytes=(sum(len(line.encode()) + CWL_EVENT_OVERHEAD_BYTES for line in lines)) / len(warm),
        log_events=len(lines) / len(warm),
        log_stored=stored_ratio(lines),
        rollup_items=mean([r.tally.items_written[f"{LocalStack.stack_name}-RollupsTable"] for r in warm]),
        metrics=metrics,
    )


# ------------------------------------------------------------------ the monitor when idle, the workflow


@dataclass
class Invocations:
    by_function: Counter[str] = field(default_factory=Counter)


@contextmanager
def counting_invocations(invocations: Invocations) -> Iterator[None]:
    """Lambda invocations the harness routes to the real handlers (Step Functions tasks, SNS, Invoke)."""
    original = harness_workflow.invoke

    def counted(logical_id: str, event: Any) -> Any:
        invocations.by_function[logical_id] += 1
        return original(logical_id, event)

    with mock.patch.object(harness_workflow, "invoke", counted):
        yield


@dataclass(frozen=True)
class Sweep:
    tally: Tally
    invocations: Counter[str]
    log_bytes: int
    log_events: int
    log_stored: float
    seconds_on_aws: float  # monitor + what it invoked: our time + requests x round trip
    metrics: frozenset[tuple[str, ...]]


def idle_sweep() -> Sweep:
    """A scheduled sweep of a stack with budgets and no traffic: the monitor, the reconcile it invokes."""
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event"}
    tally, invocations = Tally(), Invocations()
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        stack = LocalStack().create()
        with stack.activated(), real_handlers(stack), counting_invocations(invocations):
            for scope in list(demo_teams())[:PRINCIPALS]:
                BudgetItem(scope, "daily", limit_usd=Decimal(10)).save()
            with quiet_stdout():
                invoke("BudgetMonitorFunction", scheduled)  # warm: imports, clients, caches
            invocations.by_function.clear()
            with quiet_stdout() as written, counting(tally):
                started = time.perf_counter()
                invoke("BudgetMonitorFunction", scheduled)
                seconds = time.perf_counter() - started
        parameters.clear_caches()
    requests = sum(tally.requests.values())
    return Sweep(
        tally=tally,
        invocations=Counter({"BudgetMonitorFunction": 1}) + invocations.by_function,
        log_bytes=sum(len(line.encode()) + CWL_EVENT_OVERHEAD_BYTES for line in written.lines),
        log_events=len(written.lines),
        log_stored=stored_ratio(written.lines),
        seconds_on_aws=seconds - tally.seconds_in_calls + requests * calc.ROUND_TRIP_SECONDS,
        metrics=frozenset(emf_metrics(written.emf())),
    )


@dataclass(frozen=True)
class Run:
    level: str
    transitions: int
    status: str


@dataclass(frozen=True)
class Workflow:
    runs: list[Run]
    invocations: Counter[str]
    tally: Tally
    metrics: frozenset[tuple[str, ...]]


def workflow_runs() -> Workflow:
    """A user's daily budget of 1 USD (grace 0) crossed at warning, critical and exceeded through the
    calculator; each run through the real ASL to its end (the deny, then the restore at midnight)."""
    start = datetime(2026, 11, 23, 12, tzinfo=UTC)
    day = ManualClock(start)
    tally, invocations = Tally(), Invocations()
    user = "cost-model-user"
    runs = []
    with clock.use(day), mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        stack = LocalStack(stack_name="cost").create()
        stack.client("iam").create_user(UserName=user)
        sfn = stack.client("stepfunctions")
        machine = stack.physical_ids["BudgetEvaluationStateMachine"]
        waits = WaitControl(max_wait_seconds=3600)
        with (
            stack.activated(),
            real_handlers(stack, waits),
            counting_invocations(invocations),
            quiet_stdout() as written,
            counting(tally),
        ):
            BudgetItem(f"user:{user}", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
            # Nova Pro input at 0.80 USD a million tokens: 0.75, 0.95, then 1.05 USD of 1 USD.
            for minute, tokens in enumerate((937_500, 250_000, 125_000)):
                day.set(start + timedelta(minutes=minute))
                message = converse_message(
                    f"arn:aws:iam::111122223333:user/{user}",
                    "amazon.nova-pro-v1:0",
                    tokens,
                    timestamp=day().strftime("%Y-%m-%dT%H:%M:%SZ"),
                )
                invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([message])]))
                time.sleep(1)
            harness_workflow.wait_for_state(stack, _newest(sfn, machine), "WaitForRefresh", timeout=60)
            day.set(datetime(2026, 11, 24, 0, 0, 5, tzinfo=UTC))
            waits.release()
            deadline = time.monotonic() + 60
            while sfn.list_executions(stateMachineArn=machine, statusFilter="RUNNING")["executions"]:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            waits.deliveries.drain()
            for execution in sfn.list_executions(stateMachineArn=machine)["executions"]:
                arn = execution["executionArn"]
                history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                entered = sum(1 for event in history if "stateEnteredEventDetails" in event)
                level = json.loads(sfn.describe_execution(executionArn=arn)["input"]).get("level", "?")
                runs.append(Run(level, entered, execution["status"]))
        parameters.clear_caches()
    return Workflow(runs, invocations.by_function, tally, frozenset(emf_metrics(written.emf())))


def _newest(sfn: Any, machine: str) -> str:
    executions = sfn.list_executions(stateMachineArn=machine)["executions"]
    return max(executions, key=lambda e: e["startDate"])["executionArn"]
