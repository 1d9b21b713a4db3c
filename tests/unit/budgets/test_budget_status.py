"""One status for a budget everywhere (`status`, the console's Scopes and Enforcement tabs, the HTML
report): a warning or critical status of a window that has rolled over is shown as over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from budgetkeeper.budgets.rules import Status
from budgetkeeper.core.windows import WindowSpan
from budgetkeeper.storage.tables import BudgetItem
from budgetkeeper_cli.views import BudgetState, status_row

START = datetime(2026, 6, 10, tzinfo=UTC)
TODAY = WindowSpan("2026-06-10", START, START + timedelta(days=1))


def row_of(status: Status, status_window_id: str | None) -> dict:
    item = BudgetItem("user:alice", "daily", status=str(status), status_window_id=status_window_id)
    state = BudgetState(item, None, TODAY, Decimal("0.5"), None, START + timedelta(hours=12))
    return status_row(state)


def test_a_warning_of_a_window_that_rolled_over_is_over_and_says_so() -> None:
    row = row_of(Status.WARNING, "2026-06-09")
    assert row["status"] == "ok"
    assert row["status_note"] == "warning in window 2026-06-09, which has rolled over"


def test_a_warning_of_the_current_window_and_a_suspension_stand() -> None:
    assert (
        row_of(Status.WARNING, "2026-06-10")["status"],
        row_of(Status.WARNING, "2026-06-10")["status_note"],
    ) == (
        "warning",
        None,
    )
    # a suspension lasts until it is restored, whatever the window
    assert row_of(Status.SUSPENDED, "2026-06-09")["status"] == "suspended"


def test_the_forecast_is_the_spend_at_the_windows_pace_so_far() -> None:
    # half the day gone, 0.50 spent: 1.00 by the end of the day
    assert row_of(Status.OK, None)["forecast_usd"] == Decimal("1.000000")
