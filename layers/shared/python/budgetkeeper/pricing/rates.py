"""Prices for Bedrock invocations: the price table and the one pricing function, `price_invocation`.

Money is `Decimal` end to end: unit prices are exact decimal strings in the table (USD per 1,000,000
tokens) and a cost is `tokens * price / 1,000,000`, which Decimal computes exactly.

Endpoint kinds, as AWS bills them: a bare model id is an in-region call, `<geo>.<model>` a
geographic cross-region profile, `global.<model>` the global profile. For Claude Sonnet 4.5, Haiku
4.5, Opus 4.5 and later, in-region and geographic calls cost 10% more than global ones, so the bare
id's row carries the regional rate, never the global one (scripts/build_prices.py, and the Price List
normaliser, keep them apart; tests/unit/test_pricing.py checks every such row).

Every row has a service tier (`standard`, `priority`, `flex`, `reserved`): a call is priced with the
rows of the tier it was served at, by the rules below. A model without a row for that tier is
charged at its standard rate and flagged (`price_basis` `tier_fallback`): AWS bills the call, and the
standard rate is the nearest price the table knows (Flex is about half of it, Priority more).

Every priced call says how its price was found (`PriceBasis`): `exact`; `region_fallback` when the
table has no row of the model for the call's Region and the row of the fallback Region (us-east-1,
whose list prices the bundled table's region-less rows carry) priced it; `tier_fallback` as above;
`kept_bundled` when a Price List version kept the bundled rate of a metered model no offer code
prices; `estimate` for a model the table does not price at all (rule 5).

Which row prices an invocation (`PriceTable.match`), for a model or profile id `key` at the source
region `region` (not the inference region: AWS bills cross-region calls at the source region):
1. the row for `key` in `region`, else the row for `key` with no region (`*`), else its row in the
   fallback Region (a Price List version names every row's Region): these last two are a
   `region_fallback` outside the fallback Region (GovCloud profile rows are GovCloud's own);
2. `global.<model>` without a row: the base model's row (at worst the regional rate, 10% over);
3. `<geo>.<model>` (`us.`, `eu.`, `apac.`, `jp.`, `au.`, `in.`) without a row: the model's
   geographic row for the region (`geo.<model>`, which a Price List version has: the Price List
   names a geographic usage type per region, not a prefix); else the price the model's other geo
   profiles agree on (newer Claude models cost 10% more on every geo profile, older ones the base
   price); none if they disagree (Nova, Llama 3.2), rather than a guess; the base model's row if
   the model has no geo rows, since cross-region inference is billed at the source region's price;
4. `us-gov.<model>` without a row: the base model's row for the source region (GovCloud regions
   have rows of their own);
5. otherwise the model is unknown: it is charged at a conservative estimate (status `estimated`,
   basis `estimate`) so that a model launched yesterday is no way around a budget: the operators'
   rate when they set one (tunable `prices/unknown_model_usd_per_million`), else per token kind the
   highest rate the table knows of the same vendor (`anthropic`, `amazon`, ...) and endpoint kind
   (in-region, geographic, global), else of any vendor. The caller counts, alerts, and keeps the
   estimate apart (budgetkeeper.metering.estimates re-prices it exactly once the table prices the model).
   Ids that are not priced per token (custom and imported model ARNs) and application profiles
   Bedrock did not resolve stay `unknown_model` at cost 0, flagged.

Provisioned-throughput models are billed per hour, not per token: their invocations are counted
with cost 0 and status `provisioned`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import msgspec
from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core import clock, money
from budgetkeeper.domain.usage import ServiceTier, TokenCounts

_log = logging.getLogger(__name__)

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
            self._estimates[cache_key] = (
                None
                if not same
                else Rates(
                    **{
                        kind_: max(
                            (rate for r in same if (rate := getattr(r, kind_)) is not None), default=None
                        )
                        for kind_ in TOKEN_KINDS
                    }
                )
            )
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


# --- application inference profiles -------------------------------------------------------------


class BedrockControlPlane(Protocol):
    """The two calls of boto3's `bedrock` client that InferenceProfiles makes."""

    def get_inference_profile(self, *, inferenceProfileIdentifier: str) -> Mapping[str, Any]: ...

    def list_tags_for_resource(self, *, resourceARN: str) -> Mapping[str, Any]: ...


