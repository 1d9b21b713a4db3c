"""Clocks that tests and the demo install as the product's clock: one that moves only when told,
and one that runs at real speed from a chosen moment (the demo's console, after its day)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

# Each reading is one microsecond after the one before, so that rows keyed by time (the audit
# trail) keep the order in which they were written, as they do under a real clock.
TICK = timedelta(microseconds=1)


class ManualClock:
    """Callable as a clock source (`budgetkeeper.core.clock.use(ManualClock(...))`)."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("a clock's moment must be timezone-aware")
        self._moment = start.astimezone(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            moment = self._moment
            self._moment += TICK
            return moment

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._moment = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        with self._lock:
            self._moment += delta
            return self._moment


class LiveClock(ManualClock):
    """A ManualClock that real time moves too: `start`, then as much later as has passed."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self._real = time.monotonic()

    def __call__(self) -> datetime:
        with self._lock:
            real = time.monotonic()
            self._moment += timedelta(seconds=real - self._real)
            self._real = real
        return super().__call__()
