"""The denies Budgetkeeper writes, as IAM evaluates them (tests/iam_eval.py, iam-simulate).

The deny policy from the template, a role's session policy and a permission set's SSO statement,
each against the broad Allow a Bedrock user holds (as AmazonBedrockFullAccess grants it): the
suspended principal is denied, everyone else is not.
"""

from __future__ import annotations

import fnmatch
import json

import pytest

from budgetkeeper.domain.policies import (
    SESSION_DENY_SID,
    SOURCE_IDENTITY_DENY_SID,
    SSO_DENY_SID,
    SessionDenies,
    merge_statement,
    session_deny_document,
    sso_deny_statement,
)
from tests.deployed_template import concrete_template, managed_policy
from tests.iam_eval import (
    BEDROCK_FULL_ACCESS,
    BEDROCK_SERVICES,
    FOUNDATION_MODEL,
    ActionInfo,
    Principal,
    Request,
    iam_user,
    invoke_model_denied,
    role_session,
    sso_session,
)

ROLE = "ChatbotApp-BedrockRole"
ROLE_ID = "AROA3XFRBF535PLBIFPI4"
OTHER_ROLE_ID = "AROAZZZZZZZZZZZZZZZZZ"
SSO_ROLE = "AWSReservedSSO_DataScience_4f1c9a7e2b5d8c30"
OTHER_ACCOUNT = "444455556666"

# Every IAM action that makes Bedrock spend (or lets a caller spend through a key): a suspension
# must deny each, on every resource type it acts on. Written out action by action, apart from the
# deny's own wildcards, so that dropping an entry from the deny list fails this test.
SPENDING_ACTIONS = (
    "bedrock:InvokeModel",  # also Converse, StartAsyncInvoke, the bidirectional stream, Rerank's models
    "bedrock:InvokeModelWithResponseStream",  # also ConverseStream
    "bedrock:CallWithBearerToken",  # Bedrock API keys
    "bedrock:InvokeAgent",
    "bedrock:InvokeInlineAgent",
    "bedrock:InvokeFlow",
    "bedrock:InvokeDataAutomationAsync",
    "bedrock:Retrieve",  # embeds the query
    "bedrock:RetrieveAndGenerate",
    "bedrock:AgenticRetrieveStream",
    "bedrock:StartFlowExecution",
    "bedrock:GenerateQuery",
    "bedrock:OptimizePrompt",
    "bedrock:ApplyGuardrail",
    "bedrock:CreateModelInvocationJob",
    "bedrock:CreateModelCustomizationJob",
    "bedrock:CreateEvaluationJob",
    "bedrock:CreateModelEvaluationJob",
    "bedrock:CreateProvisionedModelThroughput",
    "bedrock-mantle:CreateInference",
    "bedrock-mantle:CallWithBearerToken",
    "bedrock-mantle:CreateFineTuningJob",
)
# What a suspended principal can still do: look, and manage what it owns.
STILL_ALLOWED = ("bedrock:ListFoundationModels", "bedrock:GetFoundationModel", "bedrock:ListTagsForResource")


@pytest.fixture(scope="module")
def deny_policy() -> dict:
    return managed_policy(concrete_template("defaults"), "BedrockDenyPolicy")


@pytest.fixture(scope="module")
def bedrock_actions(iam_evaluator) -> dict[str, ActionInfo]:
    """Every Bedrock action of the Service Authorization Reference, as the pinned iam-data has it."""
    return {info.action: info for service in BEDROCK_SERVICES for info in iam_evaluator.actions(service)}


def requests_for(info: ActionInfo, principal: Principal, policies: dict) -> list[Request]:
    """One request per resource type the action acts on ("*" for an action without any)."""
    resources = info.resource_arns if not info.wildcard_only else ("*",)
    return [Request(principal, info.action, resource, identity_policies=policies) for resource in resources]


@pytest.fixture(scope="module")
def deny_sweep(iam_evaluator, deny_policy, bedrock_actions):
    """Every Bedrock action on every resource type, for alice suspended (the deny attached) and bob not."""
    suspended = {"AmazonBedrockFullAccess": BEDROCK_FULL_ACCESS, "BedrockDenyPolicy": deny_policy}
    alice, bob = iam_user("alice"), iam_user("bob")
    requests = [
        request
        for info in bedrock_actions.values()
        for request in requests_for(info, alice, suspended)
        + requests_for(info, bob, {"AmazonBedrockFullAccess": BEDROCK_FULL_ACCESS})
    ]
    return iam_evaluator.evaluate(requests)


