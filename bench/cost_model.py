"""The whole monthly bill of running Budgetkeeper at four traffic levels, and idle, from the requests
and sizes bench/cost_measure.py counts on moto with the real handlers, at list prices written below.

One table a level: each line says what is counted, its unit price and its cost a month. Below each:
the same month with text delivery off. Then the idle month, the comparison with seed 002's quote,
what text delivery off loses, and the assumptions.

Run from the repository root (about 3 minutes):
.venv/bin/python bench/cost_model.py [--warm-batches N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_calculator, cost_measure

import bench_calculator as calc
from bench_calculator import command
from cost_measure import (
    CWL_EVENT_OVERHEAD_BYTES,
    HOURS_A_MONTH,
    PRINCIPALS,
    CalculatorMonth,
    Level,
    LogSizes,
    Sweep,
    TextOffLoss,
    Workflow,
    calculator_month,
    idle_sweep,
    log_sizes,
    text_off_loss,
    workflow_runs,
)

from devkit.demo_data import generate_day
from devkit.harness.logs import invocation_log_names, load_invocation_log
from devkit.harness.stack import FAKE_CREDENTIALS
from devkit.harness.template import load_template, resources_of_type

DAYS_A_MONTH = HOURS_A_MONTH / 24
GB = 1024**3
SEED_002 = (
    "Bedrock Budgeteer (/work/shared/seeds/002_*.txt) quotes about 5 to 10 USD a month at 1,000 calls a day"
)

LEVELS = (
    Level("1,000 calls a day", 1000 / 24, 1),
    Level("100,000 calls a day", 100_000 / 24, 1),
    Level("30,000 calls an hour", 30_000, 25),
    Level("a million calls an hour", 1_000_000, 25),
)

# ------------------------------------------------------------------ prices: us-east-1, list, USD
# The facts files give one: Step Functions Standard, 0.025 USD per 1,000 state transitions
# (/work/shared/facts/bedrock_facts.md, section 6). Lambda, DynamoDB, Firehose and S3 PUT are
# bench_calculator's. The rest are AWS's public list prices as of 2025-11, written by hand, not
# fetched: check them before quoting.
SFN_USD_PER_TRANSITION = 0.025 / 1000
CWL_INGEST_USD_PER_GB = 0.50  # Standard class (Lambda's logs: the first tier of vended logs, the same)
CWL_STORE_USD_PER_GB_MONTH = 0.03  # billed on the compressed size
METRIC_USD_PER_MONTH = 0.30  # a custom metric, first 10,000; prorated by the hours it is published
ALARM_METRIC_USD_PER_MONTH = 0.10  # a standard-resolution alarm, per metric it evaluates
DASHBOARD_USD_PER_MONTH = 3.00
XRAY_USD_PER_TRACE = 5.00 / 1_000_000  # traces recorded
S3_USD_PER_GB_MONTH = 0.023  # S3 Standard, first 50 TB
DYNAMODB_USD_PER_GB_MONTH = 0.25 + 0.20  # table storage + continuous backups (PITR)
SNS_USD_PER_PUBLISH = 0.50 / 1_000_000
SNS_USD_PER_EMAIL = 2.00 / 100_000
SES_USD_PER_EMAIL = 0.10 / 1000
COST_EXPLORER_USD_PER_REQUEST = 0.01
# The always-free tier (every account, every month), shown as a second total.
FREE = {
    "dashboards": 3,
    "alarm metrics": 10,
    "metrics": 10,
    "log GB": 5,
    "traces": 100_000,
    "transitions": 4000,
}

# ------------------------------------------------------------------ assumptions
PLATFORM_LOG_BYTES, PLATFORM_LOG_EVENTS = 350, 3  # Lambda's START, END and REPORT lines an invocation
# A compactor run that finds no journal entry to fold: one Query, no log line of its own.
IDLE_FOLD_SECONDS = 0.05
INVOCATION_LOG_MONTHS = 1  # the account's log group, not the stack's: 30 days' retention assumed
STACK_LOG_MONTHS = 3  # template.yaml: RetentionInDays 90
ARCHIVE_MONTHS = 400 / 30.4  # ArchiveRetentionDays 400, at steady state; rollups expire then too
ROLLUP_ITEM_BYTES = 400  # the largest rollup item written (bench_calculator) with DynamoDB's overhead
CROSSINGS = {"warning": PRINCIPALS, "critical": PRINCIPALS // 2, "exceeded": PRINCIPALS // 5}
DAILY_SECONDS = {"PriceRefreshFunction": 10.0, "ReconcilerFunction": 5.0, "NotifierFunction": 2.0}
WORKFLOW_LAMBDA_SECONDS = 1.0


@dataclass(frozen=True)
class Line:
    item: str
    count: str
    unit: str
    usd: float
    free_usd: float = 0.0  # what the always-free tier takes off


def gb(value: float) -> str:
    return f"{value / GB:,.3f} GB"


def lambda_usd(invocations: float, seconds: float, memory_mb: int) -> float:
    gb_seconds = seconds * memory_mb / 1024
    return invocations * (calc.LAMBDA_USD_PER_REQUEST + gb_seconds * calc.LAMBDA_ARM_USD_PER_GB_SECOND)


def function_memory(logical_id: str) -> int:
    template = load_template()
    function = resources_of_type(template, "AWS::Serverless::Function")[logical_id]
    return int(function["Properties"].get("MemorySize", template["Globals"]["Function"]["MemorySize"]))


def alarm_metrics() -> int:
    """Metrics the template's alarms evaluate (a metric-math alarm is charged per metric in it)."""
    alarms = resources_of_type(load_template(), "AWS::CloudWatch::Alarm").values()
    return sum(sum("MetricStat" in m for m in a["Properties"].get("Metrics", [])) or 1 for a in alarms)


