"""IAM as the deny records need it: the deny policy attached to users, roles and groups, the
suspension tag on bedrock-mantle projects, session denies; and what IAM's refusals mean for a deny.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from budgetkeeper.core.errors import error_code
from budgetkeeper.enforcement.identity_center import IdentityCenterConnection
from budgetkeeper.enforcement.project_tags import ProjectTags, TagsUnavailable
from budgetkeeper.enforcement.role_sessions import (
    SessionPolicySweep,
    suspended_sessions,
    sweep_session_policies,
)
from budgetkeeper.enforcement.session_denies import Outcome, deny_session_scope, restore_session_scope
from budgetkeeper.enforcement.session_scopes import is_sso_role, permission_set_name


class EntryKind(StrEnum):
    USER = "user"
    ROLE = "role"
    GROUP = "group"
    SESSION = "session"
    PROJECT = "project"


ATTACHED_KINDS = (EntryKind.USER, EntryKind.ROLE, EntryKind.GROUP)


class CannotDeny(Exception):
    """IAM refuses this deny for good (a quota, an unmodifiable role): an alert, not a retry."""


class PrincipalGone(CannotDeny):
    """The user, role or group no longer exists in IAM: there is nothing left to deny."""


@dataclass
class IamDenies:
    """IAM as the records need it: the deny policy on users, roles and groups; session denies."""

    iam: Any
    deny_policy_arn: str
    identity_center: Callable[[], IdentityCenterConnection]
    projects: ProjectTags | None = None  # bedrock-mantle projects of the stack's Region

    def _projects(self) -> ProjectTags:
        if self.projects is None:
            raise CannotDeny("bedrock-mantle projects are not connected to this deny book")
        return self.projects

    def holds(self, kind: EntryKind, name: str) -> bool:
        """Whether the deny policy is attached to that user, role or group, or the project carries the
        suspension tag (False when it is gone)."""
        if kind is EntryKind.PROJECT:
            try:
                return self._projects().suspended(name)
            except TagsUnavailable:
                return False
        operation, key = _ATTACHED_LISTINGS[kind]
        try:
            pages = self.iam.get_paginator(operation).paginate(**{key: name}, PathPrefix=_path(self))
            return any(
                policy["PolicyArn"] == self.deny_policy_arn
                for page in pages
                for policy in page["AttachedPolicies"]
            )
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                return False
            raise

    def attach(self, kind: EntryKind, name: str) -> None:
        if kind is EntryKind.PROJECT:
            try:
                return self._projects().suspend(name)
            except TagsUnavailable as error:
                raise CannotDeny(str(error)) from error
        operation, key = _ATTACH[kind]
        try:
            getattr(self.iam, operation)(**{key: name}, PolicyArn=self.deny_policy_arn)
        except ClientError as error:
            if error_code(error) == "NoSuchEntity":
                raise PrincipalGone(f"{kind} {name} no longer exists in IAM") from error
            if error_code(error) in ("LimitExceeded", "UnmodifiableEntity"):
                raise CannotDeny(f"cannot attach the deny policy to {kind} {name}: {error}") from error
            raise

    def detach(self, kind: EntryKind, name: str) -> None:
        if kind is EntryKind.PROJECT:
            try:
                return self._projects().lift(name)
            except TagsUnavailable as error:
                raise CannotDeny(str(error)) from error
        operation, key = _DETACH[kind]
        try:
            getattr(self.iam, operation)(**{key: name}, PolicyArn=self.deny_policy_arn)
        except ClientError as error:
            if error_code(error) != "NoSuchEntity":  # already detached, or the principal is gone
                raise

    def attached_principals(self) -> set[tuple[EntryKind, str]]:
        """Every user, role and group the deny policy is attached to now."""
        found: set[tuple[EntryKind, str]] = set()
        pages = self.iam.get_paginator("list_entities_for_policy").paginate(PolicyArn=self.deny_policy_arn)
        for page in pages:
            found |= {(EntryKind.USER, user["UserName"]) for user in page.get("PolicyUsers", [])}
            found |= {(EntryKind.ROLE, role["RoleName"]) for role in page.get("PolicyRoles", [])}
            found |= {(EntryKind.GROUP, group["GroupName"]) for group in page.get("PolicyGroups", [])}
        return found

    def denied_sessions(self, role_name: str) -> set[str]:
        if is_sso_role(role_name):
            center = self.identity_center().center
            permission_set = permission_set_name(role_name)
            if center is None or permission_set is None:
                return set()
            return set(center.suspended_users(permission_set))
        return set(suspended_sessions(self.iam, role_name))

    def deny_session(self, role_name: str, session: str) -> None:
        outcome = deny_session_scope(
            f"session:{role_name}/{session}", iam=self.iam, identity_center=self.identity_center()
        )
        if outcome.outcome is Outcome.ALERT_ONLY:
            raise CannotDeny(outcome.message)

    def lift_session(self, role_name: str, session: str) -> None:
        restore_session_scope(
            f"session:{role_name}/{session}", iam=self.iam, identity_center=self.identity_center()
        )

    def sweep_session_policies(self, is_held: Callable[[str], bool]) -> SessionPolicySweep:
        return sweep_session_policies(self.iam, is_held)


_ATTACHED_LISTINGS = {
    EntryKind.USER: ("list_attached_user_policies", "UserName"),
    EntryKind.ROLE: ("list_attached_role_policies", "RoleName"),
    EntryKind.GROUP: ("list_attached_group_policies", "GroupName"),
}
_ATTACH = {
    EntryKind.USER: ("attach_user_policy", "UserName"),
    EntryKind.ROLE: ("attach_role_policy", "RoleName"),
    EntryKind.GROUP: ("attach_group_policy", "GroupName"),
}
_DETACH = {
    EntryKind.USER: ("detach_user_policy", "UserName"),
    EntryKind.ROLE: ("detach_role_policy", "RoleName"),
    EntryKind.GROUP: ("detach_group_policy", "GroupName"),
}


def _path(iam_denies: IamDenies) -> str:
    # arn:aws:iam::123456789012:policy/budgetkeeper/<name>: list only policies under our path.
    resource = iam_denies.deny_policy_arn.split(":policy", 1)[1]
    return resource.rsplit("/", 1)[0] + "/"
