"""The one policy builder (budgetkeeper.domain.policies) and the session-scope helpers: no AWS, no network."""

from __future__ import annotations

import json
import re
import string
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budgetkeeper.domain.policies import (
    BEDROCK_DENY_ACTIONS,
    MANAGED_POLICY_LIMIT,
    OUR_SIDS,
    PERMISSION_SET_INLINE_POLICY_LIMIT,
    SESSION_DENY_SID,
    SOURCE_IDENTITY_DENY_SID,
    SSO_DENY_SID,
    PolicyTooLarge,
    SessionDenies,
    check_size,
    compact_json,
    escape_for_condition,
    merge_statement,
    remove_statement,
    session_denies_of,
    session_deny_document,
    session_deny_problems,
    session_userid,
    sso_deny_statement,
    sso_users_of,
    unescape_condition,
)
from budgetkeeper.domain.scopes import InvalidScope
from budgetkeeper.enforcement.identity_center import IdentityCenterConnection, connect_identity_center
from budgetkeeper.enforcement.role_sessions import POLICY_NAME_LIMIT, session_policy_name
from budgetkeeper.enforcement.session_denies import Outcome, deny_session_scope
from budgetkeeper.enforcement.session_scopes import parse_session_scope, permission_set_name
from tests.iam_eval import Principal, document_fits, invoke_model_denied, policy_size, role_session

ROLE_ID = "AROA3XFRBF535PLBIFPI4"
OTHER_ROLE_ID = "AROAZZZZZZZZZZZZZZZZZ"
SSO_ROLE = "AWSReservedSSO_DataScience_4f1c9a7e2b5d8c30"

# IAM's characters for role session names, [\w+=,.@-] (ASCII), plus attempts at IAM wildcards.
IAM_NAME_CHARACTERS = string.ascii_letters + string.digits + "_+=,.@-"
session_names = st.text(alphabet=IAM_NAME_CHARACTERS + "*?", min_size=1, max_size=64)
source_identities = st.text(alphabet=IAM_NAME_CHARACTERS + "*?$", min_size=2, max_size=64)


def userid_patterns(document: dict[str, Any]) -> list[str]:
    (statement,) = [s for s in document["Statement"] if s.get("Sid") in (SESSION_DENY_SID, SSO_DENY_SID)]
    return statement["Condition"]["StringLike"]["aws:userid"]


def session(name: str, role_id: str = ROLE_ID) -> Principal:
    return role_session("SharedRole", name, role_id=role_id)


def denied(evaluator: Any, document: dict[str, Any], principals: list[Principal]) -> set[str]:
    """The principals (by `aws:userid`) IAM denies Bedrock when `document` is among their policies."""
    verdicts = invoke_model_denied(evaluator, {"document": document}, principals)
    return {
        str(p.context["aws:userid"]) for p, is_denied in zip(principals, verdicts, strict=True) if is_denied
    }


def near_misses(names: set[str]) -> set[str]:
    """Names a loose pattern would also match: wildcards filled in, a character added or dropped."""
    misses = set()
    for name in names:
        misses |= {name.replace("*", "Qz").replace("?", "q"), name.replace("*", ""), "x" + name, name + "x"}
        misses |= {name[1:], name[:-1], name.upper(), name.lower()}
    return {miss for miss in misses if miss} - names


def assert_only_deny(document: dict[str, Any]) -> None:
    statements = document["Statement"]
    assert statements
    for statement in statements:
        assert statement["Effect"] == "Deny"
        assert statement["Action"] == list(BEDROCK_DENY_ACTIONS)
        assert statement["Resource"] == "*"
        assert not {"NotAction", "NotResource", "Principal", "NotPrincipal"} & set(statement)
        assert statement["Sid"] in OUR_SIDS
        assert set(statement["Condition"]) <= {"StringLike", "StringEquals"}


