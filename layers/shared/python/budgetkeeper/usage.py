"""Value types shared by parsing, attribution, pricing and storage."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class TokenCounts:
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


@dataclass(frozen=True, slots=True)
class Invocation:
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
    request_metadata: Mapping[str, str] = field(default_factory=dict)
    error_code: str | None = None


@dataclass(slots=True)
class RollupDelta:
    calls: int = 0
    errors: int = 0
    unpriced_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cost_usd: Decimal = field(default_factory=Decimal)

    COUNTERS: ClassVar[tuple[str, ...]] = (
        "calls",
        "errors",
        "unpriced_calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cost_usd",
    )

    def merge(self, other: RollupDelta) -> None:
        for name in self.COUNTERS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(slots=True)
class TotalDelta:
    window_start: str
    window_end: str
    calls: int = 0
    spent_usd: Decimal = field(default_factory=Decimal)

    def merge(self, other: TotalDelta) -> None:
        self.calls += other.calls
        self.spent_usd += other.spent_usd


RollupKey = tuple[str, str, str, str]  # scope, hour, model, region
TotalKey = tuple[str, str, str]  # scope, window spec, window id


@dataclass(slots=True)
class UsageDeltas:
    """What a set of payloads adds to the tables, aggregated by item key."""

    rollups: dict[RollupKey, RollupDelta] = field(default_factory=dict)
    totals: dict[TotalKey, TotalDelta] = field(default_factory=dict)

    def merge(self, other: UsageDeltas) -> None:
        for key, rollup in other.rollups.items():
            if key in self.rollups:
                self.rollups[key].merge(rollup)
            else:
                self.rollups[key] = RollupDelta(**{n: getattr(rollup, n) for n in RollupDelta.COUNTERS})
        for key, total in other.totals.items():
            if key in self.totals:
                self.totals[key].merge(total)
            else:
                self.totals[key] = TotalDelta(
                    total.window_start, total.window_end, total.calls, total.spent_usd
                )

    @property
    def item_count(self) -> int:
        return len(self.rollups) + len(self.totals)

    def split(self, max_items: int) -> list[UsageDeltas]:
        """Deterministic chunks of at most `max_items` item keys each."""
        chunks: list[UsageDeltas] = []
        entries: list[tuple[bool, Any, Any]] = [(True, k, d) for k, d in self.rollups.items()]
        entries += [(False, k, d) for k, d in self.totals.items()]
        for start in range(0, len(entries), max_items):
            chunk = UsageDeltas()
            for is_rollup, key, delta in entries[start : start + max_items]:
                (chunk.rollups if is_rollup else chunk.totals)[key] = delta
            chunks.append(chunk)
        return chunks

    def to_bytes(self) -> bytes:
        document = {
            "rollups": [
                [list(key), {n: str(getattr(d, n)) for n in RollupDelta.COUNTERS}]
                for key, d in self.rollups.items()
            ],
            "totals": [
                [list(key), [d.window_start, d.window_end, d.calls, str(d.spent_usd)]]
                for key, d in self.totals.items()
            ],
        }
        return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)

    @classmethod
    def from_bytes(cls, data: bytes) -> UsageDeltas:
        document = json.loads(gzip.decompress(data))
        rollups = {
            tuple(key): RollupDelta(
                **{n: (Decimal(v) if n == "cost_usd" else int(v)) for n, v in values.items()}
            )
            for key, values in document["rollups"]
        }
        totals = {
            tuple(key): TotalDelta(start, end, calls, Decimal(spent))
            for key, (start, end, calls, spent) in document["totals"]
        }
        return cls(rollups=rollups, totals=totals)  # type: ignore[arg-type]
