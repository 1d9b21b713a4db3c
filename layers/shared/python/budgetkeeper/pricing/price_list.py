"""The AWS Price List, normalised into price rows: what the daily price refresh reads.
docs/architecture.md, "The Price List (pricing.price_list)", tells the rest.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.pricing.table import (
    GEOGRAPHIC_KEY_PREFIX,
    GLOBAL_PREFIX,
    LONG_CONTEXT_THRESHOLD_TOKENS,
    TOKEN_KINDS,
    LongContextTier,
    PriceRow,
    Rates,
)

PRICING_API_REGION = "us-east-1"
MODEL_MAP_PATH = Path(__file__).parent / "prices" / "price-list-models.json"
MARKETPLACE_SUFFIX = " (Amazon Bedrock Edition)"
# Offer codes whose products are Bedrock's; AgentCore bills agent runtime compute, not tokens.
BEDROCK_CODE = "Bedrock"
NOT_TOKEN_CODES = ("AgentCore",)
# `USE1-Claude4Sonnet-input-tokens...`: Region prefix, then the model part, then what is metered.
_USAGE_TYPE_MODEL = re.compile(r"^[A-Z]{2,4}\d?-(?P<model>[^-:_]+)-", re.IGNORECASE)
# Tokens per unit AWS states, for units of tokens; any other unit is no token price.
TOKENS_PER_UNIT: Mapping[str, Decimal] = {
    "1k tokens": Decimal(1_000),
    "1m tokens": Decimal(1_000_000),
    "tokens": Decimal(1),
}
_MILLION = Decimal(1_000_000)
_NOT_ON_DEMAND = re.compile(r"customi[sz]ation|provisioned|training|storage|image|video", re.IGNORECASE)


class EndpointKind(StrEnum):
    IN_REGION = "in_region"  # a bare model id
    GEOGRAPHIC = "geographic"  # a geographic cross-region profile (us., eu., ...)
    GLOBAL = "global"  # the global cross-region profile


@dataclass(frozen=True, slots=True)
class NormalisedPrice:
    """One Price List price, in our terms."""

    model: str
    region: str
    endpoint: EndpointKind
    token_kind: str  # one of pricing.TOKEN_KINDS
    tier: ServiceTier
    long_context: bool
    usd_per_million: Decimal
    source: str  # service code, sku and usage type
    as_of: date
    usage_type: str = ""


@dataclass(slots=True)
class Normalised:
    """What a refresh read: the prices, the products it could not map, and what it skipped."""

    prices: list[NormalisedPrice] = field(default_factory=list)
    unmapped: Counter[str] = field(default_factory=Counter)  # display names the map lacks
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> products


@functools.cache
def _model_map() -> Mapping[str, Any]:
    return json.loads(MODEL_MAP_PATH.read_text(encoding="utf-8"))


def model_ids_by_display_name() -> Mapping[str, str]:
    return _model_map()["models"]


def model_ids_by_usage_type_part() -> Mapping[str, str]:
    return _model_map()["usage_type_models"]


def _display_name(attributes: Mapping[str, str]) -> str | None:
    name = attributes.get("model") or attributes.get("titanModel") or attributes.get("servicename")
    return name.removesuffix(MARKETPLACE_SUFFIX).strip() if name else None


def _model_of(attributes: Mapping[str, str]) -> tuple[str | None, str]:
    """The model id a product prices, and the name to report when it is not mapped."""
    name = _display_name(attributes)
    model = model_ids_by_display_name().get(name) if name else None
    if model is not None:
        return model, str(name)
    found = _USAGE_TYPE_MODEL.match(attributes.get("usagetype", ""))
    part = found.group("model") if found else None
    if part is not None and (model := model_ids_by_usage_type_part().get(part)) is not None:
        return model, part
    # A product that names its model reports that name; one that names only its service, the part.
    named = attributes.get("model") or attributes.get("titanModel")
    return None, (name if named else part or name) or ""


def _described(attributes: Mapping[str, str]) -> str:
    """Usage type and inference type together, normalised for the word tests below."""
    text = f"{attributes.get('usagetype', '')} {attributes.get('inferenceType', '')}"
    return re.sub(r"[-_:]+", " ", text).lower()


def _endpoint(described: str) -> EndpointKind:
    if "global" in described:
        return EndpointKind.GLOBAL
    if "cross region" in described or "crossregion" in described or "geographic" in described:
        return EndpointKind.GEOGRAPHIC
    return EndpointKind.IN_REGION


def _token_kind(described: str) -> str | None:
    words = described.replace("inputtokencount", "input tokens").replace("outputtokencount", "output tokens")
    if "cache read" in words or "cacheread" in words:
        return "cache_read"
    if "cache write" in words or "cachewrite" in words:
        return "cache_write_1h" if re.search(r"\b1h\b|1 hour|1hr", words) else "cache_write_5m"
    if "output" in words:
        return "output"
    if "input" in words:
        return "input"
    return None


def _tier(described: str, feature: str) -> ServiceTier:
    if "batch" in described or "batch" in feature.lower():
        return ServiceTier.BATCH
    for tier in (ServiceTier.PRIORITY, ServiceTier.FLEX, ServiceTier.RESERVED):
        if re.search(rf"\b{tier}\b", described):
            return tier
    return ServiceTier.STANDARD


def _long_context(described: str) -> bool:
    return bool(re.search(r"long context|lctx|>\s?200k|above 200k", described))


def normalise(price_list: Iterable[str | Mapping[str, Any]]) -> Normalised:
    """Read `get_products` PriceList entries (JSON strings, or already parsed) into normalised prices."""
    result = Normalised()
    for entry in price_list:
        document = json.loads(entry) if isinstance(entry, str) else entry
        product = document.get("product", {})
        attributes: Mapping[str, str] = product.get("attributes", {})
        described = _described(attributes)
        feature = attributes.get("feature", "")
        if _NOT_ON_DEMAND.search(f"{feature} {described}"):
            result.skipped["not an on-demand token price"] += 1
            continue
        token_kind = _token_kind(described)
        if token_kind is None:
            result.skipped["no token kind in the usage type"] += 1
            continue
        model, name = _model_of(attributes)
        if model is None:
            result.unmapped[name or f"(no model name: sku {product.get('sku')})"] += 1
            continue
        for term in document.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term.get("priceDimensions", {}).values():
                per_unit = TOKENS_PER_UNIT.get(str(dimension.get("unit", "")).strip().lower())
                if per_unit is None:
                    result.skipped[f"unit {dimension.get('unit')!r}"] += 1
                    continue
                result.prices.append(
                    NormalisedPrice(
                        model=model,
                        region=attributes["regionCode"],
                        endpoint=_endpoint(described),
                        token_kind=token_kind,
                        tier=_tier(described, feature),
                        long_context=_long_context(described),
                        usd_per_million=Decimal(dimension["pricePerUnit"]["USD"]) * _MILLION / per_unit,
                        source=" ".join(
                            (
                                str(document.get("serviceCode")),
                                str(product.get("sku")),
                                attributes.get("usagetype", ""),
                            )
                        ),
                        as_of=date.fromisoformat(str(term.get("effectiveDate", "1970-01-01"))[:10]),
                        usage_type=attributes.get("usagetype", ""),
                    )
                )
    return result


def _row_key(price: NormalisedPrice) -> str:
    if price.endpoint is EndpointKind.GLOBAL:
        return f"{GLOBAL_PREFIX}.{price.model}"
    if price.endpoint is EndpointKind.GEOGRAPHIC:
        return f"{GEOGRAPHIC_KEY_PREFIX}.{price.model}"
    return price.model


def price_rows(prices: Iterable[NormalisedPrice], skipped: Counter[str] | None = None) -> list[PriceRow]:
    """The calculator's rows: one per (model key, region, tier), with its long-context rates if any.

    The key is the bare model id in-region, `global.<id>` for global and `geo.<id>` for geographic
    prices (see pricing.py's rules). A group without both an input and an output price gives no
    row and is counted in `skipped`, and so does a group where two usage types give one token kind
    different prices (the inference type read them alike: which one bills on-demand calls is not
    known, and no price is better than a guess).
    """
    groups: dict[tuple[str, str, ServiceTier], dict[bool, dict[str, NormalisedPrice]]] = {}
    ambiguous: set[tuple[str, str, ServiceTier]] = set()
    for price in prices:
        group_key = (_row_key(price), price.region, price.tier)
        kinds = groups.setdefault(group_key, {}).setdefault(price.long_context, {})
        other = kinds.get(price.token_kind)
        if (
            other is not None
            and other.usage_type != price.usage_type
            and other.usd_per_million != price.usd_per_million
        ):
            ambiguous.add(group_key)
        kinds[price.token_kind] = price
    rows = []
    for (key, region, tier), by_context in sorted(groups.items()):
        if (key, region, tier) in ambiguous:
            if skipped is not None:
                skipped[
                    "two usage types price one token kind differently (no row: which bills is unknown)"
                ] += 1
            continue
        standard = by_context.get(False, {})
        rates = _rates(standard)
        if rates is None:
            if skipped is not None:
                skipped["no input and output price for a model, region and tier"] += 1
            continue
        long_rates = _rates(by_context.get(True, {}))
        prices_used = list(standard.values())
        rows.append(
            PriceRow(
                model=key,
                region=region,
                rates=rates,
                long_context=None
                if long_rates is None
                else LongContextTier(LONG_CONTEXT_THRESHOLD_TOKENS, long_rates),
                source="AWS Price List: " + "; ".join(sorted({price.source for price in prices_used})),
                as_of=max(price.as_of for price in prices_used),
                tier=tier,
            )
        )
    return rows


def _rates(kinds: Mapping[str, NormalisedPrice]) -> Rates | None:
    if "input" not in kinds or "output" not in kinds:
        return None
    prices: dict[str, Any] = {
        kind: kinds[kind].usd_per_million if kind in kinds else None for kind in TOKEN_KINDS
    }
    return Rates(**prices)


class PricingClient(Protocol):
    def get_paginator(self, operation_name: str) -> Any: ...


def service_codes(client: PricingClient) -> list[str]:
    """Every Bedrock offer code the Price List has (`pricing:DescribeServices`), AgentCore's left out."""
    codes = {
        service["ServiceCode"]
        for page in client.get_paginator("describe_services").paginate(FormatVersion="aws_v1")
        for service in page.get("Services", [])
    }
    return sorted(
        code for code in codes if BEDROCK_CODE in code and not any(other in code for other in NOT_TOKEN_CODES)
    )


def fetch_price_list(client: PricingClient, codes: Iterable[str]) -> Iterator[str]:
    """Every PriceList entry of the offer codes, page by page (`pricing:GetProducts`)."""
    paginator = client.get_paginator("get_products")
    for service_code in codes:
        for page in paginator.paginate(ServiceCode=service_code, FormatVersion="aws_v1"):
            yield from page.get("PriceList", [])
