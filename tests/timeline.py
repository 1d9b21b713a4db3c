"""Moments and window ids for tests, read from the clock the test set (the `clock` fixture).

Tests write no calendar date that must be "today": they ask these.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc, parse_window, window_span


def now_iso(offset: timedelta = timedelta()) -> str:
    """The test clock's moment (plus `offset`) as the logs write it: `YYYY-MM-DDTHH:MM:SSZ`."""
    return iso_utc(clock.now() + offset)


def window_id(window: str = "daily", zone: str = "UTC", at: datetime | None = None) -> str:
    """The id of the `window` that holds `at` (default: the test clock's moment)."""
    return window_span(parse_window(window), zone, at or clock.now()).window_id
