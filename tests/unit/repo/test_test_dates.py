"""The tests themselves: none writes a calendar date that must be "today", none reads the machine's clock.

A test that needs "now" asks the clock it set (the `clock` fixture, tests/timeline.py). Dates may be
written only where they are data that never meets the clock, or a calendar edge a test pins itself;
each such module is listed here with its reason, so a new one is a decision, not an accident.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[2]
DATE = re.compile(r"(?<!\d)(19|20)\d{2}-\d{2}-\d{2}")
# Dates that are not days: IAM's policy language version, and a window's anchor (`days:7@2026-01-05`).
NOT_A_DAY = re.compile(r"2012-10-17|days:\d+@\d{4}-\d{2}-\d{2}")

DATES_ARE_DATA = {
    "conftest.py": "PINNED_MOMENT, the one place where the tests' clock is set",
    "unit/core/test_windows.py": "window arithmetic on moments the test names",
    "unit/domain/test_records.py": "timestamps parsed out of fixed log records",
    "unit/domain/test_scopes.py": "attribution of a fixed invocation, which does not depend on its time",
    "unit/cli/test_usage_report.py": "offline reports over fixed records, with explicit --since/--until",
    "unit/enforcement/test_enforcement.py": "run names computed from window ids the test gives",
    "integration/test_meter_command.py": "offline metering of fixed log files",
    "integration/test_meter_athena.py": "both engines over a fixed past day of logs",
    "unit/cli/test_athena_calls.py": "an Athena result row's hour, a fixed epoch read back",
    "integration/test_usage_writer.py": "the writer stores the window ids it is handed, asks no clock",
    "integration/test_calendar_edges.py": "calendar edges, each test pinning its own clock",
    "unit/repo/test_test_dates.py": "the guard's own sample of what it catches",
    "unit/pricing/test_cross_check_prices.py": "as-of and start dates of prices, data compared offline",
    "unit/domain/test_record_rules.py": "timestamps of fixed records at the edges the parser refuses",
    "unit/domain/test_fast_decode.py": "the day of generated records metered offline; it asks no clock",
    "unit/budgets/test_budget_status.py": "a fixed window span given to the pure status rule (no clock)",
    "unit/cli/test_chart_labels.py": "a fixed report window drawn on a time axis, which asks no clock",
    "unit/metering/test_meter_parity.py": "the day of generated records metered offline; it asks no clock",
    "unit/metering/test_journal_groups.py": "sort keys of journal entries the test names; it asks no clock",
    "unit/storage/test_journal_codec.py": "hours of rows encoded and read back; it asks no clock",
    "unit/notify/test_notice_words.py": "moments formatted per language and zone; samples follow the clock",
    "unit/cli/test_cli_basics.py": "an audit line's time, formatted for people and kept for machines",
}
SYSTEM_CLOCK = re.compile(r"\b(datetime\.now|datetime\.utcnow|date\.today|time\.time|time\.gmtime)\(")
SYSTEM_CLOCK_ALLOWED = {
    "unit/repo/test_test_dates.py": "this file names the calls it looks for",
    "integration/test_tunables.py": "moves Powertools' own cache clock, which is not the product's",
}


def modules() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def date_literals(path: Path) -> list[tuple[int, str]]:
    """Strings holding a date, and `date(...)`/`datetime(...)` calls with a literal year."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if DATE.search(NOT_A_DAY.sub("", node.value)):
                found.append((node.lineno, node.value))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) in ("date", "datetime")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, int)
        ):
            found.append((node.lineno, ast.unparse(node)))
    return found


def test_date_literals_stand_only_where_they_are_data_or_a_pinned_edge():
    offenders = {
        str(path.relative_to(TESTS)): date_literals(path)
        for path in modules()
        if str(path.relative_to(TESTS)) not in DATES_ARE_DATA
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_test_reads_the_machine_clock():
    offenders = {
        name: [n for n, line in enumerate(path.read_text().splitlines(), 1) if SYSTEM_CLOCK.search(line)]
        for path in modules()
        if (name := str(path.relative_to(TESTS))) not in SYSTEM_CLOCK_ALLOWED
    }
    assert {name: lines for name, lines in offenders.items() if lines} == {}


@pytest.mark.parametrize("name", sorted(DATES_ARE_DATA))
def test_every_listed_module_still_needs_its_exception(name):
    assert date_literals(TESTS / name), f"{name} writes no date any more: remove it from DATES_ARE_DATA"


def test_the_guard_sees_a_today_literal(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "TODAY = " + '"2026-11-23"\nVERSION = "2012-10-17"\nWINDOW = "days:7@2026-01-05"\n'
        "NOW = datetime(2026, 11, 23, tzinfo=UTC)\nDAY = dt.date(2026, 11, 23)\n"
    )
    assert date_literals(sample) == [
        (1, "2026-11-23"),
        (4, "datetime(2026, 11, 23, tzinfo=UTC)"),
        (5, "dt.date(2026, 11, 23)"),
    ]
