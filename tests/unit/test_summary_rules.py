"""The daily summary's rules on answers from storage readers, without DynamoDB (or moto)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from budgetkeeper.budgets.rules import Status
from budgetkeeper.core import clock as product_clock
from budgetkeeper.notify import summary
from budgetkeeper.storage.tables import BudgetItem
from tests.timeline import window_id


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What the summary's readers answer: set by each test, served from memory."""
    answers: dict[str, object] = {
        "teams": [],
        "rollups": {},
        "budgets": [],
        "spent": {},
        "unpriced": {},
        "manual": [],
    }
    monkeypatch.setattr(summary, "team_scopes", lambda: answers["teams"])
    monkeypatch.setattr(
        summary,
        "rollup_costs",
        lambda scope, prefix: [row for row in answers["rollups"].get(scope, []) if row[0].startswith(prefix)],
    )
    monkeypatch.setattr(summary, "all_budget_rows", lambda: answers["budgets"])
    monkeypatch.setattr(
        summary,
        "spent_in_windows",
        lambda keys, consistent_read: {key: answers["spent"][key] for key in keys if key in answers["spent"]},
    )
    monkeypatch.setattr(summary, "unpriced_calls_by_model", lambda day: answers["unpriced"])
    monkeypatch.setattr(summary, "manual_suspension_rows", lambda: answers["manual"])
    return answers


def test_the_summary_totals_principals_lists_statuses_and_caps_unknown_models(readers):
    now = product_clock.now()
    today = now.date().isoformat()
    last_month = (now - timedelta(days=40)).date().isoformat()  # outside this month: not counted
    day_id, month_id = window_id("daily"), window_id("monthly")
    readers["teams"] = ["team:ml"]
    readers["rollups"] = {
        "team:ml": [(f"{today}T09#m#us-east-1", Decimal("2.5")), (f"{last_month}T00#m#r", Decimal("1"))]
    }
    readers["budgets"] = [
        BudgetItem("user:alice", "daily", status=str(Status.SUSPENDED)),
        BudgetItem("user:alice", "monthly", status=str(Status.OK)),
        BudgetItem("user:bob", "daily", status=str(Status.GRACE)),
        BudgetItem("team:ml", "daily", status=str(Status.WARNING)),
    ]
    readers["spent"] = {
        ("user:alice", "daily", day_id): Decimal("7"),
        ("user:alice", "monthly", month_id): Decimal("40"),
        ("user:bob", "daily", day_id): Decimal("3"),
        ("team:ml", "daily", day_id): Decimal("10"),
    }
    readers["unpriced"] = {f"vendor.model-{n}": n for n in range(1, 6)}
    readers["manual"] = [BudgetItem("role:App", "manual", status=str(Status.SUSPENDED))]

    gathered = summary.gather_summary(now, rows=3)

    # Principals' budgets only (a team's spend is its members'): alice 7 + bob 3 today.
    assert gathered["total_today"] == summary.money("10")
    assert gathered["total_month"] == summary.money("40")
    assert gathered["teams"] == [
        {"name": "team:ml", "today": summary.money("2.5"), "month": summary.money("2.5")}
    ]
    assert [row["name"] for row in gathered["top_scopes"]] == ["user:alice", "user:bob"]
    assert [row["name"] for row in gathered["suspended"]] == ["user:alice", "role:App"]
    assert [row["name"] for row in gathered["grace"]] == ["user:bob"]
    assert [row["name"] for row in gathered["near"]] == ["team:ml"]
    # The most-called unknown models first, capped at 3 rows and one counting the rest.
    assert [row["name"] for row in gathered["unknown_models"]] == [
        "vendor.model-5",
        "vendor.model-4",
        "vendor.model-3",
        "…",
    ]
    assert gathered["counts"] == {"suspended": 2, "grace": 1}
