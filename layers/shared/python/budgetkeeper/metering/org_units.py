"""The organizational units an account is in, for `ou:<id>` budgets (organization mode).

AWS Organizations is read (ListParents, from the account up to the root: nested OUs each get the
spend), which answers only in the management account or a delegated administrator. Elsewhere it
refuses: no spend is charged to OUs then, the refusal is logged (once an hour, the cache's life),
and metering goes on. The structure is AWS's and the operators': trusted, as a caller's ARN is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core import clock
from budgetkeeper.core.observability import logger

# An account moved to another OU is charged there from, at the latest, this long after the move.
OU_CACHE_TTL = timedelta(hours=1)


@dataclass
class OrganizationUnits:
    """`of(account)`: the ids of the OUs above the account, nearest first; () when unreadable."""

    organizations: Any  # a boto3 Organizations client
    now: Callable[[], datetime] = clock.now
    _known: dict[str, tuple[datetime, tuple[str, ...]]] = field(default_factory=dict)

    def of(self, account: str) -> tuple[str, ...]:
        now = self.now()
        known = self._known.get(account)
        if known is not None and now - known[0] < OU_CACHE_TTL:
            return known[1]
        try:
            units = self._units_above(account)
        except (ClientError, BotoCoreError) as error:
            logger.warning(
                "organizational units unreadable: no spend is charged to ou: scopes", error=str(error)
            )
            units = known[1] if known is not None else ()
        self._known[account] = (now, units)
        return units

    def _units_above(self, child: str) -> tuple[str, ...]:
        units: list[str] = []
        while (unit := parent_unit(self.organizations, child)) is not None:
            units.append(unit)
            child = unit
        return tuple(units)


def parent_unit(organizations: Any, child: str) -> str | None:
    """The OU `child` (an account or an OU) sits in, None when in the root: one ListParents call,
    Organizations' refusal raised."""
    (parent,) = organizations.list_parents(ChildId=child)["Parents"]
    return str(parent["Id"]) if parent["Type"] == "ORGANIZATIONAL_UNIT" else None
