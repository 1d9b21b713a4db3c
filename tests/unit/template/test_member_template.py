"""templates/member-account.yaml: the deny policy, the enforcement role and who may assume it.

The member account is the evaluator's account (123456789012); the central account, where the
Budgetkeeper stack and its DenyFunction run, is another account of the same organization.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from budgetkeeper.domain.policies import BEDROCK_DENY_ACTIONS
from budgetkeeper.enforcement.accounts import MEMBER_DENY_POLICY, MEMBER_ROLE_NAME, member_role_arn
from budgetkeeper.enforcement.role_sessions import OPT_IN_TAG_KEY, OPT_IN_TAG_VALUE
from devkit.harness.organization import MEMBER_TEMPLATE_PATH
from devkit.harness.template import load_template
from tests.deployed_template import (
    concrete_plain_template,
    concrete_template,
    role_policies,
    stack_role_request,
)
from tests.iam_eval import ACCOUNT, REGION, Principal, Request, iam_user, role_session

CENTRAL = "111122223333"
ORGANIZATION = "o-a1b2c3d4e5"
CENTRAL_DENY_ROLE = f"arn:aws:iam::{CENTRAL}:role/budgetkeeper-DenyFunctionRole-1A2B3C4D5E6F"
PARAMETERS = {
    "CentralDenyFunctionRoleArn": CENTRAL_DENY_ROLE,
    "OrganizationId": ORGANIZATION,
    "LogDestinationArn": f"arn:aws:logs:{REGION}:{CENTRAL}:destination:budgetkeeper-invocations",
    "EnforcementRegion": REGION,
}
ENFORCEMENT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/BudgetkeeperEnforcement"
MEMBER_DENY = f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/BudgetkeeperBedrockDeny"
SESSION_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/budgetkeeper-sessions-ChatbotApp-BedrockRole"
CUSTOMER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ChatbotApp-BedrockRole"
OPTED_IN = {OPT_IN_TAG_KEY: OPT_IN_TAG_VALUE}


def member(parameters: dict[str, str] | None = None) -> dict:
    return concrete_plain_template(load_template(MEMBER_TEMPLATE_PATH), {**PARAMETERS, **(parameters or {})})


def in_organization(principal: Principal, organization: str = ORGANIZATION) -> Principal:
    return Principal(principal.arn, {**principal.context, "aws:PrincipalOrgID": organization})


# --- the deny policy: the central stack's, in this account ----------------------------------------


def test_the_member_deny_policy_is_the_central_stacks_document():
    central = load_template()["Resources"]["BedrockDenyPolicy"]["Properties"]["PolicyDocument"]
    here = load_template(MEMBER_TEMPLATE_PATH)["Resources"]["BedrockDenyPolicy"]["Properties"]
    assert here["PolicyDocument"] == central
    assert here["PolicyDocument"]["Statement"][0]["Action"] == list(BEDROCK_DENY_ACTIONS)
    assert here["Path"] == "/budgetkeeper/"


def test_the_names_the_deny_function_reaches_are_the_templates():
    resources = member()["Resources"]
    assert member_role_arn("aws", ACCOUNT) == ENFORCEMENT_ROLE
    assert resources["EnforcementRole"]["Properties"]["RoleName"] == MEMBER_ROLE_NAME
    policy = resources["BedrockDenyPolicy"]["Properties"]
    assert f"policy{policy['Path']}{policy['ManagedPolicyName']}" == MEMBER_DENY_POLICY


def test_iam_resources_exist_once_per_account_in_the_enforcement_region():
    assert {"BedrockDenyPolicy", "EnforcementRole"} <= set(member()["Resources"])
    elsewhere = member({"EnforcementRegion": "eu-west-1"})["Resources"]
    assert set(elsewhere) == {"InvocationLogGroup", "InvocationLogSubscription"}


# --- the invocation log: subscribed to the central destination ------------------------------------


def test_the_invocation_log_goes_to_the_central_destination_with_the_central_filter():
    central = load_template()["Resources"]["InvocationLogSubscription"]["Properties"]
    subscription = member()["Resources"]["InvocationLogSubscription"]["Properties"]
    assert subscription["DestinationArn"] == PARAMETERS["LogDestinationArn"]
    assert subscription["FilterPattern"] == central["FilterPattern"]
    assert "RoleArn" not in subscription  # a cross-account destination takes none
    existing = member({"CreateInvocationLogGroup": "false"})["Resources"]
    assert "InvocationLogGroup" not in existing
    assert (
        existing["InvocationLogSubscription"]["Properties"]["LogGroupName"] == "/aws/bedrock/modelinvocations"
    )


# --- the enforcement role: exactly the DenyFunction's IAM writes -----------------------------------


def enforcement_statements() -> dict[str, dict]:
    (policy,) = member()["Resources"]["EnforcementRole"]["Properties"]["Policies"]
    return {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}


def test_the_role_holds_the_deny_functions_iam_statements_for_this_accounts_deny_policy():
    template = concrete_template("defaults")
    central_deny = template["resolve"]({"Ref": "BedrockDenyPolicy"})
    central = {
        statement["Sid"]: statement
        for document in role_policies(template, "DenyFunctionRole").values()
        for statement in document["Statement"]
        if "Sid" in statement and "iam:" in str(statement["Action"])
    }
    ours = enforcement_statements()
    # The central stack's roles are named after the stack; the member's one role has its own name.
    assert ours.pop("NeverOnOwnRolesByName")["Resource"] == ENFORCEMENT_ROLE
    del central["NeverOnOwnRolesByName"]
    as_member = {sid: replaced(statement, central_deny, MEMBER_DENY) for sid, statement in central.items()}
    assert ours == as_member


def replaced(node: object, old: str, new: str) -> object:
    if isinstance(node, dict):
        return {key: replaced(value, old, new) for key, value in node.items()}
    if isinstance(node, list):
        return [replaced(item, old, new) for item in node]
    return new if node == old else node


def enforcement_may(iam_evaluator, action: str, target: str, policy_arn: str, tags: dict[str, str]) -> str:
    (policy,) = member()["Resources"]["EnforcementRole"]["Properties"]["Policies"]
    session = role_session("BudgetkeeperEnforcement", "budgetkeeper-deny", role_id="AROAENFORCEMENTROLE1")
    keys = {"iam:PolicyARN": policy_arn, **{f"aws:ResourceTag/{k}": v for k, v in tags.items()}}
    request = Request(session, action, target, {policy["PolicyName"]: policy["PolicyDocument"]}, keys)
    return iam_evaluator.decide(request).result


@pytest.mark.parametrize(
    ("action", "target", "policy_arn", "tags"),
    [
        ("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice", MEMBER_DENY, {}),
        ("iam:DetachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice", MEMBER_DENY, {}),
        ("iam:AttachRolePolicy", CUSTOMER_ROLE, MEMBER_DENY, {}),
        ("iam:DetachGroupPolicy", f"arn:aws:iam::{ACCOUNT}:group/budgetkeeper/teams/data", MEMBER_DENY, {}),
        ("iam:AttachRolePolicy", CUSTOMER_ROLE, SESSION_POLICY, OPTED_IN),
        ("iam:DetachRolePolicy", CUSTOMER_ROLE, SESSION_POLICY, {}),
    ],
)
def test_the_role_may_attach_and_detach_the_deny(iam_evaluator, action, target, policy_arn, tags):
    assert enforcement_may(iam_evaluator, action, target, policy_arn, tags) == "Allowed"


def test_the_role_writes_session_policies_only_under_its_path(iam_evaluator):
    (policy,) = member()["Resources"]["EnforcementRole"]["Properties"]["Policies"]
    session = role_session("BudgetkeeperEnforcement", "budgetkeeper-deny", role_id="AROAENFORCEMENTROLE1")
    documents = {policy["PolicyName"]: policy["PolicyDocument"]}
    allowed = [("iam:CreatePolicyVersion", SESSION_POLICY), ("iam:DeletePolicy", SESSION_POLICY)]
    refused = [
        ("iam:CreatePolicyVersion", MEMBER_DENY),
        ("iam:CreatePolicy", f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/other"),
        ("iam:PutRolePolicy", CUSTOMER_ROLE),
        ("iam:TagRole", CUSTOMER_ROLE),
        ("iam:UntagRole", ENFORCEMENT_ROLE),
        ("iam:UpdateAssumeRolePolicy", ENFORCEMENT_ROLE),
        ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT}:user/mallory"),
        ("sts:AssumeRole", f"arn:aws:iam::{ACCOUNT}:role/OrganizationAccountAccessRole"),
    ]
    decisions = iam_evaluator.evaluate(
        Request(session, action, resource, documents) for action, resource in allowed + refused
    )
    assert [d.allowed for d in decisions] == [True] * len(allowed) + [False] * len(refused), decisions


def test_the_role_attaches_no_other_policy_and_never_to_a_budgetkeeper_role(iam_evaluator):
    for policy in (
        "arn:aws:iam::aws:policy/AdministratorAccess",
        f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/x",
    ):
        for action, target in [
            ("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice"),
            ("iam:AttachRolePolicy", CUSTOMER_ROLE),
        ]:
            assert enforcement_may(iam_evaluator, action, target, policy, OPTED_IN) != "Allowed", (
                policy,
                target,
            )
    tagged = {"budgetkeeper:stack-role": "StackSet-budgetkeeper-member", **OPTED_IN}
    for policy in (MEMBER_DENY, SESSION_POLICY):
        for action in ("iam:AttachRolePolicy", "iam:DetachRolePolicy"):
            assert enforcement_may(iam_evaluator, action, CUSTOMER_ROLE, policy, tagged) == "ExplicitlyDenied"
            # Itself, by its name, were its tag ever taken off
            assert (
                enforcement_may(iam_evaluator, action, ENFORCEMENT_ROLE, policy, OPTED_IN)
                == "ExplicitlyDenied"
            )


# --- who may assume it: the central DenyFunction's role, and no one else ---------------------------

MAY_ASSUME_ANY_ROLE = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
}
DENY_FUNCTION = role_session(
    "budgetkeeper-DenyFunctionRole-1A2B3C4D5E6F",
    "DenyFunction",
    role_id="AROADENYFUNCTIONROLE",
    account=CENTRAL,
)


def may_assume(iam_evaluator, principal: Principal) -> bool:
    trust = member()["Resources"]["EnforcementRole"]["Properties"]["AssumeRolePolicyDocument"]
    request = Request(
        principal,
        "sts:AssumeRole",
        ENFORCEMENT_ROLE,
        identity_policies={"MayAssumeAnyRole": MAY_ASSUME_ANY_ROLE},
        resource_policy=trust,
        resource_account=ACCOUNT,
    )
    return iam_evaluator.decide(request).allowed


def test_the_central_deny_function_may_assume_the_role(iam_evaluator):
    assert may_assume(iam_evaluator, in_organization(DENY_FUNCTION))


@pytest.mark.parametrize(
    "principal",
    [
        # Another role, and a user, of the central account
        in_organization(
            role_session("OperatorRole", "ops", role_id="AROAOPERATOROPERATOR1", account=CENTRAL)
        ),
        in_organization(iam_user("admin", account=CENTRAL)),
        # The DenyFunction role's name in another account of the organization, and in this one
        in_organization(
            role_session(
                "budgetkeeper-DenyFunctionRole-1A2B3C4D5E6F",
                "DenyFunction",
                role_id="AROADENYFUNCTIONOTHER",
                account="444455556666",
            )
        ),
        in_organization(role_session("Admin", "admin", role_id="AROAMEMBERADMINROLE1", account=ACCOUNT)),
        # The central account, once it has left the organization
        in_organization(DENY_FUNCTION, "o-zzzzzzzzzz"),
        DENY_FUNCTION,
    ],
    ids=["central-operator", "central-user", "same-name-elsewhere", "member-admin", "left-org", "no-org"],
)
def test_no_other_principal_may_assume_the_role(iam_evaluator, principal):
    assert not may_assume(iam_evaluator, principal)


# --- the central side: the DenyFunction's grant (template.yaml, OrganizationId set) ------------------


@pytest.mark.parametrize(
    ("role", "resource_organization", "allowed"),
    [
        ("arn:aws:iam::444455556666:role/BudgetkeeperEnforcement", ORGANIZATION, True),
        ("arn:aws:iam::444455556666:role/BudgetkeeperEnforcement", "o-zzzzzzzzzz", False),
        ("arn:aws:iam::444455556666:role/OrganizationAccountAccessRole", ORGANIZATION, False),
        ("arn:aws:iam::444455556666:role/budgetkeeper/BudgetkeeperEnforcement", ORGANIZATION, False),
    ],
    ids=["member-role", "outside-the-organization", "another-role", "another-path"],
)
def test_the_deny_function_assumes_only_member_enforcement_roles_of_its_organization(
    iam_evaluator, role, resource_organization, allowed
):
    # The central stack resolved in the evaluator's account; the member account is another one
    template = concrete_template("everything-set")
    central_role = template["resolve"]({"Fn::GetAtt": ["DenyFunctionRole", "Arn"]})
    trust = member({"CentralDenyFunctionRoleArn": central_role})["Resources"]["EnforcementRole"]["Properties"]
    request = stack_role_request(
        "everything-set",
        "DenyFunctionRole",
        "sts:AssumeRole",
        role,
        {"aws:ResourceOrgID": resource_organization},
    )
    request = replace(
        request,
        principal=in_organization(request.principal),
        resource_policy=trust["AssumeRolePolicyDocument"],
        resource_account="444455556666",
    )
    assert iam_evaluator.decide(request).allowed is allowed, iam_evaluator.decide(request)


# --- the central side: the log destination the member stacks subscribe to -------------------------


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (in_organization(iam_user("admin", account="444455556666")), True),
        (
            in_organization(
                role_session("StackSets", "deploy", role_id="AROASTACKSETEXEC0001", account="444455556666")
            ),
            True,
        ),
        (in_organization(iam_user("admin", account="777788889999"), "o-zzzzzzzzzz"), False),
        (iam_user("admin", account="777788889999"), False),
    ],
    ids=["member-admin", "member-stackset-role", "another-organization", "no-organization"],
)
def test_only_the_organizations_accounts_may_subscribe_to_the_log_destination(
    iam_evaluator, principal, allowed
):
    template = concrete_template("everything-set")
    destination = central_destination(template)
    arn = template["resolve"]({"Fn::GetAtt": ["OrganizationLogDestination", "Arn"]})
    policy = json.loads(destination["DestinationPolicy"])
    assert policy["Statement"][0]["Resource"] == arn
    request = Request(
        principal,
        "logs:PutSubscriptionFilter",
        arn,
        identity_policies={
            "MaySubscribeAnywhere": {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "logs:PutSubscriptionFilter", "Resource": "*"}],
            }
        },
        resource_policy=policy,
        resource_account=ACCOUNT,
    )
    assert iam_evaluator.decide(request).allowed is allowed, iam_evaluator.decide(request)


def test_the_log_destination_writes_only_to_the_usage_stream():
    template = concrete_template("everything-set")
    role = template["Resources"]["OrganizationLogDestinationRole"]["Properties"]
    stream = template["resolve"]({"Fn::GetAtt": ["UsageDeliveryStream", "Arn"]})
    (policy,) = role["Policies"]
    assert policy["PolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Action": ["firehose:PutRecord", "firehose:PutRecordBatch"], "Resource": stream}
    ]
    (trust,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "logs.amazonaws.com"}
    assert trust["Condition"] == {"StringEquals": {"aws:SourceOrgID": "o-a1b2c3d4e5"}}
    assert central_destination(template)["TargetArn"] == stream


def central_destination(template: dict) -> dict:
    """The destination's properties (not an IAM resource, so concrete_template leaves it out), resolved."""
    return template["resolve"](load_template()["Resources"]["OrganizationLogDestination"]["Properties"])