# --- escaping, as IAM evaluates it ---------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=IAM_NAME_CHARACTERS + "*?${}", max_size=40))
def test_escaped_values_match_only_themselves(iam_evaluator, value):
    assert unescape_condition(escape_for_condition(value)) == value
    document = {
        "Version": "2012-10-17",
        "Statement": [sso_deny_statement(["placeholder"])],
    }
    document["Statement"][0]["Condition"]["StringLike"]["aws:userid"] = [
        f"{ROLE_ID}:{escape_for_condition(value)}"
    ]
    loose = {value + "x", "x" + value, value.replace("*", "Q").replace("?", "Q").replace("$", "Q")} - {value}
    principals = [session(name) for name in [value, *sorted(loose)]]
    assert denied(iam_evaluator, document, principals) == {f"{ROLE_ID}:{value}"}


# --- the per-role session document --------------------------------------------------------------


# Each example is one batch for the evaluator (a few ms per request): fewer, smaller examples than
# a pure-Python check would take, each with every near miss of every name.
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    suspended=st.sets(session_names, min_size=1, max_size=8),
    others=st.sets(session_names, max_size=8),
    identities=st.sets(source_identities, max_size=5),
)
def test_session_document_denies_exactly_the_suspended_sessions(iam_evaluator, suspended, others, identities):
    document = session_deny_document(ROLE_ID, SessionDenies(frozenset(suspended), frozenset(identities)))
    assert_only_deny(document)
    patterns = userid_patterns(document)
    assert patterns == sorted(set(patterns))
    assert len(patterns) == len(suspended)
    principals = [session(name) for name in suspended | others | near_misses(suspended)]
    principals += [session(name, OTHER_ROLE_ID) for name in suspended]  # this role only
    assert denied(iam_evaluator, document, principals) == {
        session_userid(ROLE_ID, name) for name in suspended
    }
    by_sid = {statement["Sid"]: statement for statement in document["Statement"]}
    if identities:
        values = by_sid[SOURCE_IDENTITY_DENY_SID]["Condition"]["StringEquals"]["aws:SourceIdentity"]
        assert values == sorted(set(values))
        assert {unescape_condition(value) for value in values} == identities
        # every `$` is one of IAM's special-character variables: no request variable can be formed
        assert all("$" not in re.sub(r"\$\{[*?$]\}", "", value) for value in values)
    else:
        assert SOURCE_IDENTITY_DENY_SID not in by_sid
    assert session_denies_of(json.loads(compact_json(document))) == SessionDenies(
        frozenset(suspended), frozenset(identities)
    )
    assert session_deny_problems(compact_json(document)) == []  # what IAM gives back passes


def test_session_document_shape():
    document = session_deny_document(ROLE_ID, SessionDenies(frozenset(["chat-fn", "batch-fn", "chat-fn"])))
    assert document == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": SESSION_DENY_SID,
                "Effect": "Deny",
                "Action": list(BEDROCK_DENY_ACTIONS),
                "Resource": "*",
                "Condition": {"StringLike": {"aws:userid": [f"{ROLE_ID}:batch-fn", f"{ROLE_ID}:chat-fn"]}},
            }
        ],
    }


def _with(statement: dict[str, Any], **changes: Any) -> dict[str, Any]:
    changed = {**statement, **changes}
    return {key: value for key, value in changed.items() if value is not None}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: [_with(s, Effect="Allow")], "Effect is 'Allow'"),
        (lambda s: [_with(s, Action=None, NotAction=list(BEDROCK_DENY_ACTIONS))], "Action is not exactly"),
        (lambda s: [_with(s, Action=["bedrock:InvokeModel", "iam:PassRole"])], "Action is not exactly"),
        (lambda s: [_with(s, Resource="arn:aws:s3:::x")], "Resource is not *"),
        (lambda s: [_with(s, Principal={"AWS": "*"})], "unexpected keys ['Principal']"),
        (lambda s: [_with(s, Sid="Theirs")], "not one of Budgetkeeper's"),
        (lambda s: [_with(s, Condition={"StringNotLike": s["Condition"]["StringLike"]})], "Condition is not"),
        (lambda s: [_with(s, Condition={"StringLike": {"aws:userid": []}})], "names no session"),
        (lambda s: [s, s], "appears twice"),
        (lambda s: [s, {"Effect": "Allow", "Action": "*", "Resource": "*"}], "Effect is 'Allow'"),
        (lambda s: [], "no statement"),
    ],
)
def test_a_document_that_is_not_our_session_deny_is_named_as_such(change, problem):
    document = session_deny_document(ROLE_ID, SessionDenies(frozenset(["chat-fn"])))
    tampered = {**document, "Statement": change(document["Statement"][0])}
    assert any(problem in found for found in session_deny_problems(tampered)), session_deny_problems(tampered)
    assert session_deny_problems("not json")
    assert session_deny_problems({**document, "Version": "1"})


