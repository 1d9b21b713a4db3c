"""Per-session denies on moto (budgetkeeper.enforcement.session_denies): IAM roles and IAM Identity Center.

moto does not evaluate policies: each test reads the policy back and checks its condition against
the sessions' requests with the IAM evaluator (tests/iam_eval.py).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from budgetkeeper.domain.policies import (
    BEDROCK_DENY_ACTIONS,
    MANAGED_POLICY_LIMIT,
    SESSION_DENY_SID,
    SOURCE_IDENTITY_DENY_SID,
    SSO_DENY_SID,
    PolicyTooLarge,
    SessionDenies,
    session_denies_of,
    session_deny_document,
    sso_users_of,
)
from budgetkeeper.enforcement.identity_center import (
    IdentityCenter,
    IdentityCenterConnection,
    InlinePolicyNotAsWritten,
    connect_identity_center,
)
from budgetkeeper.enforcement.role_sessions import (
    MAX_POLICY_VERSIONS,
    OPT_IN_TAG_KEY,
    OPT_IN_TAG_VALUE,
    POLICY_PATH,
    RoleNotOptedIn,
    SessionPolicyRejected,
    restore_session,
    session_policy_name,
    suspend_session,
)
from budgetkeeper.enforcement.session_denies import Outcome, deny_session_scope, restore_session_scope
from tests.iam_eval import Principal, invoke_model_denied, policy_size, role_session, sso_session
from tests.opt_in import OPTED_IN

REGION = "us-east-1"
ROLE = "ChatbotApp-BedrockRole"
SSO_ROLE = "AWSReservedSSO_DataScience_4f1c9a7e2b5d8c30"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


@pytest.fixture
def iam(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("iam", region_name=REGION)
        client.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST), Tags=OPTED_IN)
        yield client


def role_id(iam: Any) -> str:
    return iam.get_role(RoleName=ROLE)["Role"]["RoleId"]


def attached_session_policies(iam: Any) -> list[str]:
    attached = iam.list_attached_role_policies(RoleName=ROLE, PathPrefix=POLICY_PATH)["AttachedPolicies"]
    return [policy["PolicyArn"] for policy in attached]


def policy_document(iam: Any) -> dict[str, Any]:
    """The role's session policy, as IAM holds it: found through the role's attachments."""
    (arn,) = attached_session_policies(iam)
    version = iam.get_policy(PolicyArn=arn)["Policy"]["DefaultVersionId"]
    return iam.get_policy_version(PolicyArn=arn, VersionId=version)["PolicyVersion"]["Document"]


def suspended_sessions(iam: Any) -> SessionDenies:
    """The sessions the role's attached session policy holds (none when no policy is attached)."""
    return session_denies_of(policy_document(iam)) if attached_session_policies(iam) else SessionDenies()


def denied_by_iam(iam: Any, evaluator: Any, session: str, source_identity: str | None = None) -> bool:
    """Whether IAM denies Bedrock to this session, the role's attached session policy among its policies."""
    if not attached_session_policies(iam):
        return False
    document = policy_document(iam)
    for statement in document["Statement"]:
        assert statement["Effect"] == "Deny" and statement["Action"] == list(BEDROCK_DENY_ACTIONS)
    caller = role_session(ROLE, session, role_id=role_id(iam), source_identity=source_identity)
    (denied,) = invoke_model_denied(evaluator, {"session-policy": document}, [caller])
    return denied


def our_policies(iam: Any) -> list[dict[str, Any]]:
    return iam.list_policies(Scope="Local", PathPrefix=POLICY_PATH)["Policies"]


# --- roles the account manages ------------------------------------------------------------------


