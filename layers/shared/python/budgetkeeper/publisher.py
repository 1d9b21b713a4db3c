"""The one place "threshold crossed" events leave the usage calculator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    scope: str
    window: str
    window_id: str
    level: str  # warning | critical | exceeded
    forecast: bool
    spent_usd: Decimal
    limit_usd: Decimal
    percent: Decimal
    window_end: str
    revision: int
    closed_window: bool  # spend landed in a window that has already ended

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for name in ("spent_usd", "limit_usd", "percent"):
            document[name] = str(document[name])
        return document


class ThresholdPublisher(Protocol):
    def publish(self, events: Sequence[ThresholdCrossed]) -> None: ...
