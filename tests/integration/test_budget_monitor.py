"""The scheduled monitor on moto, starting the real workflow: the backstop behind the calculator."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.enforcement.denies import DenyEntry
from budgetkeeper.enforcement.iam_denies import EntryKind
from budgetkeeper.enforcement.runs import WorkflowStarter
from budgetkeeper.storage.tables import BudgetItem, RollupItem, TotalItem
from devkit.harness.lambdas import invoke
from devkit.harness.workflow import real_handlers
from tests.integration.test_enforcement_workflow import (
    attached,
    finish_all,
    set_budget,
    spend,
    types,
    user_arn,
)
from tests.timeline import now_iso, window_id


@pytest.fixture
def workflow(stack, settings):
    with real_handlers(stack) as waits:
        yield waits


def sweep() -> dict:
    return invoke("BudgetMonitorFunction", {"source": "aws.events", "detail-type": "Scheduled Event"})


def test_a_crossing_whose_run_failed_to_start_is_started_by_the_next_sweep(stack, workflow, monkeypatch):
    set_budget("user:nora", limit="1")

    def start_fails(self, name, request):
        raise ConnectionError("Step Functions endpoint unreachable")

    with monkeypatch.context() as patched, pytest.raises(ConnectionError):
        patched.setattr(WorkflowStarter, "start", start_fails)
        spend(user_arn("nora"), "0.8", timestamp=now_iso())
    assert finish_all(stack) == []  # no run: the crossing would be lost without the sweep
    report = sweep()
    finish_all(stack)
    assert report["evaluations"] == ["user:nora|daily"]
    assert types(stack) == ["warning"]


def test_an_overdue_suspension_with_no_waiting_run_is_restored(stack, workflow, deny_book):
    stack.client("iam").create_user(UserName="otto")
    deny_book.apply("user:otto|daily", [DenyEntry(EntryKind.USER, "otto")])
    yesterday = clock.now() - timedelta(days=1)
    BudgetItem(
        "user:otto",
        "daily",
        limit_usd=Decimal(1),
        status="suspended",
        status_window_id=yesterday.strftime("%Y-%m-%d"),
        suspended_until=iso_utc(yesterday.replace(hour=23, minute=59)),
        target_kind="user",
        target_name="otto",
        sweep="due",
        sweep_key="user:otto|daily",
    ).save()
    report = sweep()
    finish_all(stack)
    assert report["restores"] == ["user:otto|daily"]
    assert attached(stack, "otto") == []
    assert BudgetItem.get("user:otto", "daily").status == "ok"


def test_a_warning_from_a_rolled_over_window_is_reset(stack, workflow):
    BudgetItem(
        "user:pia",
        "daily",
        limit_usd=Decimal(1),
        status="warning",
        status_window_id=window_id("daily", at=clock.now() - timedelta(days=3)),
        sweep="due",
        sweep_key="user:pia|daily",
    ).save()
    report = sweep()
    assert report["rolled_over"] == ["user:pia|daily"]
    assert BudgetItem.get("user:pia", "daily").status == "ok"


def test_a_fast_burn_rate_warns_ahead_of_the_limit(stack, workflow):
    set_budget("user:quinn", limit="10")
    BudgetItem("user:quinn", "daily").update(
        actions=[BudgetItem.sweep.set("due"), BudgetItem.sweep_key.set("x")]
    )
    TotalItem("user:quinn|daily", window_id("daily"), spent_usd=Decimal("2"), calls=3).save()
    now = clock.now()
    for hours_ago in (1, 2, 3):  # 30 USD an hour for the last three hours
        hour = (now - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H")
        RollupItem(
            "user:quinn", f"{hour}#amazon.nova-pro-v1:0#us-east-1", cost_usd=Decimal(30), calls=1
        ).save()
    report = sweep()
    finish_all(stack)
    assert report["forecasts"] == ["user:quinn|daily"]
    assert types(stack) == ["forecast"]
    # A second sweep does not forecast the same window again
    sweep()
    finish_all(stack)
    assert types(stack) == ["forecast"]
