"""Price versions: a Price List refresh stored, judged, activated; the calculator's active table.
docs/architecture.md, "Price versions (pricing.versions)", tells the rest.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pynamodb.exceptions import PynamoDBException

from budgetkeeper.core import clock, money
from budgetkeeper.core.actors import PRICE_REFRESH_ACTOR
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.causes import cause, cause_text
from budgetkeeper.pricing.price_list import fetch_price_list, normalise, price_rows, service_codes
from budgetkeeper.pricing.table import (
    TOKEN_KINDS,
    ModelKind,
    PriceBasis,
    PriceRow,
    PriceTable,
    Rates,
    resolve_model_id,
)
from budgetkeeper.storage.audit_rows import Change, write_audit
from budgetkeeper.storage.models_seen import models_seen
from budgetkeeper.storage.tables import PriceVersionItem

_log = logging.getLogger(__name__)

ACTIVE_PRICE_VERSION = "ACTIVE"  # the key of the pointer item
OVERRIDES = "OVERRIDES"  # the key of the operators' overrides
OVERRIDE_AUDIT_SCOPE = "prices"
CACHE_TTL = timedelta(minutes=5)
METERED_LOOKBACK = timedelta(days=30)
DEFAULT_MAX_FACTOR = Decimal(2)


class UnknownPriceVersion(LookupError):
    """No stored version has this name."""


class OverrideRefused(ValueError):
    """An override that may not be set or removed (the reason is the message)."""


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
    causes: tuple[dict[str, str], ...] = field(default=())  # why not activated (notify.causes)

    @property
    def safe(self) -> bool:
        return not self.causes

    @property
    def refusals(self) -> tuple[str, ...]:
        """The causes in English, as the price version keeps them."""
        return tuple(cause_text(refusal, "en") for refusal in self.causes)


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
        refusals.append(cause("no_price_rows"))
    for change in changes:
        if change.old and change.new and not (1 / max_factor <= change.new / change.old <= max_factor):
            refusals.append(
                cause(
                    "price_jump",
                    model=change.model,
                    region=change.region,
                    tier=change.tier,
                    kind=change.kind,
                    old=money.exact(change.old),
                    new=money.exact(change.new),
                    factor=max_factor,
                )
            )
    for model_key, region in sorted(set(metered)):
        ref = resolve_model_id(model_key)
        if old.match(ref, region).row is not None and new.match(ref, region).row is None:
            refusals.append(cause("metered_without_price", model=model_key, region=region))
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
    items = [
        item for item in PriceVersionItem.scan() if item.version not in (ACTIVE_PRICE_VERSION, OVERRIDES)
    ]
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


# --- operator overrides -------------------------------------------------------------------------


def _overrides_item() -> PriceVersionItem | None:
    try:
        return PriceVersionItem.get(OVERRIDES)
    except PriceVersionItem.DoesNotExist:
        return None


def overrides() -> tuple[PriceRow, ...]:
    """The operators' override rows, as stored (a row a version prices now is kept, unused)."""
    item = _overrides_item()
    return () if item is None or item.rows is None else tuple(_unpack(OVERRIDES, item.rows))


def _prices_exactly(table: PriceTable, model_key: str, region: str, tier: ServiceTier) -> PriceRow | None:
    """The row that prices the id in the region at the tier, unless only at a fallback rate."""
    match = table.match(resolve_model_id(model_key), region, tier)
    return match.row if match.basis in (PriceBasis.EXACT, PriceBasis.KEPT_BUNDLED) else None


def with_overrides(table: PriceTable, rows: Iterable[PriceRow]) -> PriceTable:
    """`table` plus each override row for an id, region and tier that `table` does not price (or
    prices only at a fallback rate)."""
    unpriced = [row for row in rows if _prices_exactly(table, row.model, row.region, row.tier) is None]
    return table if not unpriced else PriceTable([*table, *unpriced], version=table.version)


