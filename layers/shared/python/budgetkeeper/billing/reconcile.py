"""Reconciliation: what Budgetkeeper metered against what AWS bills, per day, at two levels.
docs/architecture.md, "Reconciliation (billing.reconcile)", tells the rest.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from budgetkeeper.billing.cur import (
    BEDROCK,
    NOT_MODEL_CALLS,
    CurSource,
    ReconcileFailed,
    cur_query,
    run_athena_query,
)
from budgetkeeper.core import clock, money
from budgetkeeper.core.actors import BILLING_ACTOR
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.scopes import billed_principal_scope, parse_identity_arn
from budgetkeeper.metering.usage_lines import usage_lines
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.causes import cause, causes_text
from budgetkeeper.storage.tables import RollupItem

EVENT_TYPE = "billing_drift"
SERVICES_SCOPE = "bedrock"  # the per-service level's key: every Bedrock service, summed
NO_PRINCIPAL = "(no principal)"  # billed Bedrock spend the CUR names no IAM principal for
# The CUR's product codes of Bedrock model usage: current Claude usage is billed under
# AmazonBedrockService (shared facts, more_facts.md), whatever its line items' product name says.
DAY = timedelta(days=1)


class Level(StrEnum):
    SERVICE = "service"
    PRINCIPAL = "principal"


class Verdict(StrEnum):
    IN_LINE = "in_line"
    DRIFT = "drift"  # metered and billed further apart than the tunables allow
    UNMETERED = "unmetered"  # billed, never metered
    PENDING = "pending"  # the bill has no data for the day yet


def is_bedrock_service(name: str) -> bool:
    return BEDROCK in name and NOT_MODEL_CALLS not in name


@dataclass(frozen=True, slots=True)
class Limits:
    percent: Decimal
    min_usd: Decimal

    @classmethod
    def from_tunables(cls, tunables: Tunables) -> Limits:
        return cls(tunables.reconcile_drift_percent, tunables.reconcile_drift_min_usd)


def percent_apart(metered: Decimal, billed: Decimal) -> Decimal | None:
    """How far metered is from billed, in percent of the bill; None when nothing was billed."""
    if billed == 0:
        return None
    return (abs(billed - metered) * 100 / billed).quantize(Decimal("0.1"))


def judge(metered: Decimal, billed: Decimal | None, limits: Limits) -> Verdict:
    if billed is None:
        return Verdict.PENDING
    gap = abs(billed - metered)
    if gap < limits.min_usd:
        return Verdict.IN_LINE
    if metered == 0:
        return Verdict.UNMETERED
    if billed == 0 or gap * 100 > limits.percent * billed:
        return Verdict.DRIFT
    return Verdict.IN_LINE


@dataclass(frozen=True, slots=True)
class Comparison:
    """Metered against billed for one key (all Bedrock services, or one principal) on one UTC day."""

    level: Level
    day: str
    scope: str
    metered_usd: Decimal
    billed_usd: Decimal | None  # None: the bill has no data for the day yet
    verdict: Verdict
    account: str | None = None
    principal_arn: str | None = None  # as the CUR names it
    services: tuple[str, ...] = ()  # the Bedrock services billed that day (per-service level)

    @property
    def percent(self) -> Decimal | None:
        return None if self.billed_usd is None else percent_apart(self.metered_usd, self.billed_usd)

    @property
    def alerts(self) -> bool:
        return self.verdict in (Verdict.DRIFT, Verdict.UNMETERED)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": str(self.level),
            "day": self.day,
            "scope": self.scope,
            "account": self.account,
            "principal_arn": self.principal_arn,
            "metered_usd": self.metered_usd,
            "billed_usd": self.billed_usd,
            "percent_apart": self.percent,
            "verdict": str(self.verdict),
            "services": list(self.services),
        }


def days_of(since: date, until: date) -> list[str]:
    """Every day from `since` to `until`, both included, as YYYY-MM-DD."""
    return [(since + DAY * offset).isoformat() for offset in range((until - since).days + 1)]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def read_usage_lines(since: date, until: date) -> list[RollupItem]:
    """The usage lines of the days `since` to `until` (both included)."""
    return list(usage_lines(_midnight(since), _midnight(until) + DAY))


# --- per service: Cost Explorer --------------------------------------------------------------------


def cost_explorer_request(since: date, until: date) -> dict[str, Any]:
    """GetCostAndUsage of every service per day (`until` included), usage records only."""
    return {
        "TimePeriod": {"Start": since.isoformat(), "End": (until + DAY).isoformat()},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "Filter": {"Dimensions": {"Key": "RECORD_TYPE", "Values": ["Usage"]}},
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }


@dataclass(frozen=True, slots=True)
class BilledDay:
    usd: Decimal | None  # None: Cost Explorer has no cost of any service for the day yet
    services: tuple[str, ...]


def billed_per_day(ce: Any, since: date, until: date) -> dict[str, BilledDay]:
    """Bedrock's billed cost per day, every Bedrock service summed, from Cost Explorer's pages.

    Every service is asked for, not only Bedrock's: a day with no cost of any service (the account
    pays for this stack's own functions every day) is a day Cost Explorer has not processed yet.
    """
    request = cost_explorer_request(since, until)
    has_data: dict[str, bool] = defaultdict(bool)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    services: dict[str, set[str]] = defaultdict(set)
    token: str | None = None
    while True:
        page = ce.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
        for result in page.get("ResultsByTime", ()):
            day = result["TimePeriod"]["Start"]
            for group in result.get("Groups", ()):
                has_data[day] = True
                (service,) = group["Keys"]
                if is_bedrock_service(service):
                    totals[day] += Decimal(group["Metrics"]["UnblendedCost"]["Amount"])
                    services[day].add(service)
        token = page.get("NextPageToken")
        if not token:
            break
    return {
        day: BilledDay(totals[day] if has_data[day] else None, tuple(sorted(services[day])))
        for day in days_of(since, until)
    }


def metered_per_day(lines: Iterable[RollupItem]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for line in lines:
        totals[str(line.hour)[:10]] += line.cost_usd
    return totals


def compare_services(
    days: Sequence[str], metered: Mapping[str, Decimal], billed: Mapping[str, BilledDay], limits: Limits
) -> list[Comparison]:
    rows = []
    for day in days:
        bill = billed.get(day, BilledDay(None, ()))
        spent = metered.get(day, Decimal(0))
        rows.append(
            Comparison(
                Level.SERVICE,
                day,
                SERVICES_SCOPE,
                spent,
                bill.usd,
                judge(spent, bill.usd, limits),
                services=bill.services,
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class BilledPrincipal:
    day: str
    account: str | None
    arn: str | None  # None: the CUR names no principal for it
    usd: Decimal


def billed_principals(rows: Iterable[Mapping[str, str | None]]) -> tuple[list[BilledPrincipal], set[str]]:
    """The query's rows: the Bedrock spend per principal, and the days the CUR has data for."""
    billed, days = [], set()
    for row in rows:
        day = str(row["day"])
        days.add(day)
        if str(row["bedrock"]).lower() == "true":
            billed.append(
                BilledPrincipal(day, row["account"], row["principal"], Decimal(str(row["billed_usd"])))
            )
    return billed, days


