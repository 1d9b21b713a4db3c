"""Many budgets, a tenth of them crossing their limit in the same minute, with the executor off.

Every crossing budget gets exactly one execution, with the input its crossing calls for, whether
the calculator or the monitor's backstop asked first; a budget far from its limit gets none and is
never in the monitor's sweep. bench/bench_monitor.py runs the same at 10,000 budgets and 1,000
crossings with the sweep's time and read units; here 2,000 and 200 keep the test fast on moto.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from budgetkeeper.store import SWEEP_DUE, BudgetItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, firehose_event
from devkit.harness.stack import LocalStack
from tests.integration.test_enforcement_workflow import nova_pro_call
from tests.timeline import window_id

BUDGETS = 2_000
CROSSING = 200
EVENTS_PER_PAYLOAD = 25
PAYLOADS_PER_BATCH = 20  # 500 invocations a Firehose batch, as bench_calculator's
EXECUTOR_OFF = {"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": False}}
OVER_THE_LIMIT = 1_500_000  # Nova Pro input tokens: 1.20 USD, over a 1 USD limit
FAR_FROM_IT = 12_500  # 0.01 USD


def user(n: int) -> str:
    return f"arn:aws:iam::111122223333:user/u{n:05d}"


@pytest.fixture
def stack(aws_env: None) -> Iterator[LocalStack]:
    with mock_aws(config=EXECUTOR_OFF):
        parameters.clear_caches()
        created = LocalStack().create()
        with created.activated():
            yield created
        parameters.clear_caches()


def seed_budgets(count: int) -> None:
    with BudgetItem.batch_write() as batch:
        for n in range(count):
            batch.save(BudgetItem(f"user:u{n:05d}", "daily", limit_usd=Decimal(1), grace_seconds=0))


def meter(calls: list[str]) -> None:
    payloads = [
        cloudwatch_payload(calls[start : start + EVENTS_PER_PAYLOAD])
        for start in range(0, len(calls), EVENTS_PER_PAYLOAD)
    ]
    for start in range(0, len(payloads), PAYLOADS_PER_BATCH):
        batch = payloads[start : start + PAYLOADS_PER_BATCH]
        response = invoke("UsageCalculatorFunction", firehose_event(batch))
        assert {record["result"] for record in response["records"]} == {"Ok"}


def started(stack: LocalStack) -> list[dict]:
    sfn = stack.client("stepfunctions")
    arn = stack.physical_ids["BudgetEnforcementStateMachine"]
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
    arns = [execution["executionArn"] for page in pages for execution in page["executions"]]
    return [json.loads(sfn.describe_execution(executionArn=a)["input"]) for a in arns]


def test_every_budget_crossing_in_one_minute_gets_exactly_one_run(stack):
    seed_budgets(BUDGETS)
    crossing = range(0, BUDGETS, BUDGETS // CROSSING)  # every tenth user crosses
    far = [n for n in range(1, BUDGETS, 7) if n % (BUDGETS // CROSSING)]  # others spend a cent
    calls = [nova_pro_call(user(n), OVER_THE_LIMIT) for n in crossing]
    calls += [nova_pro_call(user(n), FAR_FROM_IT) for n in far]
    meter(calls)

    due = {item.scope for item in BudgetItem.sweep_index.query(SWEEP_DUE)}
    report = invoke("BudgetMonitorFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})

    expected = {f"user:u{n:05d}" for n in crossing}
    assert due == expected  # the sweep reads these only, not the budgets far from their limits
    assert report["budgets"] == CROSSING
    assert sorted(report["evaluations"]) == sorted(f"{scope}|daily" for scope in expected)
    runs = started(stack)
    revisions = {scope: int(BudgetItem.get(scope, "daily").revision) for scope in expected}
    assert sorted(run["scope"] for run in runs) == sorted(expected)  # one each, none twice
    for run in runs:
        assert run == {
            "action": "evaluate",
            "scope": run["scope"],
            "window": "daily",
            "window_id": window_id("daily"),
            "window_end": run["window_end"],
            "level": "exceeded",
            "forecast": False,
            "revision": revisions[run["scope"]],
            "actor": "budgetkeeper",
            "reason": "spend 1.2 USD is 120.0% of 1 USD",
        }
