"""The real ASL, executed by moto's Step Functions, with Lambda tasks running the real handlers.

Spend comes in through the usage calculator, exactly as in production; the deny policy is read
back from moto IAM.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest

from budgetkeeper.store import AuditItem, BudgetItem
from budgetkeeper_cli.harness.lambdas import invoke
from budgetkeeper_cli.harness.logs import cloudwatch_payload, firehose_event, log_message
from budgetkeeper_cli.harness.stack import LocalStack
from budgetkeeper_cli.harness.workflow import WaitControl, real_handlers, wait_for_execution, wait_for_state

ACCOUNT = "111122223333"
NOVA_PRO = "amazon.nova-pro-v1:0"  # USD 0.80 input, 3.20 output per 1M tokens
TODAY = "2026-11-23"


def nova_pro_call(arn: str, input_tokens: int, *, timestamp: str = f"{TODAY}T10:00:00Z") -> str:
    return log_message(
        {
            "schemaType": "ModelInvocationLog",
            "schemaVersion": "1.0",
            "timestamp": timestamp,
            "accountId": ACCOUNT,
            "identity": {"arn": arn},
            "region": "us-east-1",
            "requestId": str(uuid.uuid4()),
            "operation": "Converse",
            "modelId": NOVA_PRO,
            "input": {"inputContentType": "application/json", "inputTokenCount": input_tokens},
            "output": {"outputContentType": "application/json", "outputTokenCount": 0},
        }
    )


def spend(arn: str, usd: str, **kwargs) -> dict:
    """Meter calls of `arn` worth exactly `usd` (Nova Pro input at 0.80 per 1M tokens)."""
    tokens = int(Decimal(usd) / Decimal("0.0000008"))
    return invoke(
        "UsageCalculatorFunction",
        firehose_event([cloudwatch_payload([nova_pro_call(arn, tokens, **kwargs)])]),
    )


@pytest.fixture
def workflow(stack: LocalStack, settings) -> Iterator[WaitControl]:
    with real_handlers(stack) as waits:
        yield waits


def executions(stack: LocalStack) -> list[dict]:
    sfn = stack.client("stepfunctions")
    arn = stack.physical_ids["BudgetEnforcementStateMachine"]
    return sfn.list_executions(stateMachineArn=arn)["executions"]


def finish_all(stack: LocalStack) -> list[dict]:
    return [wait_for_execution(stack, execution["executionArn"]) for execution in executions(stack)]


def attached(stack: LocalStack, user: str) -> list[str]:
    return [
        p["PolicyArn"]
        for p in stack.client("iam").list_attached_user_policies(UserName=user)["AttachedPolicies"]
    ]


def notifications(stack: LocalStack) -> list[dict]:
    from moto.sns.models import sns_backends

    topic = stack.physical_ids["BudgetEventsTopic"]
    backend = sns_backends["123456789012"]["us-east-1"]  # moto's account, where the stack lives
    return [json.loads(message) for _, message, *_ in backend.topics[topic].sent_notifications]


def set_budget(scope: str, window: str = "daily", limit: str = "1", **fields) -> None:
    BudgetItem(scope, window, limit_usd=Decimal(limit), grace_seconds=0, **fields).save()


def test_a_user_is_warned_suspended_and_restored_when_the_window_refreshes(stack, workflow):
    stack.client("iam").create_user(UserName="alice")
    set_budget("user:alice")
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    deny = stack.physical_ids["BedrockDenyPolicy"]
    # 70%, then 90%
    spend(alice, "0.75")
    finish_all(stack)
    spend(alice, "0.17")
    assert {r["status"] for r in finish_all(stack)} == {"SUCCEEDED"}
    assert [n["type"] for n in notifications(stack)] == ["warning", "critical"]
    # Over 100%: the run waits for the refresh with the deny attached
    workflow.max_wait_seconds = 3
    spend(alice, "0.10")
    run = next(e for e in executions(stack) if e["name"].startswith("exceeded"))
    wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    assert attached(stack, "alice") == [deny]
    assert BudgetItem.get("user:alice", "daily").status == "suspended"
    results = finish_all(stack)
    assert {r["status"] for r in results} == {"SUCCEEDED"}
    assert attached(stack, "alice") == []
    assert [n["type"] for n in notifications(stack)] == [
        "warning",
        "critical",
        "grace",
        "suspended",
        "restored",
    ]
    transitions = [(a.from_status, a.to_status) for a in AuditItem.query("user:alice")]
    assert transitions == [
        ("ok", "warning"),
        ("warning", "critical"),
        ("critical", "grace"),
        ("grace", "suspended"),
        ("suspended", "ok"),
    ]