def test_one_session_of_a_shared_role_is_denied_and_another_is_not(iam_evaluator, iam):
    result = suspend_session(iam, ROLE, "chat-fn")
    assert result.changed and "created and attached" in result.message

    (arn,) = attached_session_policies(iam)
    policy = iam.get_policy(PolicyArn=arn)["Policy"]
    assert policy["Path"] == POLICY_PATH and policy["PolicyName"] == session_policy_name(ROLE)
    document = policy_document(iam)
    (statement,) = document["Statement"]
    assert statement["Sid"] == SESSION_DENY_SID
    patterns = statement["Condition"]["StringLike"]["aws:userid"]
    assert patterns == [f"{role_id(iam)}:chat-fn"]
    assert denied_by_iam(iam, iam_evaluator, "chat-fn") and not denied_by_iam(iam, iam_evaluator, "batch-fn")
    assert suspended_sessions(iam) == SessionDenies(frozenset({"chat-fn"}))


SESSIONS = ("alice", "bob", "carol")


@pytest.mark.parametrize(
    ("suspend_order", "restore_order"),
    [(SESSIONS, restore) for restore in itertools.permutations(SESSIONS)]
    + [(("carol", "alice", "bob"), SESSIONS)],
)
def test_three_sessions_suspended_and_restored_in_any_order(iam_evaluator, iam, suspend_order, restore_order):
    expected: set[str] = set()
    for session in suspend_order:
        assert suspend_session(iam, ROLE, session).changed
        expected.add(session)
        assert {s for s in (*SESSIONS, "dave") if denied_by_iam(iam, iam_evaluator, s)} == expected
        assert len(attached_session_policies(iam)) == 1
    for session in restore_order:
        result = restore_session(iam, ROLE, session)
        assert result.changed
        expected.discard(session)
        assert {s for s in (*SESSIONS, "dave") if denied_by_iam(iam, iam_evaluator, s)} == expected
        assert result.denies == SessionDenies(frozenset(expected))
    assert attached_session_policies(iam) == []
    assert our_policies(iam) == []
    assert "detached and deleted" in result.message


def test_repeats_are_no_ops_that_say_so(iam):
    assert restore_session(iam, ROLE, "alice").message == f"session alice of {ROLE} was not denied"
    first = suspend_session(iam, ROLE, "alice")
    again = suspend_session(iam, ROLE, "alice")
    assert not again.changed and "already denied" in again.message
    assert again.version_id == first.version_id
    assert not restore_session(iam, ROLE, "bob").changed
    assert len(iam.list_policy_versions(PolicyArn=first.policy_arn)["Versions"]) == 1


def test_a_detached_policy_is_attached_again_on_a_repeat(iam):
    first = suspend_session(iam, ROLE, "alice")
    iam.detach_role_policy(RoleName=ROLE, PolicyArn=first.policy_arn)
    again = suspend_session(iam, ROLE, "alice")
    assert not again.changed and "re-attached" in again.message
    assert attached_session_policies(iam) == [first.policy_arn]


def test_versions_rotate_at_iams_limit_of_five(iam):
    policy_arn = suspend_session(iam, ROLE, "s0").policy_arn
    expected = {"s0"}
    for index in range(1, 9):
        suspend_session(iam, ROLE, f"s{index}")
        expected.add(f"s{index}")
        if index % 3 == 0:
            restore_session(iam, ROLE, f"s{index - 1}")
            expected.discard(f"s{index - 1}")
        versions = iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]
        assert len(versions) <= MAX_POLICY_VERSIONS
        (default,) = [v for v in versions if v["IsDefaultVersion"]]
        newest = max(versions, key=lambda v: int(v["VersionId"][1:]))
        assert default["VersionId"] == newest["VersionId"]
        # the oldest were deleted: what is left is the newest run of version numbers
        numbers = sorted(int(v["VersionId"][1:]) for v in versions)
        assert numbers == list(range(numbers[-1] - len(numbers) + 1, numbers[-1] + 1))
        assert suspended_sessions(iam) == SessionDenies(frozenset(expected))
    assert numbers[-1] > MAX_POLICY_VERSIONS


def long_session_names(count: int) -> list[str]:
    return [f"{index:04d}-" + "x" * 59 for index in range(count)]  # 64 characters, IAM's maximum


