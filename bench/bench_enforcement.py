"""Time from the metered record that crosses a limit to the deny policy in IAM (grace 0), on moto.

The clock starts when the usage calculator is handed the Firehose batch holding the record that
takes a user over the limit, and stops when moto's IAM lists the deny policy on that user. The run
goes through the real path: calculator -> StartExecution -> the real ASL in moto's executor ->
Lambda tasks in the real handlers -> aws-sdk:iam:attachUserPolicy. Target: under 5 s.

    .venv/bin/python bench/bench_enforcement.py [--runs N]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from decimal import Decimal

from moto import mock_aws

RUNS = 5


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=RUNS)
    args = parser.parse_args()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
    logging.getLogger("moto").setLevel(logging.CRITICAL)  # IsPresent on a missing path logs an "error"
    from budgetkeeper.core import clock
    from budgetkeeper.core.windows import iso_utc
    from budgetkeeper.storage.tables import BudgetItem
    from devkit.harness.lambdas import invoke
    from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
    from devkit.harness.server import MOTO_CONFIG
    from devkit.harness.stack import LocalStack
    from devkit.harness.workflow import WaitControl, real_handlers

    def over_the_limit(user: str) -> dict:
        now = iso_utc(clock.now())
        message = converse_message(
            f"arn:aws:iam::111122223333:user/{user}", "amazon.nova-pro-v1:0", 2_000_000, 1000, timestamp=now
        )
        return firehose_event([cloudwatch_payload([message])])

    timings = []
    with mock_aws(config=MOTO_CONFIG):
        stack = LocalStack(stack_name="bench").create()
        iam = stack.client("iam")
        deny = stack.physical_ids["BedrockDenyPolicy"]
        with stack.activated(), real_handlers(stack, WaitControl(max_wait_seconds=3600)):
            for run in range(args.runs):
                user = f"bench-user-{run}"
                iam.create_user(UserName=user)
                BudgetItem(f"user:{user}", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
                event = over_the_limit(user)  # 1.60 USD of Nova Pro input: over a 1 USD limit
                started = time.perf_counter()
                invoke("UsageCalculatorFunction", event)
                while deny not in [
                    p["PolicyArn"] for p in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
                ]:
                    if time.perf_counter() - started > 60:
                        print(f"run {run}: no deny after 60 s")
                        return 1
                    time.sleep(0.01)
                timings.append(time.perf_counter() - started)
    print("bench_enforcement: metered record over the limit -> deny policy attached in IAM (grace 0, moto)")
    print(f"command: {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"runs: {len(timings)}; seconds each: {', '.join(f'{t:.2f}' for t in timings)}")
    print(f"median {statistics.median(timings):.2f} s, worst {max(timings):.2f} s (target: under 5 s)")
    print("(includes the calculator's own writes and moto's executor; polling every 10 ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
