"""The one spend forecast: the recent burn when measured, else the window's average so far."""

from datetime import timedelta
from decimal import Decimal

from budgetkeeper.budgets.rules import forecast_spend
from budgetkeeper.core import clock
from budgetkeeper.core.windows import parse_window, window_span


def test_the_window_average_projects_spend_so_far_to_the_end_of_the_window():
    # Given a daily window 10 hours in, with 5 USD spent
    span = window_span(parse_window("daily"), "UTC", clock.now())
    now = span.start + timedelta(hours=10)
    # Then 0.5 USD an hour for the 14 hours left
    assert forecast_spend(Decimal(5), span, now) == Decimal(12)


def test_the_window_average_waits_for_some_history():
    span = window_span(parse_window("daily"), "UTC", clock.now())
    assert forecast_spend(Decimal(5), span, span.start + timedelta(hours=2)) is None


def test_a_measured_recent_burn_wins_over_the_average():
    # Given 2 USD spent 10 hours in, but 3 USD an hour lately
    span = window_span(parse_window("daily"), "UTC", clock.now())
    now = span.start + timedelta(hours=10)
    # Then the recent pace runs for the 14 hours left
    assert forecast_spend(Decimal(2), span, now, recent_burn_per_hour=Decimal(3)) == Decimal(44)
