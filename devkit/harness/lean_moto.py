"""moto without two costs of its own that grow with every write: for the tests, the demo and the benches.

- moto keeps every model instance it ever creates (`InstanceTrackerMeta`, for its reset and its
  dashboard), DynamoDB items and their copies included: nothing is ever freed.
- TransactWriteItems deep-copies every table it touches, to roll back if the transaction is
  cancelled: each transaction costs time and memory in proportion to the items stored, and (above)
  every copy is kept. bench_soak's moto.server grew to 2.7 GB over 20,000 records this way.

Here DynamoDB's models are not tracked, and a transaction backs up only the items it names, putting
them back as they were (or removing the ones it created) when moto cancels it: the same outcome as
moto's rollback, at the cost of the transaction's own items (tests/integration/test_lean_moto.py).
A test of 2,000 budgets took 178 s with moto as is (2 minutes of it in the kernel, paging the
copies), 43 s with this.

In process: `lean()` before the first request (tests/conftest.py, the harness's server,
bench_calculator). As a server: python -m devkit.harness.lean_moto [moto.server's arguments].
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from moto.core import base_backend
from moto.dynamodb import models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
from moto.server import main as moto_server_main


class _Untracked(list):
    """An `instances_tracked` list that keeps nothing."""

    def append(self, instance: Any) -> None:
        pass


class _TablesNotCopied:
    """`copy` as moto.dynamodb.models sees it: a deep copy of a Table is the table itself (the
    transaction's own items are backed up instead); every other copy is a real one."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


_transact_write_items = DynamoDBBackend.transact_write_items


def _transact_write_items_backing_up_its_items(
    self: DynamoDBBackend, transact_items: list[dict[str, Any]]
) -> None:
    saved = []
    for entry in transact_items[:100]:  # more than 100: moto refuses before it writes anything
        ((_, operation),) = entry.items()
        table = self.tables.get(operation.get("TableName"))
        key = operation.get("Key") or operation.get("Item")
        if table is None or not key:
            continue
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        saved.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    try:
        _transact_write_items(self, transact_items)
    except Exception:
        for table, hash_key, range_key, item in reversed(saved):
            if item is None:
                table.delete_item(hash_key, range_key)
            elif range_key is None:
                table.items[hash_key] = item
            else:
                table.items[hash_key][range_key] = item
        raise


def lean() -> None:
    """Applies both changes to moto in this process (again: no effect)."""
    for model in base_backend.model_data["dynamodb"].values():
        model.instances_tracked = _Untracked()
    dynamodb_models.copy = _TablesNotCopied()  # type: ignore[assignment]
    DynamoDBBackend.transact_write_items = _transact_write_items_backing_up_its_items  # type: ignore[method-assign]


if __name__ == "__main__":
    lean()
    sys.exit(moto_server_main(sys.argv[1:]))
