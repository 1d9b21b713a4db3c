"""A Lambda dying in the middle of its DynamoDB writes: the transactions before the n-th are written,
that one and the rest are not."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pynamodb.transactions import TransactWrite


@contextmanager
def dying_at_transaction(
    monkeypatch: pytest.MonkeyPatch, number: int, death: BaseException
) -> Iterator[None]:
    """Within the block, the `number`-th TransactWriteItems raises `death` instead of being sent."""
    real_commit = TransactWrite._commit
    commits = {"count": 0}

    def dying_commit(self: TransactWrite) -> None:
        commits["count"] += 1
        if commits["count"] == number:
            raise death
        return real_commit(self)

    monkeypatch.setattr(TransactWrite, "_commit", dying_commit)
    try:
        yield
    finally:
        monkeypatch.setattr(TransactWrite, "_commit", real_commit)
