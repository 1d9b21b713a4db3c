"""What the model expects, kept apart from the product: who is charged for a call, what each
total must be, which operator holds are in force and who may be denied for what.

Nothing here imports the product's attribution, pricing, windows or enforcement: the expectation
is computed again from the records the model fed in and the operators' actions it took, so a
defect in one of those modules cannot hide itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

ACCOUNT = "111122223333"
NANO_PER_TOKEN = 800  # Nova Pro input: 0.80 USD per million tokens is 800 nano-dollars a token
USD = 10**9  # nano-dollars

CHATBOT_ROLE = "Chatbot-BedrockRole"  # app Chatbot by the role-name convention: trusted
SHARED_ROLE = "SharedRole"  # opted in to session denies
SSO_ROLE = "AWSReservedSSO_DataScience_4f1c9a7e2b5d8c30"
IAM_ROLES = (CHATBOT_ROLE, SHARED_ROLE)  # the roles in IAM (opted in to session denies)
TEAM = "data"  # IAM group `data` (alice), mapped: user:alice, carol's and priya's sessions, app:DataApp
TEAM_APP = "DataApp"  # mapped to the team, no role: reached only by claims

# Every caller: (identity ARN, principal scope, role scope or None). The SSO session's role lives
# in the account the stack runs in: Identity Center's permission set is assigned there.
CALLERS: dict[str, tuple[str, str, str | None]] = {
    "alice": (f"arn:aws:iam::{ACCOUNT}:user/alice", "user:alice", None),
    "bob": (f"arn:aws:iam::{ACCOUNT}:user/bob", "user:bob", None),
    "mallory": (f"arn:aws:iam::{ACCOUNT}:user/mallory", "user:mallory", None),
    "apikey": (
        f"arn:aws:iam::{ACCOUNT}:user/BedrockAPIKey-k1",
        "apikey:BedrockAPIKey-k1",
        None,
    ),
    "chatbot": (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{CHATBOT_ROLE}/i-1",
        f"session:{CHATBOT_ROLE}/i-1",
        f"role:{CHATBOT_ROLE}",
    ),
    "carol": (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{SHARED_ROLE}/carol",
        f"session:{SHARED_ROLE}/carol",
        f"role:{SHARED_ROLE}",
    ),
    "dave": (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{SHARED_ROLE}/dave",
        f"session:{SHARED_ROLE}/dave",
        f"role:{SHARED_ROLE}",
    ),
    "priya": (
        f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/priya@example.com",
        f"session:{SSO_ROLE}/priya@example.com",
        f"role:{SSO_ROLE}",
    ),
}
TEAM_MEMBERS = {"user:alice", f"session:{SHARED_ROLE}/carol", f"session:{SSO_ROLE}/priya@example.com"}
TEAM_MAP = dict.fromkeys(TEAM_MEMBERS, TEAM) | {f"app:{TEAM_APP}": TEAM}
GROUP_MEMBERS = {"user:alice"}  # IAM group `data`
TEAM_SESSIONS = {scope for scope in TEAM_MEMBERS if scope.startswith("session:")}
# What a claim says: requestMetadata.app, or the `app` tag of a profile the caller made.
CLAIMS = (None, ("metadata", "Chatbot"), ("metadata", TEAM_APP), ("profile", "Chatbot"))
Call = tuple[str, tuple[str, str] | None]  # (caller, claim)

BUDGET_SCOPES = (
    *(principal for _, principal, _ in CALLERS.values()),
    f"role:{CHATBOT_ROLE}",
    f"role:{SHARED_ROLE}",
    "app:Chatbot",
    f"app:{TEAM_APP}",
    f"team:{TEAM}",
    f"account:{ACCOUNT}",
)
WINDOWS = ("daily", "weekly", "monthly", "days:3@2026-06-01")
DEFAULT_WINDOWS = {"daily": (10 * USD, 900), "monthly": (150 * USD, 900)}  # the tunables' defaults
DEFAULT_BUDGET_KINDS = ("user", "apikey", "session")
PRINCIPAL_KINDS = ("user", "apikey", "role", "session")


def entity_of(scope: str) -> str:
    """The IAM object a principal scope is denied through: `user:<name>`, `role:R`, `session:R/s`."""
    kind, name = scope.split(":", 1)
    return f"user:{name}" if kind == "apikey" else scope


def window_of(window: str, moment: datetime) -> tuple[str, datetime]:
    """(window id, end) of a UTC window spec at `moment`."""
    day = moment.astimezone(UTC).date()
    if window == "daily":
        start, end = day, day + timedelta(days=1)
        return start.isoformat(), _midnight(end)
    if window == "weekly":
        start = day - timedelta(days=day.weekday())
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}", _midnight(start + timedelta(days=7))
    if window == "monthly":
        start = day.replace(day=1)
        return start.strftime("%Y-%m"), _midnight((start + timedelta(days=32)).replace(day=1))
    days, anchor_text = window.removeprefix("days:").split("@")
    anchor, length = date.fromisoformat(anchor_text), int(days)
    start = anchor + timedelta(days=(day - anchor).days // length * length)
    return f"{start.isoformat()}+{length}d", _midnight(start + timedelta(days=length))


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@dataclass(frozen=True)
class Charge:
    """One call as the model charges it: each scope, and whether that scope is charged on what
    AWS signed (the caller's ARN) and operators wrote, or only on the caller's claim."""

    principal: str
    nano: int
    trusted: dict[str, bool]


def charge(caller: str, claim: tuple[str, str] | None, tokens: int) -> Charge:
    _, principal, role = CALLERS[caller]
    trusted = {principal: True, f"account:{ACCOUNT}": True}
    if role:
        trusted[role] = True
    role_app = (
        role.removeprefix("role:").removesuffix("-BedrockRole")
        if role and role.endswith("-BedrockRole")
        else None
    )
    app, app_trusted = None, False
    if claim and claim[0] == "profile":
        app, app_trusted = claim[1], claim[1] == role_app  # a tag the caller may have written
    elif role_app:
        app, app_trusted = role_app, True
    elif claim:
        app = claim[1]
    if app:
        trusted[f"app:{app}"] = app_trusted
    # A claim reaches its app only, never the team an operator mapped the app to.
    for scope in (principal, role, f"app:{app}" if app and app_trusted else None):
        if scope and scope in TEAM_MAP:
            trusted[f"team:{TEAM_MAP[scope]}"] = True
            break
    return Charge(principal, tokens * NANO_PER_TOKEN, trusted)


def neighbourhood(caller: str) -> set[str]:
    """Every scope a call of `caller` can be charged to, or could reach by a claim (a claimed app's
    team included: a claim must not reach it)."""
    scopes = {scope for claim in CLAIMS for scope in charge(caller, claim, 0).trusted}
    return scopes | {f"team:{TEAM_MAP[app]}" for app in scopes if app in TEAM_MAP}


def charges_aimed_at(scope: str) -> tuple[list[Call], list[Call]]:
    """The (caller, claim) pairs aimed at `scope`: those charged to it on what AWS signed and
    operators wrote, and those that only claim it, or claim an app an operator mapped to it (a
    team a claim must not reach)."""
    own: list[Call] = []
    claims: list[Call] = []
    for caller in sorted(CALLERS):
        for claim in CLAIMS:
            trusted = charge(caller, claim, 0).trusted
            claimed_team = claim and f"team:{TEAM_MAP.get(f'app:{claim[1]}')}"
            if trusted.get(scope):
                own.append((caller, claim))
            elif scope in trusted or claimed_team == scope:
                claims.append((caller, claim))
    return own, claims


@dataclass
class WindowSpend:
    total: int = 0
    trusted: int = 0
    claimers: set[str] = field(default_factory=set)  # principal scopes that claimed this scope
    lowest_limit: int | None = None  # the lowest limit in force in this window


@dataclass
class ModelBudget:
    scope: str
    window: str
    limit: int
    grace: int
    protected: bool = False
    spend: dict[str, WindowSpend] = field(default_factory=dict)
    # When the system was last shown this budget over its limit by trusted spend (a metered call,
    # or a sweep after an unprotect), in which window; None once something resets it.
    noticed_at: datetime | None = None
    noticed_window: str | None = None
    baseline: tuple[str, int] | None = None  # (window id, total) at the last restore
    needs_sweep: bool = False

    def in_window(self, window_id: str) -> WindowSpend:
        spend = self.spend.setdefault(window_id, WindowSpend())
        if spend.lowest_limit is None or self.limit < spend.lowest_limit:
            spend.lowest_limit = self.limit
        return spend

    def forget_notice(self) -> None:
        self.noticed_at = self.noticed_window = None


@dataclass
class Hold:
    """An operator's suspension: its scope, its end (None: only a restore ends it), and what it denies."""

    scope: str
    until: datetime | None
    entities: frozenset[str]

    def active(self, now: datetime) -> bool:
        return self.until is None or now < self.until


def is_spared(principal: str, exempt: set[str]) -> bool:
    """Protection and exclusions belong to the principal; a session is exempt with its role."""
    if principal in exempt:
        return True
    return (
        principal.startswith("session:")
        and f"role:{principal.removeprefix('session:').split('/')[0]}" in exempt
    )


def deny_reach(scope: str, principals: set[str], exempt: set[str]) -> frozenset[str]:
    """The IAM objects a deny for `scope` reaching `principals` (the scope itself, or a team: its
    members, as a group) denies, exempt principals spared: a group with an exempt member is
    denied member by member."""
    entities: set[str] = set()
    for principal in principals - GROUP_MEMBERS if scope.startswith("team:") else principals:
        if not is_spared(principal, exempt):
            entities.add(entity_of(principal))
    if scope.startswith("team:") and scope not in exempt:
        members = {member for member in GROUP_MEMBERS if not is_spared(member, exempt)}
        entities |= {f"group:{TEAM}"} if members == GROUP_MEMBERS else {entity_of(m) for m in members}
    return frozenset(entities)


def trusted_reach(scope: str) -> set[str]:
    """The principals a deny of `scope` for trusted spend (or an operator's hold) reaches."""
    kind, name = scope.split(":", 1)
    if kind == "role" and name not in IAM_ROLES:
        return set()  # an Identity Center role is not changed in IAM: its sessions are denied
    if kind in PRINCIPAL_KINDS:
        return {scope}
    if kind == "team":
        return {*GROUP_MEMBERS, *TEAM_SESSIONS}
    if kind == "app" and name == "Chatbot":
        return {f"role:{CHATBOT_ROLE}"}
    return set()
