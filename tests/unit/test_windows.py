from datetime import UTC, datetime

import pytest

from budgetkeeper.windows import InvalidWindow, parse_time_zone, parse_window, window_span


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_daily_window_in_utc():
    span = window_span(parse_window("daily"), "UTC", at("2026-11-23T23:59:59+00:00"))
    assert span.window_id == "2026-11-23"
    assert span.start == at("2026-11-23T00:00:00+00:00")
    assert span.end == at("2026-11-24T00:00:00+00:00")


def test_daily_window_follows_the_budget_time_zone():
    # 23:30 UTC is already the next day in Paris (UTC+1 in November).
    span = window_span(parse_window("daily"), "Europe/Paris", at("2026-11-23T23:30:00+00:00"))
    assert span.window_id == "2026-11-24"
    assert span.end == at("2026-11-24T23:00:00+00:00")


def test_daily_window_on_a_daylight_saving_day_is_23_hours():
    span = window_span(parse_window("daily"), "Europe/Paris", at("2026-03-29T12:00:00+00:00"))
    assert (span.end - span.start).total_seconds() == 23 * 3600


def test_monthly_window_refreshes_on_the_first_local_midnight():
    span = window_span(parse_window("monthly"), "America/New_York", at("2026-12-01T03:00:00+00:00"))
    # 03:00 UTC on 1 December is still 30 November in New York.
    assert span.window_id == "2026-11"
    assert span.end == at("2026-12-01T05:00:00+00:00")


def test_every_n_days_counts_from_the_anchor_in_both_directions():
    spec = parse_window("days:7@2026-01-05")
    after = window_span(spec, "UTC", at("2026-11-23T10:00:00+00:00"))
    assert after.window_id == "2026-11-23+7d"
    before = window_span(spec, "UTC", at("2026-01-01T10:00:00+00:00"))
    assert before.window_id == "2025-12-29+7d"
    assert str(spec) == "days:7@2026-01-05"


def test_a_span_is_half_open():
    # Given the daily span of a moment
    span = window_span(parse_window("daily"), "UTC", at("2026-11-23T10:00:00+00:00"))
    # Then its start belongs to it, and its end (the refresh) to the next window
    assert window_span(parse_window("daily"), "UTC", span.start) == span
    assert window_span(parse_window("daily"), "UTC", span.end).window_id != span.window_id


@pytest.mark.parametrize("text", ["weekly", "days:0@2026-01-01", "days:7@2026-13-01", "days:7"])
def test_bad_window_specs_say_what_to_write(text):
    with pytest.raises(InvalidWindow, match=r"daily|anchor"):
        parse_window(text)


def test_unknown_time_zone_says_what_to_write():
    with pytest.raises(InvalidWindow, match="IANA"):
        parse_time_zone("Mars/Olympus")