def sweeps_a_month() -> float:
    minutes = int(load_template()["Parameters"]["SweepIntervalMinutes"]["Default"])
    return DAYS_A_MONTH * 24 * 60 / minutes


def compactor_runs_a_month() -> float:
    """The usage compactor's scheduled runs (template.yaml: `rate(N minutes)`)."""
    function = resources_of_type(load_template(), "AWS::Serverless::Function")["UsageCompactorFunction"]
    [schedule] = [e["Properties"]["Schedule"] for e in function["Properties"]["Events"].values()]
    minutes = int(schedule.removeprefix("rate(").split()[0])
    return DAYS_A_MONTH * 24 * 60 / minutes


def log_lines(
    item: str, events: float, message_bytes: float, stored_ratio: float, months: float
) -> list[Line]:
    """CloudWatch Logs ingestion and storage of `events` log events a month of `message_bytes` each."""
    ingested = events * (message_bytes + CWL_EVENT_OVERHEAD_BYTES)
    stored = events * message_bytes * stored_ratio * months
    return [
        Line(
            f"{item}: ingestion",
            f"{events:,.0f} events of {message_bytes:,.0f} bytes + 26, {gb(ingested)}",
            "$0.50/GB",
            ingested / GB * CWL_INGEST_USD_PER_GB,
        ),
        Line(
            f"{item}: storage",
            f"{gb(stored)} gzipped, {months:g} month(s) kept",
            "$0.03/GB-month",
            stored / GB * CWL_STORE_USD_PER_GB_MONTH,
        ),
    ]


