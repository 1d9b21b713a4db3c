"""bench_calculator's count of DynamoDB write units: a delete is charged on the item it deletes
(DynamoDB's rule), not on its key: the usage journal's entries are deleted by every fold."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from bench_calculator import Sizes, Tally, deleted_keys

KEY = {"scope": {"S": "usage-journal"}, "bucket": {"S": "an-entry#4.1.0"}}
STORED = 2_500  # bytes of the entry as stored: 3 KB


def sizes() -> Sizes:
    return Sizes(stored=lambda table, key: 0, deleted=lambda table, key: STORED)


def test_a_delete_in_a_transaction_is_charged_on_the_item_it_deletes():
    tally = Tally()
    params = {"TransactItems": [{"Delete": {"TableName": "Rollups", "Key": KEY}}]}
    tally.record("dynamodb", "TransactWriteItems", params, {}, sizes())
    assert tally.write_request_units == 3 * 2


def test_a_delete_alone_or_in_a_batch_is_charged_on_the_item_it_deletes():
    tally = Tally()
    tally.record("dynamodb", "DeleteItem", {"TableName": "Rollups", "Key": KEY}, {}, sizes())
    batch = {"RequestItems": {"Rollups": [{"DeleteRequest": {"Key": KEY}}]}}
    tally.record("dynamodb", "BatchWriteItem", batch, {}, sizes())
    assert tally.write_request_units == 3 + 3


def test_the_items_a_request_deletes_are_found_before_it_runs():
    transaction = {
        "TransactItems": [
            {"Delete": {"TableName": "Rollups", "Key": KEY}},
            {"Update": {"TableName": "Rollups", "Key": KEY}},
        ]
    }
    assert deleted_keys("TransactWriteItems", transaction) == [("Rollups", KEY)]
    assert deleted_keys("PutItem", {"TableName": "Rollups", "Item": KEY}) == []
