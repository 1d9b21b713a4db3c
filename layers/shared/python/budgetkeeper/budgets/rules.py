"""Budget rules: levels, threshold crossings and forecasts. Pure functions, no AWS."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import IntEnum, StrEnum
from typing import Any, Protocol

from budgetkeeper.core.tunables import Tunables
from budgetkeeper.core.windows import DAILY, MONTHLY, WindowSpan, parse_window, window_span

HUNDRED = Decimal(100)
# Principal kinds that get the default budget when first seen without one of their own.
DEFAULT_BUDGET_KINDS = frozenset({"user", "apikey", "session"})
DEFAULT_BUDGET_WINDOWS = (DAILY, MONTHLY)
# The rows that hold operators' suspensions of a scope, one per suspension (`manual#<hold>`): kept
# beside its budgets, never budgets. `manual` alone names all of them (and a row written before
# each suspension had its own).
MANUAL_WINDOW = "manual"
# A forecast needs some history: none before this share of the window has passed.
FORECAST_MIN_ELAPSED_SHARE = Decimal("0.1")
SECONDS_PER_HOUR = Decimal(3600)


def manual_window(hold: str) -> str:
    """The row of one operator's suspension: each is its own holder of its denies."""
    return f"{MANUAL_WINDOW}#{hold}"


def is_manual_window(window: str | None) -> bool:
    """Whether a row is an operator's suspension rather than a budget."""
    return window is not None and (window == MANUAL_WINDOW or window.startswith(f"{MANUAL_WINDOW}#"))


