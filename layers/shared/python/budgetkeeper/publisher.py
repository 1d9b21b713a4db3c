"""The one place "threshold crossed" events leave the usage calculator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from budgetkeeper.observability import logger, metrics


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


class LoggingPublisher:
    """Logs and counts each event; the enforcement workflow subscribes in a later step."""

    def publish(self, events: Sequence[ThresholdCrossed]) -> None:
        for event in events:
            logger.info("threshold crossed", **event.to_dict())
            metrics.add_metric(name="ThresholdsCrossed", unit=MetricUnit.Count, value=1)
