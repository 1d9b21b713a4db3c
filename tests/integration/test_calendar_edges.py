"""Calendar edges, through the real calculator and workflow: each test pins its own clock.

These are the tests that write dates on purpose: each names the edge it stands on (a midnight in the
budget's time zone, a month end, a leap day, a daylight-saving change, a half-hour zone, spend
arriving after its window closed) and sets the clock there, so they mean the same on any day.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from budgetkeeper.core.windows import iso_utc
from budgetkeeper.storage.tables import BudgetItem, TotalItem
from devkit.harness.workflow import real_handlers, wait_for_state
from tests.integration.test_enforcement_workflow import (
    attached,
    executions,
    finish_all,
    notifications,
    set_budget,
    spend,
    types,
    user_arn,
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def workflow(stack, settings):
    with real_handlers(stack) as waits:
        yield waits


EDGES = [
    # (why, budget window, time zone, the clock and the call, its window id, that window's refresh)
    (
        "one second before midnight in Paris (winter, UTC+1)",
        "daily",
        "Europe/Paris",
        "2026-12-14T22:59:59+00:00",
        "2026-12-14",
        "2026-12-14T23:00:00Z",
    ),
    (
        "midnight in Paris: the next day's window",
        "daily",
        "Europe/Paris",
        "2026-12-14T23:00:00+00:00",
        "2026-12-15",
        "2026-12-15T23:00:00Z",
    ),
    (
        "the last second of a month",
        "monthly",
        "UTC",
        "2027-01-31T23:59:59+00:00",
        "2027-01",
        "2027-02-01T00:00:00Z",
    ),
    (
        "a leap day, daily",
        "daily",
        "UTC",
        "2028-02-29T12:00:00+00:00",
        "2028-02-29",
        "2028-03-01T00:00:00Z",
    ),
    (
        "a leap February, monthly",
        "monthly",
        "UTC",
        "2028-02-29T23:59:00+00:00",
        "2028-02",
        "2028-03-01T00:00:00Z",
    ),
    (
        "the spring-forward day in Paris is 23 hours long",
        "daily",
        "Europe/Paris",
        "2027-03-28T00:58:00+00:00",
        "2027-03-28",
        "2027-03-28T22:00:00Z",
    ),
    (
        "the fall-back day in New York is 25 hours long",
        "daily",
        "America/New_York",
        "2026-11-01T12:00:00+00:00",
        "2026-11-01",
        "2026-11-02T05:00:00Z",
    ),
    (
        "a half-hour zone (Kolkata, UTC+5:30)",
        "daily",
        "Asia/Kolkata",
        "2026-12-14T18:29:00+00:00",
        "2026-12-14",
        "2026-12-14T18:30:00Z",
    ),
    (
        "a month end in a half-hour zone",
        "monthly",
        "Asia/Kolkata",
        "2027-01-31T18:30:00+00:00",
        "2027-02",
        "2027-02-28T18:30:00Z",
    ),
    (
        "Sunday night in UTC is Monday in Paris: a new week",
        "weekly",
        "Europe/Paris",
        "2026-12-13T23:30:00+00:00",
        "2026-W51",
        "2026-12-20T23:00:00Z",
    ),
    (
        "New Year's Day in ISO week 53 of the year before",
        "weekly",
        "UTC",
        "2027-01-01T12:00:00+00:00",
        "2026-W53",
        "2027-01-04T00:00:00Z",
    ),
]


@pytest.mark.parametrize(
    ("why", "window", "zone", "moment", "window_id", "refresh"), EDGES, ids=[edge[0] for edge in EDGES]
)
def test_an_overspend_at_a_calendar_edge_is_charged_to_its_window_and_lifted_at_its_refresh(
    stack, workflow, clock, why, window, zone, moment, window_id, refresh
):
    # Given the clock at the edge, and a budget in that zone
    clock.set(at(moment))
    stack.client("iam").create_user(UserName="edge")
    set_budget("user:edge", window, "1", time_zone=zone)
    # When a call at that moment overspends it
    spend(user_arn("edge"), "1.5", timestamp=iso_utc(at(moment)))
    # Then the spend is in that window, and the suspension waits for that window's refresh
    assert TotalItem.get(f"user:edge|{window}", window_id).spent_usd == 1.5
    run = next(e for e in executions(stack) if e["name"].startswith("exceeded"))
    described = stack.client("stepfunctions").describe_execution(executionArn=run["executionArn"])
    started = json.loads(described["input"])
    assert (started["window_id"], started["window_end"]) == (window_id, refresh)
    finish_all(stack)
    suspended = next(n for n in notifications(stack) if n["type"] == "suspended")
    assert suspended["refresh_at"] == refresh
    assert types(stack) == ["grace", "suspended", "restored"]
    assert attached(stack, "edge") == []


def test_spend_logged_before_midnight_and_metered_after_it_is_late_and_suspends_nobody(
    stack, workflow, clock
):
    # Given a daily budget in Paris and the clock just past midnight there
    stack.client("iam").create_user(UserName="late")
    set_budget("user:late", "daily", "1", time_zone="Europe/Paris")
    midnight = at("2026-12-15T00:00:00+01:00")
    clock.set(midnight + timedelta(minutes=2))
    # When a call logged one second before midnight is metered now (log delivery lags)
    spend(user_arn("late"), "1.5", timestamp=iso_utc(midnight - timedelta(seconds=1)))
    finish_all(stack)
    # Then it is charged to the day that closed, and alerts, but suspends nobody
    assert TotalItem.get("user:late|daily", "2026-12-14").spent_usd == 1.5
    assert types(stack) == ["late_spend"]
    assert attached(stack, "late") == []
    assert BudgetItem.get("user:late", "daily").status == "ok"


def test_a_run_that_waits_across_midnight_restores_at_the_refresh_the_clock_reaches(stack, workflow, clock):
    # Given a suspension whose run waits for the refresh, the clock 3 minutes before midnight
    workflow.max_wait_seconds = 60
    clock.set(at("2027-02-28T23:57:00+00:00"))
    stack.client("iam").create_user(UserName="night")
    set_budget("user:night", "daily", "1")
    spend(user_arn("night"), "1.5")
    run = next(e for e in executions(stack) if e["name"].startswith("exceeded"))
    wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    assert attached(stack, "night") != []
    # When the clock passes midnight, the waiting run is due: the harness waits count from the clock
    clock.set(at("2027-03-01T00:00:01+00:00"))
    workflow.max_wait_seconds = 0
    workflow.release()
    finish_all(stack)
    # Then the deny is gone, and a call in the new day starts from zero
    assert attached(stack, "night") == []
    spend(user_arn("night"), "0.5")
    assert TotalItem.get("user:night|daily", "2027-03-01").spent_usd == 0.5
    assert BudgetItem.get("user:night", "daily").status == "ok"
