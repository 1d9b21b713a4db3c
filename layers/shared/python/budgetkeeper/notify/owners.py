"""Who owns a budget, and in which language they read.

In this order: the budget's `owner_email`; an `email` tag on the IAM user or role behind the scope;
the session name of an IAM Identity Center session when it is an e-mail address; the contact of the
scope's team. With none of them, only operators are told. The language: the budget's `language`,
else a `language` tag on the same IAM user or role, else English.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from budgetkeeper.domain.scopes import InvalidScope, ScopeKind, parse_scope

_EMAIL = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")
SSO_ROLE_PREFIX = "AWSReservedSSO_"


def is_email(text: str | None) -> bool:
    return bool(text and _EMAIL.fullmatch(text.strip()))


@dataclass(frozen=True, slots=True)
class Owner:
    email: str | None
    language: str | None
    source: str  # where the address came from: budget, iam-tag, sso-session, team-contact, none


def iam_entity(scope: str) -> tuple[str, str] | None:
    """The IAM user or role whose tags describe the scope's owner (`("user", "alice")`)."""
    try:
        parsed = parse_scope(scope)
    except InvalidScope:
        return None
    if parsed.kind in (ScopeKind.USER, ScopeKind.APIKEY):
        return ("user", parsed.name)
    if parsed.kind is ScopeKind.ROLE:
        return ("role", parsed.name)
    if parsed.kind is ScopeKind.SESSION:
        return ("role", parsed.name.partition("/")[0])
    return None


@dataclass(frozen=True)
class OwnerDirectory:
    """Finds owners; each source is a function so the rules stay testable without AWS."""

    budget_owner: Callable[[str, str | None], tuple[str | None, str | None]]  # (email, language)
    iam_tags: Callable[[str, str], dict[str, str]]  # (kind, name) -> tags
    team_contact: Callable[[str], str | None]

    def resolve(self, scope: str, window: str | None) -> Owner:
        email, language = self.budget_owner(scope, window)
        entity = iam_entity(scope)
        tags = self.iam_tags(*entity) if entity else {}
        language = language or tags.get("language")
        if is_email(email):
            return Owner(email, language, "budget")
        if is_email(tags.get("email")):
            return Owner(tags["email"], language, "iam-tag")
        if scope.startswith(f"session:{SSO_ROLE_PREFIX}"):
            session_name = scope.partition("/")[2]
            if is_email(session_name):
                return Owner(session_name, language, "sso-session")
        contact = self.team_contact(scope)
        if is_email(contact):
            return Owner(contact, language, "team-contact")
        return Owner(None, language, "none")
