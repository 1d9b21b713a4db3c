"""Suspending one IAM Identity Center session: `AWSReservedSSO_*` roles cannot be changed in IAM, so
the session's user is denied through the permission set's inline policy (our one statement merged
into the customer's document), re-provisioned to every account; `connect_identity_center` assumes
the optional `IdentityCenterAdminRoleArn`, without which SSO sessions get alerts only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from budgetkeeper.core.errors import error_code
from budgetkeeper.domain.policies import (
    PERMISSION_SET_INLINE_POLICY_LIMIT,
    SSO_DENY_SID,
    check_size,
    merge_statement,
    remove_statement,
    sso_deny_statement,
    sso_users_of,
)

ADMIN_SESSION_NAME = "budgetkeeper-session-denies"


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

        return self._deny_users(
            permission_set_name,
            arn,
            lambda denied: denied | {user_name},
            f"{user_name} denied in permission set {permission_set_name}",
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

        return self._deny_users(
            permission_set_name,
            arn,
            lambda denied: denied - {user_name},
            f"{user_name} restored in permission set {permission_set_name}",
        )

    def _deny_users(
        self,
        permission_set_name: str,
        arn: str,
        change: Callable[[frozenset[str]], frozenset[str]],
        message: str,
    ) -> SsoDenyResult:
        """Make our statement deny `change(the users it denies now)` (none: the statement goes),
        then re-provision the set."""

        def with_statement(existing: str | None) -> str | None:
            wanted = change(sso_users_of(existing))
            if not wanted:
                return remove_statement(existing, SSO_DENY_SID)
            return check_size(
                merge_statement(existing, sso_deny_statement(wanted)),
                PERMISSION_SET_INLINE_POLICY_LIMIT,
                f"inline policy of permission set {permission_set_name}",
            )

        written = self._write_checked(permission_set_name, arn, with_statement)
        request_id = self._provision(arn)
        return SsoDenyResult(True, message, permission_set_name, arn, sso_users_of(written), request_id)

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
            None,
            f"cannot use {admin_role_arn} ({error_code(error)}): SSO sessions over budget get alerts only",
        )
    return IdentityCenterConnection(IdentityCenter(sso_admin, instance_arn))