def fixed_lines(sweep: Sweep) -> list[Line]:
    """What the stack costs a month whatever the traffic."""
    sweeps = sweeps_a_month()
    invocations = sum(sweep.invocations.values())
    memory = max(function_memory(name) for name in sweep.invocations)
    platform_events = invocations * PLATFORM_LOG_EVENTS
    alarms, metrics = alarm_metrics(), len(sweep.metrics)
    folds = compactor_runs_a_month()
    traces = sweeps + folds + DAYS_A_MONTH * len(DAILY_SECONDS)
    return [
        Line(
            "monitor sweep + the reconcile it invokes: Lambda",
            f"{sweeps:,.0f} sweeps x {invocations} invocations, {sweep.seconds_on_aws:.3f} s in all",
            f"$0.20/1M + {memory} MB arm64",
            lambda_usd(sweeps * invocations, sweep.seconds_on_aws / invocations, memory),
        ),
        Line(
            "monitor sweep: DynamoDB reads",
            f"{sweeps:,.0f} x {sweep.tally.read_request_units:g} RRU",
            "$0.125/1M RRU",
            sweeps * sweep.tally.read_request_units * calc.DYNAMODB_USD_PER_RRU,
        ),
        *log_lines(
            "monitor sweep: Lambda logs + EMF",
            sweeps * (sweep.log_events + platform_events),
            (sweep.log_bytes - sweep.log_events * CWL_EVENT_OVERHEAD_BYTES + invocations * PLATFORM_LOG_BYTES)
            / (sweep.log_events + platform_events),
            sweep.log_stored,
            STACK_LOG_MONTHS,
        ),
        Line(
            "usage compactor with nothing to fold: Lambda + one Query",
            f"{folds:,.0f} runs, {IDLE_FOLD_SECONDS:g} s each (assumed), 0.5 RRU each",
            f"$0.20/1M + {function_memory('UsageCompactorFunction')} MB arm64",
            lambda_usd(folds, IDLE_FOLD_SECONDS, function_memory("UsageCompactorFunction"))
            + folds * 0.5 * calc.DYNAMODB_USD_PER_RRU,
        ),
        *log_lines(
            "usage compactor: Lambda's own log lines",
            folds * PLATFORM_LOG_EVENTS,
            PLATFORM_LOG_BYTES / PLATFORM_LOG_EVENTS,
            sweep.log_stored,
            STACK_LOG_MONTHS,
        ),
        Line(
            "price refresh, reconciler, daily summary: Lambda",
            f"{DAYS_A_MONTH:.0f} x ({', '.join(f'{s:g} s' for s in DAILY_SECONDS.values())}), assumed",
            "$0.20/1M + 512 MB arm64",
            sum(lambda_usd(DAYS_A_MONTH, s, function_memory(f)) for f, s in DAILY_SECONDS.items()),
        ),
        Line(
            "reconciler: Cost Explorer GetCostAndUsage",
            f"{DAYS_A_MONTH:.0f} requests (one page a day, assumed)",
            "$0.01/request",
            DAYS_A_MONTH * COST_EXPLORER_USD_PER_REQUEST,
        ),
        Line(
            "X-Ray traces of the above",
            f"{traces:,.0f}",
            "$5.00/1M recorded",
            traces * XRAY_USD_PER_TRACE,
        ),
        Line(
            "EMF custom metrics of the sweep",
            f"{metrics} (namespace, dimensions, name)",
            "$0.30/metric-month",
            metrics * METRIC_USD_PER_MONTH,
            min(metrics, FREE["metrics"]) * METRIC_USD_PER_MONTH,
        ),
        Line(
            "CloudWatch alarms",
            f"{alarms} alarm metrics (template.yaml)",
            "$0.10/alarm metric-month",
            alarms * ALARM_METRIC_USD_PER_MONTH,
            min(alarms, FREE["alarm metrics"]) * ALARM_METRIC_USD_PER_MONTH,
        ),
        Line(
            "CloudWatch dashboard", "1 (template.yaml)", "$3.00/dashboard-month", DASHBOARD_USD_PER_MONTH, 3.0
        ),
    ]


def workflow_lines(flow: Workflow) -> tuple[list[Line], float]:
    """The month's crossings (an assumption) priced at what one of each took here; and its traces."""
    measured = {run.level: run.transitions for run in flow.runs}
    runs = sum(CROSSINGS.values())
    transitions = sum(count * measured.get(level, 0) for level, count in CROSSINGS.items())
    per_run = 1 / max(1, len(flow.runs))
    lambdas = sum(flow.invocations.values()) * per_run * runs
    publishes = flow.tally.requests["sns.Publish"] * per_run * runs
    notices = flow.invocations["NotifierFunction"] * per_run * runs
    lines = [
        Line(
            "Step Functions: warning, critical, exceeded runs",
            " + ".join(f"{n} x {measured.get(level, 0)}" for level, n in CROSSINGS.items())
            + f" = {transitions:,} transitions",
            "$0.025/1K transitions",
            transitions * SFN_USD_PER_TRANSITION,
            min(transitions, FREE["transitions"]) * SFN_USD_PER_TRANSITION,
        ),
        Line(
            "workflow Lambdas (enforcement, deny, notifier)",
            f"{lambdas:,.0f} ({sum(flow.invocations.values())} for the {len(flow.runs)} runs here)",
            f"$0.20/1M + 512 MB, {WORKFLOW_LAMBDA_SECONDS:g} s",
            lambda_usd(lambdas, WORKFLOW_LAMBDA_SECONDS, 512),
        ),
        Line("SNS publishes", f"{publishes:,.0f}", "$0.50/1M", publishes * SNS_USD_PER_PUBLISH),
        Line(
            "SNS e-mail to the operators' address",
            f"{notices:,.0f}",
            "$2.00/100K",
            notices * SNS_USD_PER_EMAIL,
        ),
        Line("SES e-mail to budget owners", f"{notices:,.0f}", "$0.10/1K", notices * SES_USD_PER_EMAIL),
    ]
    return lines, runs + notices