# A failed look-up is asked again after this long, never remembered for the container's life: one
# throttled call must not price every later call through that profile at zero.
RETRY_FAILED_LOOKUP_AFTER = timedelta(minutes=1)
# How long a profile's tags are trusted to be current: a re-tag is seen within this time.
PROFILE_TAGS_TTL = timedelta(minutes=5)


# Profiles remembered per container (each of the three caches): the oldest is forgotten beyond it.
PROFILE_CACHE_ENTRIES = 1024


class InferenceProfiles:
    """The model of application inference profiles, asked of Bedrock once per ARN, and their tags,
    asked again once they are PROFILE_TAGS_TTL old (tags change: a re-tag is seen within that time).

    Failures (throttling, access denied, not found, no network) are not fatal: meanwhile an
    unresolved model is priced by the unknown-model rule (counted and alerted) and unreadable tags
    are `{}`, and the look-up is tried again RETRY_FAILED_LOOKUP_AFTER later.
    Limitation: a profile copied from a cross-region profile lists one foundation model per region
    and does not say which system profile it came from, so it is priced at the base model's price.
    """

    def __init__(self, client: BedrockControlPlane | None = None, *, region_name: str | None = None) -> None:
        self._client = client
        self._region_name = region_name
        self._model_ids: dict[str, str | None] = {}
        self._tags: dict[str, tuple[dict[str, str], datetime]] = {}  # tags, when read
        self._failed_at: dict[tuple[str, str], datetime] = {}
        self._lookups_left: int | None = None  # None: no batch bound
        self.deferred = 0  # look-ups this batch left for a later one

    def begin_batch(self, lookups: int) -> None:
        """Allow `lookups` Bedrock calls until the next batch: a caller can name any number of
        profile ARNs, and each unknown one costs sequential calls. Beyond it, a profile is priced
        as unresolved (counted) and looked up by a later batch."""
        self._lookups_left = lookups
        self.deferred = 0

    def _bedrock(self) -> BedrockControlPlane:
        if self._client is None:
            import boto3  # here: only callers that meet an application profile need boto3

            self._client = boto3.client("bedrock", region_name=self._region_name)
        return self._client

    def model_id_for(self, arn: str) -> str | None:
        """The model id of the profile's first model, or None when Bedrock does not say (now)."""
        if arn not in self._model_ids and self._may_ask("model", arn):
            try:
                models = (
                    self._bedrock().get_inference_profile(inferenceProfileIdentifier=arn).get("models", [])
                )
                self._model_ids[arn] = resolve_model_id(models[0]["modelArn"]).key if models else None
            except (ClientError, BotoCoreError) as error:
                self._failed("model", arn, error)
        return self._model_ids.get(arn)

    def tags_for(self, arn: str) -> dict[str, str]:
        """The profile's tags, or {} when they cannot be read (now); the last tags read stand
        while a fresh read fails."""
        cached = self._tags.get(arn)
        stale = cached is None or clock.now() - cached[1] >= PROFILE_TAGS_TTL
        if stale and self._may_ask("tags", arn):
            try:
                response = self._bedrock().list_tags_for_resource(resourceARN=arn)
                tags = {tag["key"]: tag["value"] for tag in response.get("tags", [])}
                self._tags[arn] = cached = (tags, clock.now())
            except (ClientError, BotoCoreError) as error:
                self._failed("tags", arn, error)
        return dict(cached[0]) if cached else {}

    def _may_ask(self, what: str, arn: str) -> bool:
        failed_at = self._failed_at.get((what, arn))
        if failed_at is not None and clock.now() - failed_at < RETRY_FAILED_LOOKUP_AFTER:
            return False
        if self._lookups_left is not None:
            if self._lookups_left <= 0:
                self.deferred += 1
                return False
            self._lookups_left -= 1
        for cache in (self._model_ids, self._tags, self._failed_at):
            if len(cache) >= PROFILE_CACHE_ENTRIES:
                del cache[next(iter(cache))]  # the oldest entry
        return True

    def _failed(self, what: str, arn: str, error: Exception) -> None:
        _log.warning("cannot read the %s of application inference profile %s: %s", what, arn, error)
        self._failed_at[(what, arn)] = clock.now()


