"""IAM throttling, a principal deleted mid-suspension and SNS down, in the real workflow (issue 12).

The real ASL runs on moto with its Lambda tasks routed to the real handlers (devkit harness); the
faults are injected into the answers of IAM and SNS under botocore's own retries
(tests/reliability/faults.py). Each test checks what IAM, the deny records, the budget row and the
audit trail hold at the end, and that the failure was logged and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from budgetkeeper.storage.tables import AuditItem, BudgetItem, DenyItem
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import WaitControl, real_handlers, wait_for_execution
from tests.reliability.faults import FaultInjector

ONCALL = "arn:aws:iam::123456789012:user/oncall"
# boto3's IAM client tries a call 5 times (legacy retry mode); Step Functions then retries the task 3
# times on ClientError (statemachines/budget_enforcement.source.yaml, transient_retry).
IAM_ATTEMPTS = 5


@pytest.fixture
def workflow(stack: LocalStack, settings) -> Iterator[WaitControl]:
    with real_handlers(stack) as waits:
        yield waits


def operator(stack: LocalStack, action: str, scope: str, reason: str = "ticket OPS-7") -> dict[str, Any]:
    from budgetkeeper.enforcement.runs import WorkflowStarter, operator_request

    name, request = operator_request(action, scope, actor=ONCALL, reason=reason)
    starter = WorkflowStarter(
        stack.client("stepfunctions"), stack.physical_ids["BudgetEnforcementStateMachine"]
    )
    return wait_for_execution(stack, starter.start(name, request))


def attached(stack: LocalStack, user: str) -> list[str]:
    policies = stack.client("iam").list_attached_user_policies(UserName=user)["AttachedPolicies"]
    return [policy["PolicyArn"] for policy in policies]


def deny_records() -> dict[str, set[str]]:
    return {item.entry: set(item.holders or ()) for item in DenyItem.scan(consistent_read=True)}


def transitions(scope: str) -> list[tuple[str, str, str | None]]:
    return [(a.from_status, a.to_status, a.actor) for a in AuditItem.query(scope, consistent_read=True)]


def notices(stack: LocalStack) -> list[str]:
    from moto.sns.models import sns_backends

    topic = stack.physical_ids["BudgetEventsTopic"]
    backend = sns_backends["123456789012"]["us-east-1"]
    return [json.loads(message)["type"] for _, message, *_ in backend.topics[topic].sent_notifications]


def emf_total(capsys: pytest.CaptureFixture[str], name: str) -> float:
    """The sum of one metric over every EMF line the handlers printed."""
    total = 0.0
    for line in capsys.readouterr().out.splitlines():
        if '"_aws"' in line:
            value = json.loads(line).get(name, 0)
            total += sum(value) if isinstance(value, list) else value
    return total


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    return [record.__dict__ for record in caplog.records if record.getMessage() == message]


def delete_user(stack: LocalStack, name: str) -> None:
    """Delete an IAM user as IAM requires it: its managed policies detached first."""
    iam = stack.client("iam")
    for policy in iam.list_attached_user_policies(UserName=name)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=name, PolicyArn=policy["PolicyArn"])
    iam.delete_user(UserName=name)


# --- IAM throttling ---------------------------------------------------------------------------------


def test_iam_throttling_the_attach_is_retried_and_the_suspension_completes(stack, workflow, faults):
    # Given IAM throttling every attach for longer than botocore retries it within one invocation
    stack.client("iam").create_user(UserName="alice")
    throttled = faults.fail("iam", "AttachUserPolicy", "Throttling", times=IAM_ATTEMPTS + 2)
    # When an operator suspends alice
    run = operator(stack, "suspend", "user:alice", reason="leaked key")
    # Then Step Functions retried the DenyFunction, the attach went through, and the run succeeded
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert throttled.injected == IAM_ATTEMPTS + 2
    assert attached(stack, "alice") == [stack.physical_ids["BedrockDenyPolicy"]]
    assert deny_records() == {"user:alice": {"user:alice|manual"}}
    assert BudgetItem.get("user:alice", "manual").status == "suspended"
    assert notices(stack) == ["suspended"]  # once, though the step ran twice


def test_iam_throttling_that_never_ends_fails_the_run_and_leaves_nothing_half_done(
    stack, workflow, faults, caplog
):
    # Given IAM refusing every attach with Throttling, through every retry
    stack.client("iam").create_user(UserName="bob")
    faults.fail("iam", "AttachUserPolicy", "Throttling", times=10_000)
    # When an operator suspends bob
    run = operator(stack, "suspend", "user:bob", reason="leaked key")
    # Then the run fails with IAM's error, operators are told, and nothing is left attached or held
    assert run["status"] == "FAILED" and "Throttling" in run["cause"]
    assert "workflow_failed" in notices(stack)
    assert attached(stack, "bob") == [] and deny_records() == {}
    [failed] = logged(caplog, "workflow failed")
    assert failed["scope"] == "user:bob" and "Throttling" in json.dumps(failed["failure"])


# --- a principal deleted mid-suspension -------------------------------------------------------------


def test_a_user_deleted_while_suspended_is_restored_cleanly_and_audited(stack, workflow):
    # Given alice suspended by an operator (no end: the deny stays until a restore)
    stack.client("iam").create_user(UserName="alice")
    assert operator(stack, "suspend", "user:alice", reason="leaked key")["status"] == "SUCCEEDED"
    # and then deleted from IAM by her administrator
    delete_user(stack, "alice")
    # When an operator restores her
    run = operator(stack, "restore", "user:alice", reason="account closed")
    # Then the restore succeeds, no record is left, and the audit trail has both transitions
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert deny_records() == {}
    assert list(BudgetItem.query("user:alice")) == []  # a manual suspension's row goes at its restore
    assert transitions("user:alice") == [("ok", "suspended", ONCALL), ("suspended", "ok", ONCALL)]
    assert notices(stack) == ["suspended", "restored"]


def test_a_user_deleted_between_the_attach_and_its_confirmation_is_restored_cleanly(stack, workflow, faults):
    # Given carol deleted right after IAM attached the deny, before the record was confirmed
    stack.client("iam").create_user(UserName="carol")
    faults.call_after("iam", "AttachUserPolicy", lambda: delete_user(stack, "carol"))
    # When an operator suspends carol
    run = operator(stack, "suspend", "user:carol", reason="leaked key")
    # Then the suspension is recorded as applied (IAM took it) and the deny record holds it
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert deny_records() == {"user:carol": {"user:carol|manual"}}
    # When an operator restores her
    run = operator(stack, "restore", "user:carol", reason="account closed")
    # Then nothing is left recorded, and the restore is audited
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert deny_records() == {}
    assert transitions("user:carol")[-1] == ("suspended", "ok", ONCALL)


def test_a_user_deleted_before_the_suspension_is_an_alert_and_holds_nothing(stack, workflow):
    # Given a budget on a user who no longer exists in IAM
    # When an operator suspends them
    run = operator(stack, "suspend", "user:gone", reason="leaked key")
    # Then nothing can be suspended: operators are told, and no deny record is left behind
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert notices(stack) == ["cannot_suspend"]
    assert deny_records() == {}


# --- SNS down ---------------------------------------------------------------------------------------


def test_sns_down_the_suspension_still_happens_and_the_failure_is_counted_and_logged(
    stack, workflow, faults, capsys, caplog
):
    # Given SNS failing every Publish (after botocore's retries)
    stack.client("iam").create_user(UserName="dave")
    sns_down: FaultInjector = faults
    sns_down.fail("sns", "Publish", "InternalError", status=500, times=10_000)
    # When an operator suspends dave
    run = operator(stack, "suspend", "user:dave", reason="leaked key")
    # Then the run succeeds with the deny attached, recorded and audited
    assert run["status"] == "SUCCEEDED", run.get("cause")
    assert attached(stack, "dave") == [stack.physical_ids["BedrockDenyPolicy"]]
    assert deny_records() == {"user:dave": {"user:dave|manual"}}
    assert transitions("user:dave") == [("ok", "suspended", ONCALL)]
    # and the lost notice is logged in full and counted
    [lost] = logged(caplog, "notification not sent")
    assert (lost["type"], lost["scope"]) == ("suspended", "user:dave") and "InternalError" in lost["error"]
    assert emf_total(capsys, "NotificationsFailed") == 1
    assert notices(stack) == []
