"""Price versions: a Price List refresh stored, judged, activated; the calculator's active table.

A refresh becomes a new version in the prices table (`PriceVersionItem`), always. It is activated
only when it is safe (`refusals`):
- it has rows;
- no unit price moved by more than `max_factor` (up or down) from the active table's for the same
  (model key, region, tier) and token kind;
- every (model, region) metered in the last 30 days that the active table prices, it prices too.
Otherwise it is stored with status `refused`, and operators get the diff on the events topic.
`budgetkeeper prices activate VERSION` activates any stored version by hand.

The calculator prices with the active version (`ActivePrices`, cached per container for
`CACHE_TTL`), and falls back to the bundled table when there is none or it cannot be read.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pynamodb.exceptions import PynamoDBException

from budgetkeeper import clock, money
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.price_list import fetch_price_list, normalise, price_rows
from budgetkeeper.pricing import TOKEN_KINDS, PriceRow, PriceTable, resolve_model_id
from budgetkeeper.store import PriceVersionItem, RollupItem
from budgetkeeper.windows import iso_utc

_log = logging.getLogger(__name__)

ACTIVE_PRICE_VERSION = "ACTIVE"  # the key of the pointer item
CACHE_TTL = timedelta(minutes=5)
METERED_LOOKBACK = timedelta(days=30)
DEFAULT_MAX_FACTOR = Decimal(2)


class UnknownPriceVersion(LookupError):
    """No stored version has this name."""


@dataclass(frozen=True, slots=True)
class PriceChange:
    model: str
    region: str
    tier: str
    kind: str
    old: Decimal | None  # None: new in this version
    new: Decimal | None  # None: gone from this version

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "region": self.region,
            "tier": self.tier,
            "kind": self.kind,
            "old": None if self.old is None else money.exact(self.old),
            "new": None if self.new is None else money.exact(self.new),
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    changes: tuple[PriceChange, ...]
    refusals: tuple[str, ...] = field(default=())

    @property
    def safe(self) -> bool:
        return not self.refusals


def diff(old: PriceTable, new: PriceTable) -> list[PriceChange]:
    """Every unit price a call would be charged differently, by the new rows' keys and token kind.

    A new row is compared with the old row that prices the same id, region and tier (a region's
    row, else the one with no region); an old row is reported gone when the new table has no row
    for its model key and tier in any region.
    """
    pairs: dict[tuple[str, str, str], tuple[PriceRow | None, PriceRow | None]] = {}
    for row in new:
        pairs[row.key] = (old.lookup(row.model, row.region, row.tier), row)
    kept = {(row.model, row.tier) for row in new}
    for row in old:
        if (row.model, row.tier) not in kept:
            pairs[row.key] = (row, None)
    changes = []
    for (model, region, tier), (before, after) in sorted(pairs.items()):
        for kind in TOKEN_KINDS:
            was = None if before is None else getattr(before.rates, kind)
            now = None if after is None else getattr(after.rates, kind)
            if was != now:
                changes.append(PriceChange(model, region, str(tier), kind, was, now))
    return changes


def judge(
    old: PriceTable, new: PriceTable, metered: Iterable[tuple[str, str]], max_factor: Decimal
) -> Judgement:
    """Whether `new` may replace `old`: the refusal reasons, and the diff either way."""
    changes = diff(old, new)
    refusals = []
    if len(new) == 0:
        refusals.append("the refresh yielded no price rows")
    for change in changes:
        if change.old and change.new and not (1 / max_factor <= change.new / change.old <= max_factor):
            refusals.append(
                f"{change.model} in {change.region} ({change.tier}) {change.kind}: "
                f"{money.exact(change.old)} -> {money.exact(change.new)} USD per 1M "
                f"moves by more than a factor of {max_factor}"
            )
    for model_key, region in sorted(set(metered)):
        ref = resolve_model_id(model_key)
        if old.match(ref, region).row is not None and new.match(ref, region).row is None:
            refusals.append(f"{model_key} in {region} was metered in the last 30 days and has no price in it")
    return Judgement(tuple(changes), tuple(refusals))


# --- storage (this module is the one writer of PriceVersionItem) ---------------------------------


def _pack(table: PriceTable) -> bytes:
    return gzip.compress(json.dumps([row.to_dict() for row in table]).encode(), mtime=0)


def _unpack(version: str, data: bytes) -> PriceTable:
    return PriceTable((PriceRow.from_dict(row) for row in json.loads(gzip.decompress(data))), version=version)


def store_version(table: PriceTable, *, source: str, refusals: Iterable[str] = ()) -> PriceVersionItem:
    reasons = list(refusals)
    item = PriceVersionItem(
        table.version,
        status="refused" if reasons else "stored",
        created_at=iso_utc(clock.now()),
        source=source,
        rows=_pack(table),
        row_count=len(table),
        refusals=reasons or None,
    )
    item.save(PriceVersionItem.version.does_not_exist())
    return item


def load_version(version: str) -> PriceTable:
    try:
        item = PriceVersionItem.get(version)
    except PriceVersionItem.DoesNotExist:
        raise UnknownPriceVersion(version) from None
    if item.rows is None:
        raise UnknownPriceVersion(version)
    return _unpack(version, item.rows)


def versions() -> list[PriceVersionItem]:
    """Every stored version, oldest first (the pointer item left out)."""
    items = [item for item in PriceVersionItem.scan() if item.version != ACTIVE_PRICE_VERSION]
    return sorted(items, key=lambda item: (item.created_at or "", item.version))


def active_version() -> str | None:
    try:
        return PriceVersionItem.get(ACTIVE_PRICE_VERSION).active_version
    except PriceVersionItem.DoesNotExist:
        return None


def activate(version: str, *, actor: str) -> None:
    """Make `version` the one the calculator prices with (within CACHE_TTL)."""
    load_version(version)  # it must exist and be readable
    previous = active_version()
    PriceVersionItem(
        ACTIVE_PRICE_VERSION, active_version=version, activated_at=iso_utc(clock.now()), activated_by=actor
    ).save()
    PriceVersionItem(version).update(actions=[PriceVersionItem.status.set("active")])
    if previous and previous != version:
        PriceVersionItem(previous).update(actions=[PriceVersionItem.status.set("superseded")])


def active_table() -> PriceTable:
    """The active version's table; the bundled one when none is active."""
    version = active_version()
    return PriceTable.bundled() if version is None else load_version(version)


