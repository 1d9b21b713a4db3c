"""Suspend one session of a shared role, with injected boto3 clients.

Roles the account manages (`suspend_session`, `restore_session`): one customer-managed policy per
role, `/budgetkeeper/budgetkeeper-sessions-<role name>`, built by `budgetkeeper.domain.policies`. The
policy's default version is the state: the suspended sessions are read from it, changed, and
written back as a new default version (the oldest other version deleted first when IAM's limit of
five is reached). It is created and attached on the first suspension, and detached and deleted when
the last session is restored. Every document is size-checked before anything is written; over
IAM's 6,144 characters `PolicyTooLarge` is raised and nothing changes.

Opt-in: a session policy is attached only to a role tagged `budgetkeeper:session-denies` =
`enabled` (OPT_IN_TAG_KEY, OPT_IN_TAG_VALUE), and IAM enforces it: the DenyFunction may attach
session policies only to roles with that tag (`aws:ResourceTag` condition in template.yaml), and it
may not tag or untag roles. The tag is read from GetRole before anything is written; a role without
it gets the fallback below. Operators opt a role in with
`aws iam tag-role --role-name R --tags Key=budgetkeeper:session-denies,Value=enabled`.

Every document written is read back (GetPolicy, GetPolicyVersion of the new default version) and
checked with `policies.session_deny_problems`: a document that is not exactly our Deny (or a
default version that is not the one just written) is removed with the whole policy, detached
first, and `SessionPolicyRejected` is raised for the caller to alert on. The sessions the policy
denied are then not denied until the reconciler writes the policy again.

Fallback when the role has not opted in, or the policy would be too large (the documented rule):
the session is not denied, an alert says so (scope, role, why, and how to opt in, or the sessions
already denied, size and limit), and the role's own budget is the backstop. `deny_session_scope`
applies that rule and returns it as its outcome.

IAM Identity Center (`IdentityCenter`): `AWSReservedSSO_*` roles cannot be changed in IAM, so the
session's user is denied through the permission set's inline policy, in the management or
delegated-admin account: our one statement is merged into the customer's document, every other
statement left as it was, then the set is re-provisioned to every account it is provisioned to.
`connect_identity_center` assumes the optional `IdentityCenterAdminRoleArn`; without it SSO
sessions get alerts only, and the connection says why.

Session names are chosen by the caller unless the role's trust policy fixes them (or callers must
set `sts:SourceIdentity`): a caller who picks a new name escapes a session deny, and the role budget
is the backstop. IAM is eventually consistent: a deny takes effect after IAM's propagation delay.

Two workflow runs changing the same role's policy at once could lose one change (IAM has no
conditional write): the caller runs changes to one role one at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from budgetkeeper.domain.policies import (
    MANAGED_POLICY_LIMIT,
    PERMISSION_SET_INLINE_POLICY_LIMIT,
    SSO_DENY_SID,
    PolicyTooLarge,
    SessionDenies,
    check_size,
    merge_statement,
    remove_statement,
    session_denies_of,
    session_deny_document,
    session_deny_problems,
    sso_deny_statement,
    sso_users_of,
)
from budgetkeeper.domain.scopes import SSO_ROLE_PREFIX, InvalidScope, ScopeKind, parse_scope

POLICY_PATH = "/budgetkeeper/"
POLICY_NAME_PREFIX = "budgetkeeper-sessions-"
POLICY_NAME_LIMIT = 128  # IAM's limit for a managed policy name
MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy
POLICY_DESCRIPTION = "Bedrock Budgetkeeper: denies Bedrock to suspended sessions of role {role}"
# The tag an operator puts on a role to let Budgetkeeper deny single sessions of it. template.yaml
# conditions the DenyFunction's AttachRolePolicy of session policies on it (aws:ResourceTag).
OPT_IN_TAG_KEY = "budgetkeeper:session-denies"
OPT_IN_TAG_VALUE = "enabled"
ADMIN_SESSION_NAME = "budgetkeeper-session-denies"
_SSO_ROLE = re.compile(rf"{SSO_ROLE_PREFIX}(?P<permission_set>.+)_[0-9a-fA-F]+", re.ASCII)
_ROLE_ARN = re.compile(r"arn:(?P<partition>[^:]+):iam::(?P<account>\d{12}):role/.+", re.ASCII)


# --- scopes -------------------------------------------------------------------------------------


def permission_set_name(role_name: str) -> str | None:
    """The permission set behind `AWSReservedSSO_<PermissionSetName>_<hex>`, or None for other roles."""
    match = _SSO_ROLE.fullmatch(role_name)
    return match.group("permission_set") if match else None


def is_sso_role(role_name: str) -> bool:
    return role_name.startswith(SSO_ROLE_PREFIX)


@dataclass(frozen=True, slots=True)
class SessionScope:
    role_name: str
    session_name: str

    @property
    def is_sso(self) -> bool:
        return is_sso_role(self.role_name)

    @property
    def permission_set_name(self) -> str | None:
        return permission_set_name(self.role_name) if self.is_sso else None


def parse_session_scope(scope: str) -> SessionScope:
    """`session:<role name>/<session name>` read into its role and session; InvalidScope otherwise."""
    parsed = parse_scope(scope)
    if parsed.kind is not ScopeKind.SESSION:
        raise InvalidScope(f"{scope!r} is not a session scope: type session:<role name>/<session name>")
    role_name, _, session_name = parsed.name.partition("/")
    return SessionScope(role_name, session_name)


# --- roles the account manages ------------------------------------------------------------------


class RoleNotFound(LookupError):
    """The session's role does not exist in this account."""


