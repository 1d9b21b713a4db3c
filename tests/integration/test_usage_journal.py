"""The usage journal end to end on moto: the real usage calculator writes a batch's window totals at
once and its rollups and usage lines as journal entries; reports read the journal; the real
UsageCompactorFunction folds it into the rows exactly once, whatever runs twice or dies midway.

Costs are priced here by hand: Nova Pro, USD 0.80 per 1M input tokens, 3.20 per 1M output tokens.
"""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from decimal import Decimal

import pytest

from budgetkeeper.core import clock as product_clock
from budgetkeeper.metering.compactor import fold_usage_journal
from budgetkeeper.metering.writer import fold_entries
from budgetkeeper.storage.journal_codec import ENTRY_FORMAT
from budgetkeeper.storage.keys import USAGE_JOURNAL_PARTITION, line_partition
from budgetkeeper.storage.readers import scope_rollups, usage_lines_of_day
from budgetkeeper.storage.spend_drivers import APP_HOURS, SpendDriver, top_app
from budgetkeeper.storage.tables import BudgetItem, RollupItem, TotalItem, transaction_connection
from budgetkeeper.storage.usage_journal import RowRange, entry_rows, open_journal
from budgetkeeper_cli.main import main
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from tests.integration.crashes import dying_at_transaction
from tests.timeline import now_iso, window_id

ACCOUNT = "111122223333"
NOVA_PRO = "amazon.nova-pro-v1:0"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
FOLD_MINUTES = 15  # the tunable's default (metering/fold_minutes)


def call(
    arn: str, input_tokens: int, output_tokens: int = 0, hours_ago: int = 0, app: str | None = None
) -> str:
    timestamp = now_iso(-timedelta(hours=hours_ago))
    metadata = {"app": app} if app else None
    return converse_message(
        arn,
        NOVA_PRO,
        input_tokens,
        output_tokens,
        account=ACCOUNT,
        timestamp=timestamp,
        request_metadata=metadata,
    )


def cost(input_tokens: int, output_tokens: int = 0) -> Decimal:
    return (input_tokens * Decimal("0.80") + output_tokens * Decimal("3.20")) / 1_000_000


# Four more callers in every batch: a batch of fewer than 8 rollups and usage lines (metering.writer
# JOURNAL_ROWS_MIN) adds them at once, without the journal.
OTHERS = [f"arn:aws:iam::{ACCOUNT}:user/o{n}" for n in range(4)]
OTHERS_COST = sum((cost(100 + n) for n in range(4)), Decimal(0))


def meter(*calls: str) -> None:
    others = [call(arn, 100 + n) for n, arn in enumerate(OTHERS)]
    response = invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([*calls, *others])]))
    assert {record["result"] for record in response["records"]} == {"Ok"}


def fold() -> dict:
    return invoke("UsageCompactorFunction", {})


def stored(scope: str) -> list[RollupItem]:
    """A partition's rows as stored, without the journal: what the compactor has folded so far."""
    return list(RollupItem.query(scope, consistent_read=True))


def view(*scopes: str) -> dict[str, tuple[int, Decimal]]:
    """What readers see of each scope: (calls, cost), the open journal folded in."""
    rows = {scope: scope_rollups(scope) for scope in scopes}
    return {
        scope: (sum(int(r.calls) for r in rs), sum((r.cost_usd for r in rs), Decimal(0)))
        for scope, rs in rows.items()
    }


def daily_spent(scope: str) -> Decimal:
    return TotalItem.get(f"{scope}|daily", window_id()).spent_usd


def test_a_batch_writes_its_totals_at_once_and_its_rollups_as_a_journal_entry(settings, clock):
    # When a batch of three calls by two users is metered
    meter(call(ALICE, 1000, 100), call(ALICE, 2000), call(BOB, 500))
    # Then the window totals are written (enforcement reads them), the rollups are not yet
    assert daily_spent("user:alice") == cost(3000, 100) and daily_spent("user:bob") == cost(500)
    assert stored("user:alice") == [] and stored(f"account:{ACCOUNT}") == []
    # but one journal entry holds them, and readers see them at once
    assert len(open_journal().entries) == 1
    assert view("user:alice", "user:bob", f"account:{ACCOUNT}") == {
        "user:alice": (2, cost(3000, 100)),
        "user:bob": (1, cost(500)),
        f"account:{ACCOUNT}": (7, cost(3500, 100) + OTHERS_COST),
    }
    assert sum(int(line.calls) for line in usage_lines_of_day(now_iso()[:10])) == 7