def level_lines(
    level: Level, month: CalculatorMonth, sizes: LogSizes, flow: Workflow, sweep: Sweep, *, text: bool
) -> list[Line]:
    calls, batches = level.calls_a_month, month.batches
    message = sizes.on_bytes if text else sizes.off_bytes
    stored = (sizes.on_stored / sizes.on_bytes) if text else (sizes.off_stored / sizes.off_bytes)
    firehose = batches * (month.firehose_billed_bytes if text else month.firehose_billed_bytes_off)
    raw = batches * (month.raw_bytes if text else month.raw_bytes_off)
    archive = batches * month.archive_bytes + raw
    objects = 2 * min(DAYS_A_MONTH * 24 * 3600 / calc.FIREHOSE_S3_BUFFER_SECONDS, batches)
    memory = calc.function_memory_mb()
    log_message = (month.log_bytes - month.log_events * CWL_EVENT_OVERHEAD_BYTES + PLATFORM_LOG_BYTES) / (
        month.log_events + PLATFORM_LOG_EVENTS
    )
    # Distinct rollup items an hour: at most what the batches of an hour write, and at most what the
    # busiest level's batch writes (every principal, model and region of the demo in it).
    rollups_an_hour = min(
        month.rollup_items * batches / HOURS_A_MONTH, max(m.rollup_items for m in MONTHS.values())
    )
    table_bytes = rollups_an_hour * HOURS_A_MONTH * ARCHIVE_MONTHS * ROLLUP_ITEM_BYTES
    workflow, workflow_traces = workflow_lines(flow)
    traces = batches + workflow_traces
    metrics = len(month.metrics | flow.metrics)
    invocation_log = log_lines(
        f"invocation log (text delivery {'on' if text else 'off'})",
        calls,
        message,
        stored,
        INVOCATION_LOG_MONTHS,
    )
    free_logs = (
        min(FREE["log GB"] * GB, calls * (message + CWL_EVENT_OVERHEAD_BYTES)) / GB * CWL_INGEST_USD_PER_GB
    )
    invocation_log[0] = Line(
        *[getattr(invocation_log[0], f) for f in ("item", "count", "unit", "usd")], free_logs
    )
    return [
        *invocation_log,
        Line("subscription filter to Firehose", f"{calls:,.0f} events", "no charge", 0.0),
        Line(
            "Firehose ingestion (each record rounded up to 5 KB)",
            f"{firehose / calc.FIREHOSE_INCREMENT:,.0f} x 5 KB = {gb(firehose)}",
            "$0.029/GB",
            firehose / GB * calc.FIREHOSE_USD_PER_GB,
        ),
        Line(
            "usage calculator: Lambda",
            f"{batches:,.0f} batches of {month.batch_invocations:,.0f}, "
            f"{month.batch_seconds_on_aws:.3f} s each",
            f"$0.20/1M + {memory} MB arm64",
            lambda_usd(batches, month.batch_seconds_on_aws, memory),
        ),
        Line(
            "usage calculator: DynamoDB writes",
            f"{batches * month.wru:,.0f} WRU ({month.wru:,.1f} a batch)",
            "$0.625/1M WRU",
            batches * month.wru * calc.DYNAMODB_USD_PER_WRU,
        ),
        Line(
            "usage calculator: DynamoDB reads",
            f"{batches * month.rru:,.0f} RRU ({month.rru:,.1f} a batch)",
            "$0.125/1M RRU",
            batches * month.rru * calc.DYNAMODB_USD_PER_RRU,
        ),
        *log_lines(
            "usage calculator: Lambda logs + EMF",
            batches * (month.log_events + PLATFORM_LOG_EVENTS),
            log_message,
            month.log_stored,
            STACK_LOG_MONTHS,
        ),
        Line(
            "EMF custom metrics of the calculator and workflow",
            f"{metrics} (namespace, dimensions, name), at most",
            "$0.30/metric-month",
            metrics * METRIC_USD_PER_MONTH,
            max(0, min(metrics, FREE["metrics"] - len(sweep.metrics))) * METRIC_USD_PER_MONTH,
        ),
        Line(
            "X-Ray traces (calculator batches, runs, notices)",
            f"{traces:,.0f}",
            "$5.00/1M recorded",
            traces * XRAY_USD_PER_TRACE,
            min(traces, FREE["traces"]) * XRAY_USD_PER_TRACE,
        ),
        *workflow,
        Line(
            "S3: usage archive + raw payload backup",
            f"{gb(archive)} a month, {ARCHIVE_MONTHS:.1f} months kept",
            "$0.023/GB-month",
            archive * ARCHIVE_MONTHS / GB * S3_USD_PER_GB_MONTH,
        ),
        Line(
            "S3: PUTs by Firehose",
            f"{objects:,.0f} objects (2 prefixes, at most one each 300 s)",
            "$0.005/1K",
            objects * calc.S3_USD_PER_PUT,
        ),
        Line(
            "DynamoDB rollups: storage + PITR",
            f"{rollups_an_hour:,.0f} items an hour x {ROLLUP_ITEM_BYTES} B x 400 days = {gb(table_bytes)}",
            "$0.25 + $0.20/GB-month",
            table_bytes / GB * DYNAMODB_USD_PER_GB_MONTH,
        ),
        *fixed_lines(sweep),
    ]


