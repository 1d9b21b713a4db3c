"""The keys of the usage rows, shared by the writer that adds them and the readers that read them
back: rollups (`<hour>#<model>#<region>`), usage lines (the day's `usage#` partition), window
totals, the estimate ledger and the exactly-once markers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime

from budgetkeeper.domain.usage import ServiceTier

RollupKey = tuple[str, str, str, str, str]  # scope, hour, model, region, service tier
TotalKey = tuple[str, str, str]  # scope, window spec, window id
# hour, model, region, identity ARN, principal, role, app, team, operation (role, app and team may be
# None; the operation is None for runtime calls, else usage.OFF_LOG_OPERATIONS: batch jobs, mantle)
LineKey = tuple[str, str, str, str, str, str | None, str | None, str | None, str | None]
LINE_PARTITION_PREFIX = "usage#"


def line_partition(day: str) -> str:
    """The rollups-table partition of the usage lines of one UTC day (`YYYY-MM-DD`)."""
    return f"{LINE_PARTITION_PREFIX}{day}"


def line_key(key: Sequence[str | None]) -> LineKey:
    """A usage line's key as stored in a journal or a ledger: those written before operations have
    8 parts (runtime calls)."""
    return (*key, None) if len(key) == 8 else tuple(key)  # type: ignore[return-value]


def line_bucket(key: LineKey) -> str:
    """A usage line's sort key: its hour, then a digest of the rest (any length, any characters).
    A runtime line's digest leaves its operation out: the same bucket as before lines had one."""
    rest = key[1:] if key[8] is not None else key[1:8]
    digest = hashlib.sha256(json.dumps(rest).encode()).hexdigest()[:32]
    return f"{key[0]}#{digest}"


def rollup_bucket(hour: str, model: str, region: str, tier: str) -> str:
    """A rollup's sort key: `<hour>#<model>#<region>`, and `#<tier>` for a tier other than standard."""
    tier_part = "" if tier == ServiceTier.STANDARD else f"#{tier}"
    return f"{hour}#{model}#{region}{tier_part}"


# Usage charged at an estimate is kept in ledger items (metering.estimates re-prices them) under
# this partition; models ever estimated under the next.
ESTIMATES_PARTITION = "estimates"
ESTIMATED_MODELS_PARTITION = "estimated-models"
# Rollup and usage-line deltas not yet added to their rows (storage.usage_journal).
USAGE_JOURNAL_PARTITION = "usage-journal"

# Slot items per minute: bounds a slot's size (what each update of it is charged on) and contention.
MARKER_SHARDS = 4


def marker_slot(payload_id: str, first_event_ms: int) -> str:
    """The slot item of a payload (a sha256 hex id) whose first event was logged at `first_event_ms`."""
    minute = datetime.fromtimestamp(first_event_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")
    return f"seen#{minute}#{int(payload_id[0], 16) % MARKER_SHARDS}"


def payload_digest(payload_id: str) -> bytes:
    """What a slot holds of a payload id: its first 8 bytes (a collision within one minute and shard
    has odds of about n^2 / 2^65)."""
    return bytes.fromhex(payload_id[:16])


def payload_marker_id(payload_id: str) -> str:
    return f"payload#{payload_id}"