def fill_to_the_limit(iam: Any) -> list[str]:
    names: list[str] = []
    for name in long_session_names(200):
        denies = SessionDenies(frozenset([*names, name]))
        if policy_size(session_deny_document(role_id(iam), denies)) > MANAGED_POLICY_LIMIT:
            return names
        suspend_session(iam, ROLE, name)
        names.append(name)
    raise AssertionError("never reached the limit")


def test_a_suspension_over_6144_characters_raises_and_writes_nothing(iam_evaluator, iam):
    names = fill_to_the_limit(iam)
    policy_arn = attached_session_policies(iam)[0]
    before_versions = iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]
    before_document = policy_document(iam)
    assert policy_size(before_document) <= MANAGED_POLICY_LIMIT

    with pytest.raises(PolicyTooLarge) as raised:
        suspend_session(iam, ROLE, "one-too-many-" + "y" * 51)
    assert raised.value.limit == MANAGED_POLICY_LIMIT and raised.value.size > MANAGED_POLICY_LIMIT

    assert iam.list_policy_versions(PolicyArn=policy_arn)["Versions"] == before_versions
    assert policy_document(iam) == before_document
    assert not denied_by_iam(iam, iam_evaluator, "one-too-many-" + "y" * 51)
    assert all(denied_by_iam(iam, iam_evaluator, name) for name in names[:3])

    # the scope entry point applies the fallback rule: alert only, the role budget as backstop
    outcome = deny_session_scope(f"session:{ROLE}/one-too-many-{'y' * 51}", iam=iam, identity_center=None)
    assert outcome.outcome is Outcome.ALERT_ONLY
    assert "6144" in outcome.message and "role budget is the backstop" in outcome.message
    assert iam.list_policy_versions(PolicyArn=policy_arn)["Versions"] == before_versions


def test_source_identity_is_denied_alongside_the_session(iam_evaluator, iam):
    suspend_session(iam, ROLE, "laptop-1", source_identity="alice")
    suspend_session(iam, ROLE, "ci-run", source_identity=None)
    statements = {s["Sid"]: s for s in policy_document(iam)["Statement"]}
    assert statements[SOURCE_IDENTITY_DENY_SID]["Condition"] == {
        "StringEquals": {"aws:SourceIdentity": ["alice"]}
    }
    # alice under any session name she picks is denied through her source identity
    assert denied_by_iam(iam, iam_evaluator, "a-new-name", source_identity="alice")
    assert not denied_by_iam(iam, iam_evaluator, "a-new-name", source_identity="bob")

    restore_session(iam, ROLE, "laptop-1", source_identity="alice")
    assert SOURCE_IDENTITY_DENY_SID not in {s["Sid"] for s in policy_document(iam)["Statement"]}
    assert denied_by_iam(iam, iam_evaluator, "ci-run") and not denied_by_iam(
        iam, iam_evaluator, "a-new-name", source_identity="alice"
    )

    # a source identity never outlives the last session
    suspend_session(iam, ROLE, "laptop-2", source_identity="carol")
    restore_session(iam, ROLE, "ci-run")
    restore_session(iam, ROLE, "laptop-2")
    assert attached_session_policies(iam) == [] and our_policies(iam) == []


def test_scope_entry_points(iam):
    scope = f"session:{ROLE}/chat-fn"
    assert deny_session_scope(scope, iam=iam, identity_center=None).outcome is Outcome.DENIED
    assert deny_session_scope(scope, iam=iam, identity_center=None).outcome is Outcome.ALREADY_DENIED
    assert restore_session_scope(scope, iam=iam, identity_center=None).outcome is Outcome.RESTORED
    assert restore_session_scope(scope, iam=iam, identity_center=None).outcome is Outcome.NOT_DENIED

    missing = deny_session_scope("session:NoSuchRole/chat-fn", iam=iam, identity_center=None)
    assert missing.outcome is Outcome.ALERT_ONLY and "does not exist" in missing.message


