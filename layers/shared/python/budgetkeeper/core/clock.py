"""The one clock: every "what time is it" in the product is `clock.now()`.

In Lambda and in the CLI it is the system clock. Tests and the demo install a clock of their own
with `use()`, so a run sees the moment they chose whatever day the machine is on, and time moves
only when they move it. It is one process-wide setting, not a context variable: Step Functions
tasks run the handlers on other threads (moto's executor) and must see the same moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime


def system_now() -> datetime:
    return datetime.now(UTC)


_source: Callable[[], datetime] = system_now


def now() -> datetime:
    """The current moment, timezone-aware, in UTC."""
    return _source().astimezone(UTC)


def epoch_seconds() -> int:
    """The current moment as whole Unix seconds (DynamoDB TTL attributes want this)."""
    return int(now().timestamp())


@contextmanager
def use(source: Callable[[], datetime]) -> Iterator[None]:
    """Read `source` instead of the system clock until the block ends."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous
