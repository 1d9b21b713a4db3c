"""Suspending one session of a role the account manages: one customer-managed policy per role,
`/budgetkeeper/budgetkeeper-sessions-<role name>`, whose default version holds the suspended
sessions; attached only to roles that opted in (OPT_IN_TAG_KEY), every document read back and
checked. docs/architecture.md, "Session denies", tells the whole rule and its fallback.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from budgetkeeper.core.errors import error_code
from budgetkeeper.domain.policies import (
    MANAGED_POLICY_LIMIT,
    SessionDenies,
    check_size,
    session_denies_of,
    session_deny_document,
    session_deny_problems,
)
from budgetkeeper.enforcement.session_scopes import is_sso_role

POLICY_PATH = "/budgetkeeper/"
POLICY_NAME_PREFIX = "budgetkeeper-sessions-"
POLICY_NAME_LIMIT = 128  # IAM's limit for a managed policy name
MAX_POLICY_VERSIONS = 5  # IAM keeps at most five versions of a managed policy
POLICY_DESCRIPTION = "Bedrock Budgetkeeper: denies Bedrock to suspended sessions of role {role}"
# The tag an operator puts on a role to let Budgetkeeper deny single sessions of it. template.yaml
# conditions the DenyFunction's AttachRolePolicy of session policies on it (aws:ResourceTag).
OPT_IN_TAG_KEY = "budgetkeeper:session-denies"
OPT_IN_TAG_VALUE = "enabled"
_ROLE_ARN = re.compile(r"arn:(?P<partition>[^:]+):iam::(?P<account>\d{12}):role/.+", re.ASCII)


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
        if error_code(error) == "NoSuchEntity":
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
        if error_code(error) == "NoSuchEntity":
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
        if error_code(error) != "NoSuchEntity":  # not attached, or the role is gone
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
