"""Budget windows: which window a moment falls in, and when that window refreshes.

A window spec is one of
- `daily`: local calendar days,
- `weekly`: local weeks, Monday to Sunday (ISO 8601 weeks),
- `monthly`: local calendar months,
- `days:N@YYYY-MM-DD`: N-day periods counted from an anchor date (local midnight).
Each budget names its own time zone. The calculator, the monitor, the workflow and the reports all
ask this module, so they agree on window ids (`2026-11-23`, `2026-W48`, `2026-11`, `2026-11-17+7d`).
A weekly id is the ISO week: the week of 31 December 2026 (a Thursday) is `2026-W53` and runs to
Sunday 3 January 2027; the week of Monday 29 December 2025 is `2026-W01`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAILY = "daily"
WEEKLY = "weekly"
MONTHLY = "monthly"
WINDOW_FORMS = "'daily', 'weekly', 'monthly' or 'days:N@YYYY-MM-DD'"
_EVERY_N_DAYS = re.compile(r"^days:(?P<days>[1-9][0-9]{0,2})@(?P<anchor>\d{4}-\d{2}-\d{2})$")


class InvalidWindow(ValueError):
    """A window spec or time zone that cannot be used; the message says what to write instead."""


@dataclass(frozen=True, slots=True)
class WindowSpan:
    window_id: str
    start: datetime  # aware, UTC
    end: datetime  # aware, UTC: the refresh time


@dataclass(frozen=True, slots=True)
class WindowSpec:
    kind: str  # daily | weekly | monthly | days
    days: int = 1
    anchor: date | None = None

    def __str__(self) -> str:
        if self.kind == "days":
            assert self.anchor is not None
            return f"days:{self.days}@{self.anchor.isoformat()}"
        return self.kind


@lru_cache(maxsize=256)
def parse_window(text: str) -> WindowSpec:
    cleaned = text.strip().lower()
    if cleaned in (DAILY, WEEKLY, MONTHLY):
        return WindowSpec(kind=cleaned)
    match = _EVERY_N_DAYS.match(cleaned)
    if match:
        try:
            anchor = date.fromisoformat(match["anchor"])
        except ValueError as error:
            raise InvalidWindow(f"bad anchor date in window {text!r}: {error}") from error
        return WindowSpec(kind="days", days=int(match["days"]), anchor=anchor)
    raise InvalidWindow(f"unknown window {text!r}: use {WINDOW_FORMS} (e.g. days:7@2026-01-05)")


@lru_cache(maxsize=64)
def parse_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidWindow(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Paris or UTC"
        ) from error


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)


def window_span(spec: WindowSpec, zone_name: str, moment: datetime) -> WindowSpan:
    """The window of `spec` in time zone `zone_name` that contains `moment` (aware)."""
    return _window_span_at_minute(spec, zone_name, int(moment.timestamp()) // 60)


@lru_cache(maxsize=8192)
def _window_span_at_minute(spec: WindowSpec, zone_name: str, epoch_minute: int) -> WindowSpan:
    # Zone offsets are whole minutes, so every moment in one minute shares its window: cache by minute.
    zone = parse_time_zone(zone_name)
    local_day = datetime.fromtimestamp(epoch_minute * 60, tz=zone).date()
    if spec.kind == DAILY:
        start_day, end_day, window_id = local_day, local_day + timedelta(days=1), local_day.isoformat()
    elif spec.kind == WEEKLY:
        start_day = local_day - timedelta(days=local_day.weekday())
        end_day = start_day + timedelta(days=7)
        iso_year, iso_week, _ = local_day.isocalendar()
        window_id = f"{iso_year}-W{iso_week:02d}"
    elif spec.kind == MONTHLY:
        start_day = local_day.replace(day=1)
        end_day = (start_day + timedelta(days=32)).replace(day=1)
        window_id = start_day.strftime("%Y-%m")
    else:
        assert spec.anchor is not None
        periods = (local_day - spec.anchor).days // spec.days
        start_day = spec.anchor + timedelta(days=periods * spec.days)
        end_day = start_day + timedelta(days=spec.days)
        window_id = f"{start_day.isoformat()}+{spec.days}d"
    return WindowSpan(window_id, _local_midnight(start_day, zone), _local_midnight(end_day, zone))


def iso_utc(moment: datetime) -> str:
    """UTC time as Step Functions' TimestampPath requires it: `2026-11-24T00:00:00Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
