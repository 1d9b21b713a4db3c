"""The operators' readers do not read what callers mint (issue 25): with 5,000 default budget rows of
minted sessions beside a few budgets in trouble, `status`, the console, the HTML report and the
daily summary read the few, on moto, counting every DynamoDB request and item read."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from budgetkeeper.core import clock
from budgetkeeper.domain.scopes import SCOPE_KINDS
from budgetkeeper.storage.audit_rows import Change
from budgetkeeper.storage.budget_rows import (
    create_budget,
    create_default_budgets,
    index_operator_budgets,
    mark_due,
    set_protection,
)
from budgetkeeper.storage.readers import budgets_to_watch, due_budgets, operator_budgets
from budgetkeeper.storage.tables import SWEEP_DUE, BudgetItem, TotalItem, budget_key
from budgetkeeper_cli.console.pages import scopes_page
from budgetkeeper_cli.main import build_parser, main
from budgetkeeper_cli.reports.html import build_page
from budgetkeeper_cli.reports.rollups import report_window
from budgetkeeper_cli.stack_config import connect
from devkit.harness.dynamodb_reads import Reads, counting_reads
from tests.timeline import window_id

MINTED_SESSIONS = 2_500  # two default budget rows each: 5,000 rows
# The budgets in trouble (scope, window, status, spent), and one an operator set that is not.
IN_TROUBLE = {
    ("user:bob", "daily"): ("warning", "0.90"),
    ("team:data", "weekly"): ("critical", "9.50"),
    ("session:Worker/s00001", "daily"): ("suspended", "30"),
    ("session:Worker/s00002", "monthly"): ("grace", "600"),
}


def operator() -> Change:
    return Change(actor="ops", at=clock.now(), reason="test")


@pytest.fixture
def crowded(stack, settings) -> str:
    """Minted sessions' default budgets, an operator's budget in good shape, a few in trouble (as the
    calculator and the workflow leave them: marked due), an operator's suspension; the stack name."""
    with BudgetItem.batch_write() as batch:
        for index in range(MINTED_SESSIONS):
            for window in ("daily", "monthly"):
                batch.save(BudgetItem(f"session:Worker/s{index:05d}", window, origin="default"))
    create_budget("user:alice", "daily", {"limit_usd": Decimal(100)}, "budget set", operator())
    create_budget("user:bob", "daily", {"limit_usd": Decimal(1)}, "budget set", operator())
    create_budget("team:data", "weekly", {"limit_usd": Decimal(10)}, "budget set", operator())
    for (scope, window), (status, spent) in IN_TROUBLE.items():
        item = BudgetItem.get(scope, window)
        item.update(actions=[BudgetItem.status.set(status)])
        mark_due([(scope, window)])
        TotalItem(budget_key(scope, window), window_id(window), scope=scope, spent_usd=Decimal(spent)).save()
    BudgetItem(
        "user:carol",
        "manual",
        origin="manual",
        status="suspended",
        sweep=SWEEP_DUE,
        sweep_key="user:carol|manual",
    ).save()
    return stack.publish_outputs()


def budgets_table_reads(reads: Reads, settings) -> tuple[int, int]:
    return reads.requests[settings.budgets_table], reads.items[settings.budgets_table]


def test_status_lists_the_budgets_in_trouble_without_reading_the_minted_ones(crowded, settings, capsys):
    capsys.readouterr()
    with counting_reads() as reads:
        assert main(["status", "--format", "json", "--stack-name", crowded]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(row["scope"], row["window"]) for row in rows} == {*IN_TROUBLE, ("user:carol", "manual")}
    # Eight budgets read (the three an operator set and the five the monitor watches, bob in
    # both), in one query a KindIndex partition (two a scope kind) and one of the SweepIndex
    assert budgets_table_reads(reads, settings) == (2 * len(SCOPE_KINDS) + 1, 8)


def test_status_reads_at_most_the_watched_budgets_asked_for_and_counts_the_rest(crowded, settings, capsys):
    code = main(["status", "--format", "json", "--most", "2", "--stack-name", crowded])
    out, err = capsys.readouterr()
    assert code == 0
    assert "3 more watched budgets not read: type --most 5" in err
    # the first two watched (by scope), and the operators' budgets in trouble
    assert {row["scope"] for row in json.loads(out)} == {
        "session:Worker/s00001",
        "session:Worker/s00002",
        "team:data",
        "user:bob",
    }
    assert main(["status", "--most", "0", "--stack-name", crowded]) == 2
    assert "type e.g. --most 500" in capsys.readouterr().err


