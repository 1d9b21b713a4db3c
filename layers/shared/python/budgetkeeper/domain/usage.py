"""Parsed usage: the value types shared by parsing, attribution and pricing.

Every metered record becomes a TokenCounts, an Invocation, a Priced and a Metered: frozen msgspec
Structs, not dataclasses: building the four took 3.3 us a record as frozen dataclasses, 0.5 us as
Structs (issue 31, bench/bench_metering.py). They compare, hash and construct as the frozen
dataclasses did; copy one with `msgspec.structs.replace`, list its fields with `__struct_fields__`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TypeVar

import msgspec

Share = TypeVar("Share", bound=Hashable)


class ServiceTier(StrEnum):
    """The service tier a call was served at, as priced: AWS's API calls the standard one `default`.

    `batch` is the rate of batch inference jobs (the Price List's feature "Batch Inference"): never
    named by a runtime call, only by budgetkeeper.metering.batch_jobs."""

    STANDARD = "standard"
    PRIORITY = "priority"
    FLEX = "flex"
    RESERVED = "reserved"
    BATCH = "batch"


# The `operation` of usage no invocation log records, as its Invocation and usage line name it: a
# batch inference job (budgetkeeper.metering.batch_jobs) and bedrock-mantle project tokens
# (budgetkeeper.metering.mantle). Runtime calls keep the operation their log names (Converse, InvokeModel...).
BATCH_OPERATION = "batch"
MANTLE_OPERATION = "mantle"
OFF_LOG_OPERATIONS = frozenset({BATCH_OPERATION, MANTLE_OPERATION})
RUNTIME_OPERATION = "runtime"  # what reports show for the lines of runtime calls


class TokenCounts(msgspec.Struct, frozen=True):
    """Tokens of one invocation, by how AWS bills them.

    `input` is `inputTokenCount`, which for Anthropic models excludes cached tokens: the cache
    counts are separate and each is priced at its own rate. Cache writes are split into the
    5-minute and 1-hour kinds when the log tells which; otherwise all of them are 5-minute.
    """

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @property
    def cache_write(self) -> int:
        return self.cache_write_5m + self.cache_write_1h

    @property
    def prompt_total(self) -> int:
        """Every input-side token of the request; decides long-context pricing tiers."""
        return self.input + self.cache_read + self.cache_write

    def __add__(self, other: TokenCounts) -> TokenCounts:
        return TokenCounts(
            input=self.input + other.input,
            output=self.output + other.output,
            cache_read=self.cache_read + other.cache_read,
            cache_write_5m=self.cache_write_5m + other.cache_write_5m,
            cache_write_1h=self.cache_write_1h + other.cache_write_1h,
        )


def split_tokens(total: TokenCounts, shares: Mapping[Share, int]) -> dict[Share, TokenCounts]:
    """`total` split in proportion to `shares`, in whole tokens adding up to it (largest remainder):
    how an estimate shares tokens no one attributed (`budgetkeeper estimate`, mantle callers)."""
    whole = sum(shares.values())
    parts: dict[Share, dict[str, int]] = {key: {} for key in shares}
    for kind in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h"):
        amount = getattr(total, kind)
        exact = {key: Decimal(amount) * share / whole for key, share in shares.items()}
        floors = {key: int(value) for key, value in exact.items()}
        left = amount - sum(floors.values())
        for key in sorted(exact, key=lambda key: (floors[key] - exact[key], key))[:left]:
            floors[key] += 1
        for key, value in floors.items():
            parts[key][kind] = value
    return {key: TokenCounts(**counts) for key, counts in parts.items()}


class Invocation(msgspec.Struct, frozen=True):
    """One Bedrock model invocation log record, without prompt or completion bodies."""

    request_id: str
    timestamp: datetime  # timezone-aware, UTC
    account_id: str
    identity_arn: str
    region: str  # the source region: prices are taken here, not at inference_region
    operation: str
    model_id: str  # as logged: base id, profile id, or an ARN
    tokens: TokenCounts
    inference_region: str | None = None
    request_metadata: Mapping[str, str] = msgspec.field(default_factory=dict)
    error_code: str | None = None
    service_tier: ServiceTier = ServiceTier.STANDARD  # the tier the request named (records.py)
