"""What a caller's choice of names costs the calculator: distinct sessions, apps and models (issue 25).

One role `Worker` (not `{App}-BedrockRole`, so its callers' app claims count) sends N Converse calls
in one Firehose batch, 25 events to a CloudWatch Logs payload, through the real handler on
in-process moto, each variant on a fresh stack (cold: nothing stored before). Variants:
- same: one session, one app claim, one model (priced);
- apps: a distinct `requestMetadata.app` claim per call;
- sessions: a distinct session name per call (each one an AssumeRole);
- models: a distinct made-up (unpriced) model id per call;
- all: all three distinct.
Every AWS call is counted as bench_calculator counts it (Tally: DynamoDB capacity units by
DynamoDB's rules); every request the handler makes is sequential, so the requests stand for its
duration (at ROUND_TRIP_SECONDS each). EMF lines are read back from the handler's stdout: the
distinct `Model` dimension values are the custom metrics the batch creates.

Then the readers (storage.readers, storage.models_seen): on a fresh stack per size, N minted
sessions each with its two default budget rows, a usage line and its day's priced model, beside
four budgets in trouble and an operator's budget in good shape, every DynamoDB read request and
item read (what DynamoDB charges for: ScannedCount, BatchGetItem items) of `status`, the console's
budgets tab, the HTML report, the daily summary and the price refresh's look-back.

Run from the repository root:
.venv/bin/python bench/bench_cardinality.py [--records N] [--reader-sessions 10,10000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from aws_lambda_powertools.utilities import parameters  # noqa: E402
from bench_calculator import (  # noqa: E402  (it puts the repository and the layer on sys.path)
    MOTO_CONFIG,
    ROUND_TRIP_SECONDS,
    Tally,
    command,
    counting,
    quiet_stdout,
)
from moto import mock_aws  # noqa: E402

from budgetkeeper.core import clock  # noqa: E402
from budgetkeeper.core.tunables import Tunables  # noqa: E402
from devkit.harness.clock import ManualClock  # noqa: E402
from devkit.harness.dynamodb_reads import counting_reads  # noqa: E402
from devkit.harness.lambdas import invoke  # noqa: E402
from devkit.harness.lean_moto import lean  # noqa: E402
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event  # noqa: E402
from devkit.harness.stack import FAKE_CREDENTIALS, LocalStack  # noqa: E402

ACCOUNT = "111122223333"
NOVA = "amazon.nova-lite-v1:0"
NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
EVENTS_PER_PAYLOAD = 25
# The multiple of the `same` variant that distinct apps and models must stay within.
TARGET_MULTIPLE = 5


def call(index: int, *, session: bool, app: bool, model: bool) -> str:
    name = f"s{index:05d}" if session else "worker"
    return converse_message(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/Worker/{name}",
        f"acme.made-up-{index:05d}-v1:0" if model else NOVA,
        1000,
        100,
        account=ACCOUNT,
        timestamp=NOW.isoformat().replace("+00:00", "Z"),
        request_metadata={"app": f"app{index:05d}" if app else "chat"},
    )


VARIANTS: dict[str, Callable[[int], str]] = {
    "same": lambda i: call(i, session=False, app=False, model=False),
    "apps": lambda i: call(i, session=False, app=True, model=False),
    "sessions": lambda i: call(i, session=True, app=False, model=False),
    "models": lambda i: call(i, session=False, app=False, model=True),
    "all": lambda i: call(i, session=True, app=True, model=True),
}


def run(messages: list[str]) -> tuple[Tally, set[str]]:
    payloads = [
        cloudwatch_payload(messages[start : start + EVENTS_PER_PAYLOAD])
        for start in range(0, len(messages), EVENTS_PER_PAYLOAD)
    ]
    tally = Tally()
    with (
        clock.use(ManualClock(NOW)),
        mock_aws(config=MOTO_CONFIG),
        tempfile.TemporaryDirectory() as scratch,
    ):
        parameters.clear_caches()
        stack = LocalStack().create()
        out = Path(scratch) / "stdout"
        with stack.activated(), quiet_stdout(str(out)), counting(tally):
            invoke("UsageCalculatorFunction", firehose_event(payloads))
        parameters.clear_caches()
        models = {
            line["Model"]
            for text in out.read_text().splitlines()
            if '"_aws"' in text
            for line in [json.loads(text)]
            if "Model" in line
        }
    return tally, models


@dataclass
class Reads:
    requests: int
    items: int


def seed_minted_sessions(sessions: int) -> None:
    """`sessions` sessions that spent: their default budgets, a usage line and their priced model
    (as the calculator leaves them); four budgets in trouble (marked due); an operator's budget."""
    from budgetkeeper.storage.audit_rows import Change
    from budgetkeeper.storage.budget_rows import create_budget, mark_due
    from budgetkeeper.storage.keys import line_partition
    from budgetkeeper.storage.models_seen import record_models_seen
    from budgetkeeper.storage.tables import BudgetItem, RollupItem

    day, hour = NOW.date().isoformat(), NOW.strftime("%Y-%m-%dT%H")
    with BudgetItem.batch_write() as budgets, RollupItem.batch_write() as rollups:
        for index in range(sessions):
            scope = f"session:Worker/s{index:05d}"
            for window in ("daily", "monthly"):
                budgets.save(BudgetItem(scope, window, origin="default"))
            line = {"model": NOVA, "region": "us-east-1", "hour": hour, "calls": 1, "principal": scope}
            rollups.save(RollupItem(scope, f"{hour}#{NOVA}#us-east-1", **line))
            rollups.save(RollupItem(line_partition(day), f"{hour}#{index:05d}", **line))
    record_models_seen([(day, NOVA, "us-east-1")], retention_seconds=400 * 86_400)
    change = Change(actor="bench", at=NOW)
    for scope, window, status in (
        ("user:bob", "daily", "warning"),
        ("team:data", "weekly", "critical"),
        ("session:Worker/s00001", "daily", "suspended"),
        ("session:Worker/s00002", "monthly", "grace"),
        ("user:alice", "daily", None),
    ):
        if not scope.startswith("session:"):
            create_budget(scope, window, {"limit_usd": Decimal(10)}, "budget set", change)
        if status:
            BudgetItem(scope, window).update(actions=[BudgetItem.status.set(status)])
            mark_due([(scope, window)])


