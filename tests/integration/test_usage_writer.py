"""The exactly-once writer on moto: totals never change when a payload comes again."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
from pynamodb.transactions import TransactWrite

from budgetkeeper.metering.deltas import RollupDelta, TotalDelta, UsageDeltas
from budgetkeeper.metering.writer import PayloadUsage, UsageWriter
from budgetkeeper.storage.keys import marker_slot
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import DedupeItem, TotalItem, transaction_connection
from tests.integration.crashes import dying_at_transaction

HOUR = "2026-11-23T10"


def payload(payload_id: str, scopes: list[str], cost: str) -> PayloadUsage:
    deltas = UsageDeltas()
    for scope in scopes:
        deltas.rollups[(scope, HOUR, "amazon.nova-lite-v1:0", "us-east-1", "standard")] = RollupDelta(
            calls=1, input_tokens=100, output_tokens=10, cost_usd=Decimal(cost)
        )
        deltas.totals[(scope, "daily", "2026-11-23")] = TotalDelta(
            "2026-11-23T00:00:00+00:00", "2026-11-24T00:00:00+00:00", calls=1, spent_usd=Decimal(cost)
        )
    return PayloadUsage(payload_id, deltas)


def spent(scope: str) -> Decimal:
    return TotalItem.get(f"{scope}|daily", "2026-11-23").spent_usd


def calls(scope: str) -> int:
    return sum(item.calls for item in scope_rollups(scope))


@pytest.fixture
def writer(settings):
    return UsageWriter(transaction_connection(settings), ttl_seconds=3600)


def test_small_batches_commit_in_one_transaction_and_duplicates_change_nothing(writer):
    # Given two payloads for one user
    batch = [payload("p1", ["user:alice"], "0.000035"), payload("p2", ["user:alice"], "0.1")]
    # When the batch is written, then delivered again
    first = writer.commit(batch)
    again = writer.commit(batch)
    # Then the total counts each payload once, exactly
    assert first.transactions == 1 and first.metered_payloads == 2
    assert again.duplicate_payloads == 2 and again.transactions == 0
    assert spent("user:alice") == Decimal("0.100035")
    assert calls("user:alice") == 2


def test_the_same_payloads_split_differently_are_counted_once(writer):
    payloads = [payload(f"p{n}", ["user:bob"], "1.25") for n in range(6)]
    writer.commit(payloads[:4])
    writer.commit(payloads[2:])  # overlaps the first delivery
    assert spent("user:bob") == Decimal("7.50")


def test_large_groups_go_through_a_journal_and_stay_exact(writer):
    # Given 60 payloads touching 60 scopes each: far more than 100 items for one transaction
    scopes = [f"user:u{n}" for n in range(60)]
    payloads = [payload(f"big{n}", scopes, "0.01") for n in range(60)]
    # When written twice
    result = writer.commit(payloads)
    writer.commit(payloads)
    # Then every scope saw 60 payloads once: 120 items in chunks of at most 99, plus the claim
    assert result.transactions == 1 + 2
    assert all(spent(scope) == Decimal("0.60") for scope in scopes)


def commit_dying_at(transaction: int, writer, payloads, monkeypatch) -> None:
    """`writer.commit(payloads)`, the function dying (a Lambda timeout) as it sends its
    `transaction`-th TransactWriteItems: the ones before it are written, that one and the rest not."""
    death = SystemExit("Lambda timed out")
    with dying_at_transaction(monkeypatch, transaction, death), pytest.raises(SystemExit):
        writer.commit(payloads)


def test_a_crash_between_two_writes_is_finished_by_the_retry(writer, monkeypatch):
    # 120 totals: too many for one transaction even with the rollups in the usage journal
    scopes = [f"user:c{n:03d}" for n in range(120)]
    payloads = [payload(f"crash{n}", scopes, "0.02") for n in range(10)]
    # Given the function dies after the claim and the first chunk of counters (99 rollups)
    commit_dying_at(3, writer, payloads, monkeypatch)
    assert calls(scopes[0]) == 10 and TotalItem.count() == 0  # the first chunk landed, the rest not
    # When Firehose retries the same batch
    retry = writer.commit(payloads)
    # Then the rest is applied once, and nothing twice
    assert retry.duplicate_payloads == 10
    assert all(spent(scope) == Decimal("0.20") for scope in scopes)


def test_a_journal_written_before_service_tiers_reads_as_standard_usage():
    # Given a journal whose rollup keys have no tier (scope, hour, model, region)
    old = UsageDeltas()
    old.rollups[("user:alice", HOUR, "amazon.nova-lite-v1:0", "us-east-1")] = RollupDelta(calls=1)  # type: ignore[index]
    # When it is read back
    deltas = UsageDeltas.from_bytes(old.to_bytes())
    # Then its usage is at the standard tier
    assert list(deltas.rollups) == [("user:alice", HOUR, "amazon.nova-lite-v1:0", "us-east-1", "standard")]


def slotted(payload_id: str, scopes: list[str], cost: str, slot: str) -> PayloadUsage:
    usage = payload(payload_id, scopes, cost)
    return PayloadUsage(usage.payload_id, usage.deltas, slot=slot)


def hex_id(n: int) -> str:
    return hashlib.sha256(str(n).encode()).hexdigest()


def test_payloads_of_one_minute_share_a_slot_and_a_redelivery_in_any_split_counts_nothing(writer):
    # Given 50 payloads logged in one minute (one slot), one call of 0.01 each
    slot = marker_slot(hex_id(0), 0)
    payloads = [slotted(hex_id(n), ["user:sam"], "0.01", slot) for n in range(50)]
    # When they are written, then delivered again split differently
    first = writer.commit(payloads[:30])
    again = writer.commit(payloads[20:])
    # Then each counts once, and the markers are one slot item, not one item per payload
    assert (first.metered_payloads, again.duplicate_payloads, again.metered_payloads) == (30, 10, 20)
    assert spent("user:sam") == Decimal("0.50")
    assert [item.id for item in DedupeItem.scan()] == [slot]
    assert len(DedupeItem.get(slot).seen) == 50


def test_two_deliveries_claiming_into_one_slot_at_once_count_a_payload_once(writer, settings):
    # Given a payload whose other delivery commits between our marker read and our write
    slot = marker_slot(hex_id(1), 0)
    batch = [slotted(hex_id(1), ["user:kim"], "2.5", slot)]
    rival = UsageWriter(transaction_connection(settings), ttl_seconds=3600)
    real_commit = TransactWrite._commit
    raced = {"done": False}

    def racing_commit(self):
        if not raced["done"]:
            raced["done"] = True
            rival.commit(batch)  # the other Lambda invocation wins the slot's version
        return real_commit(self)

    TransactWrite._commit = racing_commit
    try:
        # When ours commits
        result = writer.commit(batch)
    finally:
        TransactWrite._commit = real_commit
    # Then ours was refused on the slot's version, read again, and found the payload metered
    assert (result.metered_payloads, result.duplicate_payloads) == (0, 1)
    assert spent("user:kim") == Decimal("2.5")


def test_a_crash_after_a_slotted_claim_is_finished_by_a_redelivery_of_part_of_the_batch(writer, monkeypatch):
    # Given 10 slotted payloads over 120 scopes (a journal and chunks) and a crash after the claim
    scopes = [f"user:j{n:03d}" for n in range(120)]
    payloads = [slotted(hex_id(100 + n), scopes, "0.03", marker_slot(hex_id(100 + n), 0)) for n in range(10)]
    commit_dying_at(2, writer, payloads, monkeypatch)
    assert TotalItem.count() == 0  # claimed, nothing applied
    # When only one of the payloads comes again
    retry = writer.commit(payloads[:1])
    # Then the journal is finished: every payload counted once
    assert retry.duplicate_payloads == 1
    assert all(spent(scope) == Decimal("0.30") for scope in scopes)