# --- pricing ------------------------------------------------------------------------------------


class PriceStatus(StrEnum):
    PRICED = "priced"
    ESTIMATED = "estimated"  # an unknown model at a conservative estimate: counted, kept apart, re-priced
    UNKNOWN_MODEL = "unknown_model"  # cost 0: not priced per token; the caller counts and alerts
    PROVISIONED = "provisioned"  # cost 0: billed per hour of provisioned throughput, not per token


@dataclass(frozen=True, slots=True)
class Charge:
    """One token kind of one invocation: its tokens at the unit price charged for them."""

    kind: str
    tokens: int
    usd_per_million: Decimal
    rate_of: str  # the kind whose unit price was charged: `kind` itself unless the row has no price for it

    @property
    def cost_usd(self) -> Decimal:
        return self.tokens * self.usd_per_million / TOKENS_PER_PRICE_UNIT


class Priced(msgspec.Struct, frozen=True):  # a Struct: one is built per record (domain/usage.py)
    cost_usd: Decimal
    status: PriceStatus
    model_key: str
    row: PriceRow | None
    tokens: TokenCounts
    note: str | None = None
    long_context: bool = False  # charged at the row's long-context rates
    tier: ServiceTier = ServiceTier.STANDARD  # the service tier priced
    basis: PriceBasis = PriceBasis.EXACT
    estimate: Rates | None = None  # the rates of an estimate (status `estimated`, no row)

    @property
    def flagged(self) -> bool:
        """Priced at anything but the exact rate of the call's model, Region and tier."""
        return self.basis is not PriceBasis.EXACT

    @property
    def rates(self) -> Rates | None:
        """The rates charged: the row's, or its long-context tier's, or the estimate's."""
        if self.row is None:
            return self.estimate
        tier = self.row.long_context
        return tier.rates if tier is not None and self.long_context else self.row.rates

    def charges(self) -> tuple[Charge, ...]:
        """The cost by token kind, for kinds with tokens; they add up to `cost_usd`."""
        rates = self.rates
        return () if rates is None else tuple(Charge(*billed) for billed in rates.billed(self.tokens))

    def to_dict(self) -> dict[str, Any]:
        return {
            "cost_usd": money.exact(self.cost_usd),
            "status": str(self.status),
            "price_basis": str(self.basis),
            "model_key": self.model_key,
            "tier": str(self.tier),
            "long_context": self.long_context,
            "charges": [
                {
                    "kind": charge.kind,
                    "tokens": charge.tokens,
                    "usd_per_million": money.exact(charge.usd_per_million),
                    "cost_usd": money.exact(charge.cost_usd),
                    "rate_of": charge.rate_of,
                }
                for charge in self.charges()
            ],
            "price_row": None if self.row is None else self.row.to_dict(),
            "note": self.note,
        }