def test_the_compactor_waits_for_the_fold_minutes_then_folds_once_however_often_it_runs(settings, clock):
    # Given two batches a minute apart
    meter(call(ALICE, 1000), call(BOB, 2000))
    clock.advance(timedelta(minutes=1))
    meter(call(ALICE, 4000))
    seen = view("user:alice", "user:bob", f"account:{ACCOUNT}")
    # When the compactor runs before the oldest entry has waited the fold minutes
    early = fold()
    # Then it leaves the journal as it is
    assert early["entries"] == 0 and len(open_journal().entries) == 2
    # When it runs after, and again
    clock.advance(timedelta(minutes=FOLD_MINUTES))
    first, second = fold(), fold()
    # Then the first folds both batches with one update per row, the second finds nothing
    assert (first["entries"], first["transactions"], first["cancelled"]) == (2, 1, 0)
    assert (second["entries"], second["transactions"]) == (0, 0)
    assert open_journal().entries == []
    # and every row holds each call once: what readers saw before the fold
    assert view("user:alice", "user:bob", f"account:{ACCOUNT}") == seen
    assert [(int(r.calls), r.cost_usd) for r in stored("user:alice")] == [(2, cost(5000))]
    assert sum(int(r.calls) for r in stored(line_partition(now_iso()[:10]))) == 3 + 2 * len(OTHERS)


USERS = [f"arn:aws:iam::{ACCOUNT}:user/u{n}" for n in range(3)]


def hourly_calls(tokens: int) -> list[str]:
    """A call of each of three users in each of the last 24 hours: 168 rollups and usage lines,
    more than one journal entry holds, and few window totals."""
    return [call(user, tokens, hours_ago=hours) for user in USERS for hours in range(24)]


def test_a_crash_between_fold_transactions_leaves_the_rest_for_the_next_run_and_counts_nothing_twice(
    settings, clock, monkeypatch
):
    # Given batches whose journal entries need several fold transactions
    meter(*hourly_calls(1000))
    meter(*hourly_calls(2000))
    scopes = [f"user:u{n}" for n in range(3)] + [f"account:{ACCOUNT}"]
    seen = view(*scopes)
    assert seen[f"account:{ACCOUNT}"] == (144 + 8, 72 * cost(3000) + 2 * OTHERS_COST)
    assert len(open_journal().entries) > 2
    clock.advance(timedelta(minutes=FOLD_MINUTES))
    # When the compactor dies (a Lambda timeout) as it sends its second transaction
    with dying_at_transaction(monkeypatch, 2, SystemExit("Lambda timed out")), pytest.raises(SystemExit):
        fold()
    # Then part is folded, the rest still in the journal, and readers count every call once
    assert open_journal().entries
    assert any(stored(scope) for scope in scopes)
    assert view(*scopes) == seen
    # When the next minute's run comes
    again = fold()
    # Then it folds the rest, and the rows hold each call once
    assert again["entries"] > 0 and open_journal().entries == []
    assert {
        scope: (
            sum(int(r.calls) for r in stored(scope)),
            sum((r.cost_usd for r in stored(scope)), Decimal(0)),
        )
        for scope in scopes
    } == seen


def test_a_fold_of_entries_another_run_folded_first_changes_nothing(settings, clock):
    # Given a batch's entries, folded by one run
    meter(call(ALICE, 1000))
    entries = open_journal().entries
    connection = transaction_connection(settings)
    assert fold_entries(connection, entries) > 0
    # When another run that read the same entries folds them too
    late = fold_entries(connection, entries)
    # Then its transaction is cancelled whole: nothing is counted twice
    assert late == 0
    assert [(int(r.calls), r.cost_usd) for r in stored("user:alice")] == [(1, cost(1000))]


def test_a_reader_overtaken_by_a_fold_reads_again_and_counts_each_call_once(settings, clock, monkeypatch):
    # Given a batch still in the journal
    meter(call(ALICE, 1000), call(ALICE, 3000))
    real_stored = RowRange.stored
    folded = {"done": False}

    def stored_after_a_fold(self):
        # the compactor folds between the reader's read of the journal and its read of the rows
        if not folded["done"]:
            folded["done"] = True
            fold_usage_journal(transaction_connection(settings), product_clock.now(), timedelta(0))
        return real_stored(self)

    monkeypatch.setattr(RowRange, "stored", stored_after_a_fold)
    # When a reader reads alice's rollups
    # Then it sees each call once, not the journal's deltas and the folded rows both
    assert view("user:alice") == {"user:alice": (2, cost(4000))}
    assert folded["done"] and open_journal().entries == []


