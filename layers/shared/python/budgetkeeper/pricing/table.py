"""The price table: price rows (unit prices per token kind, long-context tiers, service tiers),
model and profile ids read into what they name, and `PriceTable.match`, the rules that find the row
pricing an invocation (docs/architecture.md, "Pricing", lists them). Pure: the bundled table is a
file of the package.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from budgetkeeper.core import money
from budgetkeeper.domain.usage import ServiceTier, TokenCounts

TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
ZERO_USD = Decimal(0)
BUNDLED_TABLE_PATH = Path(__file__).parent / "prices" / "bedrock-prices.json"
ANY_REGION = "*"
# The Region whose list prices the bundled table's region-less rows carry, and whose row prices a
# model in a Region the table has no row for (flagged `region_fallback`).
FALLBACK_REGION = "us-east-1"
# Every long-context tier AWS publishes starts above 200K prompt tokens.
LONG_CONTEXT_THRESHOLD_TOKENS = 200_000

# Token kinds in the order of TokenCounts and of every price row.
TOKEN_KINDS: tuple[str, ...] = ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h")
# A cache kind the row has no price for is charged at the next kind's rate: AWS bills cache tokens
# a model prices no differently as ordinary input, and a 1-hour write no cheaper than a 5-minute one.
_STAND_IN_KIND: Mapping[str, str] = {
    "cache_read": "input",
    "cache_write_5m": "input",
    "cache_write_1h": "cache_write_5m",
}

GLOBAL_PREFIX = "global"
# The key prefix of a row that prices every geographic profile of a model in its region.
GEOGRAPHIC_KEY_PREFIX = "geo"
GOVCLOUD_PREFIX = "us-gov"
# Prefixes of system inference-profile ids (`us.anthropic.claude-...`). A test checks that the
# bundled table uses no other.
PROFILE_PREFIXES = frozenset({"us", "eu", "apac", "jp", "au", "in", GOVCLOUD_PREFIX, GLOBAL_PREFIX})


# --- price rows ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per 1,000,000 tokens of each kind; None where the source gives no price for the kind."""

    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None
    # Per kind in TOKEN_KINDS order: the rate charged and the kind whose rate that is.
    charged: tuple[tuple[Decimal, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if any(rate is not None and rate < 0 for rate in (getattr(self, kind) for kind in TOKEN_KINDS)):
            raise ValueError(f"negative price in {self}")
        object.__setattr__(self, "charged", tuple(self._charged_rate(kind) for kind in TOKEN_KINDS))

    def billed(self, tokens: TokenCounts) -> Iterator[tuple[str, int, Decimal, str]]:
        """(kind, tokens, USD per 1M charged, kind whose rate that is) for each kind with tokens."""
        counts = (
            tokens.input,
            tokens.output,
            tokens.cache_read,
            tokens.cache_write_5m,
            tokens.cache_write_1h,
        )
        for kind, count, (usd_per_million, rate_of) in zip(TOKEN_KINDS, counts, self.charged, strict=True):
            if count:
                yield kind, count, usd_per_million, rate_of

    def _charged_rate(self, kind: str) -> tuple[Decimal, str]:
        rate = getattr(self, kind)
        while rate is None:
            kind = _STAND_IN_KIND[kind]
            rate = getattr(self, kind)
        return rate, kind

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rates:
        def price(kind: str) -> Decimal | None:
            text = data.get(kind)
            return None if text is None else Decimal(text)

        return cls(
            input=Decimal(data["input"]),
            output=Decimal(data["output"]),
            cache_read=price("cache_read"),
            cache_write_5m=price("cache_write_5m"),
            cache_write_1h=price("cache_write_1h"),
        )

    def to_dict(self) -> dict[str, str | None]:
        return {
            kind: None if (rate := getattr(self, kind)) is None else money.exact(rate) for kind in TOKEN_KINDS
        }


@dataclass(frozen=True, slots=True)
class LongContextTier:
    """Rates for a request whose prompt (input + cache reads + cache writes) exceeds the threshold."""

    threshold_tokens: int
    rates: Rates

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LongContextTier:
        return cls(threshold_tokens=int(data["threshold_tokens"]), rates=Rates.from_dict(data))

    def to_dict(self) -> dict[str, Any]:
        return {"threshold_tokens": self.threshold_tokens, **self.rates.to_dict()}


@dataclass(frozen=True, slots=True)
class PriceRow:
    """Unit prices of one model (or profile) id in one region, with where they came from."""

    model: str
    region: str  # an AWS region, or ANY_REGION when the source names none
    rates: Rates
    long_context: LongContextTier | None
    source: str
    as_of: date
    derived: tuple[str, ...] = ()  # kinds computed by the table's builder rather than read from the source
    tier: ServiceTier = ServiceTier.STANDARD
    version: str | None = None  # the version that priced it, when not its table's (an operator override)
    kept_bundled: bool = False  # a Price List version kept the bundled row: no offer code prices it

    @property
    def key(self) -> tuple[str, str, ServiceTier]:
        return self.model, self.region, self.tier

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PriceRow:
        long_context = data.get("long_context")
        return cls(
            model=data["model"],
            region=data["region"],
            rates=Rates.from_dict(data),
            long_context=None if long_context is None else LongContextTier.from_dict(long_context),
            source=data["source"],
            as_of=date.fromisoformat(data["as_of"]),
            derived=tuple(data.get("derived", ())),
            tier=ServiceTier(data.get("tier", ServiceTier.STANDARD)),
            version=data.get("version"),
            kept_bundled=bool(data.get("kept_bundled", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "region": self.region,
            "tier": str(self.tier),
            **self.rates.to_dict(),
            "long_context": None if self.long_context is None else self.long_context.to_dict(),
            "derived": list(self.derived),
            "source": self.source,
            "as_of": self.as_of.isoformat(),
            **({"version": self.version} if self.version else {}),
            **({"kept_bundled": True} if self.kept_bundled else {}),
        }


# --- model ids ----------------------------------------------------------------------------------


class ModelKind(StrEnum):
    MODEL = "model"  # a base model id or a system inference-profile id, bare or inside its ARN
    APPLICATION_PROFILE = "application_profile"  # resolved to a model through InferenceProfiles
    PROVISIONED = "provisioned"  # provisioned throughput: billed per hour
    OTHER_ARN = "other_arn"  # custom, imported or other models the table cannot price per token


@dataclass(frozen=True, slots=True)
class ModelRef:
    """What a logged `modelId` names. `key` is the id looked up in the table (the ARN for ARN kinds)."""

    kind: ModelKind
    key: str
    profile_prefix: str | None = None  # "us", "global", ... for a system inference-profile id

    @property
    def base_model(self) -> str:
        return self.key if self.profile_prefix is None else self.key[len(self.profile_prefix) + 1 :]


_ARN_KINDS: Mapping[str, ModelKind] = {
    "foundation-model": ModelKind.MODEL,
    "inference-profile": ModelKind.MODEL,
    "application-inference-profile": ModelKind.APPLICATION_PROFILE,
    "provisioned-model": ModelKind.PROVISIONED,
}


@functools.lru_cache(maxsize=4096)
def resolve_model_id(model_id: str) -> ModelRef:
    """Read a logged `modelId`: a base id, a profile id (`us.`, `global.`, ...) or a Bedrock ARN.

    Foundation-model and system inference-profile ARNs are stripped to the id they end in;
    application-profile, provisioned-model and other ARNs keep the whole ARN as their key.
    """
    if not model_id.startswith("arn:"):
        prefix, dot, rest = model_id.partition(".")
        return ModelRef(
            ModelKind.MODEL, model_id, prefix if dot and rest and prefix in PROFILE_PREFIXES else None
        )
    # arn:<partition>:bedrock:<region>:<account>:<resource type>/<id>; model ids contain ':' themselves.
    parts = model_id.split(":", 5)
    if len(parts) < 6 or parts[2] != "bedrock":
        return ModelRef(ModelKind.OTHER_ARN, model_id)
    resource_type, _, resource_id = parts[5].partition("/")
    kind = _ARN_KINDS.get(resource_type, ModelKind.OTHER_ARN)
    if kind is not ModelKind.MODEL:
        return ModelRef(kind, model_id)
    return resolve_model_id(resource_id) if resource_id else ModelRef(ModelKind.OTHER_ARN, model_id)


# --- the table ----------------------------------------------------------------------------------


class PriceBasis(StrEnum):
    """How a call's price was found (module docstring): anything but `exact` is flagged."""

    EXACT = "exact"
    REGION_FALLBACK = "region_fallback"
    TIER_FALLBACK = "tier_fallback"
    KEPT_BUNDLED = "kept_bundled"
    ESTIMATE = "estimate"


@dataclass(frozen=True, slots=True)
class PriceMatch:
    """The row that prices a model id in a region (None: unknown), how it was chosen if not
    directly, and the basis of the price."""

    row: PriceRow | None
    note: str | None = None
    basis: PriceBasis = PriceBasis.EXACT


EndpointClass = str  # "in_region", "geographic" or "global": what an estimate compares


def endpoint_class(ref: ModelRef) -> EndpointClass:
    if ref.profile_prefix == GLOBAL_PREFIX:
        return "global"
    if ref.profile_prefix in (None, GOVCLOUD_PREFIX):
        return "in_region"
    return "geographic"


def vendor_of(ref: ModelRef) -> str:
    """`anthropic` of `us.anthropic.claude-...`; the Price List's `geo.` keys name their model after it."""
    base = ref.base_model.removeprefix(f"{GEOGRAPHIC_KEY_PREFIX}.")
    return base.partition(".")[0]


class PriceTable:
    """Price rows keyed by (model or profile id, region, tier); lookups are dict reads, matches are cached."""

    def __init__(self, rows: Iterable[PriceRow], version: str) -> None:
        self.version = version
        self._rows: dict[tuple[str, str, ServiceTier], PriceRow] = {}
        self._geo_profiles: dict[tuple[str, ServiceTier], list[PriceRow]] = {}
        self._matches: dict[tuple[str, str, ServiceTier], PriceMatch] = {}
        self._estimates: dict[tuple[str, EndpointClass, ServiceTier], Rates | None] = {}
        for row in rows:
            if row.key in self._rows:
                raise ValueError(f"two price rows for {row.model} in {row.region} at tier {row.tier}")
            self._rows[row.key] = row
            # Commercial geo profiles (us., eu., apac., ...): GovCloud and global ones are priced apart.
            ref = resolve_model_id(row.model)
            if ref.profile_prefix not in (None, GLOBAL_PREFIX, GOVCLOUD_PREFIX):
                self._geo_profiles.setdefault((ref.base_model, row.tier), []).append(row)

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        document = json.loads(path.read_text(encoding="utf-8"))
        return cls((PriceRow.from_dict(row) for row in document["rows"]), version=document["version"])

    @classmethod
    @functools.cache
    def bundled(cls) -> PriceTable:
        """The table shipped in the layer, read once per process."""
        return cls.load(BUNDLED_TABLE_PATH)

    def __iter__(self) -> Iterator[PriceRow]:
        return iter(self._rows.values())

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(
        self, model_key: str, region: str, tier: ServiceTier = ServiceTier.STANDARD
    ) -> PriceRow | None:
        """The row for exactly this id and tier: in `region`, else the one with no region."""
        return self._rows.get((model_key, region, tier)) or self._rows.get((model_key, ANY_REGION, tier))

    def match(self, ref: ModelRef, region: str, tier: ServiceTier = ServiceTier.STANDARD) -> PriceMatch:
        """The row that prices `ref` in `region` at `tier`, by the rules in the module docstring:
        the tier's row, else the standard one (`tier_fallback`); None when the model has neither."""
        cache_key = (ref.key, region, tier)
        found = self._matches.get(cache_key)
        if found is None:
            found = self._match_in_region(ref, region, tier)
            if found.row is None and tier is not ServiceTier.STANDARD:
                standard = self._match_in_region(ref, region, ServiceTier.STANDARD)
                if standard.row is not None:
                    why = f"no {tier} price for {ref.key}: charged at the standard rate"
                    found = PriceMatch(standard.row, _joined(standard.note, why), PriceBasis.TIER_FALLBACK)
            self._matches[cache_key] = found
        return found

    def estimate(self, ref: ModelRef, tier: ServiceTier) -> tuple[Rates, str] | None:
        """A conservative rate for a model the table does not price: per token kind, the highest rate
        of its geo profiles when they disagree (rule 3), else of the same vendor and endpoint kind (at
        `tier`, else standard), else of any vendor."""
        siblings = [] if ref.profile_prefix is None else self._geo_profiles.get((ref.base_model, tier), [])
        if siblings:
            rates = _highest_rates(sibling.rates for sibling in siblings)
            return (
                None
                if rates is None
                else (rates, f"the highest rate of the geo profiles of {ref.base_model}")
            )
        vendor, kind = vendor_of(ref), endpoint_class(ref)
        for wanted_vendor, wanted_tier in (
            (vendor, tier),
            (vendor, ServiceTier.STANDARD),
            (None, tier),
            (None, ServiceTier.STANDARD),
        ):
            rates = self._highest(wanted_vendor, kind, wanted_tier)
            if rates is not None:
                of = f"{wanted_vendor} " if wanted_vendor else "any vendor's "
                return rates, f"the highest {of}{kind.replace('_', '-')} {wanted_tier} rate in {self.version}"
        return None

    def _highest(self, vendor: str | None, kind: EndpointClass, tier: ServiceTier) -> Rates | None:
        cache_key = (vendor or "", kind, tier)
        if cache_key not in self._estimates:
            same = [
                row.rates
                for row in self._rows.values()
                if row.tier is tier
                and endpoint_class(ref := resolve_model_id(row.model)) == kind
                and (vendor is None or vendor_of(ref) == vendor)
            ]
            self._estimates[cache_key] = _highest_rates(same)
        return self._estimates[cache_key]

    def _match_in_region(self, ref: ModelRef, region: str, tier: ServiceTier) -> PriceMatch:
        """Rules 1-4 at `tier`: in `region`, else at the fallback Region's price (`region_fallback`)."""
        found = self._match(ref, region, tier)
        if found.row is None and region != FALLBACK_REGION:
            fallback = self._match(ref, FALLBACK_REGION, tier)
            if fallback.row is not None:
                found = fallback
        row = found.row
        if row is None:
            return found
        if row.kept_bundled:
            return PriceMatch(row, found.note, PriceBasis.KEPT_BUNDLED)
        if row.region == region or (row.region == ANY_REGION and region == FALLBACK_REGION):
            return found
        if row.region == ANY_REGION and resolve_model_id(row.model).profile_prefix == GOVCLOUD_PREFIX:
            return found  # a GovCloud profile's row is GovCloud's own price
        why = f"no {region} price for {ref.key}: charged at the {FALLBACK_REGION} rate"
        return PriceMatch(row, _joined(found.note, why), PriceBasis.REGION_FALLBACK)

    def _match(self, ref: ModelRef, region: str, tier: ServiceTier) -> PriceMatch:
        row = self.lookup(ref.key, region, tier)
        if row is not None or ref.profile_prefix is None:
            return PriceMatch(row)
        if ref.profile_prefix not in (GLOBAL_PREFIX, GOVCLOUD_PREFIX):
            geographic = self.lookup(f"{GEOGRAPHIC_KEY_PREFIX}.{ref.base_model}", region, tier)
            if geographic is not None:
                return PriceMatch(
                    geographic, f"no row for {ref.key}: priced as a geographic profile in {region}"
                )
        siblings = (
            []
            if ref.profile_prefix == GOVCLOUD_PREFIX
            else self._geo_profiles.get((ref.base_model, tier), [])
        )
        if ref.profile_prefix == GLOBAL_PREFIX or not siblings:
            base_row = self.lookup(ref.base_model, region, tier)
            why = "no global rate known" if ref.profile_prefix == GLOBAL_PREFIX else "no geo premium known"
            return PriceMatch(
                base_row, f"no row for {ref.key}: priced as {ref.base_model} ({why})" if base_row else None
            )
        if len({(sibling.rates, sibling.long_context) for sibling in siblings}) > 1:
            return PriceMatch(
                None, f"no row for {ref.key}, and the geo profiles of {ref.base_model} differ in price"
            )
        sibling = min(siblings, key=lambda sibling: (sibling.model, sibling.region))
        return PriceMatch(
            sibling, f"no row for {ref.key}: priced as {sibling.model}, as every geo profile of the model"
        )


def _highest_rates(rates: Iterable[Rates]) -> Rates | None:
    """Per token kind, the highest of `rates` (None when there are none)."""
    known = list(rates)
    if not known:
        return None
    highest: dict[str, Any] = {
        kind: max((rate for each in known if (rate := getattr(each, kind)) is not None), default=None)
        for kind in TOKEN_KINDS
    }
    return Rates(**highest)


def _joined(*notes: str | None) -> str:
    return "; ".join(note for note in notes if note)