def _save_overrides(rows: list[PriceRow], before: PriceVersionItem | None, now: datetime) -> None:
    """Write the override rows; a concurrent change in between fails the condition (try again)."""
    condition = (
        PriceVersionItem.version.does_not_exist()
        if before is None
        else PriceVersionItem.created_at == before.created_at
    )
    PriceVersionItem(
        OVERRIDES,
        status="overrides",
        created_at=iso_utc(now),
        source="budgetkeeper prices override",
        rows=_pack(PriceTable(rows, version=OVERRIDES)),
        row_count=len(rows),
    ).save(condition)


def set_override(
    model_id: str, region: str, rates: Rates, *, tier: ServiceTier, actor: str, reason: str
) -> PriceRow:
    """Price `model_id` in `region` at `tier` where nothing else does; audited.

    Refused for a model the active version or the bundled table prices there (change prices through
    a version; a price at a fallback rate may be overridden), for ids that are not priced per token,
    and without a reason.
    """
    if not reason.strip():
        raise OverrideRefused("an override needs a reason")
    ref = resolve_model_id(model_id)
    if ref.kind is not ModelKind.MODEL:
        raise OverrideRefused(f"{model_id} is a {ref.kind.replace('_', ' ')}: override the model it runs")
    for table in (active_table(), PriceTable.bundled()):
        row = _prices_exactly(table, ref.key, region, tier)
        if row is not None:
            raise OverrideRefused(
                f"{ref.key} in {region} ({tier}) has a price in {table.version} ({row.model}, {row.region}): "
                "overrides are for models with no price anywhere"
            )
    now = clock.now()
    version = "override-" + now.strftime("%Y%m%dT%H%M%SZ")
    row = PriceRow(
        model=ref.key,
        region=region,
        rates=rates,
        long_context=None,
        source=f"operator override by {actor}: {reason.strip()}",
        as_of=now.date(),
        tier=tier,
        version=version,
    )
    before = _overrides_item()
    rows = overrides()
    kept = [old for old in rows if old.key != row.key]
    _save_overrides([*kept, row], before, now)
    write_audit(
        OVERRIDE_AUDIT_SCOPE,
        f"{ref.key}@{region}#{tier}",
        "override" if len(kept) < len(rows) else "no price",
        "override",
        Change(actor, now, f"{version}: {json.dumps(rates.to_dict())}; {reason.strip()}"),
    )
    return row


def remove_override(model_id: str, region: str, *, tier: ServiceTier, actor: str, reason: str) -> PriceRow:
    """Take an override out (its calls are unknown again unless a version prices them); audited."""
    key = (resolve_model_id(model_id).key, region, tier)
    before = _overrides_item()
    rows = list(overrides())
    gone = [row for row in rows if row.key == key]
    if not gone:
        raise OverrideRefused(f"no override for {key[0]} in {region} ({tier})")
    now = clock.now()
    _save_overrides([row for row in rows if row.key != key], before, now)
    write_audit(
        OVERRIDE_AUDIT_SCOPE,
        f"{key[0]}@{region}#{tier}",
        "override",
        "removed",
        Change(actor, now, reason.strip() or None),
    )
    return gone[0]


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
        activate(new.version, actor=PRICE_REFRESH_ACTOR)
    outcome = RefreshOutcome(new.version, judgement.safe, judgement)
    if not judgement.safe:
        notify(outcome)
    return outcome


def metered_models(since: datetime) -> set[tuple[str, str]]:
    """(model, region) of every call priced from a table since `since`: what a new version must
    still price (metering.models_seen: one item a day, never a scan of the rollups)."""
    return models_seen(since, clock.now())


