"""`budgetkeeper report` on moto: the rollups the usage calculator wrote, read back as meter's rows.

A demo day goes through the real usage calculator (Firehose batches in, rollups in DynamoDB), and
the same records are written as log files for `budgetkeeper meter`. For every group-by, filter and
format, `report` (from the tables) prints exactly what `meter` (from the logs) prints.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from budgetkeeper.core import clock
from budgetkeeper.storage.tables import TeamItem
from budgetkeeper_cli.main import main
from budgetkeeper_cli.reports.aggregation import GROUP_FIELDS
from budgetkeeper_cli.reports.rows import OTHERS
from devkit import demo_data
from devkit.demo import batches
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event

NOVA_PRO = "amazon.nova-pro-v1:0"  # USD 0.80 per 1M input tokens, 3.20 per 1M output tokens
ACCOUNT = demo_data.DEMO_ACCOUNT
# `ou` reads AWS Organizations: tests/integration/test_organization.py reports by it.
ONE_ACCOUNT_FIELDS = [name for name in GROUP_FIELDS if name != "ou"]
GROUPINGS = [*ONE_ACCOUNT_FIELDS, "team,model", "app,region,day", ",".join(ONE_ACCOUNT_FIELDS)]


@dataclass
class MeteredDay:
    stack_name: str
    logs: Path
    teams: Path
    day: str  # YYYY-MM-DD of the records
    records: list[dict]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own checks (choices, types)
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    return out


def meter_calls(records: list[dict]) -> None:
    for event in batches(records):
        response = invoke("UsageCalculatorFunction", event)
        assert {record["result"] for record in response["records"]} == {"Ok"}


@pytest.fixture
def metered_day(stack, settings, tmp_path: Path) -> MeteredDay:
    # Given default budgets no demo principal comes near (reports need no enforcement runs)
    for window in ("daily", "monthly"):
        stack.client("ssm").put_parameter(
            Name=f"{settings.parameter_prefix}default_budget/{window}_usd", Value="1000000", Type="String"
        )
    # Given the demo's teams in the teams table (and in a file for meter)
    for scope, team in demo_data.teams().items():
        TeamItem(scope, team=team).save()
    teams = tmp_path / "teams.json"
    teams.write_text(json.dumps(demo_data.teams()))
    # and a day of traffic, metered live by the usage calculator and kept as log files
    day = clock.now().date()
    records = demo_data.generate_day(day, records=60, seed=3)
    meter_calls(records)
    demo_data.write_local_layout(records, tmp_path / "logs", bodies=False)
    return MeteredDay(stack.publish_outputs(), tmp_path / "logs", teams, day.isoformat(), records)


def meter_and_report(capsys, day: MeteredDay, *options: str) -> tuple[str, str]:
    meter = ok(capsys, "meter", str(day.logs), "--teams", str(day.teams), *options)
    report = ok(capsys, "report", "--stack-name", day.stack_name, *options)
    return meter, report


def test_every_group_by_and_format_equals_meter_to_the_nano_dollar(metered_day: MeteredDay, capsys) -> None:
    window = ["--since", metered_day.day, "--until", metered_day.day]
    for group_by in GROUPINGS:
        meter, report = meter_and_report(
            capsys, metered_day, "--group-by", group_by, *window, "--format", "json"
        )
        assert json.loads(report) == json.loads(meter), group_by
    rows = json.loads(report)
    assert sum(row["calls"] for row in rows) == len(metered_day.records)
    assert len({row["team"] for row in rows}) > 2 and len({row["region"] for row in rows}) > 2
    for output_format in ("table", "csv"):
        meter, report = meter_and_report(
            capsys, metered_day, "--group-by", "team,model", *window, "--format", output_format
        )
        assert report == meter, output_format
    assert next(csv.reader(io.StringIO(report)))[:3] == ["team", "model", "calls"]


WIDE_GROUPINGS = ["principal", "principal,model", "principal,role,app,team,model,region,hour"]


def test_tables_fit_120_columns_unless_wide(metered_day: MeteredDay, capsys) -> None:
    window = ["--since", metered_day.day, "--until", metered_day.day]
    for group_by in WIDE_GROUPINGS:
        # Given the day's calls grouped by long names (SSO sessions, inference profiles)
        meter, report = meter_and_report(capsys, metered_day, "--group-by", group_by, *window)
        compare = ok(capsys, "report", "--stack-name", metered_day.stack_name, "--group-by", group_by,
                     *window, "--compare", "previous")  # fmt: skip
        # Then every line of every table is at most 120 columns wide, and meter's is report's
        for table in (meter, report, compare):
            assert max(len(line) for line in table.splitlines()) <= 120, (group_by, table)
        assert meter == report
    # and --wide (before or after the command) shows every column on one line a row
    wide = ok(
        capsys, "report", "--stack-name", metered_day.stack_name, "--group-by", group_by, *window, "--wide"
    )
    assert ok(capsys, "--wide", "report", "--stack-name", metered_day.stack_name, "--group-by", group_by,
              *window) == wide  # fmt: skip
    assert max(len(line) for line in wide.splitlines()) > 120
    assert "cache write" in wide.splitlines()[0] and "not shown" not in wide
    # while the default table names what it left out, and how to see it
    assert "not shown, to fit 120 columns: cache write" in report and "--wide shows them" in " ".join(
        report.split()
    )


FILTERS = [
    ["--arn-pattern", "*:user/alice"],
    ["--arn-pattern", "*:assumed-role/AWSReservedSSO_*"],
    ["--since", "{day}T06:00:00Z", "--until", "{day}T13:00:00Z"],
    ["--arn-pattern", "*BedrockRole/*", "--since", "{day}T09:00:00Z"],
]


def test_every_filter_keeps_what_meter_keeps(metered_day: MeteredDay, capsys) -> None:
    for filters in FILTERS:
        options = [option.format(day=metered_day.day) for option in filters]
        if "--since" not in options:
            options += ["--since", metered_day.day]
        if "--until" not in options:
            options += ["--until", metered_day.day]
        meter, report = meter_and_report(
            capsys, metered_day, "--group-by", "principal,hour", *options, "--format", "json"
        )
        assert json.loads(report) == json.loads(meter), filters
        assert 0 < sum(row["calls"] for row in json.loads(report)) < len(metered_day.records), filters


def test_top_sums_the_rest_and_max_rows_says_what_it_left_out(metered_day: MeteredDay, capsys) -> None:
    window = ["--since", metered_day.day, "--until", metered_day.day]
    report = ["report", "--stack-name", metered_day.stack_name, "--group-by", "principal", *window]
    every = json.loads(ok(capsys, *report, "--format", "json"))
    top = json.loads(ok(capsys, *report, "--top", "3", "--format", "json"))
    assert top[:3] == every[:3]
    assert top[3]["principal"] == OTHERS and len(top) == 4
    assert top[3]["calls"] == sum(row["calls"] for row in every[3:])
    assert Decimal(top[3]["cost_usd"]) == sum((Decimal(row["cost_usd"]) for row in every[3:]), Decimal(0))
    # --max-rows prints fewer rows, as meter does, and says on stderr how many it left out
    meter, table = meter_and_report(
        capsys, metered_day, "--group-by", "principal", *window, "--max-rows", "2", "--wide"
    )
    assert table == meter
    assert len(table.splitlines()) == 2 + 2 + 2  # header and rule, two rows, rule and total
    code, _, err = run_cli(capsys, *report, "--max-rows", "2")
    assert code == 0 and f"{len(every) - 2} more rows not shown (--max-rows)" in err


# --- --compare previous --------------------------------------------------------------------------


def spend_at(moment: datetime, user: str, input_tokens: int) -> Decimal:
    """One call of IAM user `user` at `moment` through the usage calculator; its exact cost."""
    arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
    message = converse_message(
        arn, NOVA_PRO, input_tokens, 0, account=ACCOUNT, timestamp=moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([message])]))
    return Decimal(input_tokens) * Decimal("0.80") / 1_000_000


def first_of_next_month(moment: datetime) -> datetime:
    return (moment.replace(day=28) + timedelta(days=4)).replace(
        day=1, hour=0, minute=0, second=0, microsecond=0
    )


def test_compare_previous_across_a_month_end(stack, settings, clock, capsys) -> None:
    # Given the clock 2.5 hours into a month
    month_start = first_of_next_month(clock())
    previous_start = first_of_next_month(month_start - timedelta(days=40))
    clock.set(month_start + timedelta(hours=2, minutes=30))
    # and spend in this month's first hours, in the same hours of the month before, and in the
    # last hours of the month before (outside both windows)
    now_alice = spend_at(month_start + timedelta(minutes=10), "alice", 2_000_000)
    now_bob = spend_at(month_start + timedelta(hours=2), "bob", 500_000)
    before_alice = spend_at(previous_start + timedelta(hours=1), "alice", 1_000_000)
    before_carol = spend_at(previous_start + timedelta(minutes=5), "carol", 250_000)
    spend_at(month_start - timedelta(hours=1), "alice", 9_000_000)
    name = stack.publish_outputs()
    # When the month so far is compared with the one before
    compare = [
        "report",
        "--stack-name",
        name,
        "--group-by",
        "principal",
        "--compare",
        "previous",
        "--format",
        "json",
    ]
    code, out, err = run_cli(capsys, *compare)
    assert code == 0, err
    rows = {row["principal"]: row for row in json.loads(out)}
    # Then each principal's spend in this month's first 3 hours stands against the same 3 hours a month before
    assert {p: (Decimal(r["cost_usd"]), Decimal(r["previous_cost_usd"])) for p, r in rows.items()} == {
        "user:alice": (now_alice, before_alice),
        "user:bob": (now_bob, Decimal(0)),
        "user:carol": (Decimal(0), before_carol),
    }
    assert Decimal(rows["user:alice"]["change_usd"]) == now_alice - before_alice
    assert Decimal(rows["user:alice"]["change_percent"]) == Decimal("100.0")
    assert rows["user:bob"]["change_percent"] is None  # nothing to compare with
    assert Decimal(rows["user:carol"]["change_percent"]) == Decimal("-100.0")
    month = month_start.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        f"window: {month} to " in err
        and f"compared with {previous_start.strftime('%Y-%m-%dT%H:%M:%SZ')}" in err
    )

    # And a window that spans the month end is compared with the window of the same length before it
    since = month_start - timedelta(hours=2)
    until = month_start + timedelta(hours=1)
    code, out, err = run_cli(
        capsys,
        *compare,
        "--since",
        since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--until",
        until.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert code == 0, err
    rows = {row["principal"]: row for row in json.loads(out)}
    assert (
        Decimal(rows["user:alice"]["cost_usd"])
        == now_alice + Decimal(9_000_000) * Decimal("0.80") / 1_000_000
    )
    assert Decimal(rows["user:alice"]["previous_cost_usd"]) == 0
    assert f"compared with {(since - timedelta(hours=3)).strftime('%Y-%m-%dT%H:%M:%SZ')}" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--since", "{now}"], "is not on the hour"),
        (["--group-by", "colour"], "unknown --group-by field"),
        (["--top", "0"], "fewer than one row"),
        (["--arn-pattern", "alice"], "neither an ARN nor a glob"),
    ],
)
def test_bad_options_exit_2_and_say_what_to_type(stack, settings, capsys, argv, message) -> None:
    now = (clock.now().replace(minute=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    argv = [arg.format(now=now) for arg in argv]
    code, _, err = run_cli(capsys, "report", "--stack-name", stack.publish_outputs(), *argv)
    assert code == 2
    assert message in err


def test_an_empty_window_prints_a_zero_total(stack, settings, capsys) -> None:
    out = ok(capsys, "report", "--stack-name", stack.publish_outputs())
    assert out.splitlines()[-1].split() == ["TOTAL", "0", "0", "0", "0", "0", "$0.00"]