def test_the_suspended_principal_is_denied_every_spending_action_on_every_resource(
    deny_sweep, bedrock_actions
):
    assert set(SPENDING_ACTIONS) <= set(bedrock_actions), "an action the test names is not in iam-data"
    suspended = [d for d in deny_sweep if d.request.principal.arn.endswith("user/alice")]
    for action in SPENDING_ACTIONS:
        decisions = [d for d in suspended if d.request.action == action]
        assert decisions, action
        for decision in decisions:
            assert decision.explicitly_denied, decision
            assert decision.denying_sids == {"DenyBedrockInference"}, decision


def test_the_deny_reaches_exactly_the_actions_it_names_and_no_one_else(deny_sweep, deny_policy):
    (statement,) = deny_policy["Statement"]
    named = [pattern.lower() for pattern in statement["Action"]]
    for decision in deny_sweep:
        if decision.request.principal.arn.endswith("user/bob"):
            assert decision.allowed, decision  # unsuspended: everything AmazonBedrockFullAccess grants
        else:
            in_the_list = any(fnmatch.fnmatchcase(decision.request.action.lower(), p) for p in named)
            assert decision.explicitly_denied is in_the_list, decision
    denied = {d.request.action for d in deny_sweep if d.explicitly_denied}
    known = {d.request.action.lower() for d in deny_sweep}
    for pattern in named:  # each entry the evaluator's data knows denies an action (all: test_deny_coverage)
        if any(fnmatch.fnmatchcase(action, pattern) for action in known):
            assert any(fnmatch.fnmatchcase(action.lower(), pattern) for action in denied), pattern
    assert not denied & set(STILL_ALLOWED)


def test_the_deny_reaches_roles_groups_and_api_key_users_alike(iam_evaluator, deny_policy):
    principals = [
        role_session(ROLE, "any-session", role_id=ROLE_ID),  # attached to the role
        iam_user("carol"),  # attached to carol's group: a member's identity policies include it
        iam_user("BedrockAPIKey-x7k2"),  # a long-term API key's user
    ]
    assert invoke_model_denied(iam_evaluator, {"BedrockDenyPolicy": deny_policy}, principals) == [True] * 3
    key_calls = iam_evaluator.evaluate(
        Request(p, "bedrock:CallWithBearerToken", identity_policies={"d": deny_policy}) for p in principals
    )
    assert all(decision.explicitly_denied for decision in key_calls)


# --- the per-role session policy ------------------------------------------------------------------

# Session names as callers choose them, IAM wildcards and `$` included; the neighbours a loose
# pattern would also match.
SUSPENDED_SESSIONS = ("alice@example.com", "chat-fn", "a*b", "q?", "x$y", "${aws:username}")
SIBLING_SESSIONS = (
    "bob@example.com",
    "chat-fn2",
    "chat-f",
    "axxb",
    "ab",
    "qq",
    "q",
    "x$yz",
    "alice",
    "bob",  # what ${aws:username} would resolve to if it were not escaped
    "CHAT-FN",
)


@pytest.fixture(scope="module")
def session_policy() -> dict:
    denies = SessionDenies(frozenset(SUSPENDED_SESSIONS), frozenset({"alice@corp", "svc.batch-1"}))
    return json.loads(json.dumps(session_deny_document(ROLE_ID, denies)))


def test_the_suspended_sessions_of_a_role_are_denied_and_their_siblings_are_not(
    iam_evaluator, session_policy
):
    def session(name: str, role_id: str = ROLE_ID) -> Principal:
        return role_session(ROLE, name, role_id=role_id, tags={"team": "bob"})

    documents = {"budgetkeeper-sessions": session_policy}
    suspended = invoke_model_denied(iam_evaluator, documents, [session(name) for name in SUSPENDED_SESSIONS])
    assert suspended == [True] * len(SUSPENDED_SESSIONS)
    siblings = invoke_model_denied(iam_evaluator, documents, [session(name) for name in SIBLING_SESSIONS])
    assert siblings == [False] * len(SIBLING_SESSIONS)
    # The same session name on another role (another RoleId) is another principal
    elsewhere = invoke_model_denied(
        iam_evaluator, documents, [session(n, OTHER_ROLE_ID) for n in SUSPENDED_SESSIONS]
    )
    assert elsewhere == [False] * len(SUSPENDED_SESSIONS)