def refusal_event(outcome: RefreshOutcome) -> NotificationEvent:
    """What operators get when a refresh is not activated: the reasons and the diff (first 100 changes)."""
    changes = [change.to_dict() for change in outcome.judgement.changes]
    note = json.dumps({"version": outcome.version, "changes": changes[:100], "change_count": len(changes)})
    causes = list(outcome.judgement.causes)
    return NotificationEvent.operator_alert(
        "prices_refused", "prices", PRICE_REFRESH_ACTOR, causes, iso_utc(clock.now()), note
    )


def kept_bundled_rows(new: PriceTable, metered: Iterable[tuple[str, str]]) -> list[PriceRow]:
    """The bundled rows of metered models no offer code prices, flagged `kept_bundled`: a model
    the Price List does not list (some of the newest) keeps its rate instead of losing it."""
    kept: dict[tuple[str, str, ServiceTier], PriceRow] = {}
    bundled = PriceTable.bundled()
    for model_key, region in sorted(set(metered)):
        ref = resolve_model_id(model_key)
        if ref.kind is not ModelKind.MODEL or new.match(ref, region).row is not None:
            continue
        row = bundled.match(ref, region).row
        if row is not None and new.lookup(row.model, row.region, row.tier) is None:
            kept[row.key] = replace(
                row,
                kept_bundled=True,
                source=f"{row.source} (kept from {bundled.version}: no offer code prices it)",
            )
    return list(kept.values())


def refresh_from_price_list(
    pricing_client: Any, *, max_factor: Decimal, notify: Callable[[NotificationEvent], None]
) -> RefreshOutcome:
    """The daily refresh: read every Bedrock offer code of the Price List, store the rows as a
    version (with the bundled rows of metered models no code prices, flagged), activate it if safe."""
    codes = service_codes(pricing_client)
    normalised = normalise(fetch_price_list(pricing_client, codes))
    if normalised.unmapped:
        _log.warning("Price List products with no model id in the map: %s", dict(normalised.unmapped))
    version = "pricelist-" + clock.now().strftime("%Y%m%dT%H%M%SZ")
    read = PriceTable(price_rows(normalised.prices, normalised.skipped), version=version)
    metered = metered_models(clock.now() - METERED_LOOKBACK)
    kept = kept_bundled_rows(read, metered)
    if kept:
        _log.warning(
            "metered models no offer code prices keep their bundled rate: %s", [row.model for row in kept]
        )
    return refresh(
        PriceTable([*read, *kept], version=version) if kept else read,
        source=f"AWS Price List API ({', '.join(codes)})",
        metered=metered,
        max_factor=max_factor,
        notify=lambda outcome: notify(refusal_event(outcome)),
    )


def current_table() -> PriceTable:
    """The table the calculator prices with now: the active version with the operators' overrides."""
    return with_overrides(active_table(), overrides())


# --- the calculator's table ----------------------------------------------------------------------


class ActivePrices:
    """The table the calculator prices with: the active version with the operators' overrides,
    re-read at most every CACHE_TTL.

    Without a prices table, with no active version, or when DynamoDB cannot be read, the bundled
    table (a read failure is logged and the last good table is kept).
    """

    def __init__(self, *, enabled: bool, ttl: timedelta = CACHE_TTL) -> None:
        self._enabled = enabled
        self._ttl = ttl
        self._base = PriceTable.bundled()
        self._overrides: tuple[PriceRow, ...] = ()
        self._table = self._base
        self._read_at: datetime | None = None

    def table(self) -> PriceTable:
        now = clock.now()
        if self._enabled and (self._read_at is None or now - self._read_at >= self._ttl):
            self._read_at = now
            try:
                version = active_version()
                if version is None:
                    base = PriceTable.bundled()
                else:
                    base = self._base if version == self._base.version else load_version(version)
                rows = overrides()
            except (PynamoDBException, UnknownPriceVersion) as error:
                _log.warning(
                    "cannot read the active price version, keeping %s: %s", self._table.version, error
                )
            else:
                if base is not self._base or rows != self._overrides:
                    self._base, self._overrides = base, rows
                    self._table = with_overrides(base, rows)
        return self._table
