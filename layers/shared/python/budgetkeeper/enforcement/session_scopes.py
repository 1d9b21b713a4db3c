"""A session scope (`session:<role name>/<session name>`) read into its role and session, and whether
the role is an IAM Identity Center role (`AWSReservedSSO_<permission set>_<hex>`). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

from budgetkeeper.domain.scopes import SSO_ROLE_PREFIX, InvalidScope, ScopeKind, parse_scope

_SSO_ROLE = re.compile(rf"{SSO_ROLE_PREFIX}(?P<permission_set>.+)_[0-9a-fA-F]+", re.ASCII)


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