def test_a_suspended_source_identity_is_denied_whatever_its_session_and_another_is_not(
    iam_evaluator, session_policy
):
    def session(name: str, source_identity: str | None) -> Principal:
        return role_session(ROLE, name, role_id=ROLE_ID, source_identity=source_identity)

    documents = {"budgetkeeper-sessions": session_policy}
    principals = [
        session("renamed-session", "alice@corp"),
        session("svc-run-42", "svc.batch-1"),
        session("renamed-session", "bob@corp"),
        session("renamed-session", "alice@corp2"),
        session("renamed-session", None),
    ]
    assert invoke_model_denied(iam_evaluator, documents, principals) == [True, True, False, False, False]
    decision = iam_evaluator.decide(
        Request(
            principals[0],
            "bedrock:InvokeModel",
            "*",
            identity_policies={"full": BEDROCK_FULL_ACCESS, **documents},
        )
    )
    assert decision.denying_sids == {SOURCE_IDENTITY_DENY_SID}


def test_the_session_policy_denies_every_spending_action(iam_evaluator, session_policy, bedrock_actions):
    alice = role_session(ROLE, "alice@example.com", role_id=ROLE_ID)
    policies = {"full": BEDROCK_FULL_ACCESS, "sessions": session_policy}
    decisions = iam_evaluator.evaluate(
        requests_for(bedrock_actions[action], alice, policies)[0] for action in SPENDING_ACTIONS
    )
    for decision in decisions:
        assert decision.explicitly_denied and decision.denying_sids == {SESSION_DENY_SID}, decision


# --- the SSO statement in a permission set's inline policy ----------------------------------------


def test_the_sso_statement_denies_the_user_in_every_account_and_no_other_user(iam_evaluator, bedrock_actions):
    # Given a permission set whose inline policy (the customer's) allows Bedrock, with ours merged in
    customers = {"Version": "2012-10-17", "Statement": [BEDROCK_FULL_ACCESS["Statement"][0]]}
    inline = json.loads(merge_statement(customers, sso_deny_statement(["priya@example.com", "a*b"])))
    # When the user signs in to any account the set is provisioned to (another role id in each)
    accounts = [("111122223333", "AROAAAAAAAAAAAAAAAAAA"), (OTHER_ACCOUNT, "AROABBBBBBBBBBBBBBBBB")]

    def sessions(user: str) -> list[Principal]:
        return [sso_session(SSO_ROLE, user, role_id=rid, account=account) for account, rid in accounts]

    documents = {"DataScience-inline": inline}
    assert (
        invoke_model_denied(iam_evaluator, documents, sessions("priya@example.com") + sessions("a*b"))
        == [True] * 4
    )
    others = [*sessions("raj@example.com"), *sessions("priya@example.co"), *sessions("axb")]
    assert invoke_model_denied(iam_evaluator, documents, others) == [False] * 6
    # ... every spending action, by our statement
    priya = sessions("priya@example.com")[1]
    decisions = iam_evaluator.evaluate(
        requests_for(bedrock_actions[action], priya, {"inline": inline})[0] for action in SPENDING_ACTIONS
    )
    assert all(d.explicitly_denied and d.denying_sids == {SSO_DENY_SID} for d in decisions)


def test_the_deny_holds_under_a_boundary_a_session_policy_and_an_scp_that_allow_bedrock(
    iam_evaluator, deny_policy
):
    # Given a role session whose boundary, STS session policy and SCPs all allow Bedrock
    everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    caller = role_session(ROLE, "alice@example.com", role_id=ROLE_ID)

    def call(policies: dict) -> Request:
        return Request(
            caller,
            "bedrock:InvokeModel",
            FOUNDATION_MODEL,
            identity_policies=policies,
            session_policy=BEDROCK_FULL_ACCESS,
            permission_boundaries={"boundary": everything},
            service_control_policies={"FullAWSAccess": everything},
        )

    suspended, free = iam_evaluator.evaluate(
        [
            call({"full": BEDROCK_FULL_ACCESS, "BedrockDenyPolicy": deny_policy}),
            call({"full": BEDROCK_FULL_ACCESS}),
        ]
    )
    # Then the deny attached to the role still denies, and without it the call is allowed
    assert suspended.explicitly_denied and suspended.denying_sids == {"DenyBedrockInference"}, suspended
    assert free.allowed, free