class RoleNotOptedIn(PermissionError):
    """The role is not tagged for session denies: nothing is written (IAM would refuse the attach)."""

    def __init__(self, role_name: str) -> None:
        self.role_name = role_name
        super().__init__(
            f"role {role_name} has not opted in to session denies (tag {OPT_IN_TAG_KEY}={OPT_IN_TAG_VALUE}): "
            f"to opt in, aws iam tag-role --role-name {role_name} "
            f"--tags Key={OPT_IN_TAG_KEY},Value={OPT_IN_TAG_VALUE}"
        )


class SessionPolicyRejected(Exception):
    """A session policy read back from IAM was not our Deny: it was detached and deleted."""

    def __init__(self, role_name: str, policy_arn: str, problems: list[str]) -> None:
        self.role_name = role_name
        self.policy_arn = policy_arn
        self.problems = problems
        super().__init__(
            f"session policy {policy_arn} of role {role_name} read back from IAM is not Budgetkeeper's "
            f"Deny ({'; '.join(problems)}): it was detached and deleted, and the sessions it denied "
            "are not denied until the reconciler writes it again"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role_name, "policy_arn": self.policy_arn, "problems": self.problems}


def opted_in(role: Mapping[str, Any]) -> bool:
    """Whether a role (as GetRole returns it, with its Tags) opted in to session denies."""
    return any(
        tag.get("Key") == OPT_IN_TAG_KEY and tag.get("Value") == OPT_IN_TAG_VALUE
        for tag in role.get("Tags") or ()
    )


def session_policy_name(role_name: str) -> str:
    """`budgetkeeper-sessions-<role name>`, shortened with a hash if over IAM's 128 characters."""
    name = f"{POLICY_NAME_PREFIX}{role_name}"
    if len(name) <= POLICY_NAME_LIMIT:
        return name
    digest = hashlib.sha256(role_name.encode()).hexdigest()[:16]
    return f"{name[: POLICY_NAME_LIMIT - len(digest) - 1]}-{digest}"


@dataclass(frozen=True, slots=True)
class SessionDenyResult:
    """What a suspend or restore did: `changed` is False for a no-op, and `message` says which."""

    changed: bool
    message: str
    role_name: str
    denies: SessionDenies  # the suspended sessions after the call
    policy_arn: str | None  # None when the role has no session policy (any more)
    version_id: str | None = None


def suspend_session(
    iam: Any, role_name: str, session: str, source_identity: str | None = None
) -> SessionDenyResult:
    """Deny Bedrock to one session of `role_name` (and its source identity, when given).

    Raises, having written nothing, RoleNotOptedIn when the role is not tagged for session denies
    and PolicyTooLarge when the policy would exceed 6,144 characters; SessionPolicyRejected when
    the document read back is not ours (the policy is then removed).
    """
    if is_sso_role(role_name):
        raise ValueError(f"{role_name} is an IAM Identity Center role: deny it through IdentityCenter")
    role = _get_role(iam, role_name)
    if role is None:
        raise RoleNotFound(f"role {role_name} does not exist")
    if not opted_in(role):
        raise RoleNotOptedIn(role_name)
    policy_arn = _policy_arn(role)
    denies, version_id = _read_policy(iam, policy_arn)
    wanted = denies.with_session(session, source_identity)
    if wanted == denies:
        _verify(iam, role_name, policy_arn, str(version_id))  # never re-attach what is not ours
        attached = _ensure_attached(iam, role_name, policy_arn)
        note = ", and the policy was re-attached" if attached else ""
        return SessionDenyResult(
            False,
            f"session {session} of {role_name} is already denied{note}",
            role_name,
            denies,
            policy_arn,
            version_id,
        )
    text = check_size(
        session_deny_document(role["RoleId"], wanted), MANAGED_POLICY_LIMIT, f"policy {policy_arn}"
    )
    if version_id is None:
        version_id = _create_policy(iam, role_name, policy_arn, text)
        verb = "created and attached"
    else:
        version_id = _write_version(iam, role_name, policy_arn, text)
        _ensure_attached(iam, role_name, policy_arn)
        verb = f"updated to {version_id}"
    return SessionDenyResult(
        True,
        f"session {session} of {role_name} denied: policy {verb}",
        role_name,
        wanted,
        policy_arn,
        version_id,
    )


def suspended_sessions(iam: Any, role_name: str) -> frozenset[str]:
    """The sessions of `role_name` its session policy denies now (none when the role is gone)."""
    role = _get_role(iam, role_name)
    if role is None:
        return frozenset()
    return frozenset(_read_policy(iam, _policy_arn(role))[0].session_names)


def restore_session(
    iam: Any, role_name: str, session: str, source_identity: str | None = None
) -> SessionDenyResult:
    """Lift the deny on one session, and on `source_identity` when given.

    The policy holds session names and source identities as two sets (see SessionDenies), so pass
    the source identity the session was suspended with. The restore of the last session detaches
    and deletes the role's policy, source identities included. A role that left the opt-in keeps
    being restored: detaching or narrowing our own Deny grants nothing.
    """
    role = _get_role(iam, role_name)
    if role is None:
        return _restore_without_role(iam, role_name)
    policy_arn = _policy_arn(role)
    denies, version_id = _read_policy(iam, policy_arn)
    wanted = denies.without_session(session, source_identity)
    if version_id is None or wanted == denies:
        return SessionDenyResult(
            False,
            f"session {session} of {role_name} was not denied",
            role_name,
            denies,
            policy_arn if version_id else None,
            version_id,
        )
    if not wanted.session_names:
        # A source identity only ever goes in with a session: with no session left, nothing is left.
        _delete_policy(iam, role_name, policy_arn)
        return SessionDenyResult(
            True,
            f"session {session} of {role_name} restored: no session left, policy detached and deleted",
            role_name,
            SessionDenies(),
            None,
        )
    text = check_size(
        session_deny_document(role["RoleId"], wanted), MANAGED_POLICY_LIMIT, f"policy {policy_arn}"
    )
    version_id = _write_version(iam, role_name, policy_arn, text)
    return SessionDenyResult(
        True,
        f"session {session} of {role_name} restored: policy updated to {version_id}",
        role_name,
        wanted,
        policy_arn,
        version_id,
    )


def _get_role(iam: Any, role_name: str) -> dict[str, Any] | None:
    try:
        return iam.get_role(RoleName=role_name)["Role"]
    except ClientError as error:
        if _code(error) == "NoSuchEntity":
            return None
        raise


def _policy_arn(role: Mapping[str, Any]) -> str:
    match = _ROLE_ARN.fullmatch(role["Arn"])
    if match is None:
        raise ValueError(f"unexpected role ARN {role['Arn']!r}")
    name = session_policy_name(role["RoleName"])
    return f"arn:{match['partition']}:iam::{match['account']}:policy{POLICY_PATH}{name}"


def _read_policy(iam: Any, policy_arn: str) -> tuple[SessionDenies, str | None]:
    try:
        version_id = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=version_id)["PolicyVersion"][
            "Document"
        ]
    except ClientError as error:
        if _code(error) == "NoSuchEntity":
            return SessionDenies(), None
        raise
    return session_denies_of(_document(document)), version_id


def _document(document: str | Mapping[str, Any]) -> Mapping[str, Any]:
    # boto3 decodes IAM documents into dicts; a raw API answer is URL-encoded JSON.
    if isinstance(document, str):
        return json.loads(urllib.parse.unquote(document))
    return document


def _create_policy(iam: Any, role_name: str, policy_arn: str, text: str) -> str:
    name = policy_arn.rsplit("/", 1)[1]
    policy = iam.create_policy(
        PolicyName=name,
        Path=POLICY_PATH,
        PolicyDocument=text,
        Description=POLICY_DESCRIPTION.format(role=role_name)[:1000],
    )["Policy"]
    _verify(iam, role_name, policy_arn, policy["DefaultVersionId"])  # before it is attached
    try:
        iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    except ClientError:
        # Never leave a policy that is written but not in force: undo, and let the caller see why.
        iam.delete_policy(PolicyArn=policy_arn)
        raise
    return policy["DefaultVersionId"]


def _verify(iam: Any, role_name: str, policy_arn: str, version_id: str | None) -> None:
    """Read back what was written: the default version must be `version_id` (if given), and ours.

    Otherwise the policy is detached from `role_name` (if it is) and deleted, and
    SessionPolicyRejected raised.
    """
    default = iam.get_policy(PolicyArn=policy_arn)["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy_arn, VersionId=default)["PolicyVersion"]["Document"]
    problems = session_deny_problems(_document(document))
    if version_id is not None and default != version_id:
        problems.insert(0, f"the default version is {default}, not {version_id} as written")
    if problems:
        _delete_policy(iam, role_name, policy_arn)
        raise SessionPolicyRejected(role_name, policy_arn, problems)


def _write_version(iam: Any, role_name: str, policy_arn: str, text: str) -> str:
    versions = iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]
    if len(versions) >= MAX_POLICY_VERSIONS:
        others = [version for version in versions if not version["IsDefaultVersion"]]
        oldest = min(
            others, key=lambda version: (_version_number(version["VersionId"]), version["CreateDate"])
        )
        iam.delete_policy_version(PolicyArn=policy_arn, VersionId=oldest["VersionId"])
    created = iam.create_policy_version(PolicyArn=policy_arn, PolicyDocument=text, SetAsDefault=True)
    version_id = created["PolicyVersion"]["VersionId"]
    _verify(iam, role_name, policy_arn, version_id)
    return version_id


def _version_number(version_id: str) -> int:
    # IAM numbers versions v1, v2, ... in the order they were created, never reusing a number.
    digits = version_id.lstrip("vV")
    return int(digits) if digits.isdigit() else 0


def _ensure_attached(iam: Any, role_name: str, policy_arn: str) -> bool:
    """Attach the policy unless it is; True when it had to be attached."""
    paginator = iam.get_paginator("list_attached_role_policies")
    for page in paginator.paginate(RoleName=role_name, PathPrefix=POLICY_PATH):
        if any(policy["PolicyArn"] == policy_arn for policy in page["AttachedPolicies"]):
            return False
    iam.attach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    return True


def _detach(iam: Any, role_name: str, policy_arn: str) -> None:
    try:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=policy_arn)
    except ClientError as error:
        if _code(error) != "NoSuchEntity":  # not attached, or the role is gone
            raise


def _delete_policy(iam: Any, role_name: str | None, policy_arn: str) -> None:
    if role_name is not None:
        _detach(iam, role_name, policy_arn)
    for version in iam.list_policy_versions(PolicyArn=policy_arn)["Versions"]:
        if not version["IsDefaultVersion"]:
            iam.delete_policy_version(PolicyArn=policy_arn, VersionId=version["VersionId"])
    iam.delete_policy(PolicyArn=policy_arn)


@dataclass
class SessionPolicySweep:
    """What `sweep_session_policies` removed: orphans (in words), and documents that were not ours."""

    removed: list[str] = field(default_factory=list)
    rejected: list[SessionPolicyRejected] = field(default_factory=list)


def sweep_session_policies(iam: Any, is_held: Callable[[str], bool]) -> SessionPolicySweep:
    """Check every session policy under /budgetkeeper/: delete orphans, and any that is not ours.

    Orphans: a policy attached to no role (a role deleted, a crash between create and attach), or
    one whose role (the role it is named after) is not among those it is attached to, or whose role
    has no session that a budget holds (`is_held(role_name)` is False: a release that stopped half
    way). Each is detached from every role it is attached to, then deleted with its versions. A
    policy its role needs is read back like a new one: one that is not our Deny (someone changed it
    since) is removed too, and reported in `rejected`.
    """
    sweep = SessionPolicySweep()
    for policy in _session_policies(iam):
        roles = _roles_of(iam, policy["Arn"])
        owner = next((role for role in roles if session_policy_name(role) == policy["PolicyName"]), None)
        if not roles:
            why = "attached to no role"
        elif owner is None:
            why = f"attached to {', '.join(roles)}, none of them the role it was written for"
        elif not is_held(owner):
            why = f"no suspended session of role {owner} holds it"
        else:
            try:
                _verify(iam, owner, policy["Arn"], None)
            except SessionPolicyRejected as rejected:
                sweep.rejected.append(rejected)
            continue
        for role in roles:
            _detach(iam, role, policy["Arn"])
        _delete_policy(iam, None, policy["Arn"])
        sweep.removed.append(f"{policy['Arn']}: orphaned session policy deleted ({why})")
    return sweep


def _session_policies(iam: Any) -> list[dict[str, Any]]:
    pages = iam.get_paginator("list_policies").paginate(Scope="Local", PathPrefix=POLICY_PATH)
    return [
        policy
        for page in pages
        for policy in page["Policies"]
        if policy["PolicyName"].startswith(POLICY_NAME_PREFIX)
    ]


def _roles_of(iam: Any, policy_arn: str) -> list[str]:
    pages = iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=policy_arn, EntityFilter="Role")
    return sorted(role["RoleName"] for page in pages for role in page.get("PolicyRoles", []))


def _restore_without_role(iam: Any, role_name: str) -> SessionDenyResult:
    # A deleted role has no sessions; an IAM role cannot be deleted while a policy is attached,
    # so our policy, if left, is attached to nothing: delete it.
    name = session_policy_name(role_name)
    for policy in _session_policies(iam):
        if policy["PolicyName"] == name:
            _delete_policy(iam, None, policy["Arn"])
            return SessionDenyResult(
                True,
                f"role {role_name} no longer exists: its session policy was deleted",
                role_name,
                SessionDenies(),
                None,
            )
    return SessionDenyResult(
        False, f"role {role_name} does not exist: nothing to restore", role_name, SessionDenies(), None
    )


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


# --- IAM Identity Center ------------------------------------------------------------------------


class PermissionSetNotFound(LookupError):
    """No permission set of that name in the Identity Center instance."""


# Writes of a permission set's inline policy before giving up on one that keeps changing under us.
INLINE_POLICY_WRITES = 3


class InlinePolicyNotAsWritten(RuntimeError):
    """A permission set's inline policy read back after each write was not what was written."""

    def __init__(self, permission_set_name: str, arn: str, writes: int) -> None:
        super().__init__(
            f"the inline policy of permission set {permission_set_name} ({arn}) read back was not what "
            f"Budgetkeeper wrote, {writes} times: another writer is changing it; the deny is not in force"
        )


def _same_document(in_force: str | None, written: str | None) -> bool:
    if in_force is None or written is None:
        return in_force is written
    try:
        return bool(json.loads(in_force) == json.loads(written))
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class SsoDenyResult:
    changed: bool
    message: str
    permission_set_name: str
    permission_set_arn: str
    users: frozenset[str]  # the users our statement denies after the call
    provisioning_request_id: str | None = None  # for DescribePermissionSetProvisioningStatus


@dataclass
class IdentityCenter:
    """Deny SSO sessions through their permission set's inline policy (in the admin account)."""

    sso_admin: Any
    instance_arn: str
    _arns: dict[str, str] = field(default_factory=dict, repr=False)

    def permission_set_arn(self, name: str) -> str:
        if name in self._arns:
            return self._arns[name]
        paginator = self.sso_admin.get_paginator("list_permission_sets")
        for page in paginator.paginate(InstanceArn=self.instance_arn):
            for arn in page.get("PermissionSets", []):
                described = self.sso_admin.describe_permission_set(
                    InstanceArn=self.instance_arn, PermissionSetArn=arn
                )["PermissionSet"]
                self._arns[described["Name"]] = arn
                if described["Name"] == name:
                    return arn
        raise PermissionSetNotFound(f"no permission set named {name} in {self.instance_arn}")

    def suspended_users(self, permission_set_name: str) -> frozenset[str]:
        """The users our statement in the permission set's inline policy denies now."""
        return sso_users_of(self._inline_policy(self.permission_set_arn(permission_set_name)))

    def suspend_session(self, permission_set_name: str, user_name: str) -> SsoDenyResult:
        """Add the user to our statement in the set's inline policy, then re-provision the set.

        Already denied: nothing is written, but the set is re-provisioned, so a retry after a
        failed provisioning still takes effect. Raises PolicyTooLarge, having written nothing,
        when the inline policy would exceed 10,240 characters; InlinePolicyNotAsWritten when
        what is read back is not what was written, attempt after attempt.
        """
        arn = self.permission_set_arn(permission_set_name)
        users = sso_users_of(self._inline_policy(arn))
        if user_name in users:
            request_id = self._provision(arn)
            return SsoDenyResult(
                False,
                f"{user_name} is already denied in permission set {permission_set_name} (re-provisioned)",
                permission_set_name,
                arn,
                users,
                request_id,
            )

        def with_user(existing: str | None) -> str | None:
            return check_size(
                merge_statement(existing, sso_deny_statement(sso_users_of(existing) | {user_name})),
                PERMISSION_SET_INLINE_POLICY_LIMIT,
                f"inline policy of permission set {permission_set_name}",
            )

        written = self._write_checked(permission_set_name, arn, with_user)
        request_id = self._provision(arn)
        return SsoDenyResult(
            True,
            f"{user_name} denied in permission set {permission_set_name}",
            permission_set_name,
            arn,
            sso_users_of(written),
            request_id,
        )

    def restore_session(self, permission_set_name: str, user_name: str) -> SsoDenyResult:
        """Take the user out of our statement (the statement out when empty), then re-provision."""
        arn = self.permission_set_arn(permission_set_name)
        users = sso_users_of(self._inline_policy(arn))
        if user_name not in users:
            return SsoDenyResult(
                False,
                f"{user_name} was not denied in permission set {permission_set_name}",
                permission_set_name,
                arn,
                users,
            )

        def without_user(existing: str | None) -> str | None:
            wanted = sso_users_of(existing) - {user_name}
            if not wanted:
                return remove_statement(existing, SSO_DENY_SID)
            return check_size(
                merge_statement(existing, sso_deny_statement(wanted)),
                PERMISSION_SET_INLINE_POLICY_LIMIT,
                f"inline policy of permission set {permission_set_name}",
            )

        written = self._write_checked(permission_set_name, arn, without_user)
        request_id = self._provision(arn)
        return SsoDenyResult(
            True,
            f"{user_name} restored in permission set {permission_set_name}",
            permission_set_name,
            arn,
            sso_users_of(written),
            request_id,
        )

    def _write_checked(
        self, permission_set_name: str, arn: str, change: Callable[[str | None], str | None]
    ) -> str | None:
        """Write `change(policy now)` as the set's inline policy (None: delete it), and read it back.

        sso-admin replaces the whole inline policy and has no conditional write: an administrator's
        edit saved between this read and this write is lost, and one saved just after it replaces
        ours. So what is in force is read back after each write, as session policies are; when it
        is not what was written, the change is made again on what is there now.
        """
        for _ in range(INLINE_POLICY_WRITES):
            text = change(self._inline_policy(arn))
            if text is None:
                self.sso_admin.delete_inline_policy_from_permission_set(
                    InstanceArn=self.instance_arn, PermissionSetArn=arn
                )
            else:
                self.sso_admin.put_inline_policy_to_permission_set(
                    InstanceArn=self.instance_arn, PermissionSetArn=arn, InlinePolicy=text
                )
            in_force = self._inline_policy(arn)
            if _same_document(in_force, text):
                return in_force
        raise InlinePolicyNotAsWritten(permission_set_name, arn, INLINE_POLICY_WRITES)

    def _inline_policy(self, permission_set_arn: str) -> str | None:
        answer = self.sso_admin.get_inline_policy_for_permission_set(
            InstanceArn=self.instance_arn, PermissionSetArn=permission_set_arn
        )
        return answer.get("InlinePolicy") or None

    def _provision(self, permission_set_arn: str) -> str | None:
        # Asynchronous in AWS: the request id can be polled with DescribePermissionSetProvisioningStatus
        # (which moto lacks, so it is not called here).
        answer = self.sso_admin.provision_permission_set(
            InstanceArn=self.instance_arn,
            PermissionSetArn=permission_set_arn,
            TargetType="ALL_PROVISIONED_ACCOUNTS",
        )
        return answer.get("PermissionSetProvisioningStatus", {}).get("RequestId")


@dataclass(frozen=True, slots=True)
class IdentityCenterConnection:
    """An IdentityCenter, or None with the reason SSO sessions get alerts only."""

    center: IdentityCenter | None
    reason: str | None = None


def connect_identity_center(
    admin_role_arn: str | None,
    *,
    sts: Any | None = None,
    client_factory: Callable[..., Any] | None = None,
    region_name: str | None = None,
    instance_arn: str | None = None,
) -> IdentityCenterConnection:
    """Assume `IdentityCenterAdminRoleArn` and find the Identity Center instance.

    Empty parameter, a role that cannot be assumed, or no instance visible to it: no connection,
    and the reason (SSO sessions then get alerts only). `region_name` is the Identity Center
    instance's Region (sso-admin is regional); `instance_arn` skips ListInstances.
    """
    if not admin_role_arn:
        return IdentityCenterConnection(
            None, "IdentityCenterAdminRoleArn is not set: SSO sessions over budget get alerts only"
        )
    if client_factory is None:
        import boto3

        client_factory = boto3.client
    sts = sts if sts is not None else client_factory("sts", region_name=region_name)
    try:
        credentials = sts.assume_role(RoleArn=admin_role_arn, RoleSessionName=ADMIN_SESSION_NAME)[
            "Credentials"
        ]
        sso_admin = client_factory(
            "sso-admin",
            region_name=region_name,
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        if instance_arn is None:
            instances = [
                instance
                for instance in sso_admin.list_instances().get("Instances", [])
                if instance.get("Status", "ACTIVE") == "ACTIVE"
            ]
            if len(instances) != 1:
                return IdentityCenterConnection(
                    None,
                    f"{len(instances)} active IAM Identity Center instances are visible to {admin_role_arn}, "
                    "not one: SSO sessions over budget get alerts only",
                )
            instance_arn = instances[0]["InstanceArn"]
    except ClientError as error:
        return IdentityCenterConnection(
            None, f"cannot use {admin_role_arn} ({_code(error)}): SSO sessions over budget get alerts only"
        )
    return IdentityCenterConnection(IdentityCenter(sso_admin, instance_arn))


# --- one entry point per scope ------------------------------------------------------------------


class Outcome(StrEnum):
    DENIED = "denied"  # written now
    ALREADY_DENIED = "already_denied"
    RESTORED = "restored"
    NOT_DENIED = "not_denied"  # restore of a session that was not denied
    ALERT_ONLY = "alert_only"  # the fallback: not denied; alert, the role budget is the backstop


@dataclass(frozen=True, slots=True)
class ScopeDenyOutcome:
    outcome: Outcome
    message: str
    scope: str


def deny_session_scope(
    scope: str,
    *,
    iam: Any,
    identity_center: IdentityCenterConnection | None,
    source_identity: str | None = None,
) -> ScopeDenyOutcome:
    """Suspend one `session:` scope, or say why it gets an alert only (the documented fallback).

    Falls back to ALERT_ONLY, writing nothing, when the session is an SSO session and Identity
    Center is not connected, when its role or permission set is not found, when the role has not
    opted in to session denies, when the policy would be too large, or when IAM refuses it for a
    quota (LimitExceeded, e.g. the role already has its quota of managed policies attached).
    SessionPolicyRejected (the document read back was not ours, and was removed) and other AWS
    errors are raised: the first for the caller's alert, the rest for the workflow's Retry/Catch.
    """
    target = parse_session_scope(scope)
    try:
        if target.is_sso:
            center, why = _center(identity_center, target)
            if center is None:
                return ScopeDenyOutcome(Outcome.ALERT_ONLY, why, scope)
            sso = center.suspend_session(str(target.permission_set_name), target.session_name)
            changed, message = sso.changed, sso.message
        else:
            result = suspend_session(iam, target.role_name, target.session_name, source_identity)
            changed, message = result.changed, result.message
    except PolicyTooLarge as error:
        return ScopeDenyOutcome(Outcome.ALERT_ONLY, f"{error}; the role budget is the backstop", scope)
    except (PermissionSetNotFound, RoleNotFound) as error:
        return ScopeDenyOutcome(Outcome.ALERT_ONLY, f"{error}: cannot deny {scope}", scope)
    except RoleNotOptedIn as error:
        return ScopeDenyOutcome(
            Outcome.ALERT_ONLY, f"cannot deny {scope}: {error}; the role budget is the backstop", scope
        )
    except ClientError as error:
        if _code(error) != "LimitExceeded":
            raise
        # e.g. the role already has its quota of managed policies: nothing was left written
        return ScopeDenyOutcome(
            Outcome.ALERT_ONLY, f"cannot deny {scope}: {error}; the role budget is the backstop", scope
        )
    return ScopeDenyOutcome(Outcome.DENIED if changed else Outcome.ALREADY_DENIED, message, scope)


def restore_session_scope(
    scope: str,
    *,
    iam: Any,
    identity_center: IdentityCenterConnection | None,
    source_identity: str | None = None,
) -> ScopeDenyOutcome:
    """Lift what `deny_session_scope` applied to one `session:` scope."""
    target = parse_session_scope(scope)
    if target.is_sso:
        center, why = _center(identity_center, target)
        if center is None:
            return ScopeDenyOutcome(Outcome.NOT_DENIED, why, scope)
        try:
            sso = center.restore_session(str(target.permission_set_name), target.session_name)
        except PermissionSetNotFound as error:
            return ScopeDenyOutcome(Outcome.NOT_DENIED, str(error), scope)
        changed, message = sso.changed, sso.message
    else:
        result = restore_session(iam, target.role_name, target.session_name, source_identity)
        changed, message = result.changed, result.message
    return ScopeDenyOutcome(Outcome.RESTORED if changed else Outcome.NOT_DENIED, message, scope)


def _center(
    connection: IdentityCenterConnection | None, target: SessionScope
) -> tuple[IdentityCenter | None, str]:
    if connection is None or connection.center is None:
        reason = connection.reason if connection is not None else None
        return None, reason or "IAM Identity Center is not connected: SSO sessions get alerts only"
    if target.permission_set_name is None:
        return None, f"cannot read a permission set name from role {target.role_name}"
    return connection.center, ""
