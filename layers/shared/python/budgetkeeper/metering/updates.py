"""The DynamoDB update expressions that add usage deltas to the rollups and totals tables: one
update per item key, each setting the item's TTL `retention_seconds` after its hour or window."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pynamodb.models import Model

from budgetkeeper.metering.deltas import EstimateDelta, RollupDelta, TotalDelta, UsageDeltas
from budgetkeeper.storage.keys import (
    ESTIMATES_PARTITION,
    LineKey,
    RollupKey,
    TotalKey,
    line_bucket,
    line_partition,
    rollup_bucket,
)
from budgetkeeper.storage.tables import RollupItem, TotalItem, budget_key
from budgetkeeper.storage.usage_journal import row_actions


def _expires_at(moment: str, retention_seconds: int) -> int:
    """When a row of an hour (`YYYY-MM-DDTHH`) or a window ending at `moment` (ISO) expires (TTL)."""
    at = datetime.fromisoformat(moment if len(moment) > 13 else f"{moment}:00+00:00")
    return int(at.timestamp()) + retention_seconds


def _counters(delta: RollupDelta) -> dict[str, Any]:
    return {
        name: value
        for name in RollupDelta.COUNTERS
        if (value := getattr(delta, name)) or name in RollupDelta.ALWAYS
    }


def _rollup_row(key: RollupKey, delta: RollupDelta, retention: int) -> RollupItem:
    scope, hour, model, region, tier = key
    return RollupItem(
        scope,
        rollup_bucket(hour, model, region, tier),
        expires_at=_expires_at(hour, retention),
        hour=hour,
        model=model,
        region=region,
        service_tier=tier,
        **_counters(delta),
    )


def _estimate_row(bucket: str, estimate: EstimateDelta, retention: int) -> RollupItem:
    return RollupItem(
        ESTIMATES_PARTITION,
        bucket,
        expires_at=_expires_at(estimate.hour, retention),
        hour=estimate.hour,
        model=estimate.model,
        region=estimate.region,
        service_tier=estimate.tier,
        charged=estimate.charged,
        **_counters(estimate.usage),
    )


def _line_row(key: LineKey, delta: RollupDelta, retention: int) -> RollupItem:
    hour, model, region, identity_arn, principal, role, app, team, operation = key
    return RollupItem(
        line_partition(hour[:10]),
        line_bucket(key),
        expires_at=_expires_at(hour, retention),
        hour=hour,
        model=model,
        region=region,
        identity_arn=identity_arn,
        principal=principal,
        role=role,
        app=app,
        team=team,
        operation=operation,
        **_counters(delta),
    )


def _total_update(key: TotalKey, delta: TotalDelta, retention: int) -> tuple[TotalItem, list[Any]]:
    scope, window, window_id = key
    item = TotalItem(budget_key(scope, window), window_id)
    actions = [
        TotalItem.expires_at.set(_expires_at(delta.window_end, retention)),
        TotalItem.scope.set(scope),
        TotalItem.window.set(window),
        TotalItem.window_start.set(delta.window_start),
        TotalItem.window_end.set(delta.window_end),
        TotalItem.calls.add(delta.calls),
        TotalItem.spent_usd.add(delta.spent_usd),
        *([TotalItem.claimed_usd.add(delta.claimed_usd)] if delta.claimed_usd else []),
        *([TotalItem.claimed_by.add(delta.claimers)] if delta.claimers else []),
    ]
    return item, actions


def usage_rows_of(deltas: UsageDeltas, retention_seconds: int) -> list[RollupItem]:
    """The rollups and usage lines `deltas` add to, each with its deltas as counters: what a batch
    writes to the usage journal (storage.usage_journal), or adds to the rows at once."""
    return [
        *(_rollup_row(k, d, retention_seconds) for k, d in deltas.rollups.items()),
        *(_line_row(k, d, retention_seconds) for k, d in deltas.lines.items()),
    ]


def _row_update(row: RollupItem) -> tuple[RollupItem, list[Any]]:
    return RollupItem(row.scope, row.bucket), row_actions(row)


def table_updates(deltas: UsageDeltas, retention_seconds: int) -> list[tuple[Model, list[Any]]]:
    """The updates of every item; each sets its TTL `retention_seconds` after its hour or window."""
    return [
        *(_row_update(row) for row in usage_rows_of(deltas, retention_seconds)),
        *(_total_update(k, d, retention_seconds) for k, d in deltas.totals.items()),
        *(_row_update(_estimate_row(k, d, retention_seconds)) for k, d in deltas.estimates.items()),
    ]