MONTHS: dict[Level, CalculatorMonth] = {}


def print_table(title: str, lines: Sequence[Line]) -> tuple[float, float]:
    total, free = sum(line.usd for line in lines), sum(line.free_usd for line in lines)
    print(f"\n{title}")
    print(f"  {'item':<52} {'count a month':<66} {'unit price':<26}{'USD':>10}")
    for line in lines:
        print(f"  {line.item:<52} {line.count:<66} {line.unit:<26}{line.usd:>10.4f}")
    print(f"  {'total':<146}{total:>10.2f}")
    after = "total after the always-free tier (3 dashboards, 10 alarms, 10 metrics, 5 GB logs, ...)"
    print(f"  {after:<146}{total - free:>10.2f}")
    return total, total - free


def print_report(
    sizes: LogSizes, loss: TextOffLoss, sweep: Sweep, flow: Workflow, metric_names: Counter[str]
) -> None:
    print(
        f"invocation log records ({sizes.records:,}: the demo day and the sample logs): "
        f"{sizes.on_bytes:,.0f} "
        f"bytes mean with text delivery on, {sizes.off_bytes:,.0f} off; gzipped {sizes.on_stored:,.0f} and "
        f"{sizes.off_stored:,.0f}"
    )
    runs = ", ".join(f"{run.level} {run.transitions} ({run.status})" for run in flow.runs)
    print(
        f"Step Functions runs through the real ASL, states entered: {runs}; invocations "
        f"{dict(flow.invocations)}"
    )
    print(f"an idle sweep: requests {dict(sweep.tally.requests)}, {sweep.tally.read_request_units:g} RRU")
    print(f"EMF metrics by name (distinct dimension values): {dict(metric_names)}")
    totals = {}
    for level, month in MONTHS.items():
        lines = level_lines(level, month, sizes, flow, sweep, text=True)
        off = level_lines(level, month, sizes, flow, sweep, text=False)
        totals[level] = print_table(
            f"== {level.name}: {level.calls_a_month:,.0f} calls a month, {level.per_payload} event(s) a "
            f"CloudWatch Logs payload, batches of {month.batch_invocations:,.0f} (USD a month)",
            lines,
        )
        log_on = sum(line.usd for line in lines[:3])
        print(
            f"  text delivery off: {sum(line.usd for line in off):,.2f} (invocation log, Firehose "
            "and the raw "
            f"backup smaller); the invocation log alone {log_on:,.2f} -> "
            f"{sum(line.usd for line in off[:3]):,.2f}; "
            f"Budgetkeeper without the invocation log: {totals[level][0] - log_on:,.2f}; per million calls: "
            f"{(totals[level][0] - log_on) / level.calls_a_month * 1e6:,.2f}"
        )
    idle_lines = fixed_lines(sweep)
    idle, idle_free = print_table("== idle: a month without Bedrock traffic (USD a month)", idle_lines)
    print_knobs(idle_lines, set().union(flow.metrics, *(m.metrics for m in MONTHS.values())))
    light = LEVELS[0]
    print(
        f"\nseed 002: {SEED_002}. Budgetkeeper at {light.name}: {totals[light][0]:,.2f} USD a month at list "
        f"prices, {totals[light][1]:,.2f} after the always-free tier; idle {idle:,.2f} ({idle_free:,.2f})."
    )
    print(
        f"text delivery off, measured on the demo day ({loss.records:,} records): "
        f"{loss.cost_on:.4f} USD metered "
        f"with the bodies, {loss.cost_off:.4f} without "
        f"({(1 - loss.cost_off / loss.cost_on) * 100:.1f}% under), "
        f"{loss.one_hour_records} records' 1-hour cache writes priced as 5-minute ones, {loss.malformed_off} "
        "records unreadable. Also lost (not in the demo day): the service tier (priority about 1.75x, flex "
        "about 0.5x, priced at standard), a guardrail's block (a call without token counts and without an "
        "error becomes a malformed record), a stream's counts when the top level lacks them."
    )
    print(
        "assumptions: list prices before the free tier (second total after it); crossings a month "
        f"{CROSSINGS}; "
        f"daily functions' seconds {DAILY_SECONDS}; workflow Lambdas {WORKFLOW_LAMBDA_SECONDS:g} s; Lambda's "
        f"platform lines {PLATFORM_LOG_BYTES} bytes an invocation; X-Ray traces every invocation "
        "(each function "
        f"is invoked about once a second at most); retention: invocation log {INVOCATION_LOG_MONTHS} month, "
        f"stack logs {STACK_LOG_MONTHS}, archive and rollups {ARCHIVE_MONTHS:.1f}; one operator "
        "e-mail address "
        "and an owner's e-mail per notice; custom metrics counted for the whole month (CloudWatch prorates "
        "a metric by the hours it is published)."
    )


