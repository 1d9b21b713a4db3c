"""Conditional writes read one way: a write whose condition failed lost a race (another run or an
operator changed the row meanwhile) and says so as False; any other error is raised. A transaction
cancelled says which of its items' conditions failed (`failed_conditions`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError

CONDITION_FAILED = "ConditionalCheckFailedException"
# A cancelled transaction's reason for an item whose condition failed.
ITEM_CONDITION_FAILED = "ConditionalCheckFailed"


def won(write: Callable[..., object], *arguments: Any, **keywords: Any) -> bool:
    """Make a conditional write (an item's update, save or delete); False when its condition failed."""
    try:
        write(*arguments, **keywords)
    except (PutError, UpdateError, DeleteError) as error:
        if error.cause_response_code == CONDITION_FAILED:
            return False
        raise
    return True


def failed_conditions(error: TransactWriteError) -> list[bool]:
    """For each item of a cancelled transaction, in order: whether its condition failed (empty when
    DynamoDB gave no reasons)."""
    reasons = getattr(error, "cancellation_reasons", None) or []
    return [reason is not None and reason.code == ITEM_CONDITION_FAILED for reason in reasons]
