"""Reading the usage lines: every line of an hour range, one query per day it covers.

The usage calculator keeps one usage line per hour, model, region, caller and attribution under the
day's partition of the rollups table (`budgetkeeper.metering.writer` writes them, through the usage
journal). Reports (`budgetkeeper report`) and the reconciler read them here, and nowhere else, with
the journal's open entries folded in: a report made right after a batch shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from budgetkeeper.storage.keys import line_partition
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper.storage.usage_journal import RowRange, usage_rows

HOUR = timedelta(hours=1)
HOUR_FORMAT = "%Y-%m-%dT%H"


def usage_lines(since: datetime, until: datetime) -> Iterator[RollupItem]:
    """Every usage line of the hours `since <= hour < until` (both on the hour, UTC)."""
    last = until - HOUR
    day = since.replace(hour=0)
    ranges = []
    while day <= last:
        first_hour = max(since, day)
        last_hour = min(last, day + timedelta(hours=23))
        low, high = f"{first_hour.strftime(HOUR_FORMAT)}#", f"{last_hour.strftime(HOUR_FORMAT)}#~"
        ranges.append(RowRange(line_partition(day.strftime("%Y-%m-%d")), low, high))
        day += timedelta(days=1)
    yield from usage_rows(ranges)


def hour_start(line: RollupItem) -> datetime:
    return datetime.strptime(str(line.hour), HOUR_FORMAT).replace(tzinfo=UTC)