class AttachRefused:
    """IAM as moto answers it, except that attaching a policy hits the role's quota."""

    def __init__(self, iam: Any) -> None:
        self._iam = iam

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iam, name)

    def attach_role_policy(self, **kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "LimitExceeded", "Message": "Cannot exceed quota for PoliciesPerRole: 10"}},
            "AttachRolePolicy",
        )


def test_a_role_at_its_policy_quota_gets_alerts_and_keeps_no_policy(iam):
    outcome = deny_session_scope(f"session:{ROLE}/chat-fn", iam=AttachRefused(iam), identity_center=None)
    assert outcome.outcome is Outcome.ALERT_ONLY and "PoliciesPerRole" in outcome.message
    assert our_policies(iam) == [] and attached_session_policies(iam) == []


def test_sso_roles_are_never_changed_in_iam(iam):
    with pytest.raises(ValueError, match="Identity Center"):
        suspend_session(iam, SSO_ROLE, "priya@example.com")


def test_a_deleted_role_leaves_no_policy_behind(iam):
    policy_arn = suspend_session(iam, ROLE, "alice").policy_arn
    iam.detach_role_policy(RoleName=ROLE, PolicyArn=policy_arn)
    iam.delete_role(RoleName=ROLE)
    result = restore_session(iam, ROLE, "alice")
    assert result.changed and "no longer exists" in result.message
    assert our_policies(iam) == []
    with pytest.raises(ClientError):
        iam.get_policy(PolicyArn=policy_arn)


# --- IAM Identity Center ------------------------------------------------------------------------

CUSTOMER_STATEMENTS = [
    {"Sid": "ReadTeamData", "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"},
    {
        "Sid": "OnlyOurRegions",
        "Effect": "Deny",
        "NotAction": ["iam:*", "sts:*"],
        "Resource": "*",
        "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}},
    },
    {"Effect": "Allow", "Action": "bedrock:InvokeModel*", "Resource": "*"},
]


@pytest.fixture
def sso(aws_env: None) -> Iterator[tuple[Any, str, str]]:
    """sso-admin with a DataScience permission set assigned to an account (so it can be provisioned)."""
    with mock_aws():
        client = boto3.client("sso-admin", region_name=REGION)
        instance_arn = client.list_instances()["Instances"][0]["InstanceArn"]
        client.create_permission_set(InstanceArn=instance_arn, Name="Developers")
        arn = client.create_permission_set(InstanceArn=instance_arn, Name="DataScience")["PermissionSet"][
            "PermissionSetArn"
        ]
        client.create_account_assignment(
            InstanceArn=instance_arn,
            TargetId="111122223333",
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=arn,
            PrincipalType="GROUP",
            PrincipalId="g-data-science",
        )
        yield client, instance_arn, arn


def inline_policy(client: Any, instance_arn: str, arn: str) -> str:
    return client.get_inline_policy_for_permission_set(InstanceArn=instance_arn, PermissionSetArn=arn)[
        "InlinePolicy"
    ]


def sso_denied(
    evaluator: Any, document: dict[str, Any], user: str, role_id: str = "AROAQWERTYUIOPASDFGHJ"
) -> bool:
    """Whether IAM denies Bedrock to `user`'s session of the permission set (its inline policy)."""
    caller: Principal = sso_session(SSO_ROLE, user, role_id=role_id)
    (denied,) = invoke_model_denied(evaluator, {"inline-policy": document}, [caller])
    return denied


