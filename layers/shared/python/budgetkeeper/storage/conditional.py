"""Conditional writes read one way: a write whose condition failed lost a race (another run or an
operator changed the row meanwhile) and says so as False; any other error is raised."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, UpdateError

CONDITION_FAILED = "ConditionalCheckFailedException"


def won(write: Callable[..., object], *arguments: Any, **keywords: Any) -> bool:
    """Make a conditional write (an item's update, save or delete); False when its condition failed."""
    try:
        write(*arguments, **keywords)
    except (PutError, UpdateError, DeleteError) as error:
        if error.cause_response_code == CONDITION_FAILED:
            return False
        raise
    return True