def test_the_console_and_the_html_report_show_the_operators_and_the_watched_budgets(crowded, settings):
    stack = connect(build_parser().parse_args(["console", "--stack-name", crowded]))
    with counting_reads() as reads:
        page = scopes_page(stack, {})
    shown = {(row["scope"], row["window"]) for row in page.sections[0].rows}
    assert shown == {*IN_TROUBLE, ("user:alice", "daily"), ("user:carol", "manual")}
    assert budgets_table_reads(reads, settings)[1] == 8

    now = clock.now()
    with counting_reads() as reads:
        report = build_page(report_window(None, None, now), None, stack.tunables(), now)
    assert {(bar.scope, bar.window) for bar in report.budgets} == {*IN_TROUBLE, ("user:alice", "daily")}
    assert budgets_table_reads(reads, settings)[1] == 8


def test_the_daily_summary_reads_the_watched_budgets_only(crowded, settings):
    from budgetkeeper.notify.summary import gather_summary

    with counting_reads() as reads:
        summary = gather_summary(clock.now())
    assert [row["name"] for row in summary["suspended"]] == ["session:Worker/s00001", "user:carol"]
    assert [row["name"] for row in summary["grace"]] == ["session:Worker/s00002"]
    assert [row["name"] for row in summary["near"]] == ["team:data", "user:bob"]
    # the five watched budgets, read in one query; no total of the 5,000 minted rows
    assert budgets_table_reads(reads, settings) == (1, 5)
    assert reads.items[settings.totals_table] == 0


def test_watched_budgets_past_the_limit_are_counted_not_read(crowded, settings):
    with counting_reads() as reads:
        watched = due_budgets(limit=2)
    assert (len(watched.items), watched.more) == (2, 3)
    assert budgets_table_reads(reads, settings)[1] <= 2 + 5  # the two, and the COUNT query's five
    assert len(budgets_to_watch().items) == 6  # the operators' three, the five watched, bob in both


def test_an_operators_change_or_protection_of_a_default_budget_brings_it_into_the_operators_view(
    stack, settings
):
    # Given minted sessions' default budgets: one gets a limit, one is protected
    for index in range(100, 103):
        create_default_budgets(f"session:Worker/s{index:05d}", clock.now().isoformat())
    limit = ["--window", "daily", "--limit", "3", "--stack-name", stack.publish_outputs()]
    assert main(["budget", "set", "session:Worker/s00100", *limit]) == 0
    item = BudgetItem.get("session:Worker/s00101", "monthly")
    assert set_protection(item, True, operator())
    # Then both are among the operators' budgets, and the other default ones are not
    scopes = {(item.scope, item.window) for item in operator_budgets()}
    assert ("session:Worker/s00100", "daily") in scopes and ("session:Worker/s00101", "monthly") in scopes
    assert ("session:Worker/s00100", "monthly") not in scopes
    assert not any(scope == "session:Worker/s00102" for scope, _ in scopes)


def test_the_backfill_indexes_operators_budgets_written_before_the_index_held_them(stack, settings, capsys):
    # Given an operator's monthly and weekly budgets written as before (no KindIndex attributes)
    for scope, window in (("user:dave", "monthly"), ("user:erin", "weekly")):
        BudgetItem(scope, window, origin="explicit", limit_usd=Decimal(5)).save()
        BudgetItem.get(scope, window).update(actions=[BudgetItem.kind.remove(), BudgetItem.kind_key.remove()])
    assert not {"user:dave", "user:erin"} & {item.scope for item in operator_budgets()}
    # When the backfill runs
    assert main(["budget", "reindex", "--stack-name", stack.publish_outputs()]) == 0
    # Then they are indexed (and nothing else needed it), and read by the operators' views
    out = capsys.readouterr().out
    assert "user:dave|monthly: indexed\nuser:erin|weekly: indexed\n2 budgets indexed" in out
    assert {"user:dave", "user:erin"} <= {item.scope for item in operator_budgets()}
    assert index_operator_budgets() == []


def test_the_price_refresh_reads_the_models_priced_in_one_request_not_the_rollups(settings):
    from budgetkeeper.pricing.versions import METERED_LOOKBACK, metered_models
    from devkit.harness.logs import DEFAULT_REGION, cloudwatch_payload, converse_message
    from tests.integration.test_usage_calculator import NOVA, run
    from tests.timeline import now_iso

    # Given 40 sessions' calls metered by the calculator, of Nova and of a model no table prices
    run(
        [
            cloudwatch_payload(
                [
                    converse_message(
                        f"arn:aws:sts::111122223333:assumed-role/Worker/s{index:05d}",
                        NOVA if index % 2 else "acme.made-up-v1:0",
                        1000,
                        100,
                        account="111122223333",
                        timestamp=now_iso(),
                    )
                    for index in range(40)
                ]
            )
        ]
    )
    # When the refresh asks which models were priced in its look-back
    with counting_reads() as reads:
        metered = metered_models(clock.now() - METERED_LOOKBACK)
    # Then it is Nova alone (the made-up id is no table's), read with one request of one item
    assert metered == {(NOVA, DEFAULT_REGION)}
    assert (reads.requests[settings.rollups_table], reads.items[settings.rollups_table]) == (1, 1)
