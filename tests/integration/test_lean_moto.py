"""devkit/harness/lean_moto.py: a cancelled transaction leaves every item as it was, as moto's own
rollback does, although the server no longer copies whole tables to roll back."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError

from devkit.harness.server import moto_process
from devkit.harness.stack import FAKE_CREDENTIALS


@pytest.fixture
def dynamodb() -> Iterator:
    with moto_process({}) as (endpoint, _):
        yield boto3.client(
            "dynamodb",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )


def create_tables(dynamodb) -> None:
    dynamodb.create_table(
        TableName="ranged",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.create_table(
        TableName="hashed",
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def contents(dynamodb) -> dict[str, list]:
    return {table: sorted(dynamodb.scan(TableName=table)["Items"], key=str) for table in ("ranged", "hashed")}


def add(table: str, key: dict, amount: str) -> dict:
    return {
        "Update": {
            "TableName": table,
            "Key": key,
            "UpdateExpression": "ADD calls :n",
            "ExpressionAttributeValues": {":n": {"N": amount}},
        }
    }


def test_a_cancelled_transaction_leaves_every_item_as_it_was(dynamodb):
    create_tables(dynamodb)
    existing = {"pk": {"S": "user:a"}, "sk": {"S": "bucket-1"}}
    dynamodb.put_item(TableName="ranged", Item={**existing, "calls": {"N": "5"}})
    dynamodb.put_item(TableName="hashed", Item={"id": {"S": "seen#1"}, "version": {"N": "1"}})
    before = contents(dynamodb)

    with pytest.raises(ClientError) as cancelled:
        dynamodb.transact_write_items(
            TransactItems=[
                add("ranged", existing, "3"),  # applied, then rolled back
                add("ranged", {"pk": {"S": "user:b"}, "sk": {"S": "bucket-1"}}, "1"),  # created, removed
                {"Put": {"TableName": "hashed", "Item": {"id": {"S": "payload#new"}}}},  # created, removed
                {
                    "Update": {  # fails: the version moved on
                        "TableName": "hashed",
                        "Key": {"id": {"S": "seen#1"}},
                        "UpdateExpression": "SET version = :next",
                        "ConditionExpression": "version = :read",
                        "ExpressionAttributeValues": {":next": {"N": "3"}, ":read": {"N": "2"}},
                    }
                },
            ]
        )
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert contents(dynamodb) == before

    dynamodb.transact_write_items(TransactItems=[add("ranged", existing, "3")])
    item = dynamodb.get_item(TableName="ranged", Key=existing)["Item"]
    assert item["calls"] == {"N": "8"}
