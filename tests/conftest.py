"""Fixtures shared by every test, and the rule that CI never skips a test silently."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from budgetkeeper import clock as product_clock
from devkit.harness.clock import ManualClock

# Where every test's clock stands unless the test moves it: a weekday at 10:00 UTC, mid-month, far
# from any midnight, month end or daylight-saving change in the zones the tests use, and on purpose
# not the machine's date, so that a read of the system clock anywhere in the product fails a test on
# any day. Tests derive their record times and windows from the `clock` fixture, never from this.
PINNED_MOMENT = datetime(2026, 6, 10, 10, 0, tzinfo=UTC)


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a region, so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def clock() -> Iterator[ManualClock]:
    """The product's clock for this test: standing at PINNED_MOMENT until the test moves it."""
    manual = ManualClock(PINNED_MOMENT)
    with product_clock.use(manual):
        yield manual


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") == "true" and skipped:
        terminalreporter.write_line(f"CI=true: {len(skipped)} skipped test(s) count as failures", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") == "true" and skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