def reader_reads(sessions: int) -> dict[str, Reads]:
    """Each reader's reads with `sessions` minted sessions."""
    from budgetkeeper.notify.summary import gather_summary
    from budgetkeeper.pricing.versions import METERED_LOOKBACK, metered_models
    from budgetkeeper_cli.console.pages import scopes_page
    from budgetkeeper_cli.main import build_parser
    from budgetkeeper_cli.main import main as cli
    from budgetkeeper_cli.reports.html import build_page
    from budgetkeeper_cli.reports.rollups import report_window
    from budgetkeeper_cli.stack_config import connect

    found: dict[str, Reads] = {}
    with clock.use(ManualClock(NOW)), mock_aws(config=MOTO_CONFIG), tempfile.TemporaryDirectory() as scratch:
        parameters.clear_caches()
        stack = LocalStack().create()
        with stack.activated():
            seed_minted_sessions(sessions)
            name = stack.publish_outputs()
            operator = connect(build_parser().parse_args(["console", "--stack-name", name]))
            readers: dict[str, Callable[[], object]] = {
                "status": lambda: cli(["status", "--format", "json", "--stack-name", name]),
                "console budgets": lambda: scopes_page(operator, {}),
                "html report": lambda: build_page(
                    report_window(None, None, NOW), None, operator.tunables(), NOW
                ).budgets,
                "daily summary": lambda: gather_summary(NOW),
                "price refresh": lambda: metered_models(NOW - METERED_LOOKBACK),
            }
            for reader, read in readers.items():
                with quiet_stdout(str(Path(scratch) / "stdout")), counting_reads() as reads:
                    read()
                found[reader] = Reads(reads.requests.total(), reads.items.total())
        parameters.clear_caches()
    return found


def print_readers(sizes: list[int]) -> None:
    counts = " and ".join(f"{size:,}" for size in sizes)
    print(f"\nreaders: DynamoDB read requests / items read, at {counts} minted sessions")
    by_size = {size: reader_reads(size) for size in sizes}
    print(f"{'reader':16}" + "".join(f"{f'{size:,} sessions':>20}" for size in sizes))
    for reader in by_size[sizes[0]]:
        cells = [f"{by_size[size][reader].requests} / {by_size[size][reader].items:,}" for size in sizes]
        print(f"{reader:16}" + "".join(f"{cell:>20}" for cell in cells))
    print(
        "the report and the summary also read today's usage lines (one a caller and hour): "
        "they grow with the sessions that spend today, not with the rows minted before"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="calls in the batch (default 1,000)")
    parser.add_argument(
        "--reader-sessions",
        default="10,10000",
        help="minted sessions the readers are measured at, comma-separated (default 10,10000)",
    )
    arguments = parser.parse_args()
    if arguments.records < 1:
        parser.error("--records takes a whole number of 1 or more")
    try:
        sizes = [int(size) for size in arguments.reader_sessions.split(",")]
    except ValueError:
        parser.error("--reader-sessions takes whole numbers separated by commas, e.g. 10,10000")
    if min(sizes) < 3:
        parser.error("--reader-sessions: at least 3 sessions (two of them are in trouble), e.g. 10,10000")
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    lean()
    tunables = Tunables.defaults()
    print("bench_cardinality: one batch of calls whose names vary, through the real calculator on moto")
    print(f"command: {command()}")
    print(
        f"caps (tunables.py defaults): limits/app_claims_per_principal {tunables.app_claims_per_principal}, "
        f"limits/unknown_models_per_batch {tunables.unknown_models_per_batch}, "
        f"default_budget/session_floor_usd {tunables.default_budget_floor_usd}"
    )
    print(f"{arguments.records:,} calls, {EVENTS_PER_PAYLOAD} to a payload, each variant on a fresh stack")
    header = f"{'variant':10} {'WRU':>7} {'x same':>7} {'requests':>9} {'x same':>7} {'est. s':>7} "
    print(header + f"{'budget rows':>12} {'Model metrics':>14}")
    base: Tally | None = None
    for name, make in VARIANTS.items():
        tally, models = run([make(index) for index in range(arguments.records)])
        requests = sum(tally.requests.values())
        base = base or tally
        base_requests = sum(base.requests.values())
        budgets = sum(n for table, n in tally.items_written.items() if "Budgets" in table)
        print(
            f"{name:10} {tally.write_request_units:>7,} "
            f"{tally.write_request_units / base.write_request_units:>6.1f}x {requests:>9,} "
            f"{requests / base_requests:>6.1f}x {requests * ROUND_TRIP_SECONDS:>7.2f} "
            f"{budgets:>12,} {len(models):>14,}"
        )
    print(
        "requests: every AWS request of the handler (sequential), est. s at "
        f"{ROUND_TRIP_SECONDS * 1000:.0f} ms each; target for apps and models: "
        f"at most {TARGET_MULTIPLE}x same"
    )
    print_readers(sizes)


if __name__ == "__main__":
    main()