def test_session_document_refuses_nothing_to_deny_and_bad_input():
    with pytest.raises(ValueError, match="no suspended sessions"):
        session_deny_document(ROLE_ID, SessionDenies())
    with pytest.raises(ValueError, match="RoleId"):
        session_deny_document("arn:aws:iam::111122223333:role/x", SessionDenies(frozenset({"a"})))
    with pytest.raises(ValueError, match="session name"):
        SessionDenies().with_session("")
    with pytest.raises(ValueError, match="source identity"):
        SessionDenies().with_session("a", " alice")


def test_session_denies_add_and_remove():
    denies = SessionDenies().with_session("a", "alice").with_session("b")
    assert denies.denies("a", "alice") and denies.denies("b") and not denies.denies("c")
    assert denies.without_session("a", "alice") == SessionDenies(frozenset({"b"}))
    assert denies.without_session("zz") == denies
    assert not SessionDenies()
    assert session_denies_of(None) == SessionDenies()


# --- the SSO statement --------------------------------------------------------------------------


@settings(max_examples=15, deadline=None)
@given(suspended=st.sets(session_names, min_size=1, max_size=8), others=st.sets(session_names, max_size=8))
def test_sso_statement_denies_exactly_the_suspended_users_in_any_account(iam_evaluator, suspended, others):
    statement = sso_deny_statement(suspended)
    assert_only_deny({"Statement": [statement]})
    document = {"Version": "2012-10-17", "Statement": [statement]}
    # the role id differs in every account the permission set is provisioned to
    principals = [session(user, role_id) for user in suspended for role_id in (ROLE_ID, OTHER_ROLE_ID)]
    principals += [session(user) for user in (others | near_misses(suspended)) - suspended]
    expected = {f"{role_id}:{user}" for user in suspended for role_id in (ROLE_ID, OTHER_ROLE_ID)}
    assert denied(iam_evaluator, document, principals) == expected
    assert sso_users_of({"Statement": [statement]}) == suspended


# --- merging into a customer's inline policy ----------------------------------------------------

