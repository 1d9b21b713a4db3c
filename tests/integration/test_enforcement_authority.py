"""Who may be denied: each finding of the third review (../shared/repros/review3, findings 1 to 4)
as a test through the real state machine and handlers on moto. Each failed on 9f1d962.

1. Each operator's suspension is its own hold: one ending never lifts another; status and the
   audit show every hold; a restore lifts them all.
2. A claim (requestMetadata) reaches its app only, never the team an operator mapped the app to.
3. Protection and the exclusions tunable spare a principal whichever budget's deny would reach it,
   and the notice and the audit name who was spared.
4. An application inference profile's `app` tag is a claim unless an operator registered the
   profile for that app (the `app_profiles` tunable).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.storage.tables import AuditItem, BudgetItem, DenyItem, TeamItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.workflow import real_handlers, wait_for_execution, wait_for_state
from tests.integration.cli_runner import OperatorCli
from tests.integration.test_enforcement_trust import denied_now, put_tunable, session_arn
from tests.integration.test_enforcement_workflow import (
    ACCOUNT,
    executions,
    notifications,
    operator,
    set_budget,
    spend,
    user_arn,
)
from tests.timeline import now_iso


@pytest.fixture
def workflow(stack, settings):
    with real_handlers(stack) as waits:
        waits.max_wait_seconds = 60
        yield waits


def start_operator_run(stack, action: str, scope: str, reason: str, **extra) -> str:
    from budgetkeeper.enforcement.runs import WorkflowStarter, operator_request

    name, request = operator_request(
        action, scope, actor="arn:aws:iam::123456789012:user/oncall", reason=reason, **extra
    )
    starter = WorkflowStarter(
        stack.client("stepfunctions"), stack.physical_ids["BudgetEnforcementStateMachine"]
    )
    return starter.start(name, request)


def wait_for_suspensions(stack) -> None:
    for run in executions(stack):
        if run["status"] == "RUNNING" and run["name"].startswith("exceeded"):
            wait_for_state(stack, run["executionArn"], "WaitForRefresh")


# 1. Manual suspensions never cancel each other.


@pytest.mark.parametrize("timed_first", [True, False], ids=["timed-first", "open-ended-first"])
def test_a_timed_manual_suspension_ending_lifts_only_itself(stack, settings, capsys, workflow, timed_first):
    stack.client("iam").create_user(UserName="mallory")
    cool_off = {"reason": "cool-off 1h", "until": now_iso(timedelta(hours=1))}
    key_leaked = {"reason": "key leaked: until investigated"}
    first, second = (cool_off, key_leaked) if timed_first else (key_leaked, cool_off)
    runs = []
    for suspension in (first, second):
        runs.append(start_operator_run(stack, "suspend", "user:mallory", **suspension))
        wait_for_state(stack, runs[-1], "HasEnd")
    # Both holds show in status, each with its own end
    workflow.deliveries.drain()  # the notifier's log lines are not in status's output
    document = json.loads(OperatorCli(stack, capsys).ok("status", "user:mallory", "--format", "json"))
    holds = {row["window"]: row for row in document["budgets"]}
    assert len(holds) == 2 and all(window.startswith("manual") for window in holds)
    assert sorted(row["status"] for row in holds.values()) == ["suspended", "suspended"]
    assert len(set(DenyItem.get("user:mallory").holders)) == 2
    # When the timed one ends
    timed = runs[0] if timed_first else runs[1]
    workflow.release()
    assert wait_for_execution(stack, timed)["status"] == "SUCCEEDED"
    # Then mallory is still denied, by the open-ended one, and its row is still there
    assert denied_now(stack) == {"user:mallory"}
    (left,) = list(BudgetItem.query("user:mallory"))
    assert (left.status, left.suspended_until, left.suspended_reason) == (
        "suspended",
        None,
        "key leaked: until investigated",
    )
    restored = [n for n in notifications(stack) if n["type"] == "restored"]
    assert [n["reason"] for n in restored] == ["cool-off 1h"]
    # The audit shows both holds and the end of one
    lines = [
        (a.window.startswith("manual"), a.from_status, a.to_status, a.reason)
        for a in AuditItem.query("user:mallory")
    ]
    assert sorted(lines) == sorted(
        [
            (True, "ok", "suspended", "cool-off 1h"),
            (True, "ok", "suspended", "key leaked: until investigated"),
            (True, "suspended", "ok", "cool-off 1h"),
        ]
    )


def test_a_restore_lifts_every_operator_hold_on_the_scope(stack, workflow):
    stack.client("iam").create_user(UserName="mallory")
    for reason in ("cool-off", "key leaked"):
        assert operator(stack, "suspend", "user:mallory", reason=reason)["status"] == "SUCCEEDED"
    assert len(list(BudgetItem.query("user:mallory"))) == 2
    assert operator(stack, "restore", "user:mallory", window="manual")["status"] == "SUCCEEDED"
    assert denied_now(stack) == set()
    assert list(BudgetItem.query("user:mallory")) == []
    assert [n["type"] for n in notifications(stack)].count("restored") == 2


# 2. A claim reaches its app only.


def test_an_outsiders_claim_of_a_teams_app_charges_the_app_not_the_team(stack, workflow):
    iam = stack.client("iam")
    iam.create_group(GroupName="data")
    for user in ("alice", "mallory"):
        iam.create_user(UserName=user)
    iam.add_user_to_group(GroupName="data", UserName="alice")
    TeamItem("user:alice", team="data").save()
    TeamItem("app:DataApp", team="data").save()
    set_budget("team:data", "daily", "1")
    set_budget("app:DataApp", "daily", "1")
    spend(user_arn("alice"), "0.10")
    spend(user_arn("mallory"), "1.40", request_metadata={"app": "DataApp"})
    wait_for_suspensions(stack)
    # The app's budget counts the claim and denies the claimer; the team's counts its member only
    assert denied_now(stack) == {"user:mallory"}
    assert BudgetItem.get("app:DataApp", "daily").status == "suspended"
    assert BudgetItem.get("team:data", "daily").status == "ok"
    assert [e["name"].split("-")[0] for e in executions(stack)] == ["exceeded"]


# 3. Protection follows the target.


def test_a_protected_role_is_spared_by_its_apps_suspension_and_named(stack, workflow):
    role = "ProdChatbot-BedrockRole"
    stack.client("iam").create_role(RoleName=role, AssumeRolePolicyDocument="{}")
    set_budget(f"role:{role}", "daily", "100", protected=True, protected_reason="customer-facing")
    set_budget("app:ProdChatbot", "daily", "1")
    spend(session_arn(role, "chat-fn"), "1.5")
    wait_for_suspensions(stack)
    assert denied_now(stack) == set()
    spared = f"role:{role} is protected (customer-facing): not denied for app:ProdChatbot"
    suspended = next(n for n in notifications(stack) if n["type"] == "suspended")
    assert spared in suspended["note"]
    audit = [line for line in AuditItem.query("app:ProdChatbot") if line.to_status == "suspended"]
    assert len(audit) == 1 and spared in audit[0].reason


def test_an_excluded_member_is_not_denied_through_the_teams_group(stack, settings, workflow):
    iam = stack.client("iam")
    iam.create_group(GroupName="data")
    for user in ("alice", "ci-bot"):
        iam.create_user(UserName=user)
        iam.add_user_to_group(GroupName="data", UserName=user)
        TeamItem(f"user:{user}", team="data").save()
    put_tunable(stack, settings, "exclusions", "user:ci-bot")
    set_budget("team:data", "daily", "1")
    spend(user_arn("alice"), "1.5")
    wait_for_suspensions(stack)
    # The group would reach ci-bot: its other members are denied one by one instead
    assert denied_now(stack) == {"user:alice"}
    suspended = next(n for n in notifications(stack) if n["type"] == "suspended")
    assert (
        "user:ci-bot is excluded by the exclusions parameter: not denied for team:data" in suspended["note"]
    )


# 4. A profile's app tag is a claim unless an operator registered the profile.

SELF_MADE_PROFILE = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/m4ll0ry0wn"


def call_through_profile(arn: str, usd: str) -> None:
    tokens = int(Decimal(usd) / Decimal("0.0000008"))
    message = converse_message(arn, SELF_MADE_PROFILE, tokens, account=ACCOUNT, timestamp=now_iso())
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([message])]))


@pytest.fixture
def chatbot_tagged_profile(monkeypatch):
    # What Bedrock answers for a profile tagged app=Chatbot (moto has no application profiles)
    monkeypatch.setattr(InferenceProfiles, "tags_for", lambda self, arn: {"app": "Chatbot"})
    monkeypatch.setattr(InferenceProfiles, "model_id_for", lambda self, arn: "amazon.nova-pro-v1:0")


def test_a_self_tagged_profile_denies_its_caller_not_the_apps_role(stack, workflow, chatbot_tagged_profile):
    iam = stack.client("iam")
    iam.create_role(RoleName="Chatbot-BedrockRole", AssumeRolePolicyDocument="{}")
    iam.create_user(UserName="mallory")
    set_budget("app:Chatbot", "daily", "1")
    call_through_profile(user_arn("mallory"), "1.5")
    wait_for_suspensions(stack)
    assert denied_now(stack) == {"user:mallory"}


def test_a_registered_profile_is_the_apps_own_spend(stack, settings, workflow, chatbot_tagged_profile):
    iam = stack.client("iam")
    iam.create_role(RoleName="Chatbot-BedrockRole", AssumeRolePolicyDocument="{}")
    iam.create_user(UserName="chatbot-worker")
    put_tunable(stack, settings, "app_profiles", f"{SELF_MADE_PROFILE}=Chatbot")
    set_budget("app:Chatbot", "daily", "1")
    # The same calls as above, through a profile an operator registered for the app
    call_through_profile(user_arn("chatbot-worker"), "1.5")
    wait_for_suspensions(stack)
    # Then its spend is the app's own (trusted): the app's role is denied, as for its own calls
    assert denied_now(stack) == {"role:Chatbot-BedrockRole"}


def test_a_manual_suspension_that_denies_nothing_leaves_no_hold_behind(stack, workflow, monkeypatch):
    from budgetkeeper.enforcement.deny_tasks import DENY_TASKS

    # A user IAM does not know: the deny falls back to an alert
    operator(stack, "suspend", "user:ghost", reason="typo")
    # A run that dies while applying its denies
    stack.client("iam").create_user(UserName="nora")

    def dies(self, state):
        raise RuntimeError("the Lambda ran out of time")

    monkeypatch.setitem(DENY_TASKS, "apply_denies", dies)
    assert operator(stack, "suspend", "user:nora", reason="cool-off")["status"] == "FAILED"
    # Neither left a row that status would show as a hold, nor a deny
    assert list(BudgetItem.query("user:ghost")) == list(BudgetItem.query("user:nora")) == []
    assert denied_now(stack) == set()
