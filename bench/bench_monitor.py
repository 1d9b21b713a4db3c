"""Ten thousand budgets, a thousand over their limit in the same minute: the monitor's sweep, on
in-process moto with the state machine executor off.

`.venv/bin/python bench/bench_monitor.py [--budgets N] [--crossing M]`

Every budget is a user's daily budget of 1 USD. M of them are left as the usage calculator leaves a
crossing whose run it could not start: the window's total at 1.20 USD and the budget marked due in
the sparse sweep index; as many others have spent a cent (far from the limit, not due); the rest
nothing. The monitor then sweeps twice, as its schedule would.
Printed: the sweep's time, its requests and read units (counted as bench_calculator counts them),
what a sweep reading every budget would read instead, and the executions started per budget (the
second sweep must start none). The calculator's side of a crossing minute is
tests/integration/test_crossings_at_scale.py (2,000 budgets, 200 crossing: one run each): at 10,000
budgets it does not fit in this machine's memory on moto, whose TransactWriteItems deep-copies each
table it writes once per item.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from decimal import Decimal

from aws_lambda_powertools.utilities.parameters import clear_caches
from bench_calculator import CAPACITY_RULES, Tally, command, counting, item_size, quiet_stdout, read_units
from moto import mock_aws

from budgetkeeper.storage.tables import SWEEP_DUE, BudgetItem, TotalItem, budget_key
from devkit.harness.lambdas import invoke
from devkit.harness.stack import FAKE_CREDENTIALS, LocalStack
from tests.timeline import window_id

EXECUTOR_OFF = {"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": False}}
SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event"}


def scope(n: int) -> str:
    return f"user:u{n:05d}"


def sweep(tally: Tally) -> tuple[dict, float]:
    started = time.perf_counter()
    with quiet_stdout(), counting(tally):
        report = invoke("BudgetMonitorFunction", SCHEDULED)
    return report, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=10_000)
    parser.add_argument("--crossing", type=int, default=1_000)
    arguments = parser.parse_args()
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    budgets, crossing = arguments.budgets, arguments.crossing
    step = budgets // crossing
    crossers = list(range(0, budgets, step))[:crossing]
    far = [n + 1 for n in crossers]
    print("bench_monitor: the monitor's sweep over a crossing minute, executor off, in-process moto")
    print(f"command: {command()}")
    print(
        f"{budgets:,} daily budgets of 1 USD: {len(crossers):,} at 1.20 USD and marked due, "
        f"{len(far):,} at 0.01 USD, the rest at 0"
    )
    print(CAPACITY_RULES)
    today = window_id("daily")
    with mock_aws(config=EXECUTOR_OFF):
        clear_caches()
        stack = LocalStack().create()
        with stack.activated():
            started = time.perf_counter()
            due = set(crossers)
            with BudgetItem.batch_write() as batch:
                for n in range(budgets):
                    marked = (
                        {"sweep": SWEEP_DUE, "sweep_key": budget_key(scope(n), "daily")} if n in due else {}
                    )
                    batch.save(BudgetItem(scope(n), "daily", limit_usd=Decimal(1), grace_seconds=0, **marked))
            with TotalItem.batch_write() as batch:
                for n, spent in [(n, "1.20") for n in crossers] + [(n, "0.01") for n in far]:
                    key = budget_key(scope(n), "daily")
                    batch.save(
                        TotalItem(
                            key, today, scope=scope(n), window="daily", spent_usd=Decimal(spent), calls=1
                        )
                    )
            print(f"seeded in {time.perf_counter() - started:.1f} s")

            first, second = Tally(), Tally()
            report, seconds = sweep(first)
            again, seconds_again = sweep(second)

            sfn = stack.client("stepfunctions")
            machine = stack.physical_ids["BudgetEvaluationStateMachine"]
            pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine)
            arns = [e["executionArn"] for page in pages for e in page["executions"]]
            inputs = [json.loads(sfn.describe_execution(executionArn=arn)["input"]) for arn in arns]
            per_budget = Counter(Counter(run["scope"] for run in inputs).values())
            crossing_scopes = {scope(n) for n in crossers}
            wrong = sum(
                1 for run in inputs if run["level"] != "exceeded" or run["scope"] not in crossing_scopes
            )
            scanned = list(BudgetItem.scan())
            scan_units = read_units(sum(item_size(i.serialize()) for i in scanned), consistent=False)
        clear_caches()
    for label, tally, result, took in (
        ("first", first, report, seconds),
        ("second", second, again, seconds_again),
    ):
        starts = tally.requests["stepfunctions.StartExecution"]
        print(
            f"{label} sweep: {took:.2f} s (moto-bound), budgets read {result['budgets']:,} of {budgets:,}, "
            f"{tally.read_request_units:,.1f} read units, StartExecution requests {starts:,}"
        )
        print(f"  requests: {dict(sorted(tally.requests.items()))}")
    print(
        f"executions: {len(arns):,} for {len(crossers):,} budgets over their limit; budgets by runs each "
        f"{dict(per_budget)}; runs with a wrong scope or level: {wrong}"
    )
    print(
        f"a sweep of every budget instead: a Scan ({scan_units:,.1f} read units for {len(scanned):,} items) "
        f"and a window total each ({len(scanned):,} GetItems, at least {len(scanned):,} read units)"
    )


if __name__ == "__main__":
    main()
