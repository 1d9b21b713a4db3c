"""Whether the IAM principals a scope names exist: the workflow's directory, and the check the CLI
and the console make before an operator's suspension starts a run (README, "Who may start what").
"""

from __future__ import annotations

from typing import Any

from budgetkeeper.budgets.targets import Directory, Target, TargetKind, deny_target
from budgetkeeper.domain.scopes import ScopeKind, parse_scope, split_account
from budgetkeeper.storage.readers import mapped_identities, protection_of


def _exists(iam: Any, operation: str, **name: Any) -> bool:
    try:
        getattr(iam, operation)(**name)
    except iam.exceptions.NoSuchEntityException:
        return False
    return True


def iam_directory(iam: Any) -> Directory:
    """deny_target's view of IAM (roles, groups and their members) and of the team and budget tables."""
    return Directory(
        role_exists=lambda role: _exists(iam, "get_role", RoleName=role),
        group_exists=lambda group: _exists(iam, "get_group", GroupName=group, MaxItems=1),
        mapped_identities=mapped_identities,
        protection=protection_of,
        group_members=lambda group: _group_members(iam, group),
    )


def _group_members(iam: Any, group: str) -> tuple[str, ...]:
    try:
        pages = iam.get_paginator("get_group").paginate(GroupName=group)
        return tuple(user["UserName"] for page in pages for user in page["Users"])
    except iam.exceptions.NoSuchEntityException:
        return ()


def why_not_suspendable(iam: Any, scope: str) -> str | None:
    """None when an operator's suspension of `scope` has an IAM principal to deny; else why not,
    in the words the workflow would fail with, so no run is started for it."""
    if parse_scope(scope).kind == ScopeKind.ACCOUNT:
        return (
            f"cannot suspend {scope}: an account is never suspended as a whole; "
            "suspend its users, roles, teams or apps"
        )
    target = deny_target(scope, iam_directory(iam))
    if target.kind == TargetKind.NONE:
        return f"cannot suspend {scope}: {target.why_not}"
    missing = _missing(iam, target)
    return f"cannot suspend {scope}: {missing}" if missing else None


def _missing(iam: Any, target: Target) -> str | None:
    # A member account's principal (organization mode) is not in this account's IAM: the
    # DenyFunction, which alone may reach that account, reports it if it is gone.
    if target.name and split_account(target.name)[0] is not None:
        return None
    if target.kind == TargetKind.USER and not _exists(iam, "get_user", UserName=target.name):
        return f"there is no IAM user {target.name}"
    if target.kind == TargetKind.ROLE and not _exists(iam, "get_role", RoleName=target.name):
        return f"there is no IAM role {target.name}"
    if target.kind == TargetKind.SESSION and target.sessions:
        names = [session.removeprefix("session:") for session in target.sessions]
        if any(split_account(name, session=True)[0] is not None for name in names):
            return None
        roles = sorted({name.split("/", 1)[0] for name in names})
        if not any(_exists(iam, "get_role", RoleName=role) for role in roles):
            return f"there is no IAM role {', '.join(roles)} (the role its sessions are on)"
    return None
