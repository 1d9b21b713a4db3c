"""Enforcement you can trust: each defect a review reproduced (../shared/repros/enforcement), as a
test through the real state machine and handlers on moto. Each failed on the code before the deny
records (budgetkeeper.enforcement.denies), run attempts and the monitor's recovery.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from budgetkeeper.core.windows import iso_utc
from budgetkeeper.enforcement.deny_tasks import DENY_TASKS, DenyTasks
from budgetkeeper.enforcement.monitor import RESTORING_STUCK_AFTER
from budgetkeeper.enforcement.workflow import TASKS, WorkflowTasks
from budgetkeeper.storage.tables import BudgetItem, TeamItem
from devkit.harness.lambdas import invoke
from devkit.harness.workflow import real_handlers, wait_for_execution, wait_for_state
from tests.integration.test_denies import holders_by_entry
from tests.integration.test_enforcement_workflow import (
    ACCOUNT,
    exceeded_run,
    executions,
    finish_all,
    notifications,
    operator,
    set_budget,
    spend,
    types,
    user_arn,
)
from tests.opt_in import OPTED_IN

ROLE = "Chatbot-BedrockRole"
SHARED_ROLE = "SharedAnalystRole"


@pytest.fixture
def workflow(stack, settings):
    with real_handlers(stack) as waits:
        yield waits


def session_arn(role: str, session: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"


def denied_now(stack) -> set[str]:
    """Every principal the deny policy is attached to, and every session a session policy denies."""
    from budgetkeeper.enforcement.role_sessions import suspended_sessions

    iam = stack.client("iam")
    entities = iam.list_entities_for_policy(PolicyArn=stack.physical_ids["BedrockDenyPolicy"])
    held = {f"user:{u['UserName']}" for u in entities["PolicyUsers"]}
    held |= {f"role:{r['RoleName']}" for r in entities["PolicyRoles"]}
    held |= {f"group:{g['GroupName']}" for g in entities["PolicyGroups"]}
    for role in iam.list_roles()["Roles"]:
        held |= {f"session:{role['RoleName']}/{s}" for s in suspended_sessions(iam, role["RoleName"])}
    return held


def put_tunable(stack, settings, name: str, value: str) -> None:
    stack.client("ssm").put_parameter(
        Name=settings.parameter_prefix + name, Value=value, Type="String", Overwrite=True
    )
    parameters.clear_caches()


def sweep() -> dict:
    return invoke("BudgetMonitorFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})


# 1. A restore lifts what the suspension applied, not what the dry-run setting says now.


def test_a_restore_lifts_the_deny_after_dry_run_was_switched_on_meanwhile(stack, settings, workflow):
    stack.client("iam").create_user(UserName="alice")
    set_budget("user:alice")
    workflow.max_wait_seconds = 60
    spend(user_arn("alice"), "1.5")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
    assert denied_now(stack) == {"user:alice"}
    put_tunable(stack, settings, "dry_run", "true")  # the kill switch, while alice is suspended
    assert operator(stack, "restore", "user:alice")["status"] == "SUCCEEDED"
    assert denied_now(stack) == set() and holders_by_entry() == {}


def test_a_budget_opted_out_of_a_dry_run_deployment_is_lifted_at_its_refresh(stack, settings, workflow):
    put_tunable(stack, settings, "dry_run", "true")
    stack.client("iam").create_user(UserName="bea")
    set_budget("user:bea", dry_run=False)
    workflow.max_wait_seconds = 60
    spend(user_arn("bea"), "1.5")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
    assert denied_now(stack) == {"user:bea"}
    workflow.release()
    finish_all(stack)
    assert denied_now(stack) == set()
    assert types(stack) == ["grace", "suspended", "restored"]


# 2. A failure part way through a suspension leaves no deny that nothing would remove.


def test_a_failure_while_denying_a_member_session_leaves_no_deny_behind(stack, workflow, monkeypatch):
    iam = stack.client("iam")
    iam.create_group(GroupName="data")
    iam.create_role(RoleName=SHARED_ROLE, AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
    TeamItem(f"session:{SHARED_ROLE}/alice", team="data").save()
    set_budget("team:data", "monthly")

    def throttled(self, role_name, session):
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "GetRole")

    from budgetkeeper.enforcement.iam_denies import IamDenies

    monkeypatch.setattr(IamDenies, "deny_session", throttled)
    spend(session_arn(SHARED_ROLE, "alice"), "1.5")
    (run,) = finish_all(stack)
    # The group was denied first; the run failed (after its retries), and undid what it applied
    assert run["status"] == "FAILED"
    assert denied_now(stack) == set() and holders_by_entry() == {}
    assert types(stack) == ["grace", "workflow_failed"]


# 3. Two budgets that deny one principal never lift each other's deny.


def test_an_app_and_its_role_keep_each_others_deny(stack, workflow):
    stack.client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument="{}")
    set_budget("app:Chatbot", "monthly")
    set_budget(f"role:{ROLE}", "daily")
    workflow.max_wait_seconds = 60
    spend(session_arn(ROLE, "i-0abc"), "1.5")
    for run in executions(stack):
        wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    assert operator(stack, "restore", f"role:{ROLE}", window="daily")["status"] == "SUCCEEDED"
    assert denied_now(stack) == {f"role:{ROLE}"}  # the app's monthly budget still holds it
    assert BudgetItem.get("app:Chatbot", "monthly").status == "suspended"
    assert operator(stack, "restore", "app:Chatbot")["status"] == "SUCCEEDED"
    assert denied_now(stack) == set()


def test_a_team_and_a_member_session_keep_each_others_deny(stack, workflow):
    iam = stack.client("iam")
    iam.create_role(RoleName=SHARED_ROLE, AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
    TeamItem(f"session:{SHARED_ROLE}/alice", team="data").save()
    set_budget("team:data", "monthly")
    set_budget(f"session:{SHARED_ROLE}/alice", "daily")
    workflow.max_wait_seconds = 60
    spend(session_arn(SHARED_ROLE, "alice"), "1.5")
    for run in executions(stack):
        wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    operator(stack, "restore", f"session:{SHARED_ROLE}/alice", window="daily")
    assert denied_now(stack) == {f"session:{SHARED_ROLE}/alice"}
    operator(stack, "restore", "team:data")
    assert denied_now(stack) == set()


# 4. Claimed attribution (requestMetadata) never gets someone else suspended.


def test_spend_claimed_for_an_app_denies_the_claimer_not_the_apps_role(stack, workflow):
    iam = stack.client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument="{}")  # the production app
    iam.create_user(UserName="mallory")
    set_budget("app:Chatbot", "daily", "1")
    workflow.max_wait_seconds = 60
    # The app spends 0.60 through its own role; mallory claims the app's name for 0.90 more
    spend(session_arn(ROLE, "chat-fn"), "0.6")
    spend(user_arn("mallory"), "0.9", request_metadata={"app": "Chatbot"})
    run = exceeded_run(stack)
    wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    # The app's budget is over (1.50 of 1), charged in full for the reports; only mallory is denied
    assert denied_now(stack) == {"user:mallory"}
    suspended = next(n for n in notifications(stack) if n["type"] == "suspended")
    assert suspended["spent_usd"] == "1.5"
    # When the app's own spend alone passes the limit, its role is denied too
    spend(session_arn(ROLE, "chat-fn"), "0.5")
    operator(stack, "restore", "app:Chatbot")
    spend(session_arn(ROLE, "chat-fn"), "0.01")
    for execution in executions(stack):
        if execution["status"] == "RUNNING":
            wait_for_state(stack, execution["executionArn"], "WaitForRefresh")
    assert denied_now(stack) == {"user:mallory", f"role:{ROLE}"}


# 5. A failed attach, a Lambda that dies in grace, a restore that dies: never stuck for good.


def test_a_role_at_its_policy_quota_gets_an_alert_and_is_not_left_in_grace(stack, workflow, monkeypatch):
    from moto.iam.exceptions import LimitExceededException
    from moto.iam.models import IAMBackend

    real_attach = IAMBackend.attach_role_policy

    def at_quota(self, policy_arn, role_name):
        # moto's IAM does not enforce the quota of 10 managed policies per role: IAM's answer
        if role_name == ROLE:
            raise LimitExceededException("Cannot exceed quota for PoliciesPerRole: 10")
        return real_attach(self, policy_arn, role_name)

    monkeypatch.setattr(IAMBackend, "attach_role_policy", at_quota)
    stack.client("iam").create_role(RoleName=ROLE, AssumeRolePolicyDocument="{}")
    set_budget(f"role:{ROLE}")
    spend(session_arn(ROLE, "i-0abc"), "1.5")
    finish_all(stack)
    assert types(stack) == ["grace", "cannot_suspend"]
    alert = next(n for n in notifications(stack) if n["type"] == "cannot_suspend")
    assert "PoliciesPerRole" in alert["note"]
    assert BudgetItem.get(f"role:{ROLE}", "daily").status == "critical"
    assert holders_by_entry() == {}


def test_a_run_that_dies_in_grace_is_recovered_and_enforced_by_the_next_sweep(stack, workflow, monkeypatch):
    stack.client("iam").create_user(UserName="cleo")
    set_budget("user:cleo")
    real_apply = DenyTasks.apply_denies
    failures = {"left": 1}

    def dies_once(self, state):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("the Lambda ran out of time")
        return real_apply(self, state)

    monkeypatch.setitem(DENY_TASKS, "apply_denies", dies_once)
    spend(user_arn("cleo"), "1.5")
    (failed,) = finish_all(stack)
    assert failed["status"] == "FAILED"
    assert BudgetItem.get("user:cleo", "daily").status == "grace"
    # The sweep finds grace with no run left: back to critical, and a new attempt enforces it
    report = sweep()
    assert report["recovered"] == ["user:cleo|daily"] and report["evaluations"] == ["user:cleo|daily"]
    finish_all(stack)
    assert [e["name"] for e in executions(stack) if e["status"] == "SUCCEEDED"] == [failed["name"] + "-a2"]
    assert denied_now(stack) == set()  # suspended, then restored at the refresh (waits are 0 s here)
    assert types(stack) == ["grace", "workflow_failed", "grace", "suspended", "restored"]


def test_after_a_failed_run_the_next_start_is_a_new_attempt_not_already_handled(stack, workflow, monkeypatch):
    stack.client("iam").create_user(UserName="dev")
    set_budget("user:dev")
    real_evaluate = WorkflowTasks.evaluate
    failures = {"left": 1}

    def fails_once(self, state, attempts=3):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("DynamoDB was unavailable")
        return real_evaluate(self, state, attempts)

    monkeypatch.setitem(TASKS, "evaluate", fails_once)
    spend(user_arn("dev"), "1.5")
    (failed,) = finish_all(stack)
    assert failed["status"] == "FAILED"
    sweep()
    finish_all(stack)
    assert "suspended" in types(stack)


def test_a_restore_that_dies_half_way_is_finished_by_the_sweep(stack, workflow, monkeypatch, clock):
    stack.client("iam").create_user(UserName="eve")
    set_budget("user:eve")
    workflow.max_wait_seconds = 60
    spend(user_arn("eve"), "1.5")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
    real_release = DenyTasks.release_denies
    failures = {"left": 1}

    def dies_once(self, state):
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("the Lambda ran out of time")
        return real_release(self, state)

    monkeypatch.setitem(DENY_TASKS, "release_denies", dies_once)
    assert operator(stack, "restore", "user:eve")["status"] == "FAILED"
    assert BudgetItem.get("user:eve", "daily").status == "restoring"
    assert denied_now(stack) == {"user:eve"}
    sweep()  # too early: a restore may still be under way
    clock.advance(RESTORING_STUCK_AFTER)
    report = sweep()
    finish_all(stack)
    assert report["restores"] == ["user:eve|daily"]
    assert BudgetItem.get("user:eve", "daily").status == "ok"
    assert denied_now(stack) == set()


# 8. An operator's restore during the grace period; a grace period that outlasts its window.


def test_a_restore_during_the_grace_period_stops_the_run_and_leaves_no_deny(stack, workflow):
    stack.client("iam").create_user(UserName="finn")
    set_budget("user:finn")
    BudgetItem("user:finn", "daily").update(actions=[BudgetItem.grace_seconds.set(600)])
    workflow.max_wait_seconds = 60
    spend(user_arn("finn"), "1.5")
    run = exceeded_run(stack)
    wait_for_state(stack, run["executionArn"], "GracePeriod")
    assert operator(stack, "restore", "user:finn", reason="approved overspend")["status"] == "SUCCEEDED"
    assert wait_for_execution(stack, run["executionArn"], timeout=10)["status"] == "ABORTED"
    assert denied_now(stack) == set() and holders_by_entry() == {}
    assert BudgetItem.get("user:finn", "daily").status == "ok"


def test_a_grace_period_that_outlasts_its_window_stands_down(stack, workflow, clock):
    # Given an overspend two minutes before midnight, with a five-minute grace period
    midnight = clock().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    clock.set(midnight - timedelta(minutes=2))
    stack.client("iam").create_user(UserName="gus")
    set_budget("user:gus")
    BudgetItem("user:gus", "daily").update(actions=[BudgetItem.grace_seconds.set(300)])
    workflow.max_wait_seconds = 60
    spend(user_arn("gus"), "1.5", timestamp=iso_utc(clock()))
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "GracePeriod")
    # When the grace period ends after the window did
    clock.set(midnight + timedelta(minutes=3))
    workflow.release()
    finish_all(stack)
    # Then nobody is suspended for a window that is over (no suspend-and-restore in one instant)
    assert types(stack) == ["grace", "stood_down"]
    assert denied_now(stack) == set()
    assert BudgetItem.get("user:gus", "daily").limit_usd == Decimal(1)
