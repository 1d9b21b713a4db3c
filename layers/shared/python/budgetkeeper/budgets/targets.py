"""Enforcement rules: what to deny for a scope, and what a budget's state calls for.

Pure functions; the workflow's Lambda tasks (functions/enforcement) apply them to DynamoDB and
the state machine applies the IAM changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

from budgetkeeper.budgets.rules import ENFORCING, Budget, Level, Status
from budgetkeeper.domain.scopes import (
    API_KEY_USER_PREFIX,
    APP_ROLE_SUFFIX,
    ScopeKind,
    parse_scope,
    split_account,
)


class TargetKind(StrEnum):
    USER = "user"
    ROLE = "role"
    GROUP = "group"
    SESSION = "session"  # sessions on shared roles only, denied one by one (no user/role/group)
    PROJECT = (
        "project"  # a bedrock-mantle project: tagged as suspended (budgetkeeper.enforcement.project_tags)
    )
    NONE = "none"  # nothing in IAM to deny: alert only
    # Every principal the deny would reach is protected or excluded (spare_exempt): the suspension
    # is recorded and named who was spared, and denies nothing.
    SPARED = "spared"


@dataclass(frozen=True, slots=True)
class Target:
    """What a suspension denies: one IAM user, role or group (`name`), and/or `sessions` on shared
    roles, each denied alone through its role's session policy or its permission set, and/or
    `users` (the IAM users who claimed an app's name on their calls)."""

    kind: TargetKind
    name: str | None = None
    why_not: str | None = None  # for NONE: why this scope cannot be suspended
    sessions: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "name": self.name,
            "why_not": self.why_not,
            "sessions": list(self.sessions),
            "users": list(self.users),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        sessions, users = tuple(data.get("sessions") or ()), tuple(data.get("users") or ())
        return cls(TargetKind(str(data["kind"])), data.get("name"), data.get("why_not"), sessions, users)


@dataclass(frozen=True, slots=True)
class AppClaims:
    """Of an app budget's spend in one window: what callers only claimed (request metadata), and who."""

    claimed_usd: Decimal
    claimers: frozenset[str]  # principal scopes


@dataclass(frozen=True, slots=True)
class Directory:
    """What deny_target needs to know about IAM and the team table (looked up by the caller)."""

    role_exists: Callable[[str], bool]
    group_exists: Callable[[str], bool]
    # The principal scopes the team table maps to a team or a person (`team:data`, `person:alice.martin`).
    mapped_identities: Callable[[str], tuple[str, ...]]
    protection: Callable[[str], str | None]  # why an operator protected a scope (its budgets), or None
    group_members: Callable[[str], tuple[str, ...]]  # the IAM user names in an IAM group


def deny_target(
    scope: str, directory: Directory, *, claims: AppClaims | None = None, trusted_over_limit: bool = True
) -> Target:
    """What to deny for `scope`.

    Users and API-key users: the IAM user. Roles: the role. Sessions on shared roles: that session
    alone. Teams: the IAM group named like the team (the central account's), every member session
    mapped to the team (members who call through roles or SSO) and every member account's user
    mapped to it. People: every identity operators mapped to the person, in whichever account.
    Apps: see app_target. bedrock-mantle projects: the project (tagged). Accounts are never denied
    whole.
    """
    parsed = parse_scope(scope)
    kind, name = str(parsed.kind), parsed.name
    if kind in ("user", "apikey"):
        return Target(TargetKind.USER, name)
    if kind == "role":
        return Target(TargetKind.ROLE, name)
    if kind == "session":
        return Target(TargetKind.SESSION, sessions=(scope,))
    if kind == "team":
        identities = directory.mapped_identities(scope)
        sessions = _sessions(identities)
        # The group holds the central account's users; another account's are denied one by one.
        users = tuple(user for user in _users(identities) if split_account(user)[0] is not None)
        if directory.group_exists(name):
            return Target(TargetKind.GROUP, name, sessions=sessions, users=users)
        if sessions or users:
            return Target(TargetKind.SESSION, sessions=sessions, users=users)
        return Target(
            TargetKind.NONE,
            why_not=f"team {name} has no IAM group named {name} and no session members",
        )
    if kind == "person":
        identities = directory.mapped_identities(scope)
        if not identities:
            return Target(TargetKind.NONE, why_not=f"no identity is mapped to person {name}")
        roles = [identity for identity in identities if identity.startswith(f"{ScopeKind.ROLE}:")]
        if roles:  # a role is shared by whoever may assume it: never one person's
            return Target(TargetKind.NONE, why_not=f"person {name} is mapped to roles ({', '.join(roles)})")
        return Target(TargetKind.SESSION, sessions=_sessions(identities), users=_users(identities))
    if kind == "project":  # its spend is AWS's metrics of the project: trusted
        return Target(TargetKind.PROJECT, name)
    if kind == "app":
        return app_target(name, directory, claims or AppClaims(Decimal(0), frozenset()), trusted_over_limit)
    return Target(TargetKind.NONE, why_not=f"a {kind} scope is never denied as a whole")


def app_target(name: str, directory: Directory, claims: AppClaims, trusted_over_limit: bool) -> Target:
    """What an app budget's suspension denies.

    `requestMetadata` is the caller's own claim: anyone with Bedrock access can put any app's name
    on a call. So the app's own `{App}-BedrockRole` is denied only when the spend attributed to the
    app by trusted means (its role name, the tags of its application inference profile) is over
    the limit by itself; the principals who claimed the app in this window are denied in any case.
    A claim thus never gets someone else suspended.
    """
    role = f"{name}{APP_ROLE_SUFFIX}"
    deny_role = trusted_over_limit and directory.role_exists(role)
    claimers = sorted(claims.claimers)
    users = tuple(scope.split(":", 1)[1] for scope in claimers if scope.startswith(("user:", "apikey:")))
    sessions = tuple(scope for scope in claimers if scope.startswith("session:"))
    if deny_role:
        return Target(TargetKind.ROLE, role, sessions=sessions, users=users)
    if users or sessions:
        return Target(TargetKind.SESSION, sessions=sessions, users=users)
    why = "its spend is only claimed by callers, and none of them can be denied"
    if trusted_over_limit:
        why = f"app {name} has no role {role}"
    return Target(TargetKind.NONE, why_not=why)


def _sessions(scopes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(scope for scope in scopes if scope.startswith(f"{ScopeKind.SESSION}:"))


def _users(scopes: tuple[str, ...]) -> tuple[str, ...]:
    """IAM user names (account-qualified for a member account's) of the user and API-key scopes."""
    prefixes = (f"{ScopeKind.USER}:", f"{ScopeKind.APIKEY}:")
    return tuple(scope.split(":", 1)[1] for scope in scopes if scope.startswith(prefixes))


# AWS service-linked roles act for AWS services: denying them breaks the service, not a spender.
SERVICE_LINKED_ROLE_PREFIX = "AWSServiceRoleFor"


def system_role_prefixes(stack_name: str) -> tuple[str, ...]:
    """Role-name prefixes of system principals: this stack's own roles (SAM names them after the
    stack) and AWS service-linked roles."""
    return (f"{stack_name}-", SERVICE_LINKED_ROLE_PREFIX)


def is_exempt(budget: Budget, exclusions: tuple[str, ...], system_roles: tuple[str, ...]) -> str | None:
    """Why this budget's scope must never be suspended, or None."""
    return exemption(budget.scope, "protected" if budget.protected else None, exclusions, system_roles)


def exemption(
    scope: str, protection: str | None, exclusions: tuple[str, ...], system_roles: tuple[str, ...]
) -> str | None:
    """Why `scope` must never be denied, or None: an operator protected it (`protection`, from its
    budgets), listed it in the exclusions tunable, or it is a system principal."""
    if protection:
        return protection
    if scope in exclusions:
        return "excluded by the exclusions parameter"
    parsed = parse_scope(scope)
    role = parsed.name.split("/", 1)[0] if parsed.kind in ("role", "session") else None
    if role and role.startswith(system_roles):
        return f"a system principal (role {role})"
    return None


def _user_scope(user_name: str) -> str:
    kind = ScopeKind.APIKEY if user_name.startswith(API_KEY_USER_PREFIX) else ScopeKind.USER
    return f"{kind}:{user_name}"


def spare_exempt(
    target: Target,
    asked_by: str,
    exempt_because: Callable[[str], str | None],
    group_members: Callable[[str], tuple[str, ...]],
) -> tuple[Target, tuple[str, ...]]:
    """`target` without the principals that must never be denied, whichever budget asks.

    Protection and exclusions belong to the principal, not to the budget that reaches it: a
    protected role is not denied through its app's budget, an excluded user not as an app's
    claimer, a protected member session not through its team. `exempt_because(scope)` says why a
    scope is exempt (see `exemption`); a session is exempt with its role. A group with an exempt
    member is not denied as a group: its other members are denied one by one. Returns the target
    left and one line per principal spared, e.g. "role:R is protected: not denied for app:A"; when
    every one is spared, a SPARED target that denies nothing.
    """
    spared: list[str] = []

    def keep(entry: str, *scopes: str) -> bool:
        why = next(filter(None, map(exempt_because, scopes)), None)
        if why:
            spared.append(f"{entry} is {why}: not denied for {asked_by}")
        return why is None

    name: str | None = target.name
    member_users: tuple[str, ...] = ()
    if name is not None:
        own_scope = {
            TargetKind.USER: _user_scope(name),
            TargetKind.ROLE: f"{ScopeKind.ROLE}:{name}",
            TargetKind.GROUP: f"{ScopeKind.TEAM}:{name}",
            TargetKind.PROJECT: f"{ScopeKind.PROJECT}:{name}",
        }.get(target.kind)
        entry = own_scope if target.kind == TargetKind.USER else f"{target.kind}:{name}"
        if own_scope and not keep(entry, own_scope):
            name = None
    if target.kind == TargetKind.GROUP and name is not None:
        members = group_members(name)
        kept = tuple(user for user in members if keep(_user_scope(user), _user_scope(user)))
        if len(kept) < len(members):
            name, member_users = None, kept
    claimers = (user for user in target.users if keep(_user_scope(user), _user_scope(user)))
    users = tuple(dict.fromkeys((*member_users, *claimers)))
    sessions = tuple(
        session
        for session in target.sessions
        if keep(session, session, f"{ScopeKind.ROLE}:{session.removeprefix('session:').split('/', 1)[0]}")
    )
    if not spared:
        return target, ()
    if name is not None:
        return replace(target, sessions=sessions, users=users), tuple(spared)
    if users or sessions:
        return Target(TargetKind.SESSION, sessions=sessions, users=users), tuple(spared)
    return Target(TargetKind.SPARED), tuple(spared)


class Next(StrEnum):
    NOTHING = "nothing"  # already handled, or below every threshold now
    NOTIFY = "notify"  # warning, critical, forecast, late spend, cannot-suspend alerts
    PROTECTED = "protected"
    GRACE = "grace"


@dataclass(frozen=True, slots=True)
class Evaluation:
    next: Next
    event_type: str | None  # the notification to send, when next is notify/protected/grace
    level: Level
    note: str | None = None


def evaluate(
    budget: Budget,
    spent: Decimal,
    *,
    requested: Level,
    forecast: bool,
    window_closed: bool,
    already_notified: Level,
    forecast_notified: bool,
    exempt_because: str | None,
    target: Target,
) -> Evaluation:
    """What a run asked to handle `requested` should do now, given the budget's current state.

    `already_notified` is the highest level notified for this window and revision, and
    `forecast_notified` whether this window's forecast warning went out, so a second start (or a
    sweep) never warns twice.
    """
    level = budget.level_of(spent)
    if budget.status in ENFORCING:
        return Evaluation(Next.NOTHING, None, level, f"already {budget.status}")
    if forecast:
        if level >= Level.EXCEEDED or forecast_notified:
            return Evaluation(Next.NOTHING, None, level, "forecast already notified or overtaken")
        return Evaluation(Next.NOTIFY, "forecast", level)
    if level < requested:
        return Evaluation(Next.NOTHING, None, level, "spend is below the requested level now")
    if level <= already_notified:
        return Evaluation(Next.NOTHING, None, level, "this level was already notified")
    if level < Level.EXCEEDED:
        return Evaluation(Next.NOTIFY, level.label, level)
    if window_closed:
        return Evaluation(Next.NOTIFY, "late_spend", level, "spend landed in a closed window: never suspends")
    if exempt_because:
        return Evaluation(Next.PROTECTED, "protected_alert", level, exempt_because)
    if target.kind == TargetKind.NONE:
        return Evaluation(Next.NOTIFY, "cannot_suspend", level, target.why_not)
    return Evaluation(Next.GRACE, "grace", level)


def still_exceeded(
    budget: Budget, spent: Decimal, exempt_because: str | None, *, window_ended: bool = False
) -> str | None:
    """After the grace period: None to go on suspending, or why to stand down."""
    if exempt_because:
        return f"stood down: {exempt_because}"
    if window_ended:  # suspending now would be lifted at once by the refresh that already came
        return "stood down: the window ended during the grace period"
    if budget.status != Status.GRACE:
        return f"stood down: the budget is {budget.status} now"
    if budget.level_of(spent) < Level.EXCEEDED:
        return "stood down: the limit was raised"
    return None