def test_an_sso_session_is_denied_through_its_permission_set(iam_evaluator, sso):
    client, instance_arn, arn = sso
    theirs = json.dumps({"Version": "2012-10-17", "Statement": CUSTOMER_STATEMENTS}, indent=2)
    client.put_inline_policy_to_permission_set(
        InstanceArn=instance_arn, PermissionSetArn=arn, InlinePolicy=theirs
    )
    connection = IdentityCenterConnection(IdentityCenter(client, instance_arn))
    priya, tom = f"session:{SSO_ROLE}/priya@example.com", f"session:{SSO_ROLE}/tom.berg@example.com"

    outcome = deny_session_scope(priya, iam=None, identity_center=connection)
    assert outcome.outcome is Outcome.DENIED
    document = json.loads(inline_policy(client, instance_arn, arn))
    assert document["Statement"][:3] == CUSTOMER_STATEMENTS  # theirs untouched, in order
    ours = document["Statement"][3]
    assert ours["Sid"] == SSO_DENY_SID and ours["Effect"] == "Deny"
    assert ours["Condition"] == {"StringLike": {"aws:userid": ["*:priya@example.com"]}}
    assert sso_denied(iam_evaluator, document, "priya@example.com")
    assert sso_denied(
        iam_evaluator, document, "priya@example.com", role_id="AROAOTHERACCOUNTROLE1"
    )  # any account
    assert not sso_denied(iam_evaluator, document, "tom.berg@example.com")
    assert client.list_accounts_for_provisioned_permission_set(
        InstanceArn=instance_arn, PermissionSetArn=arn
    )["AccountIds"]

    assert deny_session_scope(priya, iam=None, identity_center=connection).outcome is Outcome.ALREADY_DENIED
    assert deny_session_scope(tom, iam=None, identity_center=connection).outcome is Outcome.DENIED
    assert restore_session_scope(priya, iam=None, identity_center=connection).outcome is Outcome.RESTORED
    document = json.loads(inline_policy(client, instance_arn, arn))
    assert document["Statement"][:3] == CUSTOMER_STATEMENTS
    assert not sso_denied(iam_evaluator, document, "priya@example.com") and sso_denied(
        iam_evaluator, document, "tom.berg@example.com"
    )

    assert restore_session_scope(tom, iam=None, identity_center=connection).outcome is Outcome.RESTORED
    assert json.loads(inline_policy(client, instance_arn, arn)) == json.loads(
        theirs
    )  # ours gone, theirs intact
    assert restore_session_scope(tom, iam=None, identity_center=connection).outcome is Outcome.NOT_DENIED


def test_a_permission_set_without_an_inline_policy_gets_none_back(sso):
    client, instance_arn, arn = sso
    center = IdentityCenter(client, instance_arn)
    result = center.suspend_session("DataScience", "priya@example.com")
    assert result.changed and result.permission_set_arn == arn and result.provisioning_request_id
    assert sso_users_of(inline_policy(client, instance_arn, arn)) == {"priya@example.com"}
    assert center.restore_session("DataScience", "priya@example.com").changed
    assert inline_policy(client, instance_arn, arn) == ""  # deleted, not left empty


def test_an_sso_suspension_over_the_limit_writes_nothing(sso):
    client, instance_arn, arn = sso
    padding = {"Sid": "Big", "Effect": "Allow", "Action": "s3:GetObject", "Resource": ["*" * 10_000]}
    theirs = json.dumps({"Version": "2012-10-17", "Statement": [padding]})
    client.put_inline_policy_to_permission_set(
        InstanceArn=instance_arn, PermissionSetArn=arn, InlinePolicy=theirs
    )
    connection = IdentityCenterConnection(IdentityCenter(client, instance_arn))
    outcome = deny_session_scope(
        f"session:{SSO_ROLE}/priya@example.com", iam=None, identity_center=connection
    )
    assert outcome.outcome is Outcome.ALERT_ONLY and "10240" in outcome.message
    assert inline_policy(client, instance_arn, arn) == theirs


def test_an_unknown_permission_set_gets_alerts_only(sso):
    client, instance_arn, _ = sso
    connection = IdentityCenterConnection(IdentityCenter(client, instance_arn))
    outcome = deny_session_scope(
        "session:AWSReservedSSO_Gone_0123456789abcdef/priya@example.com", iam=None, identity_center=connection
    )
    assert outcome.outcome is Outcome.ALERT_ONLY and "no permission set named Gone" in outcome.message


