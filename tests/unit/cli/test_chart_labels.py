"""Chart labels and axes of the HTML report and the console (budgetkeeper_cli.reports)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from budgetkeeper_cli.reports.aggregation import UsageReport
from budgetkeeper_cli.reports.html import middle
from budgetkeeper_cli.reports.rollups import ReportWindow
from budgetkeeper_cli.reports.timeline import build_time_chart, nice_top


def test_a_long_label_is_cut_in_its_middle_keeping_the_e_mail_of_an_sso_session() -> None:
    name = "session:AWSReservedSSO_DataScientistAccess_0123456789abcdef/priya.raman@example.com"
    shown = middle(name)
    assert (
        len(shown) <= 44
        and shown.startswith("session:AWS")
        and shown.endswith("/priya.raman@example.com"[1:])
    )
    assert middle("user:alice") == "user:alice"


def test_the_money_axis_rises_in_round_steps_past_the_highest_value() -> None:
    assert nice_top(Decimal("1.92")) == (Decimal("2.0"), Decimal("0.5"))
    assert nice_top(Decimal("13.4")) == (Decimal("15"), Decimal("5"))
    assert nice_top(Decimal(0)) == (Decimal(1), Decimal("0.25"))


def test_a_window_with_no_spend_draws_every_day_at_zero() -> None:
    window = ReportWindow(datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 4, tzinfo=UTC))
    chart = build_time_chart("day", "Spend per day", "day", UsageReport(["day"]), window)
    assert [slot.key for slot in chart.slots] == ["2026-06-01", "2026-06-02", "2026-06-03"]
    assert {slot.cost for slot in chart.slots} == {"0"} and chart.empty
