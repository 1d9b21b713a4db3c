"""Suspending one person on a shared role, through the real workflow on moto.

moto cannot evaluate policies, so each test reads the policy back and checks its condition against
each session's request with the IAM evaluator (tests/iam_eval.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from budgetkeeper.enforcement.denies import DenyEntry
from budgetkeeper.enforcement.iam_denies import EntryKind
from budgetkeeper.enforcement.role_sessions import session_policy_name
from budgetkeeper.storage.tables import BudgetItem, TeamItem
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import real_handlers, wait_for_state
from tests.iam_eval import invoke_model_denied, role_session, sso_session
from tests.integration.conftest import MOTO_CONFIG
from tests.integration.test_enforcement_workflow import (
    ACCOUNT,
    exceeded_run,
    finish_all,
    notifications,
    operator,
    set_budget,
    spend,
    types,
)
from tests.opt_in import OPTED_IN

SHARED_ROLE = "SharedAnalystRole"
SSO_ROLE = "AWSReservedSSO_DataScience_4f1c9a7e2b5d8c30"
IDENTITY_CENTER_ADMIN = "arn:aws:iam::123456789012:role/IdentityCenterAdmin"


def session_arn(role: str, session: str) -> str:
    return f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{session}"


@pytest.fixture
def workflow(stack, settings):
    with real_handlers(stack) as waits:
        yield waits


@pytest.fixture
def shared_role(stack) -> str:
    role = stack.client("iam").create_role(RoleName=SHARED_ROLE, AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
    return role["Role"]["RoleId"]


def session_policy(stack) -> dict | None:
    iam = stack.client("iam")
    attached = iam.list_attached_role_policies(RoleName=SHARED_ROLE)["AttachedPolicies"]
    ours = [p for p in attached if p["PolicyName"] == session_policy_name(SHARED_ROLE)]
    if not ours:
        return None
    policy = iam.get_policy(PolicyArn=ours[0]["PolicyArn"])["Policy"]
    version = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"])
    document = version["PolicyVersion"]["Document"]
    return json.loads(document) if isinstance(document, str) else document


def denied(evaluator, document: dict | None, role_id: str, session: str) -> bool:
    """Whether IAM denies Bedrock to this session of the shared role, its session policy attached."""
    if document is None:
        return False
    assert all(statement["Effect"] == "Deny" for statement in document["Statement"])
    caller = role_session(SHARED_ROLE, session, role_id=role_id)
    (is_denied,) = invoke_model_denied(evaluator, {"session-policy": document}, [caller])
    return is_denied


def test_one_session_on_a_shared_role_is_denied_and_another_is_not(
    iam_evaluator, stack, workflow, shared_role
):
    set_budget(f"session:{SHARED_ROLE}/alice@example.com")
    workflow.max_wait_seconds = 3
    spend(session_arn(SHARED_ROLE, "alice@example.com"), "1.5")
    spend(session_arn(SHARED_ROLE, "bob@example.com"), "0.2")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
    document = session_policy(stack)
    assert denied(iam_evaluator, document, shared_role, "alice@example.com")
    assert not denied(iam_evaluator, document, shared_role, "bob@example.com")
    # The role itself carries no deny policy of its own
    attached = stack.client("iam").list_attached_role_policies(RoleName=SHARED_ROLE)["AttachedPolicies"]
    assert stack.physical_ids["BedrockDenyPolicy"] not in [p["PolicyArn"] for p in attached]
    finish_all(stack)
    assert session_policy(stack) is None  # restored at the refresh: detached and deleted


def test_three_sessions_suspended_and_restored_out_of_order(iam_evaluator, stack, workflow, shared_role):
    sessions = ["ann", "ben", "cat"]
    workflow.max_wait_seconds = 120
    for name in sessions:
        set_budget(f"session:{SHARED_ROLE}/{name}")
        spend(session_arn(SHARED_ROLE, name), "1.5")
    for run in [e for e in _executions(stack) if e["name"].startswith("exceeded")]:
        wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    assert all(denied(iam_evaluator, session_policy(stack), shared_role, name) for name in sessions)
    remaining = set(sessions)
    for name in ["ben", "cat", "ann"]:
        operator(stack, "restore", f"session:{SHARED_ROLE}/{name}")
        remaining.discard(name)
        document = session_policy(stack)
        assert {n for n in sessions if denied(iam_evaluator, document, shared_role, n)} == remaining
    assert session_policy(stack) is None


def _executions(stack: LocalStack) -> list[dict]:
    return stack.executions()


def test_a_session_policy_that_would_exceed_6144_characters_falls_back_to_an_alert(
    stack, workflow, shared_role, deny_book
):
    # Given a role whose session policy is nearly full already, every session held by its budget
    n = 0
    while True:
        session = f"{SHARED_ROLE}/{'x' * 40}-{n:04d}@example.com"
        if deny_book.apply(f"session:{session}|daily", [DenyEntry(EntryKind.SESSION, session)]).alert_only:
            break
        n += 1
    before = session_policy(stack)
    one_more = f"{'y' * 40}-0000@example.com"  # as long as the others (IAM allows 64): it cannot fit
    set_budget(f"session:{SHARED_ROLE}/{one_more}")
    spend(session_arn(SHARED_ROLE, one_more), "1.5")
    finish_all(stack)
    # Then nothing is half-written, the operators are told, and the budget stays critical
    assert session_policy(stack) == before
    alert = [n for n in notifications(stack) if n["type"] == "cannot_suspend"]
    assert len(alert) == 1 and "6144" in alert[0]["note"] and "backstop" in alert[0]["note"]
    assert BudgetItem.get(f"session:{SHARED_ROLE}/{one_more}", "daily").status == "critical"


def test_without_the_identity_center_role_an_sso_session_gets_an_alert_only(stack, workflow):
    set_budget(f"session:{SSO_ROLE}/priya@example.com")
    spend(session_arn(SSO_ROLE, "priya@example.com"), "1.5")
    finish_all(stack)
    assert types(stack) == ["grace", "cannot_suspend"]
    assert "IdentityCenterAdminRoleArn" in notifications(stack)[-1]["note"]


@pytest.fixture
def sso_stack(aws_env) -> Iterator[LocalStack]:
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        stack = LocalStack(parameters={"IdentityCenterAdminRoleArn": IDENTITY_CENTER_ADMIN}).create()
        stack.client("iam").create_role(RoleName="IdentityCenterAdmin", AssumeRolePolicyDocument="{}")
        with stack.activated(), real_handlers(stack) as waits:
            yield stack, waits
        parameters.clear_caches()


def data_science_permission_set(sso) -> tuple[str, str]:
    """The Identity Center instance, and its DataScience permission set assigned in ACCOUNT."""
    instance = sso.list_instances()["Instances"][0]["InstanceArn"]
    set_arn = sso.create_permission_set(InstanceArn=instance, Name="DataScience")["PermissionSet"][
        "PermissionSetArn"
    ]
    sso.create_account_assignment(
        InstanceArn=instance,
        TargetId=ACCOUNT,
        TargetType="AWS_ACCOUNT",
        PermissionSetArn=set_arn,
        PrincipalType="USER",
        PrincipalId="user-priya",
    )
    return instance, set_arn


CUSTOMER_STATEMENT = {
    "Sid": "CustomerReadsTheDataLake",
    "Effect": "Allow",
    "Action": ["s3:GetObject"],
    "Resource": "arn:aws:s3:::data-lake/*",
}


def test_an_sso_session_is_denied_through_its_permission_set_and_the_customer_policy_survives(
    iam_evaluator, sso_stack
):
    stack, waits = sso_stack
    sso = stack.client("sso-admin")
    instance, set_arn = data_science_permission_set(sso)
    customer_policy = json.dumps({"Version": "2012-10-17", "Statement": [CUSTOMER_STATEMENT]})
    sso.put_inline_policy_to_permission_set(
        InstanceArn=instance, PermissionSetArn=set_arn, InlinePolicy=customer_policy
    )
    set_budget(f"session:{SSO_ROLE}/priya@example.com")
    waits.max_wait_seconds = 3
    spend(session_arn(SSO_ROLE, "priya@example.com"), "1.5")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")

    def inline() -> dict:
        text = sso.get_inline_policy_for_permission_set(InstanceArn=instance, PermissionSetArn=set_arn)
        return json.loads(text["InlinePolicy"])

    during = inline()
    assert during["Statement"][0] == CUSTOMER_STATEMENT
    ours = [s for s in during["Statement"] if s.get("Sid", "").startswith("Budgetkeeper")]
    assert len(ours) == 1 and ours[0]["Effect"] == "Deny"
    callers = [
        sso_session(SSO_ROLE, user, role_id="AROAEXAMPLEROLEID") for user in ("priya@example.com", "raj")
    ]
    assert invoke_model_denied(iam_evaluator, {"inline-policy": during}, callers) == [True, False]
    finish_all(stack)
    assert inline() == {"Version": "2012-10-17", "Statement": [CUSTOMER_STATEMENT]}


def test_a_team_budget_reaches_members_on_shared_roles_as_well_as_the_team_group(
    iam_evaluator, stack, workflow, shared_role
):
    iam = stack.client("iam")
    iam.create_group(GroupName="research")
    iam.create_user(UserName="uma")
    iam.add_user_to_group(GroupName="research", UserName="uma")
    TeamItem("user:uma", team="research").save()
    TeamItem(f"session:{SHARED_ROLE}/vik@example.com", team="research").save()
    BudgetItem("team:research", "daily", limit_usd=Decimal(2), grace_seconds=0).save()
    workflow.max_wait_seconds = 3
    spend(f"arn:aws:iam::{ACCOUNT}:user/uma", "1")
    spend(session_arn(SHARED_ROLE, "vik@example.com"), "1.5")
    wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
    groups = iam.list_attached_group_policies(GroupName="research")["AttachedPolicies"]
    assert [p["PolicyArn"] for p in groups] == [stack.physical_ids["BedrockDenyPolicy"]]
    assert denied(iam_evaluator, session_policy(stack), shared_role, "vik@example.com")
    finish_all(stack)
    assert iam.list_attached_group_policies(GroupName="research")["AttachedPolicies"] == []
    assert session_policy(stack) is None


def test_the_identity_center_region_parameter_reaches_an_instance_in_another_region(aws_env):
    # Given a stack in us-east-1 whose IAM Identity Center instance lives in eu-west-1
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        stack = LocalStack(
            parameters={
                "IdentityCenterAdminRoleArn": IDENTITY_CENTER_ADMIN,
                "IdentityCenterRegion": "eu-west-1",
            }
        ).create()
        stack.client("iam").create_role(RoleName="IdentityCenterAdmin", AssumeRolePolicyDocument="{}")
        sso = boto3.client("sso-admin", region_name="eu-west-1")
        instance, set_arn = data_science_permission_set(sso)
        with stack.activated(), real_handlers(stack) as waits:
            set_budget(f"session:{SSO_ROLE}/priya@example.com")
            waits.max_wait_seconds = 3
            spend(session_arn(SSO_ROLE, "priya@example.com"), "1.5")
            wait_for_state(stack, exceeded_run(stack)["executionArn"], "WaitForRefresh")
            # Then the session is denied through the permission set in eu-west-1
            text = sso.get_inline_policy_for_permission_set(InstanceArn=instance, PermissionSetArn=set_arn)
            statements = json.loads(text["InlinePolicy"])["Statement"]
            assert [s["Effect"] for s in statements if s.get("Sid", "").startswith("Budgetkeeper")] == [
                "Deny"
            ]
            finish_all(stack)
        parameters.clear_caches()


def test_a_session_of_a_role_that_did_not_opt_in_gets_an_alert_saying_how_to_opt_in(stack, workflow):
    # Given a shared role an operator has not tagged for session denies
    stack.client("iam").create_role(RoleName="UntaggedRole", AssumeRolePolicyDocument="{}")
    set_budget("session:UntaggedRole/alice@example.com")
    # When alice overspends
    spend(session_arn("UntaggedRole", "alice@example.com"), "1.5")
    finish_all(stack)
    # Then nothing is written to IAM, and operators are told why, how to opt in, and the backstop
    assert (
        stack.client("iam").list_policies(Scope="Local", PathPrefix="/budgetkeeper/budgetkeeper-sessions")[
            "Policies"
        ]
        == []
    )
    assert stack.client("iam").list_attached_role_policies(RoleName="UntaggedRole")["AttachedPolicies"] == []
    assert types(stack) == ["grace", "cannot_suspend"]
    note = notifications(stack)[-1]["note"]
    assert "aws iam tag-role --role-name UntaggedRole" in note and "backstop" in note
    assert BudgetItem.get("session:UntaggedRole/alice@example.com", "daily").status == "critical"


@pytest.fixture
def racing_writer(stack) -> Iterator[None]:
    """Someone who makes an Allow the default version of each session policy as soon as it exists."""
    attacker = stack.client("iam")
    allow = json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    )

    def race(parsed, **kwargs):
        attacker.create_policy_version(
            PolicyArn=parsed["Policy"]["Arn"], PolicyDocument=allow, SetAsDefault=True
        )

    session = boto3._get_default_session()
    session.events.register("after-call.iam.CreatePolicy", race, unique_id="racing-writer")
    yield
    session.events.unregister("after-call.iam.CreatePolicy", unique_id="racing-writer")


def test_a_session_policy_changed_behind_our_back_is_removed_and_alerted(
    stack, workflow, shared_role, racing_writer
):
    set_budget(f"session:{SHARED_ROLE}/alice@example.com")
    spend(session_arn(SHARED_ROLE, "alice@example.com"), "1.5")
    finish_all(stack)
    # Then the Allow written behind our back is not left in IAM, attached or not
    assert session_policy(stack) is None
    assert (
        stack.client("iam").list_policies(Scope="Local", PathPrefix="/budgetkeeper/budgetkeeper-sessions")[
            "Policies"
        ]
        == []
    )
    # And operators are told, apart from the suspension that could not happen
    assert types(stack) == ["grace", "session_policy_rejected", "cannot_suspend"]
    rejected = notifications(stack)[1]
    assert rejected["scope"] == f"role:{SHARED_ROLE}" and "Effect is 'Allow'" in rejected["reason"]
    assert "default version is v2, not v1" in rejected["reason"]
