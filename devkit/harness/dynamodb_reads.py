"""DynamoDB reads counted at botocore: requests and the items they read, per table (what DynamoDB
charges reads for: a Query's or Scan's ScannedCount, the items a BatchGetItem or GetItem returns).
The readers' tests and bench/bench_cardinality.py count with it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import botocore.client


@dataclass
class Reads:
    requests: Counter[str] = field(default_factory=Counter)  # by table name
    items: Counter[str] = field(default_factory=Counter)

    def record(self, operation: str, params: dict[str, Any], response: dict[str, Any]) -> None:
        if operation == "BatchGetItem":
            for table, items in response.get("Responses", {}).items():
                self.requests[table] += 1
                self.items[table] += len(items)
        elif operation in ("Query", "Scan"):
            self.requests[params["TableName"]] += 1
            self.items[params["TableName"]] += int(response.get("ScannedCount", response.get("Count", 0)))
        elif operation == "GetItem":
            self.requests[params["TableName"]] += 1
            self.items[params["TableName"]] += 1 if "Item" in response else 0


@contextmanager
def counting_reads() -> Iterator[Reads]:
    reads = Reads()
    original = botocore.client.BaseClient._make_api_call

    def counted(client: Any, operation: str, params: dict[str, Any]) -> Any:
        response = original(client, operation, params)
        if client.meta.service_model.service_name == "dynamodb":
            reads.record(operation, params, response)
        return response

    with mock.patch.object(botocore.client.BaseClient, "_make_api_call", counted):
        yield reads
