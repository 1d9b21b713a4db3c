"""Reading the usage lines: every line of an hour range, one query per day it covers.

The usage calculator keeps one usage line per hour, model, region, caller and attribution under the
day's partition of the rollups table (`budgetkeeper.metering.writer` writes them). Reports
(`budgetkeeper report`) and the reconciler read them here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from budgetkeeper.storage.keys import line_partition
from budgetkeeper.storage.tables import RollupItem

HOUR = timedelta(hours=1)
HOUR_FORMAT = "%Y-%m-%dT%H"


def usage_lines(since: datetime, until: datetime) -> Iterator[RollupItem]:
    """Every usage line of the hours `since <= hour < until` (both on the hour, UTC)."""
    last = until - HOUR
    day = since.replace(hour=0)
    while day <= last:
        first_hour = max(since, day)
        last_hour = min(last, day + timedelta(hours=23))
        yield from RollupItem.query(
            line_partition(day.strftime("%Y-%m-%d")),
            RollupItem.bucket.between(
                f"{first_hour.strftime(HOUR_FORMAT)}#", f"{last_hour.strftime(HOUR_FORMAT)}#~"
            ),
        )
        day += timedelta(days=1)


def hour_start(line: RollupItem) -> datetime:
    return datetime.strptime(str(line.hour), HOUR_FORMAT).replace(tzinfo=UTC)