def price_invocation(
    table: PriceTable,
    model_id: str,
    region: str,
    tokens: TokenCounts,
    profiles: InferenceProfiles | None = None,
    tier: ServiceTier = ServiceTier.STANDARD,
    *,
    request_prompt_tokens: int | None = None,
    unknown_model_rates: Rates | None = None,
) -> Priced:
    """THE pricing function: what one invocation of `model_id` from source `region` at `tier` costs.

    The row is chosen by the rules in the module docstring. Each token kind is charged at its unit
    price; a cache kind the row has no price for at the next kind's (1-hour write -> 5-minute write
    -> input, cache read -> input), and the note says so. When the prompt (input + cache reads +
    cache writes) exceeds the row's long-context threshold, every token of the request, output
    included, is charged at the long-context rates: that is how AWS and Anthropic bill prompts over
    200K tokens. Application-profile ARNs are resolved through `profiles`; without it, or when
    Bedrock does not answer, they are unknown. A model without a price at `tier` is charged at its
    standard rate (`tier_fallback`); one the table does not price at all at `unknown_model_rates`
    (the operators' rate) when given, else at the table's conservative estimate (status `estimated`).

    `tokens` may also be the sum of several requests that all fall on the same side of every
    long-context threshold (the Athena engine's groups): `request_prompt_tokens` is then the prompt
    of one such request, which decides the long-context rates instead of the sum. Prices are linear
    per token kind within a row and tier, so the group's cost is exactly the sum of its requests' costs.
    """
    ref = resolve_model_id(model_id)
    if ref.kind is ModelKind.APPLICATION_PROFILE:
        resolved = profiles.model_id_for(ref.key) if profiles is not None else None
        if resolved is None:
            return _unknown(table, ref.key, tokens, tier, "application inference profile not resolved")
        ref = resolve_model_id(resolved)
    if ref.kind is ModelKind.PROVISIONED:
        note = "billed per hour of provisioned throughput"
        return Priced(ZERO_USD, PriceStatus.PROVISIONED, ref.key, None, tokens, note, tier=tier)
    if ref.kind is ModelKind.OTHER_ARN:
        return _unknown(table, ref.key, tokens, tier, "no per-token price for this kind of ARN")
    match = table.match(ref, region, tier)
    if match.row is None:
        return _estimated(table, ref, region, tokens, tier, match.note, unknown_model_rates)
    prompt = tokens.prompt_total if request_prompt_tokens is None else request_prompt_tokens
    return _charge(match, ref.key, tokens, prompt)


def _estimated(
    table: PriceTable,
    ref: ModelRef,
    region: str,
    tokens: TokenCounts,
    tier: ServiceTier,
    match_note: str | None,
    operator_rates: Rates | None,
) -> Priced:
    estimate = (
        (operator_rates, "the operators' rate for unknown models")
        if operator_rates
        else table.estimate(ref, tier)
    )
    reason = match_note or f"no price for {ref.key} in {region}"
    if estimate is None:
        return _unknown(table, ref.key, tokens, tier, reason)
    rates, source = estimate
    note = f"{reason}; unknown model: estimated at {source}, re-priced when its price arrives"
    cost = sum((count * usd for _, count, usd, _ in rates.billed(tokens)), ZERO_USD) / TOKENS_PER_PRICE_UNIT
    return Priced(
        cost,
        PriceStatus.ESTIMATED,
        ref.key,
        None,
        tokens,
        note,
        tier=tier,
        basis=PriceBasis.ESTIMATE,
        estimate=rates,
    )


def _unknown(
    table: PriceTable, model_key: str, tokens: TokenCounts, tier: ServiceTier, reason: str
) -> Priced:
    note = f"{reason}; unknown model: counted at 0 USD, never another model's price (table {table.version})"
    return Priced(ZERO_USD, PriceStatus.UNKNOWN_MODEL, model_key, None, tokens, note, tier=tier)


def _charge(match: PriceMatch, model_key: str, tokens: TokenCounts, prompt_tokens: int) -> Priced:
    row = match.row
    assert row is not None
    tier = row.long_context
    long_context = tier is not None and prompt_tokens > tier.threshold_tokens
    rates = tier.rates if tier is not None and long_context else row.rates
    total = ZERO_USD
    notes = [match.note] if match.note else []
    for kind, count, usd_per_million, rate_of in rates.billed(tokens):
        total += count * usd_per_million
        if rate_of != kind:
            notes.append(f"no {kind} price: charged at the {rate_of} rate")
    return Priced(
        cost_usd=total / TOKENS_PER_PRICE_UNIT,
        status=PriceStatus.PRICED,
        model_key=model_key,
        row=row,
        tokens=tokens,
        note="; ".join(notes) or None,
        long_context=long_context,
        tier=row.tier,
        basis=match.basis,
    )


def _highest_rates(rates: Iterable[Rates]) -> Rates | None:
    """Per token kind, the highest of `rates` (None when there are none)."""
    known = list(rates)
    if not known:
        return None
    highest = {
        kind: max((rate for each in known if (rate := getattr(each, kind)) is not None), default=None)
        for kind in TOKEN_KINDS
    }
    return Rates(**highest)


def _joined(*notes: str | None) -> str:
    return "; ".join(note for note in notes if note)