def test_connect_identity_center_assumes_the_admin_role(aws_env):
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        admin = iam.create_role(
            RoleName="BudgetkeeperIdentityCenterAdmin", AssumeRolePolicyDocument=json.dumps(TRUST)
        )
        connection = connect_identity_center(admin["Role"]["Arn"], region_name=REGION)
        assert connection.reason is None and connection.center is not None
        expected = boto3.client("sso-admin", region_name=REGION).list_instances()["Instances"][0][
            "InstanceArn"
        ]
        assert connection.center.instance_arn == expected

        given = connect_identity_center(
            admin["Role"]["Arn"],
            region_name=REGION,
            instance_arn="arn:aws:sso:::instance/ssoins-1234567890abcdef",
        )
        assert given.center is not None and given.center.instance_arn.endswith("ssoins-1234567890abcdef")

    assert connect_identity_center(None).center is None
    assert "not set" in str(connect_identity_center(None).reason)


# --- opt-in and read-back -----------------------------------------------------------------------

ALLOW_EVERYTHING = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def test_a_role_that_did_not_opt_in_gets_no_session_deny_and_an_alert_saying_how(iam):
    # Given a role without the opt-in tag
    iam.create_role(RoleName="NotOptedIn", AssumeRolePolicyDocument=json.dumps(TRUST))
    # When one of its sessions is suspended
    outcome = deny_session_scope("session:NotOptedIn/bob", iam=iam, identity_center=None)
    # Then nothing is written, and the alert says why, how to opt in, and what the backstop is
    assert outcome.outcome is Outcome.ALERT_ONLY
    assert "has not opted in" in outcome.message and "the role budget is the backstop" in outcome.message
    assert (
        "aws iam tag-role --role-name NotOptedIn --tags Key=budgetkeeper:session-denies,Value=enabled"
        in outcome.message
    )
    assert our_policies(iam) == []
    with pytest.raises(RoleNotOptedIn):
        suspend_session(iam, "NotOptedIn", "bob")
    # And once an operator tags it, the same suspension goes through
    iam.tag_role(RoleName="NotOptedIn", Tags=[{"Key": OPT_IN_TAG_KEY, "Value": OPT_IN_TAG_VALUE}])
    assert suspend_session(iam, "NotOptedIn", "bob").changed
    iam.untag_role(RoleName="NotOptedIn", TagKeys=[OPT_IN_TAG_KEY])
    assert deny_session_scope("session:NotOptedIn/carl", iam=iam, identity_center=None).outcome is (
        Outcome.ALERT_ONLY
    )
    # A role that left the opt-in is still restored: lifting our Deny grants nothing
    assert restore_session(iam, "NotOptedIn", "bob").changed
    assert our_policies(iam) == []


class TamperedReadBack:
    """The IAM client, except that GetPolicyVersion answers with another document."""

    def __init__(self, iam: Any, document: dict[str, Any]) -> None:
        self._iam = iam
        self._document = document

    def __getattr__(self, name: str) -> Any:
        return getattr(self._iam, name)

    def get_policy_version(self, **kwargs: Any) -> dict[str, Any]:
        answer = self._iam.get_policy_version(**kwargs)
        answer["PolicyVersion"]["Document"] = self._document
        return answer


def tampered(iam: Any) -> list[dict[str, Any]]:
    """Documents that are not our Deny: an Allow, and our own deny turned into NotAction."""
    ours = session_deny_document(role_id(iam), SessionDenies(frozenset({"chat-fn"})))
    (statement,) = ours["Statement"]
    not_action = {k: v for k, v in statement.items() if k != "Action"} | {"NotAction": statement["Action"]}
    return [
        ALLOW_EVERYTHING,
        {**ours, "Statement": [statement, {**statement, "Effect": "Allow"}]},
        {**ours, "Statement": [not_action]},
    ]


