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


def _expires_at(moment: str, retention_seconds: int) -> int:
    """When a row of an hour (`YYYY-MM-DDTHH`) or a window ending at `moment` (ISO) expires (TTL)."""
    at = datetime.fromisoformat(moment if len(moment) > 13 else f"{moment}:00+00:00")
    return int(at.timestamp()) + retention_seconds


def _rollup_update(key: RollupKey, delta: RollupDelta, retention: int) -> tuple[RollupItem, list[Any]]:
    scope, hour, model, region, tier = key
    item = RollupItem(scope, rollup_bucket(hour, model, region, tier))
    actions = [
        RollupItem.expires_at.set(_expires_at(hour, retention)),
        RollupItem.hour.set(hour),
        RollupItem.model.set(model),
        RollupItem.region.set(region),
        RollupItem.service_tier.set(tier),
    ]
    return item, actions + _counter_actions(delta)


def _counter_actions(delta: RollupDelta) -> list[Any]:
    return [
        getattr(RollupItem, name).add(value)
        for name in RollupDelta.COUNTERS
        if (value := getattr(delta, name)) or name in RollupDelta.ALWAYS
    ]


def _estimate_update(bucket: str, estimate: EstimateDelta, retention: int) -> tuple[RollupItem, list[Any]]:
    item = RollupItem(ESTIMATES_PARTITION, bucket)
    actions = [
        RollupItem.expires_at.set(_expires_at(estimate.hour, retention)),
        RollupItem.hour.set(estimate.hour),
        RollupItem.model.set(estimate.model),
        RollupItem.region.set(estimate.region),
        RollupItem.service_tier.set(estimate.tier),
        RollupItem.charged.set(estimate.charged),
    ]
    return item, actions + _counter_actions(estimate.usage)


def _line_update(key: LineKey, delta: RollupDelta, retention: int) -> tuple[RollupItem, list[Any]]:
    hour, model, region, identity_arn, principal, role, app, team, operation = key
    item = RollupItem(line_partition(hour[:10]), line_bucket(key))
    actions = [
        RollupItem.expires_at.set(_expires_at(hour, retention)),
        RollupItem.hour.set(hour),
        RollupItem.model.set(model),
        RollupItem.region.set(region),
        RollupItem.identity_arn.set(identity_arn),
        RollupItem.principal.set(principal),
        *(
            getattr(RollupItem, name).set(value)
            for name, value in (("role", role), ("app", app), ("team", team), ("operation", operation))
            if value
        ),
    ]
    return item, actions + _counter_actions(delta)


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


def table_updates(deltas: UsageDeltas, retention_seconds: int) -> list[tuple[Model, list[Any]]]:
    """The updates of every item; each sets its TTL `retention_seconds` after its hour or window."""
    return [
        *(_rollup_update(k, d, retention_seconds) for k, d in deltas.rollups.items()),
        *(_total_update(k, d, retention_seconds) for k, d in deltas.totals.items()),
        *(_line_update(k, d, retention_seconds) for k, d in deltas.lines.items()),
        *(_estimate_update(k, d, retention_seconds) for k, d in deltas.estimates.items()),
    ]
