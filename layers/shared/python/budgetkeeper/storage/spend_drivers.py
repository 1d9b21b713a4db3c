"""What drove a scope's spend in a window: its costliest model, from the scope's hourly rollups.

Notices name it so that an owner who reads "80 % used" also reads where the money went.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from budgetkeeper.storage.usage_journal import RowRange, usage_rows

_HOUR = "%Y-%m-%dT%H"


@dataclass(frozen=True, slots=True)
class SpendDriver:
    model: str
    cost_usd: Decimal


def top_model(scope: str, start: datetime, end: datetime) -> SpendDriver | None:
    """The model that cost `scope` most in the UTC hours from `start` up to `end`, if any cost."""
    # Buckets are "<hour>#<model>#<region>[#<tier>]": "~" sorts after every bucket of the last hour.
    low, high = start.strftime(_HOUR), f"{end.strftime(_HOUR)}#~"
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for rollup in usage_rows([RowRange(scope, low, high)]):
        if rollup.model:
            costs[rollup.model] += rollup.cost_usd
    if not costs or max(costs.values()) <= 0:
        return None
    model = max(costs, key=lambda name: (costs[name], name))
    return SpendDriver(model, costs[model])
