"""Fixtures shared by every test, and the rule that CI never skips a test silently."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from budgetkeeper.core import clock as product_clock
from devkit.harness.clock import ManualClock
from devkit.harness.lean_moto import lean

# moto without its whole-table copy per transaction and its record of every instance: the same
# outcomes (tests/integration/test_lean_moto.py), a quarter of the time at 2,000 budgets.
lean()

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


# What the machine's clock is made to say (scripts/under_faketime.py) is for the product under test,
# not for Chromium: its timers under libfaketime stall page loads until the driver times out.
FAKETIME_VARIABLES = ("LD_PRELOAD", "FAKETIME", "FAKETIME_DONT_FAKE_MONOTONIC")


@pytest.fixture
def browser() -> Iterator[object]:
    """Headless Chromium driven by Debian's chromedriver (tests marked `browser`)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,2400"):
        options.add_argument(argument)
    environment = {name: value for name, value in os.environ.items() if name not in FAKETIME_VARIABLES}
    driver = webdriver.Chrome(options=options, service=Service(driver_path, env=environment))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def iam_evaluator() -> Iterator[object]:
    """The IAM evaluator (tests/iam_eval.py): one Node process per test session (per xdist worker)."""
    from tests.iam_eval import EvaluatorUnavailable, IamEvaluator

    try:
        evaluator = IamEvaluator()
    except EvaluatorUnavailable as missing:
        pytest.skip(str(missing))
    try:
        yield evaluator
    finally:
        evaluator.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int) -> None:
    skipped = terminalreporter.stats.get("skipped", [])
    if os.environ.get("CI") == "true" and skipped:
        terminalreporter.write_line(f"CI=true: {len(skipped)} skipped test(s) count as failures", red=True)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") == "true" and skipped and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
