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

Run from the repository root:
.venv/bin/python bench/bench_cardinality.py [--records N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
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
from budgetkeeper.core.settings import Tunables  # noqa: E402
from devkit.harness.clock import ManualClock  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000, help="calls in the batch (default 1,000)")
    arguments = parser.parse_args()
    if arguments.records < 1:
        parser.error("--records takes a whole number of 1 or more")
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    lean()
    tunables = Tunables.defaults()
    print("bench_cardinality: one batch of calls whose names vary, through the real calculator on moto")
    print(f"command: {command()}")
    print(
        f"caps (settings.py defaults): limits/app_claims_per_principal {tunables.app_claims_per_principal}, "
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


if __name__ == "__main__":
    main()
