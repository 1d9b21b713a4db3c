"""The real ASL, executed by moto's Step Functions, with Lambda tasks running the real handlers.

Spend comes in through the usage calculator, exactly as in production; the deny policy is read
back from moto IAM.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from budgetkeeper.storage.tables import AuditItem, BudgetItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import wait_for_execution, wait_for_state
from tests.timeline import now_iso

# Among the longest tests (subprocesses, real workflows on moto): `-m 'not slow'` skips them.
pytestmark = pytest.mark.slow

ACCOUNT = "111122223333"
NOVA_PRO = "amazon.nova-pro-v1:0"  # USD 0.80 input, 3.20 output per 1M tokens


def nova_pro_call(
    arn: str, input_tokens: int, *, timestamp: str | None = None, request_metadata: dict | None = None
) -> str:
    return converse_message(
        arn,
        NOVA_PRO,
        input_tokens,
        account=ACCOUNT,
        timestamp=timestamp or now_iso(),
        request_metadata=request_metadata,
    )


def spend(arn: str, usd: str, **kwargs) -> dict:
    """Meter calls of `arn` worth exactly `usd` (Nova Pro input at 0.80 per 1M tokens)."""
    tokens = int(Decimal(usd) / Decimal("0.0000008"))
    return invoke(
        "UsageCalculatorFunction",
        firehose_event([cloudwatch_payload([nova_pro_call(arn, tokens, **kwargs)])]),
    )


def executions(stack: LocalStack) -> list[dict]:
    return stack.executions()


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
    # Over 100%: the run waits for the refresh with the deny attached (held there until released:
    # a wait of a few seconds could end before a loaded machine looks)
    workflow.max_wait_seconds = 60
    spend(alice, "0.10")
    run = next(e for e in executions(stack) if e["name"].startswith("exceeded"))
    wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    assert attached(stack, "alice") == [deny]
    assert BudgetItem.get("user:alice", "daily").status == "suspended"
    workflow.release()
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


def user_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def exceeded_run(stack: LocalStack, scope_hint: str = "exceeded") -> dict:
    return next(e for e in executions(stack) if e["name"].startswith(scope_hint))


def types(stack: LocalStack) -> list[str]:
    return [n["type"] for n in notifications(stack)]


def test_a_daily_and_a_monthly_budget_on_one_scope_are_both_enforced(stack, workflow):
    stack.client("iam").create_user(UserName="dana")
    set_budget("user:dana", "daily", "1")
    set_budget("user:dana", "monthly", "1.5")
    spend(user_arn("dana"), "2")
    finish_all(stack)
    restored = [n for n in notifications(stack) if n["type"] == "restored"]
    # Both windows suspended and restored; whichever restored first left the deny on for the other
    assert types(stack).count("suspended") == 2 and len(restored) == 2
    assert [n["note"] for n in restored].count(None) >= 1
    assert attached(stack, "dana") == []
    assert {item.status for item in BudgetItem.query("user:dana")} == {"ok"}


def test_a_protected_scope_is_never_suspended(stack, workflow):
    stack.client("iam").create_user(UserName="root-admin")
    set_budget("user:root-admin", protected=True, protected_by="cfo", protected_reason="on call")
    spend(user_arn("root-admin"), "3")
    finish_all(stack)
    assert types(stack) == ["protected_alert"]
    assert attached(stack, "root-admin") == []
    assert BudgetItem.get("user:root-admin", "daily").status != "suspended"


def test_a_role_budget_denies_the_role(stack, workflow):
    iam = stack.client("iam")
    iam.create_role(RoleName="AnalyticsRole", AssumeRolePolicyDocument="{}")
    set_budget("role:AnalyticsRole")
    workflow.max_wait_seconds = 60
    spend(f"arn:aws:sts::{ACCOUNT}:assumed-role/AnalyticsRole/dana", "1.2")
    run = exceeded_run(stack)
    wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    policies = iam.list_attached_role_policies(RoleName="AnalyticsRole")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in policies] == [stack.physical_ids["BedrockDenyPolicy"]]
    # The session's own default budget is under its limit: only the role is denied
    assert BudgetItem.get("session:AnalyticsRole/dana", "daily").status == "ok"


def test_a_team_budget_denies_the_team_group(stack, workflow):
    from budgetkeeper.storage.tables import TeamItem

    iam = stack.client("iam")
    iam.create_group(GroupName="data")
    for name in ("erin", "frank"):
        iam.create_user(UserName=name)
        iam.add_user_to_group(GroupName="data", UserName=name)
        TeamItem(f"user:{name}", team="data").save()
    set_budget("team:data", limit="2")
    workflow.max_wait_seconds = 60
    spend(user_arn("erin"), "1.5")
    # The warning run ends before more spend arrives: it would otherwise see the overspend and
    # suspend the team itself, and the exceeded run watched below would find nothing left to do.
    finish_all(stack)
    spend(user_arn("frank"), "1")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
    groups = iam.list_attached_group_policies(GroupName="data")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in groups] == [stack.physical_ids["BedrockDenyPolicy"]]
    workflow.release()
    finish_all(stack)
    assert iam.list_attached_group_policies(GroupName="data")["AttachedPolicies"] == []


def test_dry_run_records_and_notifies_but_leaves_iam_untouched(stack, workflow):
    stack.client("iam").create_user(UserName="gina")
    set_budget("user:gina", dry_run=True)
    spend(user_arn("gina"), "1.5")
    finish_all(stack)
    assert types(stack) == ["grace", "suspended", "restored"]
    assert all(n["dry_run"] for n in notifications(stack)[:2])
    assert attached(stack, "gina") == []
    statuses = [(a.from_status, a.to_status) for a in AuditItem.query("user:gina")]
    assert ("grace", "suspended") in statuses and ("suspended", "ok") in statuses


def operator(stack: LocalStack, action: str, scope: str, reason: str = "ticket OPS-1", **extra) -> dict:
    from budgetkeeper.enforcement.runs import WorkflowStarter, operator_request

    name, request = operator_request(
        action, scope, actor="arn:aws:iam::123456789012:user/oncall", reason=reason, **extra
    )
    starter = WorkflowStarter(
        stack.client("stepfunctions"), stack.physical_ids["BudgetEnforcementStateMachine"]
    )
    return wait_for_execution(stack, starter.start(name, request))


def test_emergency_restore_detaches_at_once_and_aborts_the_waiting_run(stack, workflow):
    stack.client("iam").create_user(UserName="hugo")
    set_budget("user:hugo")
    workflow.max_wait_seconds = 60
    spend(user_arn("hugo"), "1.5")
    waiting = exceeded_run(stack)["executionArn"]
    wait_for_state(stack, waiting, "WaitForRefresh")
    assert attached(stack, "hugo") == [stack.physical_ids["BedrockDenyPolicy"]]
    restore = operator(stack, "restore", "user:hugo", reason="customer demo at 3pm")
    assert restore["status"] == "SUCCEEDED"
    assert attached(stack, "hugo") == []
    assert wait_for_execution(stack, waiting, timeout=10)["status"] == "ABORTED"
    last = list(AuditItem.query("user:hugo"))[-1]
    assert (last.to_status, last.actor, last.reason) == (
        "ok",
        "arn:aws:iam::123456789012:user/oncall",
        "customer demo at 3pm",
    )
    assert last.execution_arn == restore["executionArn"]


def test_the_same_start_twice_suspends_once(stack, workflow):
    from budgetkeeper.enforcement.runs import WorkflowStarter

    stack.client("iam").create_user(UserName="ivan")
    set_budget("user:ivan")
    workflow.max_wait_seconds = 2
    spend(user_arn("ivan"), "1.5")
    first = exceeded_run(stack)
    described = stack.client("stepfunctions").describe_execution(executionArn=first["executionArn"])
    starter = WorkflowStarter(
        stack.client("stepfunctions"), stack.physical_ids["BudgetEvaluationStateMachine"]
    )
    # The same name and input while it runs is the same run; a different input is already handled
    assert starter.start(first["name"], json.loads(described["input"])) == first["executionArn"]
    assert starter.start(first["name"], {**json.loads(described["input"]), "reason": "again"}) is None
    finish_all(stack)
    assert types(stack).count("suspended") == 1 and len(executions(stack)) == 1


def test_overspending_again_after_a_restore_in_the_same_window_suspends_again(stack, workflow):
    stack.client("iam").create_user(UserName="jo")
    set_budget("user:jo")
    workflow.max_wait_seconds = 60
    spend(user_arn("jo"), "1.5")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
    operator(stack, "restore", "user:jo")
    assert BudgetItem.get("user:jo", "daily").revision == 2
    # More spend in the same window: a new revision, a new run, a new suspension
    spend(user_arn("jo"), "0.1")
    second = [e for e in executions(stack) if e["name"].startswith("exceeded") and e["status"] == "RUNNING"]
    assert len(second) == 1
    wait_for_state(stack, second[0]["executionArn"], "WaitForRefresh")
    assert attached(stack, "jo") == [stack.physical_ids["BedrockDenyPolicy"]]
    operator(stack, "restore", "user:jo")


def test_a_manual_suspension_survives_a_window_refresh(stack, workflow):
    stack.client("iam").create_user(UserName="kim")
    set_budget("user:kim")
    suspended = operator(stack, "suspend", "user:kim", reason="leaked key under investigation")
    assert suspended["status"] == "SUCCEEDED"  # no until: the run ends, the deny stays
    assert BudgetItem.get("user:kim", "manual").status == "suspended"
    # The budget is exceeded, suspended and refreshed meanwhile
    spend(user_arn("kim"), "1.5")
    finish_all(stack)
    restored = [n for n in notifications(stack) if n["type"] == "restored"]
    assert [n["note"] for n in restored] == ["still suspended by manual"]
    assert attached(stack, "kim") == [stack.physical_ids["BedrockDenyPolicy"]]
    operator(stack, "restore", "user:kim", reason="investigation closed")
    assert attached(stack, "kim") == []


def test_a_manual_suspension_with_an_end_is_lifted_at_its_end(stack, workflow):
    stack.client("iam").create_user(UserName="lee")
    result = operator(stack, "suspend", "user:lee", reason="cool-off", until=now_iso(timedelta(days=1)))
    assert result["status"] == "SUCCEEDED"  # waits are capped at 0 s here
    assert attached(stack, "lee") == []
    assert types(stack) == ["suspended", "restored"]


def test_late_spend_into_a_closed_window_does_not_suspend(stack, workflow):
    stack.client("iam").create_user(UserName="max")
    set_budget("user:max")
    spend(user_arn("max"), "1.5", timestamp=now_iso(-timedelta(days=9)))
    finish_all(stack)
    assert types(stack) == ["late_spend"]
    assert attached(stack, "max") == []


def test_unprotecting_an_overspent_scope_lets_the_next_sweep_suspend_it(stack, workflow):
    stack.client("iam").create_user(UserName="nia")
    set_budget("user:nia", protected=True, protected_by="cfo", protected_reason="board demo")
    spend(user_arn("nia"), "1.4")
    finish_all(stack)
    assert types(stack) == ["protected_alert"]
    assert operator(stack, "unprotect", "user:nia", reason="demo over")["status"] == "SUCCEEDED"
    invoke("BudgetMonitorFunction", {"source": "aws.events"})
    finish_all(stack)
    assert types(stack) == ["protected_alert", "unprotected", "grace", "suspended", "restored"]


def test_a_task_retried_by_step_functions_runs_once(stack, workflow):
    # ReportFailure notifies every time it runs; Step Functions retries it when the Lambda call
    # fails in transit (same execution, same input): operators must hear of the failure once.
    failure = {"Error": "Iam.ServiceFailureException", "Cause": "IAM is unavailable"}
    state = {"action": "suspend", "scope": "user:pat", "reason": "r", "actor": "ops", "failure": failure}
    event = {
        "task": "report_failure",
        "state": state,
        "execution": "arn:aws:states:us-east-1:1:execution:m:x",
    }
    first = invoke("EnforcementFunction", event)
    again = invoke("EnforcementFunction", event)
    assert first == again
    assert types(stack) == ["workflow_failed"]
    # Another execution failing the same way is another failure, and is told
    invoke("EnforcementFunction", {**event, "execution": "arn:aws:states:us-east-1:1:execution:m:y"})
    assert types(stack) == ["workflow_failed", "workflow_failed"]


def test_a_failed_run_ends_with_the_cause_of_the_step_that_failed(stack, workflow):
    result = operator(stack, "restore", "user:nobody", reason="mistyped scope")
    assert result["status"] == "FAILED"
    assert result["error"] == "InvalidRequest"
    assert "user:nobody is not suspended" in result["cause"]
    assert types(stack) == ["workflow_failed"]


def test_two_runs_evaluating_one_budget_at_once_suspend_it_once(stack, workflow, monkeypatch):
    from budgetkeeper.budgets.rules import Budget
    from budgetkeeper.enforcement.workflow import WorkflowTasks

    stack.client("iam").create_user(UserName="quin")
    set_budget("user:quin")
    workflow.max_wait_seconds = 60
    stale = BudgetItem.get("user:quin", "daily")  # what a second run read before the first wrote
    spend(user_arn("quin"), "1.5")
    first = exceeded_run(stack)
    wait_for_state(stack, first["executionArn"], "WaitForRefresh")
    # Given a second run (a late "critical" one) that read the budget before the first run wrote
    reads = []
    real_budget = WorkflowTasks._budget

    def stale_first_read(self, scope, window):
        if not reads:
            reads.append(scope)
            return stale, Budget.resolve(stale, self.tunables)
        return real_budget(self, scope, window)

    monkeypatch.setattr(WorkflowTasks, "_budget", stale_first_read)
    state = {
        **json.loads(describe(stack, first)["input"]),
        "level": "critical",
    }
    outcome = invoke(
        "EnforcementFunction", {"task": "evaluate", "state": state, "execution": "arn:aws:states:::x:late"}
    )
    # Then it sees, on a fresh read, that the budget is already being enforced: no second grace
    assert outcome["decision"]["next"] == "nothing"
    assert types(stack) == ["grace", "suspended"]
    operator(stack, "restore", "user:quin")


def describe(stack: LocalStack, execution: dict) -> dict:
    return stack.client("stepfunctions").describe_execution(executionArn=execution["executionArn"])


def test_the_workflow_publishes_facts_not_english_reasons(stack, workflow):
    # Given alice's daily budget in Madrid with a five-minute grace period
    stack.client("iam").create_user(UserName="alice")
    BudgetItem(
        "user:alice", "daily", limit_usd=Decimal(1), grace_seconds=300, time_zone="Europe/Madrid"
    ).save()
    workflow.max_wait_seconds = 3
    # When she spends past the warning, then past the limit
    spend(user_arn("alice"), "0.85")
    finish_all(stack)
    spend(user_arn("alice"), "0.20")
    grace_run = exceeded_run(stack)
    wait_for_state(stack, grace_run["executionArn"], "WaitForRefresh")
    by_type = {n["type"]: n for n in notifications(stack)}
    # Then no notice carries the run's English reason: its numbers are fields, worded per reader
    assert all(n["reason"] is None for n in by_type.values())
    warning, grace = by_type["warning"], by_type["grace"]
    assert Decimal(warning["spent_usd"]) == Decimal("0.85") and warning["limit_usd"] == "1"
    # and the budget's time zone, which its readers' times are shown in
    assert {n["time_zone"] for n in by_type.values()} == {"Europe/Madrid"}
    # and what drove the spend, from the scope's rollups
    assert grace["top_model"] == NOVA_PRO and Decimal(grace["top_model_usd"]) == Decimal("1.05")
    # and when the grace period ends and the suspension follows
    at = grace["at"].replace("Z", "+00:00")
    assert datetime.fromisoformat(grace["suspend_at"].replace("Z", "+00:00")) - datetime.fromisoformat(
        at
    ) == (timedelta(seconds=300))
    finish_all(stack)


def test_a_notice_names_the_app_and_the_model_that_drove_the_spend(stack, workflow):
    # Given erin's daily budget of 1 USD, and her calls for two apps (named in requestMetadata)
    stack.client("iam").create_user(UserName="erin")
    set_budget("user:erin")
    workflow.max_wait_seconds = 3
    spend(user_arn("erin"), "0.30", request_metadata={"app": "Chat"})
    # When the calls for the second app take her past the limit
    spend(user_arn("erin"), "0.75", request_metadata={"app": "Search"})
    finish_all(stack)
    # Then her grace notice names the app that cost her most, and what it cost, beside the model
    grace = next(n for n in notifications(stack) if n["type"] == "grace" and n["scope"] == "user:erin")
    assert grace["top_app"] == "app:Search" and Decimal(grace["top_app_usd"]) == Decimal("0.75")
    assert grace["top_model"] == NOVA_PRO and Decimal(grace["top_model_usd"]) == Decimal("1.05")
    # and an app's own notices name no app: all of its spend is its own
    assert all(n["top_app"] is None for n in notifications(stack) if n["scope"].startswith("app:"))