customer_statements = st.lists(
    st.fixed_dictionaries(
        {
            "Effect": st.sampled_from(["Allow", "Deny"]),
            "Action": st.one_of(
                st.sampled_from(["s3:GetObject", "ec2:*", "bedrock:InvokeModel"]),
                st.lists(st.sampled_from(["s3:GetObject", "s3:PutObject", "logs:*"]), min_size=1),
            ),
            "Resource": st.sampled_from(["*", "arn:aws:s3:::data/*"]),
        },
        optional={
            "Sid": st.text(alphabet=string.ascii_letters + string.digits, min_size=1, max_size=20).filter(
                lambda sid: sid not in OUR_SIDS
            ),
            "Condition": st.just({"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}}),
        },
    ),
    min_size=1,
    max_size=6,
)


@given(
    customer=customer_statements, users=st.sets(session_names, min_size=1, max_size=5), pretty=st.booleans()
)
def test_merge_and_remove_keep_customer_statements(customer, users, pretty):
    existing = json.dumps(
        {"Version": "2012-10-17", "Id": "team-policy", "Statement": customer}, indent=4 if pretty else None
    )
    merged = merge_statement(existing, sso_deny_statement(users))
    document = json.loads(merged)
    assert document["Id"] == "team-policy" and document["Version"] == "2012-10-17"
    assert document["Statement"][: len(customer)] == customer  # untouched, in order
    assert document["Statement"][len(customer) :] == [sso_deny_statement(users)]
    # replacing ours leaves theirs alone again, and ours stays one statement
    remerged = json.loads(merge_statement(merged, sso_deny_statement(users | {"new.user"})))
    assert remerged["Statement"][: len(customer)] == customer
    assert [s.get("Sid") for s in remerged["Statement"]].count(SSO_DENY_SID) == 1
    assert sso_users_of(remerged) == users | {"new.user"}
    removed = remove_statement(merged, SSO_DENY_SID)
    assert removed is not None
    assert json.loads(removed) == {"Version": "2012-10-17", "Id": "team-policy", "Statement": customer}


def test_merge_replaces_ours_where_it_stands():
    theirs_first = {"Sid": "First", "Effect": "Allow", "Action": "s3:*", "Resource": "*"}
    theirs_last = {"Sid": "Last", "Effect": "Deny", "Action": "ec2:*", "Resource": "*"}
    existing = {"Version": "2012-10-17", "Statement": [theirs_first, sso_deny_statement(["a"]), theirs_last]}
    merged = json.loads(merge_statement(existing, sso_deny_statement(["a", "b"])))
    assert merged["Statement"] == [theirs_first, sso_deny_statement(["a", "b"]), theirs_last]
    assert existing["Statement"][1] == sso_deny_statement(["a"])  # the caller's data is not changed


def test_merge_into_nothing_and_remove_to_nothing():
    merged = merge_statement(None, sso_deny_statement(["a"]))
    assert json.loads(merged) == {"Version": "2012-10-17", "Statement": [sso_deny_statement(["a"])]}
    assert merge_statement("", sso_deny_statement(["a"])) == merged
    assert remove_statement(merged, SSO_DENY_SID) is None
    assert remove_statement(None, SSO_DENY_SID) is None
    assert remove_statement("  ", SSO_DENY_SID) is None


def test_a_single_customer_statement_object_is_kept():
    theirs = {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}
    existing = json.dumps({"Version": "2012-10-17", "Statement": theirs})
    assert json.loads(remove_statement(existing, SSO_DENY_SID)) == json.loads(existing)
    merged = json.loads(merge_statement(existing, sso_deny_statement(["a"])))
    assert merged["Statement"] == [theirs, sso_deny_statement(["a"])]
    assert json.loads(remove_statement(merged, SSO_DENY_SID))["Statement"] == [theirs]


def test_merge_takes_only_our_deny_statements():
    with pytest.raises(ValueError, match="only Budgetkeeper's own Deny"):
        merge_statement(None, {"Sid": SSO_DENY_SID, "Effect": "Allow", "Action": "*", "Resource": "*"})
    with pytest.raises(ValueError, match="only Budgetkeeper's own Deny"):
        merge_statement(None, {"Sid": "Theirs", "Effect": "Deny", "Action": "*", "Resource": "*"})


def test_merge_refuses_documents_it_cannot_read():
    with pytest.raises(ValueError, match="not JSON"):
        merge_statement("{not json", sso_deny_statement(["a"]))
    with pytest.raises(ValueError, match="not a JSON object"):
        merge_statement("[]", sso_deny_statement(["a"]))


# --- sizes --------------------------------------------------------------------------------------


def test_size_is_counted_without_whitespace():
    document = session_deny_document(ROLE_ID, SessionDenies(frozenset({"chat-fn"}), frozenset({"alice"})))
    assert policy_size(json.dumps(document, indent=4)) == policy_size(document) == len(compact_json(document))
    assert " " not in compact_json(document) and "\n" not in compact_json(document)


def padded_document(size: int) -> dict[str, Any]:
    base = {"Version": "2012-10-17", "Statement": [sso_deny_statement(["x"])]}
    padding = size - policy_size(base)
    return {"Version": "2012-10-17", "Statement": [sso_deny_statement(["x" * (padding + 1)])]}


@pytest.mark.parametrize("limit", [MANAGED_POLICY_LIMIT, PERMISSION_SET_INLINE_POLICY_LIMIT])
def test_size_limits_at_the_boundary(limit):
    at_limit, over_limit = padded_document(limit), padded_document(limit + 1)
    assert policy_size(at_limit) == limit and policy_size(over_limit) == limit + 1
    assert document_fits(at_limit, limit) and not document_fits(over_limit, limit)
    assert check_size(at_limit, limit, "policy p") == compact_json(at_limit)
    with pytest.raises(PolicyTooLarge) as raised:
        check_size(over_limit, limit, "policy p")
    assert (raised.value.size, raised.value.limit) == (limit + 1, limit)
    assert "nothing was written" in str(raised.value)


def test_non_ascii_is_counted_as_written():
    document = {"Version": "2012-10-17", "Statement": [sso_deny_statement(["zoë"])]}
    text = compact_json(document)
    assert text.isascii() and "\\u00eb" in text and policy_size(document) == len(text)


def test_managed_policy_holds_a_realistic_number_of_sessions():
    names = {f"session-{index:03d}@example.com" for index in range(100)}
    assert document_fits(session_deny_document(ROLE_ID, SessionDenies(frozenset(names))))


# --- session scopes and names -------------------------------------------------------------------


def test_session_scopes():
    sso = parse_session_scope(f"session:{SSO_ROLE}/priya@example.com")
    assert (sso.role_name, sso.session_name, sso.is_sso, sso.permission_set_name) == (
        SSO_ROLE,
        "priya@example.com",
        True,
        "DataScience",
    )
    app = parse_session_scope("session:ChatbotApp-BedrockRole/chat-fn")
    assert (app.is_sso, app.permission_set_name) == (False, None)
    with pytest.raises(InvalidScope):
        parse_session_scope("role:ChatbotApp-BedrockRole")


@pytest.mark.parametrize(
    ("role_name", "expected"),
    [
        ("AWSReservedSSO_DataScience_4f1c9a7e2b5d8c30", "DataScience"),
        ("AWSReservedSSO_Read_Only_Access_9b2e6d4a1c7f3e58", "Read_Only_Access"),
        ("AWSReservedSSO_Dev_1a2b", "Dev"),
        ("AWSReservedSSO_NoSuffix", None),
        ("ChatbotApp-BedrockRole", None),
    ],
)
def test_permission_set_name(role_name, expected):
    assert permission_set_name(role_name) == expected


def test_policy_names_are_deterministic_and_within_iam_limits():
    assert session_policy_name("ChatbotApp-BedrockRole") == "budgetkeeper-sessions-ChatbotApp-BedrockRole"
    long_name = "r" * 120
    assert session_policy_name(long_name) == session_policy_name(long_name)
    assert len(session_policy_name(long_name)) == POLICY_NAME_LIMIT
    assert session_policy_name(long_name) != session_policy_name("r" * 119 + "s")
    assert len(session_policy_name("r" * 64)) <= POLICY_NAME_LIMIT  # any IAM role name fits unhashed


def test_sso_sessions_without_identity_center_get_alerts_only():
    connection = connect_identity_center("")
    assert connection.center is None and "alerts only" in str(connection.reason)
    outcome = deny_session_scope(
        f"session:{SSO_ROLE}/priya@example.com", iam=None, identity_center=connection
    )
    assert outcome.outcome is Outcome.ALERT_ONLY
    assert "IdentityCenterAdminRoleArn is not set" in outcome.message
    unconnected = deny_session_scope(f"session:{SSO_ROLE}/priya@example.com", iam=None, identity_center=None)
    assert unconnected.outcome is Outcome.ALERT_ONLY
    unparsable = deny_session_scope(
        "session:AWSReservedSSO_NoSuffix/priya@example.com",
        iam=None,
        identity_center=IdentityCenterConnection(center=object()),  # type: ignore[arg-type]
    )
    assert unparsable.outcome is Outcome.ALERT_ONLY and "permission set name" in unparsable.message