def test_a_report_right_after_a_batch_shows_its_spend(stack, settings, clock, capsys):
    # Given a batch metered a moment ago, its rollups still in the journal
    meter(call(ALICE, 1000, 200), call(BOB, 3000))
    stack_name = stack.publish_outputs()
    day = now_iso()[:10]
    argv = ["report", "--stack-name", stack_name, "--group-by", "principal", "--since", day, "--until", day]

    def report() -> dict[str, tuple[int, Decimal]]:
        capsys.readouterr()
        assert main([*argv, "--format", "json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        return {row["principal"]: (row["calls"], Decimal(row["cost_usd"])) for row in rows}

    # When the operator asks for the report
    # Then it shows the batch's calls and spend
    expected = {"user:alice": (1, cost(1000, 200)), "user:bob": (1, cost(3000))}
    expected |= {f"user:o{n}": (1, cost(100 + n)) for n in range(4)}
    assert report() == expected
    # and the same once the compactor has folded the journal
    clock.advance(timedelta(minutes=FOLD_MINUTES))
    assert fold()["entries"] == 1
    assert report() == expected


def test_a_crossing_is_found_in_the_batch_that_crosses_while_its_rollups_wait_in_the_journal(
    stack, settings, clock
):
    # Given alice's daily budget of 0.001 USD
    BudgetItem("user:alice", "daily", limit_usd=Decimal("0.001"), grace_seconds=0).save()
    # When one batch takes her over it
    meter(call(ALICE, 1000), call(ALICE, 1000))
    # Then that batch starts her budget's evaluation, before any fold
    assert daily_spent("user:alice") == cost(2000) > Decimal("0.001")
    assert stored("user:alice") == []
    assert len(stack.executions()) == 1


def test_a_lone_call_adds_its_few_rows_at_once_without_the_journal(settings, clock):
    # When a batch of one call is metered (two rollups and a usage line: fewer than the journal saves on)
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([call(ALICE, 1000)])]))
    # Then its rows are written as they are, and the journal stays empty
    assert [(int(r.calls), r.cost_usd) for r in stored("user:alice")] == [(1, cost(1000))]
    assert open_journal().entries == []


def test_the_costliest_app_is_read_from_the_window_s_hours_of_the_scope_s_calls_journaled_or_folded(
    settings, clock
):
    # Given alice's calls for Batch 30 hours ago, for Chat 12 hours ago (the day before: the clock
    # stands at 10:00 UTC), for Search now, and bob's costlier calls for Other now
    meter(
        call(ALICE, 20_000, hours_ago=30, app="Batch"),
        call(ALICE, 9000, hours_ago=12, app="Chat"),
        call(ALICE, 2000, app="Search"),
        call(BOB, 50_000, app="Other"),
    )
    now = product_clock.now()
    for folded in (False, True):
        # Then over the last hour her costliest app is Search: Chat's hour is outside, Other is bob's
        assert top_app("user:alice", now - timedelta(hours=1), now) == SpendDriver("app:Search", cost(2000))
        # and over 13 hours, Chat, read from the day before's lines too
        assert top_app("user:alice", now - timedelta(hours=13), now) == SpendDriver("app:Chat", cost(9000))
        # and a window longer than APP_HOURS is read over its last APP_HOURS (Batch's hour left out),
        # and says so
        longer = top_app("user:alice", now - timedelta(hours=APP_HOURS + 12), now)
        assert longer == SpendDriver("app:Chat", cost(9000), hours=APP_HOURS)
        # and an app's own scope names no app
        assert top_app("app:Search", now - timedelta(hours=1), now) is None
        # whether the lines are still in the journal or folded into their rows
        if not folded:
            clock.advance(timedelta(minutes=FOLD_MINUTES + 1))
            now = product_clock.now()
            assert fold()["entries"] == 1 and open_journal().entries == []


def test_entries_written_before_version_2_are_read_and_folded_with_the_new_ones(settings, clock):
    # Given a batch metered by the version before (its entry's rows as gzipped DynamoDB JSON), waiting
    meter(call(ALICE, 1000), call(BOB, 2000))
    (entry,) = open_journal().entries
    rows = [{k: v for k, v in row.serialize().items() if v != {"N": "0"}} for row in entry_rows(entry)]
    entry.delete()
    RollupItem(
        USAGE_JOURNAL_PARTITION,
        entry.bucket,
        deltas=gzip.compress(json.dumps(rows, separators=(",", ":")).encode(), mtime=0),
    ).save()
    # When this version meters the next batch
    clock.advance(timedelta(minutes=1))
    meter(call(ALICE, 4000))
    # Then its entry is of version 2, and readers count both batches
    old, new = sorted(open_journal().entries, key=lambda e: e.bucket)
    assert old.deltas[:2] == b"\x1f\x8b" and new.deltas[0] == ENTRY_FORMAT
    expected = {"user:alice": (2, cost(5000)), "user:bob": (1, cost(2000))}
    assert view("user:alice", "user:bob") == expected
    # When the compactor folds them
    clock.advance(timedelta(minutes=FOLD_MINUTES))
    assert fold()["entries"] == 2
    # Then the rows hold each call once
    assert open_journal().entries == []
    assert [(int(r.calls), r.cost_usd) for r in stored("user:alice")] == [(2, cost(5000))]
    assert view("user:alice", "user:bob") == expected