def compare_principals(
    days: Sequence[str],
    lines: Iterable[RollupItem],
    billed: Iterable[BilledPrincipal],
    billed_days: set[str],
    limits: Limits,
) -> list[Comparison]:
    """Each billed principal against its metered spend, then each metered principal never billed."""
    metered: dict[tuple[str, str | None, str], Decimal] = defaultdict(Decimal)
    role_of: dict[tuple[str, str | None, str], tuple[str, str | None, str] | None] = {}
    for line in lines:
        day, account = str(line.hour)[:10], parse_identity_arn(str(line.identity_arn)).account
        key = (day, account, str(line.principal))
        role_key = (day, account, str(line.role)) if line.role else None
        metered[key] += line.cost_usd
        if role_key is not None:
            metered[role_key] += line.cost_usd
        role_of[key] = role_key
    bills: dict[tuple[str, str | None, str], Decimal] = defaultdict(Decimal)
    arns: dict[tuple[str, str | None, str], str | None] = {}
    for bill in billed:
        account, scope = billed_principal_scope(bill.arn) if bill.arn else (bill.account, NO_PRINCIPAL)
        key = (bill.day, account or bill.account, scope)
        bills[key] += bill.usd
        arns[key] = bill.arn
    wanted = set(days)
    rows = [
        Comparison(
            Level.PRINCIPAL,
            day,
            scope,
            metered.get(key, Decimal(0)),
            usd,
            judge(metered.get(key, Decimal(0)), usd, limits),
            account=account,
            principal_arn=arns[key],
        )
        for key, usd in bills.items()
        for day, account, scope in (key,)
        if day in wanted
    ]
    for key, role_key in role_of.items():
        day, account, scope = key
        if day not in wanted or key in bills or (role_key is not None and role_key in bills):
            continue
        usd = Decimal(0) if day in billed_days else None
        rows.append(
            Comparison(
                Level.PRINCIPAL,
                day,
                scope,
                metered[key],
                usd,
                judge(metered[key], usd, limits),
                account=account,
            )
        )
    return sorted(rows, key=lambda row: (row.day, row.account or "", row.scope))


