"""bedrock-mantle calls counted per caller: what splits a project's metered spend into estimates.

One item per (project, UTC hour, model, Region, caller principal scope) in the rollups table's
`mantle-calls#<project>` partition, sort key `<hour>#<model>#<region>#<principal>`: a count the
UnloggedSpendFunction ADDs 1 to for each CloudTrail `CreateInference` data event. Nothing reads
these counts but the per-caller estimate (metering.mantle_callers): they are never spend, never a
budget's total and never a reason to deny. A redelivered event counts twice (an estimate's weight,
not a charge). The items expire with the usage rollups.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from budgetkeeper.storage.tables import RollupItem

PARTITION_PREFIX = "mantle-calls#"
# At most this many counts read per question (one query, 1 MB pages): the estimate says when more
# were left unread.
MAX_COUNTS_READ = 20_000


def _partition(project: str) -> str:
    return f"{PARTITION_PREFIX}{project}"


@dataclass(frozen=True, slots=True)
class CallCount:
    project: str
    hour: str  # YYYY-MM-DDTHH, UTC
    model: str
    region: str
    principal: str  # the caller's principal scope, from the ARN CloudTrail signs
    calls: int


def count_call(project: str, hour: str, model: str, region: str, principal: str, expires_at: int) -> None:
    """ADD one call to the caller's count of the hour (one UpdateItem)."""
    RollupItem(_partition(project), f"{hour}#{model}#{region}#{principal}").update(
        actions=[
            RollupItem.calls.add(1),
            RollupItem.hour.set(hour),
            RollupItem.model.set(model),
            RollupItem.region.set(region),
            RollupItem.principal.set(principal),
            RollupItem.expires_at.set(expires_at),
        ]
    )


def call_counts(
    project: str, first_hour: str, last_hour: str, limit: int = MAX_COUNTS_READ
) -> Iterator[CallCount]:
    """The project's counts from `first_hour` to `last_hour` (both included), at most `limit`."""
    condition = RollupItem.bucket.between(f"{first_hour}#", f"{last_hour}#~")
    for item in RollupItem.query(_partition(project), condition, limit=limit):
        yield CallCount(
            project, str(item.hour), str(item.model), str(item.region), str(item.principal), int(item.calls)
        )


def project_rollups(project: str, first_hour: str, last_hour: str) -> list[RollupItem]:
    """The project's metered usage from `first_hour` to `last_hour`: its hourly rollups."""
    condition = RollupItem.bucket.between(f"{first_hour}#", f"{last_hour}#~")
    return list(RollupItem.query(f"project:{project}", condition))