@pytest.mark.parametrize("case", range(3))
def test_a_new_session_policy_that_reads_back_as_not_our_deny_is_removed(iam, case):
    with pytest.raises(SessionPolicyRejected) as rejected:
        suspend_session(TamperedReadBack(iam, tampered(iam)[case]), ROLE, "chat-fn")
    assert rejected.value.problems and rejected.value.role_name == ROLE
    # Nothing is left: no policy under /budgetkeeper/, nothing attached to the role
    assert our_policies(iam) == [] and attached_session_policies(iam) == []


def test_an_updated_session_policy_that_reads_back_as_not_our_deny_is_detached_and_deleted(iam):
    suspend_session(iam, ROLE, "chat-fn")
    with pytest.raises(SessionPolicyRejected, match="Effect is 'Allow'"):
        suspend_session(TamperedReadBack(iam, ALLOW_EVERYTHING), ROLE, "embed-fn")
    assert our_policies(iam) == [] and attached_session_policies(iam) == []


def test_a_default_version_set_by_someone_else_is_rejected(iam):
    # Given someone who makes their own document the default as soon as ours is written
    suspend_session(iam, ROLE, "chat-fn")
    (arn,) = attached_session_policies(iam)
    real_create = iam.create_policy_version

    def racing(**kwargs: Any) -> dict[str, Any]:
        created = real_create(**kwargs)
        theirs = session_deny_document(role_id(iam), SessionDenies(frozenset({"someone-else"})))
        real_create(PolicyArn=arn, PolicyDocument=json.dumps(theirs), SetAsDefault=True)
        return created

    iam.create_policy_version = racing
    # When the next session is suspended, then the policy is removed: the default is not ours
    with pytest.raises(SessionPolicyRejected, match="default version"):
        suspend_session(iam, ROLE, "embed-fn")
    assert our_policies(iam) == []


class AdministratorSavingAfterUs:
    """sso-admin, with another administrator who read the inline policy before our write and saves
    their edit of it just after ours (`times` times): our statement is then gone from what is in force."""

    def __init__(self, client: Any, edit: dict[str, Any], times: int = 1) -> None:
        self._client, self._edit, self._times = client, edit, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def put_inline_policy_to_permission_set(self, **arguments: Any) -> Any:
        before = self._client.get_inline_policy_for_permission_set(
            InstanceArn=arguments["InstanceArn"], PermissionSetArn=arguments["PermissionSetArn"]
        )["InlinePolicy"]
        answer = self._client.put_inline_policy_to_permission_set(**arguments)
        if self._times:
            self._times -= 1
            theirs = json.loads(before) if before else {"Version": "2012-10-17", "Statement": []}
            theirs["Statement"] = [*theirs["Statement"], self._edit]
            self._client.put_inline_policy_to_permission_set(
                **{**arguments, "InlinePolicy": json.dumps(theirs)}
            )
        return answer


def test_an_inline_policy_changed_just_after_our_write_is_read_back_and_ours_merged_again(sso, iam_evaluator):
    # Given an administrator who saves an edit of the DataScience inline policy just after our write
    client, instance_arn, arn = sso
    edit = {"Sid": "TheirNewStatement", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    center = IdentityCenter(AdministratorSavingAfterUs(client, edit), instance_arn)
    # When priya's session is suspended
    result = center.suspend_session("DataScience", "priya@example.com")
    # Then what is in force holds their edit and our deny: ours was read back, found gone, written again
    document = json.loads(inline_policy(client, instance_arn, arn))
    assert edit in document["Statement"]
    assert sso_denied(iam_evaluator, document, "priya@example.com")
    assert result.users == {"priya@example.com"}


def test_an_inline_policy_that_keeps_changing_is_not_taken_for_a_deny_in_force(sso):
    client, instance_arn, _ = sso
    edit = {"Sid": "TheirNewStatement", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}
    center = IdentityCenter(AdministratorSavingAfterUs(client, edit, times=10), instance_arn)
    with pytest.raises(InlinePolicyNotAsWritten, match="the deny is not in force"):
        center.suspend_session("DataScience", "priya@example.com")