# --- the run --------------------------------------------------------------------------------------


def reconcile(
    level: Level,
    since: date,
    until: date,
    *,
    limits: Limits,
    ce: Any = None,
    athena: Any = None,
    cur: CurSource | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Comparison]:
    """Every comparison of one level for the days `since` to `until` (both included)."""
    days = days_of(since, until)
    lines = read_usage_lines(since, until)
    if level is Level.SERVICE:
        return compare_services(days, metered_per_day(lines), billed_per_day(ce, since, until), limits)
    if cur is None:
        raise ReconcileFailed("no CUR 2.0 table is named: the per-principal level is off")
    billed, billed_days = billed_principals(
        run_athena_query(athena, cur_query(cur, since, until), cur, sleep=sleep)
    )
    return compare_principals(days, lines, billed, billed_days, limits)


def _exact(value: Any) -> str:
    if isinstance(value, Decimal):
        return money.exact(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def drift_event(comparison: Comparison, limits: Limits) -> NotificationEvent:
    """What operators get for a comparison that alerts: both numbers, and what they mean."""
    if comparison.verdict is Verdict.UNMETERED:
        causes = [cause("billed_not_metered", day=comparison.day)]
    else:
        apart = {"percent": limits.percent, "min_usd": money.exact(limits.min_usd)}
        causes = [cause("billing_drift", day=comparison.day, **apart)]
    note = {key: value for key, value in comparison.to_dict().items() if value not in (None, [])}
    note_text = json.dumps(note, default=_exact)
    return NotificationEvent(
        type=EVENT_TYPE,
        scope=comparison.scope,
        window="daily",
        window_id=comparison.day,
        spent_usd=money.exact(comparison.metered_usd),
        limit_usd=None,
        percent=None if comparison.percent is None else str(comparison.percent),
        refresh_at=None,
        actor=BILLING_ACTOR,
        reason=causes_text(causes, "en"),
        execution=None,
        at=iso_utc(clock.now()),
        note=note_text,
        billed_usd=None if comparison.billed_usd is None else money.exact(comparison.billed_usd),
        causes=causes,
    )


def daily(
    *,
    tunables: Tunables,
    ce: Any,
    athena: Any,
    cur: CurSource | None,
    notify: Callable[[NotificationEvent], None],
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The scheduled run: the last `reconcile/days` days before today, both levels (the principal
    level when a CUR table is named); each comparison that alerts is published."""
    today = clock.now().astimezone(UTC).date()
    since, until = today - DAY * max(tunables.reconcile_days, 1), today - DAY
    limits = Limits.from_tunables(tunables)
    comparisons = reconcile(Level.SERVICE, since, until, limits=limits, ce=ce)
    if cur is not None:
        comparisons += reconcile(
            Level.PRINCIPAL, since, until, limits=limits, athena=athena, cur=cur, sleep=sleep
        )
    alerted = [comparison for comparison in comparisons if comparison.alerts]
    for comparison in alerted:
        notify(drift_event(comparison, limits))
    counts: dict[str, int] = defaultdict(int)
    for comparison in comparisons:
        counts[f"{comparison.level}:{comparison.verdict}"] += 1
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "principal_level": cur is not None,
        "alerted": len(alerted),
        "counts": dict(sorted(counts.items())),
        "comparisons": [json.loads(json.dumps(c.to_dict(), default=_exact)) for c in comparisons],
    }
