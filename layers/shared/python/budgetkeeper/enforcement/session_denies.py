"""One entry point per session scope: `deny_session_scope` and `restore_session_scope` send a session
to its role's managed policy (enforcement.role_sessions) or to IAM Identity Center
(enforcement.identity_center), and fall back to an alert, writing nothing, where the documented rule
says so (docs/architecture.md, "Session denies").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from budgetkeeper.core.errors import error_code
from budgetkeeper.domain.policies import PolicyTooLarge
from budgetkeeper.enforcement.identity_center import (
    IdentityCenter,
    IdentityCenterConnection,
    PermissionSetNotFound,
)
from budgetkeeper.enforcement.role_sessions import (
    RoleNotFound,
    RoleNotOptedIn,
    restore_session,
    suspend_session,
)
from budgetkeeper.enforcement.session_scopes import SessionScope, parse_session_scope


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
        if error_code(error) != "LimitExceeded":
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
