"""What drove a scope's spend in a window: its costliest model (from the scope's hourly rollups)
and its costliest app (from the usage lines, which keep each caller's app: over the window's last
APP_HOURS at most, since those lines are every caller's, read to find the scope's).

Notices name them so that an owner who reads "80 % used" also reads where the money went.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from budgetkeeper.domain.scopes import ScopeKind, parse_identity_arn
from budgetkeeper.storage.keys import line_partition
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper.storage.usage_journal import RowRange, usage_rows

_HOUR = "%Y-%m-%dT%H"
# The hours of usage lines a notice reads at most: a monthly window's would be every caller's lines
# of the month (hundreds of MB at scale) for one notice; a day's are what a daily window reads anyway.
APP_HOURS = 24


@dataclass(frozen=True, slots=True)
class SpendDriver:
    name: str  # a model id, or an app scope
    cost_usd: Decimal
    hours: int | None = None  # over the window's last `hours` only; None: the whole window


def _costliest(costs: dict[str, Decimal], hours: int | None = None) -> SpendDriver | None:
    if not costs or max(costs.values()) <= 0:
        return None
    name = max(costs, key=lambda key: (costs[key], key))
    return SpendDriver(name, costs[name], hours)


def top_model(scope: str, start: datetime, end: datetime) -> SpendDriver | None:
    """The model that cost `scope` most in the UTC hours from `start` up to `end`, if any cost."""
    # Buckets are "<hour>#<model>#<region>[#<tier>]": "~" sorts after every bucket of the last hour.
    low, high = start.strftime(_HOUR), f"{end.strftime(_HOUR)}#~"
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for rollup in usage_rows([RowRange(scope, low, high)]):
        if rollup.model:
            costs[rollup.model] += rollup.cost_usd
    return _costliest(costs)


def top_app(scope: str, start: datetime, end: datetime) -> SpendDriver | None:
    """The app whose calls cost `scope` most in the UTC hours from `start` up to `end` (the last
    APP_HOURS of them, if more: its `hours` say so), if any call named an app; None for an app's
    own scope (its calls are all its own)."""
    if scope.startswith(f"{ScopeKind.APP}:"):
        return None
    clipped = end - start > timedelta(hours=APP_HOURS)
    start = end - timedelta(hours=APP_HOURS - 1) if clipped else start
    # Lines are "<hour>#<digest>" in one partition a day: only the window's hours are read.
    low, high = start.strftime(_HOUR), f"{end.strftime(_HOUR)}#~"
    days = [start.date() + timedelta(days=offset) for offset in range((end.date() - start.date()).days + 1)]
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for line in usage_rows([RowRange(line_partition(day.isoformat()), low, high) for day in days]):
        if line.app and _charged_to(line, scope):
            costs[line.app] += line.cost_usd
    return _costliest(costs, APP_HOURS if clipped else None)


def _charged_to(line: RollupItem, scope: str) -> bool:
    """Whether a usage line's calls were charged to `scope` (its caller's principal, role, team or
    account: the scopes a line keeps, and the account its caller's ARN names)."""
    if scope in (line.principal, line.role, line.team):
        return True
    if scope.startswith(f"{ScopeKind.ACCOUNT}:") and line.identity_arn:
        return scope == f"{ScopeKind.ACCOUNT}:{parse_identity_arn(line.identity_arn).account}"
    return False
