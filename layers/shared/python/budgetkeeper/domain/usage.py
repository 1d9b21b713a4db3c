"""Parsed usage: the value types shared by parsing, attribution and pricing.

Every metered record becomes a TokenCounts, an Invocation, a Priced and a Metered: frozen msgspec
Structs, not dataclasses: building the four took 3.3 us a record as frozen dataclasses, 0.5 us as
Structs (issue 31, bench/bench_metering.py). They compare, hash and construct as the frozen
dataclasses did; copy one with `msgspec.structs.replace`, list its fields with `__struct_fields__`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum

import msgspec


class ServiceTier(StrEnum):
    """The service tier a call was served at, as priced: AWS's API calls the standard one `default`."""

    STANDARD = "standard"
    PRIORITY = "priority"
    FLEX = "flex"
    RESERVED = "reserved"


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
