"""The models priced from a table each UTC day: what the price refresh must still price.

One item a day in the rollups table (`models#<day>`, sort key `seen`) holds the `<model>|<region>`
pairs of that day's calls priced from a price table (never the names of unknown or estimated
models, which callers mint: only a price table's rows, in the regions calls come from, can be in
it). The calculator ADDs a batch's pairs with one UpdateItem, harmless when a retried batch adds
them again; the refresh reads its look-back with one BatchGetItem, whatever the number of callers,
sessions or rows. The items expire with the usage rollups.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from budgetkeeper.storage.tables import RollupItem

PARTITION_PREFIX = "models#"
BUCKET = "seen"


def _pair(model: str, region: str) -> str:
    return f"{model}|{region}"  # a region never holds "|"


def record_models_seen(seen: Iterable[tuple[str, str, str]], retention_seconds: int) -> None:
    """ADD the (day, model, region) triples to their days' items: one request a day in `seen`."""
    by_day: dict[str, set[str]] = {}
    for day, model, region in seen:
        by_day.setdefault(day, set()).add(_pair(model, region))
    for day, pairs in sorted(by_day.items()):
        end_of_day = datetime.fromisoformat(f"{day}T00:00:00+00:00") + timedelta(days=1)
        RollupItem(f"{PARTITION_PREFIX}{day}", BUCKET).update(
            actions=[
                RollupItem.models_seen.add(pairs),
                RollupItem.expires_at.set(int(end_of_day.timestamp()) + retention_seconds),
            ]
        )


def models_seen(since: datetime, until: datetime) -> set[tuple[str, str]]:
    """(model, region) of the calls priced on the UTC days from `since` to `until`, both included."""
    days = []
    day = since.date()
    while day <= until.date():
        days.append((f"{PARTITION_PREFIX}{day.isoformat()}", BUCKET))
        day += timedelta(days=1)
    return {
        tuple(pair.rsplit("|", 1))  # type: ignore[misc]
        for item in RollupItem.batch_get(days)
        for pair in item.models_seen or ()
    }
