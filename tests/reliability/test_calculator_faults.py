"""DynamoDB throttling and server errors in the middle of a usage-calculator batch (issue 12).

Each test injects the fault into the answer of one DynamoDB call of the real handler on moto (under
botocore's own retries: tests/reliability/faults.py), lets the batch fail as it would in Lambda, then
delivers the same batch again as Firehose does after a failed invocation, and compares every total
with an independent sum of the generated calls, to the nano-dollar: nothing lost, nothing counted
twice.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest

from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import SWEEP_DUE, BudgetItem, TotalItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from tests.timeline import now_iso, window_id

ACCOUNT = "111122223333"
NOVA = "amazon.nova-lite-v1:0"
# Nova Lite on demand, USD per 1M tokens (AWS's published price, written by hand): input, output
NOVA_IN, NOVA_OUT = Decimal("0.06"), Decimal("0.24")
# pynamodb's botocore client tries a call 4 times (3 retries): a fault that lasts 4 calls reaches us.
ATTEMPTS = 4


def generated_batch(
    users: int, seed: int, name: str = "u"
) -> tuple[dict[str, Any], dict[str, tuple[int, Decimal]]]:
    """A Firehose batch of random calls by `users` users (`<name>000`...) over five records, and what
    each scope spent."""
    rng = random.Random(seed)
    messages: list[str] = []
    expected: dict[str, list[Any]] = defaultdict(lambda: [0, Decimal(0)])
    for n in range(users):
        for _ in range(rng.randint(1, 3)):
            tokens_in, tokens_out = rng.randint(1, 200_000), rng.randint(0, 8_000)
            messages.append(
                converse_message(
                    f"arn:aws:iam::{ACCOUNT}:user/{name}{n:03d}",
                    NOVA,
                    tokens_in,
                    tokens_out,
                    account=ACCOUNT,
                    timestamp=now_iso(),
                )
            )
            cost = (tokens_in * NOVA_IN + tokens_out * NOVA_OUT) / Decimal(1_000_000)
            for scope in (f"user:{name}{n:03d}", f"account:{ACCOUNT}"):
                expected[scope][0] += 1
                expected[scope][1] += cost
    rng.shuffle(messages)
    records = [cloudwatch_payload(messages[start::5]) for start in range(5)]
    spent = {scope: (calls, cost) for scope, (calls, cost) in expected.items()}
    return firehose_event(records, invocation_id=f"batch-{seed}"), spent


def redelivered(event: dict[str, Any]) -> dict[str, Any]:
    """The same records in a new invocation, as Firehose retries a failed one."""
    return {**event, "invocationId": event["invocationId"] + "-retry"}


def assert_exact(expected: dict[str, tuple[int, Decimal]]) -> None:
    for scope, (calls, cost) in expected.items():
        rollups = list(scope_rollups(scope))
        assert sum(int(item.calls) for item in rollups) == calls, scope
        assert sum((item.cost_usd for item in rollups), Decimal(0)) == cost, scope
        windows = [budget.window for budget in BudgetItem.query(scope, consistent_read=True)]
        assert windows or not scope.startswith("user:"), scope  # users get the default budgets
        for window in windows:
            total = TotalItem.get(f"{scope}|{window}", window_id(window), consistent_read=True)
            assert (total.calls, total.spent_usd) == (calls, cost), (scope, window)


def emf_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[dict[str, Any]]:
    """The fields of each log line with this message (Powertools passes them as the record's extras)."""
    return [record.__dict__ for record in caplog.records if record.getMessage() == message]


THROTTLED = "ProvisionedThroughputExceededException"
# (operation, first failing call, error code, HTTP status): where the batch dies.
# Three users: their rollups, totals and markers fit one TransactWriteItems. BatchGetItem 1 reads the
# payload markers before the write; BatchGetItem 2 reads the totals back after it, for the crossings.
SMALL = {
    "the only write, throttled": ("TransactWriteItems", 1, THROTTLED, 400),
    "the only write, 5xx": ("TransactWriteItems", 1, "InternalServerError", 500),
    "the marker read before it, throttled": ("BatchGetItem", 1, "ThrottlingException", 400),
    "after the last write, before the answer": ("BatchGetItem", 2, "InternalServerError", 500),
}
# 48 users: more window totals than one transaction holds with the batch's usage-journal entries, so
# a claim with a journal, then two chunks (rollups and usage lines among them, as before the journal).
LARGE = {
    "the claim (first write), throttled": ("TransactWriteItems", 1, THROTTLED, 400),
    "the first chunk (middle), 5xx": ("TransactWriteItems", 2, "InternalServerError", 500),
    "the last chunk, throttled": ("TransactWriteItems", 3, "ThrottlingException", 400),
    "after the last write, before the answer": ("BatchGetItem", 2, "InternalServerError", 500),
}


@pytest.mark.parametrize(
    ("users", "where"),
    [(3, point) for point in SMALL.values()] + [(48, point) for point in LARGE.values()],
    ids=[f"one transaction: {name}" for name in SMALL] + [f"journal: {name}" for name in LARGE],
)
def test_a_batch_that_dies_on_a_dynamodb_fault_is_exact_after_firehose_retries_it(
    settings, faults, capsys, caplog, users, where
):
    operation, first, code, status = where
    event, expected = generated_batch(users, seed=users)
    # Given DynamoDB failing one call of the batch for longer than botocore retries it
    fault = faults.fail("dynamodb", operation, code, status=status, first=first, times=ATTEMPTS)
    # When the batch is metered, the invocation fails
    with pytest.raises(Exception):  # noqa: B017  (what escapes is pynamodb's or botocore's error)
        invoke("UsageCalculatorFunction", event)
    assert fault.injected == ATTEMPTS and len(faults.backoffs) >= ATTEMPTS - 1  # botocore retried first
    # and the failure is logged with the batch and the cause, and counted
    [failed] = logged(caplog, "batch not metered: Firehose delivers it again")
    assert failed["batch"] == event["invocationId"] and code in failed["error"]
    [metrics] = emf_lines(capsys)
    assert metrics["BatchesFailed"] == [1.0]
    # When Firehose delivers the same records again, the fault over
    faults.clear()
    response = invoke("UsageCalculatorFunction", redelivered(event))
    # Then every record is archived and every scope's totals equal the independent sum exactly
    assert {record["result"] for record in response["records"]} == {"Ok"}
    assert_exact(expected)
    # And a third delivery changes nothing
    invoke("UsageCalculatorFunction", redelivered(redelivered(event)))
    assert_exact(expected)


def test_a_throttle_botocore_absorbs_leaves_the_batch_exact(settings, faults):
    # Given the batch's one transaction throttled twice, then accepted
    event, expected = generated_batch(3, seed=7)
    fault = faults.fail("dynamodb", "TransactWriteItems", THROTTLED, times=2)
    # When the batch is metered
    response = invoke("UsageCalculatorFunction", event)
    # Then botocore backed off and retried, the batch succeeded, and every total is exact
    assert fault.injected == 2 and len(faults.backoffs) == 2
    assert {record["result"] for record in response["records"]} == {"Ok"}
    assert_exact(expected)


def test_a_write_applied_whose_answer_is_lost_is_not_counted_twice(settings, faults):
    # Given the batch's transaction applied by DynamoDB, then answered with a 500 (a lost response),
    # so that botocore sends the same transaction again
    event, expected = generated_batch(3, seed=8)
    faults.fail("dynamodb", "TransactWriteItems", "InternalServerError", status=500, after=True)
    # When the batch is metered, and delivered again
    invoke("UsageCalculatorFunction", event)
    invoke("UsageCalculatorFunction", redelivered(event))
    # Then every total is exact: the second attempt found the markers the first one wrote
    assert_exact(expected)


def test_a_crossing_of_a_batch_that_died_after_its_write_is_not_lost(settings, faults):
    # Given a budget the batch takes over its warning threshold
    event, expected = generated_batch(3, seed=9)
    _, cost = expected["user:u000"]
    BudgetItem("user:u000", "daily", limit_usd=cost * Decimal("1.1")).save()
    # and the batch dies after its write, before it read the totals back to find the crossing
    faults.fail("dynamodb", "BatchGetItem", "InternalServerError", status=500, first=2, times=ATTEMPTS)
    with pytest.raises(Exception):  # noqa: B017
        invoke("UsageCalculatorFunction", event)
    assert BudgetItem.get("user:u000", "daily").sweep is None
    # When Firehose delivers it again (every payload is a duplicate now)
    faults.clear()
    invoke("UsageCalculatorFunction", redelivered(event))
    # Then the crossing is still found: the budget is due for the monitor's sweep
    assert BudgetItem.get("user:u000", "daily", consistent_read=True).sweep == SWEEP_DUE
    assert_exact(expected)