def print_knobs(idle: Sequence[Line], metrics: set[tuple[str, ...]]) -> None:
    """What each setting saves a month, from the lines above."""
    cost = {line.item: line.usd for line in idle}
    per_value = {m for m in metrics if any(d.startswith(("Model=", "Team=")) for d in m)}
    sweep_share = sum(usd for item, usd in cost.items() if item.startswith("monitor sweep"))
    print("what each knob saves a month (list prices):")
    for knob, saved in (
        ("SweepIntervalMinutes 5 -> 60 (the backstop sweeps 12 times less often)", sweep_share * 11 / 12),
        ("no dashboard (or one of the account's 3 free ones)", cost["CloudWatch dashboard"]),
        (
            f"CostMeteredUSD without its Model and Team dimensions ({len(per_value)} metrics -> 1)",
            (len(per_value) - 1) * METRIC_USD_PER_MONTH,
        ),
        ("no reconciler (no Cost Explorer requests)", cost["reconciler: Cost Explorer GetCostAndUsage"]),
        ("tracing off (X-Ray), idle", cost["X-Ray traces of the above"]),
        ("alarms off (not advised: they watch the metering)", cost["CloudWatch alarms"]),
    ):
        print(f"  {knob:<96}{saved:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm-batches", type=int, default=2, help="warm batches a level (default 2)")
    arguments = parser.parse_args()
    if arguments.warm_batches < 1:
        parser.error("--warm-batches takes a whole number of 1 or more, e.g. --warm-batches 2")
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    calc.lean()
    started = time.perf_counter()
    print("cost_model: the monthly bill of Budgetkeeper, from counted requests and measured sizes")
    print(f"command: {command()}")
    day = generate_day(calc.DAY, records=2000, seed=calc.SEED)
    sizes = log_sizes([*day, *(load_invocation_log(name) for name in invocation_log_names())])
    loss = text_off_loss(day)
    MONTHS.update({level: calculator_month(level, arguments.warm_batches) for level in LEVELS})
    sweep, flow = idle_sweep(), workflow_runs()
    metrics = set().union(sweep.metrics, flow.metrics, *(m.metrics for m in MONTHS.values()))
    print_report(sizes, loss, sweep, flow, Counter(metric[-1] for metric in metrics))
    print(f"\ncost_model wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
