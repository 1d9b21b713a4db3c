"""`budgetkeeper redrive` (issue 12): processing-failed records and quarantined events metered again,
after a fix, through the usage calculator's own path and dedupe; a replay never double-counts.

The failures are produced by the real handler on moto: a DynamoDB outage longer than Firehose's
retries (the records then written under errors/processing-failed/ as Firehose writes them), and a
parser bound set too low (the events quarantined). Totals are compared with an independent sum.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from budgetkeeper.core import clock as product_clock
from budgetkeeper.domain import log_records
from budgetkeeper.metering.writer import UsageWriter
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import DedupeItem, RollupItem, TotalItem
from budgetkeeper_cli.main import main
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from tests.reliability.test_calculator_faults import ATTEMPTS, assert_exact, generated_batch
from tests.timeline import now_iso

ACCOUNT = "111122223333"
NOVA_IN, NOVA_OUT = Decimal("0.06"), Decimal("0.24")  # Nova Lite, USD per 1M tokens, by hand


@pytest.fixture
def stack_name(stack, settings) -> str:
    return stack.publish_outputs()


def redrive(stack_name: str, capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["redrive", *argv, "--stack-name", stack_name])
    out, err = capsys.readouterr()
    return code, out, err


def write_processing_failed(stack, bucket: str, event: dict[str, Any], key: str) -> None:
    """What Firehose writes when every invocation of a batch failed: one JSON document per record."""
    documents = [
        {
            "attemptsMade": 4,
            "arrivalTimestamp": record["approximateArrivalTimestamp"],
            "errorCode": "Lambda.FunctionError",
            "errorMessage": "The Lambda function was successfully invoked but it returned an error result.",
            "attemptEndingTimestamp": record["approximateArrivalTimestamp"] + 300_000,
            "rawData": record["data"],
            "lambdaArn": "arn:aws:lambda:us-east-1:111122223333:function:usage-calculator:$LATEST",
        }
        for record in event["records"]
    ]
    body = "".join(json.dumps(document) + "\n" for document in documents).encode()
    stack.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def failed_batch(stack, settings, faults, users: int, seed: int, first_failing_write: int):
    """A batch that failed every invocation on DynamoDB from its n-th transaction on, written to
    processing-failed as Firehose does; and what each scope should end with."""
    event, expected = generated_batch(users, seed=seed, name=f"b{seed}-")
    faults.fail(
        "dynamodb",
        "TransactWriteItems",
        "InternalServerError",
        status=500,
        first=first_failing_write,
        times=ATTEMPTS,
    )
    with pytest.raises(Exception):  # noqa: B017
        invoke("UsageCalculatorFunction", event)
    faults.clear()
    write_processing_failed(
        stack, settings.archive_bucket, event, f"errors/processing-failed/2026/06/10/batch-{seed}"
    )
    return expected


def test_redrive_meters_processing_failed_records_once_however_often_it_runs(
    stack, settings, stack_name, faults, capsys
):
    # Given two batches Firehose gave up on: one that wrote nothing, one that died half way (after
    # its claim and first chunk of counters)
    small = failed_batch(stack, settings, faults, users=3, seed=21, first_failing_write=1)
    large = failed_batch(stack, settings, faults, users=48, seed=22, first_failing_write=3)
    account = f"account:{ACCOUNT}"
    expected = small | large
    expected[account] = (small[account][0] + large[account][0], small[account][1] + large[account][1])
    # When an operator looks first
    code, out, _ = redrive(stack_name, capsys, "--dry-run", "--prefix", "errors/processing-failed/")
    # Then nothing is written, and the dry run says what would be metered
    assert code == 0 and "10 record(s); would meter 5 payload(s), 5 metered already" in out
    # (the half-written batch's payloads are claimed by its journal: "metered already", finished below)
    assert not list(scope_rollups("user:b21-000"))
    # When the redrive runs, then runs again
    code, out, _ = redrive(stack_name, capsys)
    assert code == 0, out
    assert_exact(expected)
    assert "2 object(s) moved to redriven/" in out
    code, out, _ = redrive(stack_name, capsys)
    # Then every total is exact, the second run finding nothing left to read
    assert code == 0 and "0 record(s); metered 0 payload(s)" in out
    assert_exact(expected)


def spend_recorded() -> list[tuple[str, ...]]:
    """Every rollup and window total, as stored: what a second count would change."""
    rollups = [(r.scope, r.bucket, str(r.calls), str(r.cost_usd)) for r in RollupItem.scan()]
    totals = [(t.budget, t.window_id, str(t.calls), str(t.spent_usd)) for t in TotalItem.scan()]
    return sorted(rollups + totals)


def expire_dedupe_markers() -> None:
    """What DynamoDB TTL does (moto does not run it): markers past their expiry are gone."""
    now = product_clock.epoch_seconds()
    for marker in DedupeItem.scan():
        if marker.expires_at is not None and marker.expires_at <= now:
            marker.delete()


def test_a_redriven_record_counts_once_after_its_dedupe_marker_expired(
    stack, settings, stack_name, faults, clock, capsys
):
    # Given a batch Firehose gave up on, redriven once (metered, its object moved out of the way)
    expected = failed_batch(stack, settings, faults, users=3, seed=31, first_failing_write=1)
    code, first, _ = redrive(stack_name, capsys)
    assert code == 0
    assert_exact(expected)
    metered = spend_recorded()
    # When its payload markers have expired (dedupe_ttl_days later) and an operator redrives again
    redriven_on = product_clock.now().date().isoformat()
    clock.advance(timedelta(days=8))
    expire_dedupe_markers()
    assert not [marker for marker in DedupeItem.scan() if redriven_on in marker.id]
    code, out, _ = redrive(stack_name, capsys)
    # Then nothing is read again: every rollup and window total is as it was
    assert code == 0
    assert spend_recorded() == metered
    assert "1 object(s) moved to redriven/" in first and "0 record(s)" in out
    s3 = stack.client("s3")
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=settings.archive_bucket)["Contents"]]
    assert "redriven/errors/processing-failed/2026/06/10/batch-31" in keys
    assert not [key for key in keys if key.startswith("errors/processing-failed/")]


def test_an_object_with_a_record_still_undecodable_stays_to_be_redriven_again(
    stack, settings, stack_name, capsys
):
    # Given a processing-failed object whose one record is not a CloudWatch Logs payload
    key = "errors/processing-failed/2026/06/10/garbage"
    body = json.dumps({"rawData": base64.b64encode(b"not a payload").decode()}).encode()
    stack.client("s3").put_object(Bucket=settings.archive_bucket, Key=key, Body=body)
    # When redriven
    code, out, _ = redrive(stack_name, capsys, "--prefix", "errors/processing-failed/")
    # Then it is reported and left where it is, for a redrive after the next fix
    assert code == 0 and "1 still undecodable; 0 object(s) moved" in out, out
    stack.client("s3").head_object(Bucket=settings.archive_bucket, Key=key)


def quarantined_by_a_bound_too_low(monkeypatch) -> tuple[dict[str, Any], Decimal]:
    """A batch metered while the parser's sanity bound was (wrongly) 5,000 tokens: alice's 1,000-token
    call is metered, bob's 9,000-token one quarantined. Returns the event and bob's true cost."""
    alice = converse_message(
        f"arn:aws:iam::{ACCOUNT}:user/alice",
        "amazon.nova-lite-v1:0",
        1000,
        10,
        account=ACCOUNT,
        timestamp=now_iso(),
    )
    bob = converse_message(
        f"arn:aws:iam::{ACCOUNT}:user/bob",
        "amazon.nova-lite-v1:0",
        9000,
        100,
        account=ACCOUNT,
        timestamp=now_iso(),
    )
    event = firehose_event([cloudwatch_payload([alice, bob])], invocation_id="bound-too-low")
    with monkeypatch.context() as bug:
        bug.setattr(log_records, "MAX_TOKENS_PER_CALL", 5000)
        invoke("UsageCalculatorFunction", event)
    # the fix: the bound is back
    return event, (9000 * NOVA_IN + 100 * NOVA_OUT) / Decimal(1_000_000)


def bob_spent() -> tuple[int, Decimal]:
    rollups = list(scope_rollups("user:bob"))
    return sum(int(r.calls) for r in rollups), sum((r.cost_usd for r in rollups), Decimal(0))


def test_a_quarantined_event_that_parses_after_a_fix_is_counted_once(
    stack, settings, stack_name, monkeypatch, capsys
):
    # Given bob's call quarantined by a bug, since fixed
    event, bob_cost = quarantined_by_a_bound_too_low(monkeypatch)
    assert bob_spent() == (0, 0)
    # and the same payload delivered again after the fix (metered already: bob's call is not counted)
    invoke("UsageCalculatorFunction", {**event, "invocationId": "again"})
    assert bob_spent() == (0, 0)
    # When the quarantine is redriven, twice
    code, out, err = redrive(stack_name, capsys, "--prefix", "quarantine/")
    assert code == 0 and "metered 1," in out, (out, err)
    code, out, _ = redrive(stack_name, capsys, "--prefix", "quarantine/")
    # Then bob's call is counted once, at its price, and alice's is untouched
    assert bob_spent() == (1, bob_cost)
    assert "metered 0," in out
    alice = list(scope_rollups("user:alice"))
    assert sum(int(r.calls) for r in alice) == 1


def test_a_quarantined_event_a_later_delivery_counted_is_not_counted_again(
    stack, settings, stack_name, monkeypatch, capsys
):
    # Given bob's call quarantined by a delivery that then failed before its write, and the retry,
    # after the fix, metering the payload with bob's call in it
    alice = converse_message(
        f"arn:aws:iam::{ACCOUNT}:user/alice",
        "amazon.nova-lite-v1:0",
        1000,
        10,
        account=ACCOUNT,
        timestamp=now_iso(),
    )
    bob = converse_message(
        f"arn:aws:iam::{ACCOUNT}:user/bob",
        "amazon.nova-lite-v1:0",
        9000,
        100,
        account=ACCOUNT,
        timestamp=now_iso(),
    )
    event = firehose_event([cloudwatch_payload([alice, bob])], invocation_id="dies")

    def outage(self, payloads):
        raise ConnectionError("DynamoDB unreachable")

    with monkeypatch.context() as bug, pytest.raises(ConnectionError):
        bug.setattr(log_records, "MAX_TOKENS_PER_CALL", 5000)
        bug.setattr(UsageWriter, "commit", outage)
        invoke("UsageCalculatorFunction", event)
    invoke("UsageCalculatorFunction", {**event, "invocationId": "retry"})
    bob_cost = (9000 * NOVA_IN + 100 * NOVA_OUT) / Decimal(1_000_000)
    assert bob_spent() == (1, bob_cost)
    # When the quarantine is redriven
    code, out, _ = redrive(stack_name, capsys, "--prefix", "quarantine/")
    # Then bob's call is not counted a second time
    assert code == 0 and "metered 0, 0 by an earlier redrive, 1 metered with their payload" in out
    assert bob_spent() == (1, bob_cost)


def test_an_event_still_bad_stays_and_is_reported_with_todays_reason(stack, settings, stack_name, capsys):
    # Given an event that is not an invocation log, quarantined
    good = converse_message(
        f"arn:aws:iam::{ACCOUNT}:user/alice",
        "amazon.nova-lite-v1:0",
        1000,
        10,
        account=ACCOUNT,
        timestamp=now_iso(),
    )
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([good, '{"not": "a log"}'])]))
    # When redriven
    code, out, _ = redrive(stack_name, capsys)
    # Then it is reported still bad, with why
    assert code == 0 and "1 still bad" in out and "still bad:" in out


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--prefix", "usage/2026/"], "--prefix errors/processing-failed/"),
        (["--since", "last tuesday"], "--since"),
    ],
    ids=["a prefix with nothing to redrive", "a since that is not a time"],
)
def test_bad_arguments_exit_2_and_say_what_to_type(stack_name, capsys, argv, hint):
    code, _, err = redrive(stack_name, capsys, *argv)
    assert code == 2 and hint in err


def test_an_object_that_is_not_firehose_error_output_is_named_and_the_rest_redriven(
    stack, settings, stack_name, capsys
):
    stack.client("s3").put_object(
        Bucket=settings.archive_bucket, Key="errors/processing-failed/x", Body=b'{"a": 1}'
    )
    code, _, err = redrive(stack_name, capsys)
    assert code == 1 and "errors/processing-failed/x" in err and "rawData" in err


def test_firehose_error_documents_are_read_gzipped_or_run_together():
    import gzip

    from budgetkeeper.metering.redrive import failed_records

    data = base64.b64encode(b"x").decode()
    body = (
        json.dumps({"rawData": data}) + json.dumps({"rawData": data, "errorCode": "Lambda.FunctionError"})
    ).encode()
    assert [r.data for r in failed_records("k", gzip.compress(body))] == [data, data]
