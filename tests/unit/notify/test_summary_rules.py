"""The daily summary's rules on answers from storage readers, without DynamoDB (or moto)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from budgetkeeper.budgets.rules import Status
from budgetkeeper.core import clock as product_clock
from budgetkeeper.notify import summary
from budgetkeeper.storage.readers import BudgetList
from budgetkeeper.storage.tables import BudgetItem, RollupItem

ACCOUNT = "123456789012"


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """What the summary's readers answer: set by each test, served from memory."""
    answers: dict[str, object] = {"teams": [], "rollups": {}, "lines": [], "due": []}
    monkeypatch.setattr(summary, "team_scopes", lambda: answers["teams"])
    monkeypatch.setattr(
        summary,
        "rollup_costs",
        lambda scope, prefix: [row for row in answers["rollups"].get(scope, []) if row[0].startswith(prefix)],
    )
    monkeypatch.setattr(summary, "usage_lines_of_day", lambda day: answers["lines"])
    monkeypatch.setattr(summary, "due_budgets", lambda: BudgetList(answers["due"]))
    return answers


def line(principal: str, usd: str, model: str = "m", unpriced: int = 0) -> RollupItem:
    arn = f"arn:aws:iam::{ACCOUNT}:user/{principal.partition(':')[2]}"
    return RollupItem(
        "line",
        principal,
        principal=principal,
        cost_usd=Decimal(usd),
        identity_arn=arn,
        model=model,
        unpriced_calls=unpriced,
    )


def test_the_summary_totals_principals_lists_statuses_and_caps_unknown_models(readers):
    now = product_clock.now()
    today = now.date().isoformat()
    last_month = (now - timedelta(days=40)).date().isoformat()  # outside this month: not counted
    readers["teams"] = ["team:ml"]
    readers["rollups"] = {
        "team:ml": [(f"{today}T09#m#us-east-1", Decimal("2.5")), (f"{last_month}T00#m#r", Decimal("1"))],
        f"account:{ACCOUNT}": [(f"{today}T09#m#us-east-1", Decimal("40"))],
    }
    readers["lines"] = [
        line("user:alice", "7"),
        line("user:bob", "3"),
        *(line("user:carol", "0", f"vendor.model-{n}", unpriced=n) for n in range(1, 6)),
    ]
    readers["due"] = [
        BudgetItem("user:alice", "daily", status=str(Status.SUSPENDED)),
        BudgetItem("user:bob", "daily", status=str(Status.GRACE)),
        BudgetItem("team:ml", "daily", status=str(Status.WARNING)),
        BudgetItem("role:App", "manual", status=str(Status.SUSPENDED)),
    ]

    gathered = summary.gather_summary(now, rows=3)

    # Today's usage lines: alice 7 + bob 3; the month from the accounts seen today.
    assert gathered["total_today"] == "10"
    assert gathered["total_month"] == "40"
    assert gathered["teams"] == [{"name": "team:ml", "today": "2.5", "month": "2.5"}]
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
