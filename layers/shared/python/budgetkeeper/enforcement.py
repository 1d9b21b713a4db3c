"""Enforcement rules: what to deny for a scope, what a budget's state calls for, run names.

Pure functions; the workflow's Lambda tasks (functions/enforcement) apply them to DynamoDB and
the state machine applies the IAM changes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from budgetkeeper.budgets import ENFORCING_STATUSES, Budget, Level
from budgetkeeper.scopes import APP_ROLE_SUFFIX, parse_scope

EXECUTION_NAME_LIMIT = 80
_EXECUTION_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")


class Status(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    GRACE = "grace"  # exceeded, suspension follows the grace period
    SUSPENDED = "suspended"
    RESTORING = "restoring"  # a restore has claimed the row and is deciding whether to detach


ENFORCING = frozenset(Status(status) for status in ENFORCING_STATUSES)
LEVEL_STATUS = {Level.WARNING: Status.WARNING, Level.CRITICAL: Status.CRITICAL, Level.EXCEEDED: Status.GRACE}


class TargetKind(StrEnum):
    USER = "user"
    ROLE = "role"
    GROUP = "group"
    NONE = "none"  # nothing in IAM to deny: alert only


@dataclass(frozen=True, slots=True)
class Target:
    kind: TargetKind
    name: str | None = None
    why_not: str | None = None  # for NONE: why this scope cannot be suspended

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": str(self.kind), "name": self.name, "why_not": self.why_not}

    @classmethod
    def from_dict(cls, data: dict[str, str | None]) -> Target:
        return cls(TargetKind(str(data["kind"])), data.get("name"), data.get("why_not"))


def deny_target(scope: str, role_exists: Callable[[str], bool]) -> Target:
    """Where the deny policy goes for `scope`.

    Users and API-key users: the IAM user. Roles: the role. Teams: the IAM group named like the
    team. Apps: their `{App}-BedrockRole` when it exists; an app known only from request metadata
    has no principal to deny. Sessions on shared roles are denied per session by a later
    capability; until then they alert. Accounts are never denied as a whole.
    """
    parsed = parse_scope(scope)
    kind, name = str(parsed.kind), parsed.name
    if kind in ("user", "apikey"):
        return Target(TargetKind.USER, name)
    if kind == "role":
        return Target(TargetKind.ROLE, name)
    if kind == "team":
        return Target(TargetKind.GROUP, name)
    if kind == "app":
        role = f"{name}{APP_ROLE_SUFFIX}"
        if role_exists(role):
            return Target(TargetKind.ROLE, role)
        return Target(
            TargetKind.NONE, why_not=f"app {name} is known only from request metadata: no principal"
        )
    if kind == "session":
        return Target(
            TargetKind.NONE,
            why_not="a shared-role session cannot be suspended alone yet: the role budget is the backstop",
        )
    return Target(TargetKind.NONE, why_not=f"a {kind} scope is never denied as a whole")


def is_exempt(budget: Budget, exclusions: tuple[str, ...], system_principals: tuple[str, ...]) -> str | None:
    """Why this budget's scope must never be suspended, or None."""
    if budget.protected:
        return "protected"
    if budget.scope in exclusions:
        return "excluded by the exclusions parameter"
    if budget.scope in system_principals:
        return "a principal of Budgetkeeper itself"
    return None


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


def still_exceeded(budget: Budget, spent: Decimal, exempt_because: str | None) -> str | None:
    """After the grace period: None to go on suspending, or why to stand down."""
    if exempt_because:
        return f"stood down: {exempt_because}"
    if budget.status != Status.GRACE:
        return f"stood down: the budget is {budget.status} now"
    if budget.level_of(spent) < Level.EXCEEDED:
        return "stood down: the limit was raised"
    return None


def execution_name(prefix: str, *parts: object) -> str:
    """A Step Functions execution name: deterministic, at most 80 characters, no `:` or `/`.

    Names are unique per state machine for 90 days, so the same parts never start two runs.
    """
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    safe_prefix = _EXECUTION_NAME_FORBIDDEN.sub("-", prefix)[:30]
    return f"{safe_prefix}-{digest[:40]}"[:EXECUTION_NAME_LIMIT]
