from datetime import UTC, datetime, timedelta

import pytest

from budgetkeeper.core.windows import InvalidWindow, parse_time_zone, parse_window, window_span


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


@pytest.mark.parametrize("text", ["fortnightly", "days:0@2026-01-01", "days:7@2026-13-01", "days:7"])
def test_bad_window_specs_say_what_to_write(text):
    with pytest.raises(InvalidWindow, match=r"daily|anchor"):
        parse_window(text)


def test_unknown_time_zone_says_what_to_write():
    with pytest.raises(InvalidWindow, match="IANA"):
        parse_time_zone("Mars/Olympus")


def test_a_weekly_window_runs_from_monday_to_monday_in_the_budget_time_zone():
    # Given Sunday 22:30 UTC, which is already Monday 00:30 in Paris (UTC+1 in November)
    moment = at("2026-11-29T23:30:00+00:00")
    # Then in UTC it belongs to the week that began on Monday the 23rd...
    utc = window_span(parse_window("weekly"), "UTC", moment)
    assert (utc.window_id, utc.start, utc.end) == (
        "2026-W48",
        at("2026-11-23T00:00:00+00:00"),
        at("2026-11-30T00:00:00+00:00"),
    )
    # ...and in Paris to the week that begins on Monday the 30th, local midnight
    paris = window_span(parse_window("weekly"), "Europe/Paris", moment)
    assert (paris.window_id, paris.start, paris.end) == (
        "2026-W49",
        at("2026-11-29T23:00:00+00:00"),
        at("2026-12-06T23:00:00+00:00"),
    )


def test_a_weekly_window_over_a_daylight_saving_change_is_a_week_of_local_days():
    # The week of Sunday 29 March 2026 in Paris loses an hour; the week of 25 October gains one.
    spring = window_span(parse_window("weekly"), "Europe/Paris", at("2026-03-29T12:00:00+00:00"))
    assert (spring.start, spring.end) == (at("2026-03-22T23:00:00+00:00"), at("2026-03-29T22:00:00+00:00"))
    assert (spring.end - spring.start).total_seconds() == 7 * 86400 - 3600
    autumn = window_span(parse_window("weekly"), "Europe/Paris", at("2026-10-25T12:00:00+00:00"))
    assert (autumn.end - autumn.start).total_seconds() == 7 * 86400 + 3600


@pytest.mark.parametrize(
    ("moment", "window_id", "monday"),
    [
        # Thursday 31 December 2026 and Sunday 3 January 2027: ISO week 53 of 2026
        ("2026-12-31T12:00:00+00:00", "2026-W53", "2026-12-28T00:00:00+00:00"),
        ("2027-01-03T23:59:00+00:00", "2026-W53", "2026-12-28T00:00:00+00:00"),
        ("2027-01-04T00:00:00+00:00", "2027-W01", "2027-01-04T00:00:00+00:00"),
        # Monday 29 December 2025 opens week 1 of 2026
        ("2025-12-31T12:00:00+00:00", "2026-W01", "2025-12-29T00:00:00+00:00"),
    ],
)
def test_a_weekly_window_across_new_year_is_named_by_its_iso_week(moment, window_id, monday):
    span = window_span(parse_window("weekly"), "UTC", at(moment))
    assert (span.window_id, span.start) == (window_id, at(monday))
    assert span.end - span.start == timedelta(days=7)


def test_weekly_is_read_in_any_case_and_written_back_as_weekly():
    assert str(parse_window(" Weekly ")) == "weekly"