# --- the refresh ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RefreshOutcome:
    version: str
    activated: bool
    judgement: Judgement

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "activated": self.activated,
            "refusals": list(self.judgement.refusals),
            "changes": [change.to_dict() for change in self.judgement.changes],
        }


def refresh(
    new: PriceTable,
    *,
    source: str,
    metered: Iterable[tuple[str, str]],
    max_factor: Decimal,
    notify: Callable[[RefreshOutcome], None],
) -> RefreshOutcome:
    """Store `new` as a version; activate it when `judge` finds it safe, else tell operators."""
    judgement = judge(active_table(), new, metered, max_factor)
    store_version(new, source=source, refusals=judgement.refusals)
    if judgement.safe:
        activate(new.version, actor="price-refresh")
    outcome = RefreshOutcome(new.version, judgement.safe, judgement)
    if not judgement.safe:
        notify(outcome)
    return outcome


def metered_models(since: datetime) -> set[tuple[str, str]]:
    """(model, region) of every hourly rollup since `since`: what a new version must still price."""
    hour = since.strftime("%Y-%m-%dT%H")
    return {
        (item.model, item.region)
        for item in RollupItem.scan(RollupItem.hour >= hour, attributes_to_get=["model", "region"])
        if item.model and item.region
    }


def refusal_event(outcome: RefreshOutcome) -> NotificationEvent:
    """What operators get when a refresh is not activated: the reasons and the diff (first 100 changes)."""
    changes = [change.to_dict() for change in outcome.judgement.changes]
    return NotificationEvent(
        type="prices_refused",
        scope="prices",
        window=None,
        window_id=None,
        spent_usd=None,
        limit_usd=None,
        percent=None,
        refresh_at=None,
        actor="price-refresh",
        reason="; ".join(outcome.judgement.refusals),
        execution=None,
        at=iso_utc(clock.now()),
        note=json.dumps({"version": outcome.version, "changes": changes[:100], "change_count": len(changes)}),
    )


def refresh_from_price_list(
    pricing_client: Any, *, max_factor: Decimal, notify: Callable[[NotificationEvent], None]
) -> RefreshOutcome:
    """The daily refresh: read the Price List, store the rows as a version, activate it if safe."""
    normalised = normalise(fetch_price_list(pricing_client))
    if normalised.unmapped:
        _log.warning("Price List products with no model id in the map: %s", dict(normalised.unmapped))
    version = "pricelist-" + clock.now().strftime("%Y%m%dT%H%M%SZ")
    table = PriceTable(price_rows(normalised.prices, normalised.skipped), version=version)
    return refresh(
        table,
        source="AWS Price List API (AmazonBedrock, AmazonBedrockFoundationModels)",
        metered=metered_models(clock.now() - METERED_LOOKBACK),
        max_factor=max_factor,
        notify=lambda outcome: notify(refusal_event(outcome)),
    )


# --- the calculator's table ----------------------------------------------------------------------


class ActivePrices:
    """The table the calculator prices with: the active version, re-read at most every CACHE_TTL.

    Without a prices table, with no active version, or when DynamoDB cannot be read, the bundled
    table (a read failure is logged and the last good table is kept).
    """

    def __init__(self, *, enabled: bool, ttl: timedelta = CACHE_TTL) -> None:
        self._enabled = enabled
        self._ttl = ttl
        self._table = PriceTable.bundled()
        self._read_at: datetime | None = None

    def table(self) -> PriceTable:
        now = clock.now()
        if self._enabled and (self._read_at is None or now - self._read_at >= self._ttl):
            self._read_at = now
            try:
                version = active_version()
                if version is None:
                    self._table = PriceTable.bundled()
                elif version != self._table.version:
                    self._table = load_version(version)
            except (PynamoDBException, UnknownPriceVersion) as error:
                _log.warning(
                    "cannot read the active price version, keeping %s: %s", self._table.version, error
                )
        return self._table
