"""Many budgets, a tenth of them crossing their limit in the same minute, with the executor off.

Every crossing budget gets exactly one execution, with the input its crossing calls for, whether
the calculator or the monitor's backstop asked first; a budget far from its limit gets none and is
never in the monitor's sweep. Then a sample of those very inputs runs through the real state
machine (the executor turned on, the real handlers as its tasks): each user is suspended, the deny
attached in IAM, and restored when the window refreshes; no other budget is touched.
2,000 budgets and 200 crossings keep `make test` fast; `make test-scale` (run by CI) sets
CROSSINGS_AT_SCALE=10000:1000 for the issue's ten thousand and thousand (about 3.5 minutes).
bench/bench_monitor.py times the sweep at that size, with its read units.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from budgetkeeper.storage.tables import SWEEP_DUE, AuditItem, BudgetItem, DenyItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, firehose_event
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import (
    WaitControl,
    executor_on,
    real_handlers,
    wait_for_execution,
    wait_for_state,
)
from tests.integration.test_enforcement_workflow import nova_pro_call
from tests.timeline import window_id

# Among the longest tests (subprocesses, real workflows on moto): `-m 'not slow'` skips them.
pytestmark = pytest.mark.slow

BUDGETS, CROSSING = (int(count) for count in os.environ.get("CROSSINGS_AT_SCALE", "2000:200").split(":"))
EVENTS_PER_PAYLOAD = 25
PAYLOADS_PER_BATCH = 20  # 500 invocations a Firehose batch
EXECUTOR_OFF = {"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": False}}
OVER_THE_LIMIT = 1_500_000  # Nova Pro input tokens: 1.20 USD, over a 1 USD limit
FAR_FROM_IT = 12_500  # 0.01 USD
SAMPLE = 3  # runs of the real ASL: the first, middle and last crossing budget


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


def started(stack: LocalStack) -> dict[str, dict]:
    """The input of every execution of the evaluation machine, by execution name."""
    sfn = stack.client("stepfunctions")
    arn = stack.physical_ids["BudgetEvaluationStateMachine"]
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
    executions = [execution for page in pages for execution in page["executions"]]
    return {
        e["name"]: json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
        for e in executions
    }


def everything_but(scopes: set[str]) -> tuple[dict, set, dict]:
    """The budgets, audit lines and deny records of every scope but these."""
    budgets = {
        (item.scope, item.window): item.attribute_values
        for item in BudgetItem.scan(consistent_read=True)
        if item.scope not in scopes
    }
    audit = {
        (item.scope, item.at_id) for item in AuditItem.scan(consistent_read=True) if item.scope not in scopes
    }
    # A user's deny entry is named as its scope is (user:<name>).
    denies = {
        item.entry: item.attribute_values
        for item in DenyItem.scan(consistent_read=True)
        if item.entry not in scopes
    }
    return budgets, audit, denies


def denied_users(stack: LocalStack) -> set[str]:
    entities = stack.client("iam").list_entities_for_policy(PolicyArn=stack.physical_ids["BedrockDenyPolicy"])
    return {user["UserName"] for user in entities["PolicyUsers"]}


def run_on_the_real_asl(stack: LocalStack, runs: dict[str, dict]) -> None:
    """Start each run (name: input) again with the executor on and the real handlers as its tasks;
    each must suspend its user until the window refreshes, then restore, touching nothing else."""
    scopes = {run["scope"] for run in runs.values()}
    users = {scope.removeprefix("user:") for scope in scopes}
    for name in users:  # the deny needs a principal to attach to
        stack.client("iam").create_user(UserName=name)
    untouched = everything_but(scopes)
    with executor_on(stack), real_handlers(stack, WaitControl(max_wait_seconds=120)) as waits:
        sfn = stack.client("stepfunctions")
        machine = stack.physical_ids["BudgetEvaluationStateMachine"]
        arns = [
            sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(run))["executionArn"]
            for name, run in runs.items()
        ]
        for arn in arns:  # every run now waits for the window's end, its user denied
            wait_for_state(stack, arn, "WaitForRefresh")
        assert {scope: BudgetItem.get(scope, "daily").status for scope in scopes} == dict.fromkeys(
            scopes, "suspended"
        )
        assert denied_users(stack) == users
        assert {item.entry: set(item.holders) for item in DenyItem.scan(consistent_read=True)} == {
            scope: {f"{scope}|daily"} for scope in scopes
        }
        waits.release()  # the window refreshes
        results = [wait_for_execution(stack, arn) for arn in arns]
    assert [result["status"] for result in results] == ["SUCCEEDED"] * len(runs)
    assert denied_users(stack) == set()
    for scope in scopes:
        transitions = [(a.from_status, a.to_status) for a in AuditItem.query(scope)]
        assert transitions == [("ok", "grace"), ("grace", "suspended"), ("suspended", "ok")]
    assert everything_but(scopes) == untouched


def test_every_budget_crossing_in_one_minute_gets_exactly_one_run_that_enforces_it(stack):
    # Given many budgets, a tenth of them crossing their limit in the same minute
    seed_budgets(BUDGETS)
    crossing = range(0, BUDGETS, BUDGETS // CROSSING)  # every tenth user crosses
    far = [n for n in range(1, BUDGETS, 7) if n % (BUDGETS // CROSSING)]  # others spend a cent
    calls = [nova_pro_call(user(n), OVER_THE_LIMIT) for n in crossing]
    calls += [nova_pro_call(user(n), FAR_FROM_IT) for n in far]
    # When the calculator meters that minute and the monitor sweeps, the executor off
    meter(calls)
    due = {item.scope for item in BudgetItem.sweep_index.query(SWEEP_DUE)}
    report = invoke("BudgetMonitorFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})

    # Then every crossing budget, and no other, has exactly one execution, with its input
    expected = {f"user:u{n:05d}" for n in crossing}
    assert due == expected  # the sweep reads these only, not the budgets far from their limits
    assert report["budgets"] == CROSSING
    assert sorted(report["evaluations"]) == sorted(f"{scope}|daily" for scope in expected)
    runs = started(stack)
    revisions = {scope: int(BudgetItem.get(scope, "daily").revision) for scope in expected}
    assert sorted(run["scope"] for run in runs.values()) == sorted(expected)  # one each, none twice
    for run in runs.values():
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
            "reason": "spend $1.20 is 120.0% of $1.00",
        }
    # And a sample of those very inputs, run through the real state machine, enforces each budget
    by_scope = sorted(runs.items(), key=lambda named: named[1]["scope"])
    sample = dict(by_scope[i * (len(by_scope) - 1) // (SAMPLE - 1)] for i in range(SAMPLE))
    run_on_the_real_asl(stack, sample)