class Level(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    EXCEEDED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class Status(StrEnum):
    """A budget row's status: the workflow moves it, everything else reads it."""

    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    GRACE = "grace"  # exceeded, suspension follows the grace period
    SUSPENDED = "suspended"
    RESTORING = "restoring"  # a restore has claimed the row and is deciding whether to detach


# Statuses of a budget already on its way to, or in, a suspension.
ENFORCING = frozenset({Status.GRACE, Status.SUSPENDED, Status.RESTORING})


class BudgetRecord(Protocol):
    """What a stored budget item offers (store.BudgetItem); None means "use the tunable". Read-only:
    properties, so that a stored row's attributes stand for them."""

    @property
    def scope(self) -> str: ...

    @property
    def window(self) -> str: ...

    @property
    def limit_usd(self) -> Decimal | None: ...

    @property
    def time_zone(self) -> str | None: ...

    @property
    def warning_percent(self) -> Decimal | None: ...

    @property
    def critical_percent(self) -> Decimal | None: ...

    @property
    def grace_seconds(self) -> float | None: ...  # a DynamoDB number: read as int()

    @property
    def origin(self) -> str: ...

    @property
    def protected(self) -> bool: ...

    @property
    def dry_run(self) -> bool | None: ...

    @property
    def status(self) -> str: ...

    @property
    def revision(self) -> float: ...

    @property
    def owner_email(self) -> str | None: ...

    @property
    def language(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Budget:
    """A budget with every default resolved against the current tunables."""

    scope: str
    window: str
    limit_usd: Decimal
    time_zone: str
    warning_percent: Decimal
    critical_percent: Decimal
    grace_seconds: int
    origin: str
    protected: bool
    dry_run: bool
    status: str
    revision: int
    owner_email: str | None = None
    language: str | None = None

    @classmethod
    def resolve(cls, record: BudgetRecord, tunables: Tunables) -> Budget:
        return cls(
            scope=record.scope,
            window=record.window,
            limit_usd=record.limit_usd
            if record.limit_usd is not None
            else default_limit(record.window, tunables),
            time_zone=record.time_zone or tunables.time_zone,
            warning_percent=_or(record.warning_percent, tunables.warning_percent),
            critical_percent=_or(record.critical_percent, tunables.critical_percent),
            grace_seconds=int(_or(record.grace_seconds, tunables.grace_seconds)),
            origin=record.origin,
            protected=bool(record.protected),
            dry_run=bool(_or(record.dry_run, tunables.dry_run)),
            status=record.status,
            revision=int(record.revision),
            owner_email=record.owner_email,
            language=record.language,
        )

    def span_at(self, moment: datetime) -> WindowSpan:
        return window_span(parse_window(self.window), self.time_zone, moment)

    def level_of(self, spent: Decimal) -> Level:
        if self.limit_usd <= 0:
            return Level.EXCEEDED if spent > 0 else Level.OK
        percent = spent * HUNDRED / self.limit_usd
        if percent >= HUNDRED:
            return Level.EXCEEDED
        if percent >= self.critical_percent:
            return Level.CRITICAL
        if percent >= self.warning_percent:
            return Level.WARNING
        return Level.OK

    def percent_of(self, spent: Decimal) -> Decimal:
        if self.limit_usd <= 0:
            return HUNDRED if spent > 0 else Decimal(0)
        return (spent * HUNDRED / self.limit_usd).quantize(Decimal("0.1"))


def _or(value: Any, fallback: Any) -> Any:
    return fallback if value is None else value


def default_limit(window: str, tunables: Tunables) -> Decimal:
    """The default budget's limit for a window spec (monthly for anything longer than a day)."""
    return tunables.default_daily_usd if window == DAILY else tunables.default_monthly_usd


def gets_default_budget(scope: str) -> bool:
    return scope.split(":", 1)[0] in DEFAULT_BUDGET_KINDS


def forecast_spend(
    spent: Decimal, span: WindowSpan, now: datetime, *, recent_burn_per_hour: Decimal | None = None
) -> Decimal | None:
    """Spend projected to the window's end: `spent` plus a burn rate times the time left.

    The rate is the recent hourly burn when the caller measured one (the monitor reads the last
    hours' rollups), else the window's average so far (the calculator, which sees every batch as
    it is metered and reads no rollups). The recent burn wins when known: a spender who has just
    sped up reaches the limit at that pace, which a whole-window average smooths away for hours.
    The average needs history: None until FORECAST_MIN_ELAPSED_SHARE of the window has passed.
    """
    left = Decimal(max((span.end - now).total_seconds(), 0))
    if recent_burn_per_hour is not None:
        return spent + recent_burn_per_hour * left / SECONDS_PER_HOUR
    length = Decimal((span.end - span.start).total_seconds())
    elapsed = Decimal(max((now - span.start).total_seconds(), 0))
    if length <= 0 or elapsed < length * FORECAST_MIN_ELAPSED_SHARE:
        return None
    return spent + spent * left / elapsed


def forecast_crossing(
    spent: Decimal, projected: Decimal, limit: Decimal, now: datetime, end: datetime
) -> datetime | None:
    """When spend growing at the projected pace reaches `limit`: None if it does not by `end`."""
    if projected < limit or spent >= limit or projected <= spent:
        return None
    share = (limit - spent) / (projected - spent)
    return now + (end - now) * float(share)


@dataclass(frozen=True, slots=True)
class Crossing:
    """A batch moved a budget to a higher level, or its forecast over the limit."""

    level: Level
    forecast: bool  # True when the crossing is of the forecast, not of the spend itself


def crossing(
    budget: Budget, before: Decimal, after: Decimal, span: WindowSpan, now: datetime
) -> Crossing | None:
    """What, if anything, spending `after - before` crossed in the window `span`."""
    level_before, level_after = budget.level_of(before), budget.level_of(after)
    if level_after > level_before:
        return Crossing(level=level_after, forecast=False)
    if level_after == Level.EXCEEDED and after > before and budget.status not in ENFORCING:
        # Spending on while over the limit and not (or no longer) suspended: e.g. after a restore.
        return Crossing(level=Level.EXCEEDED, forecast=False)
    if level_after < Level.EXCEEDED:
        projected_before = forecast_spend(before, span, now)
        projected_after = forecast_spend(after, span, now)
        if (
            projected_after is not None
            and projected_after >= budget.limit_usd
            and (projected_before is None or projected_before < budget.limit_usd)
        ):
            return Crossing(level=level_after, forecast=True)
    return None
