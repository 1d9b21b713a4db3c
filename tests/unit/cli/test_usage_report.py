"""Offline usage reports (budgetkeeper_cli.reports): reading, filtering, aggregating, rendering.

Prices are written by hand below, and so is every expected cost: tokens x USD per 1M / 1,000,000.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from budgetkeeper.core import money
from budgetkeeper.metering.meter import Meter
from budgetkeeper.pricing.table import PriceRow, PriceTable, Rates
from budgetkeeper_cli import rendering
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.reports.aggregation import GROUP_FIELDS, UsageReport, parse_group_by
from budgetkeeper_cli.reports.filters import RecordFilter, parse_time_bound, record_filter_from_options
from budgetkeeper_cli.reports.rows import render
from budgetkeeper_cli.reports.scanning import MALFORMED_SHOWN, Progress, progress_for, scan, summary_lines
from budgetkeeper_cli.reports.sources import (
    ScanStats,
    iter_lines,
    iter_sources,
    load_teams_file,
    resolve_inputs,
)

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"
CHATBOT = f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B"
REPORTER = f"arn:aws:sts::{ACCOUNT}:assumed-role/ReportingJobRole/nightly"
MODEL_A = "test.model-a-v1:0"  # USD per 1M: input 3, output 15, cache read 0.3, write 3.75, 1-hour write 6
MODEL_B = "test.model-b-v1:0"  # USD per 1M: input 0.25, output 1.25
EMBED = "test.embed-v1:0"  # USD per 1M: input 0.02
PROVISIONED = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/abc123"
PRICES = PriceTable(
    [
        PriceRow(
            MODEL_A,
            "*",
            Rates(Decimal(3), Decimal(15), Decimal("0.3"), Decimal("3.75"), Decimal(6)),
            None,
            "hand-written",
            date(2025, 1, 1),
        ),
        PriceRow(
            MODEL_B, "*", Rates(Decimal("0.25"), Decimal("1.25")), None, "hand-written", date(2025, 1, 1)
        ),
        PriceRow(EMBED, "*", Rates(Decimal("0.02"), Decimal(0)), None, "hand-written", date(2025, 1, 1)),
    ],
    version="hand-1",
)
TEAMS = {"user:alice": "research", "app:ChatbotApp": "support"}


def record(
    arn: str,
    model: str,
    timestamp: str,
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read: int = 0,
    cache_write: int = 0,
    region: str = "us-east-1",
    request_id: str = "00000000-0000-4000-8000-000000000000",
    metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A Converse invocation log record as Bedrock writes it."""
    document: dict[str, Any] = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": timestamp,
        "accountId": ACCOUNT,
        "identity": {"arn": arn},
        "region": region,
        "requestId": request_id,
        "operation": "Converse",
        "modelId": model,
        "input": {
            "inputContentType": "application/json",
            "inputBodyJson": {"messages": [{"role": "user", "content": [{"text": "hello"}]}]},
            "inputTokenCount": input_tokens,
            "cacheReadInputTokenCount": cache_read,
            "cacheWriteInputTokenCount": cache_write,
        },
        "output": {"outputContentType": "application/json", "outputTokenCount": output_tokens},
    }
    if metadata is not None:
        document["requestMetadata"] = dict(metadata)
    return document


# Expected costs, from the hand-written prices (USD per 1M tokens):
# alice, A:    1000 x 3 + 200 x 15                          = 0.003 + 0.003                      = 0.006
# alice, A:    500 x 3 + 100 x 15 + 2000 x 0.3 + 400 x 3.75  = 0.0015 + 0.0015 + 0.0006 + 0.0015 = 0.0051
# bob, B:      4000 x 0.25 + 800 x 1.25                     = 0.001 + 0.001                      = 0.002
# chatbot, B:  1000 x 0.25 + 400 x 1.25                     = 0.00025 + 0.0005                   = 0.00075
# reporter, A: 10 x 3 + 20 x 15                             = 0.00003 + 0.0003                   = 0.00033
DAY_RECORDS = [
    record(ALICE, MODEL_A, "2025-11-18T09:15:00Z", 1000, 200),
    record(ALICE, MODEL_A, "2025-11-18T17:40:10Z", 500, 100, cache_read=2000, cache_write=400),
    record(BOB, MODEL_B, "2025-11-18T09:59:59Z", 4000, 800, region="us-west-2"),
    record(CHATBOT, MODEL_B, "2025-11-19T00:00:00Z", 1000, 400),
    record(REPORTER, MODEL_A, "2025-11-19T03:30:00Z", 10, 20, metadata={"app": "ReportBuilder"}),
]
COST_ALICE = Decimal("0.0111")
COST_BOB = Decimal("0.002")
COST_CHATBOT = Decimal("0.00075")
COST_REPORTER = Decimal("0.00033")
COST_ALL = Decimal("0.01418")


def line(document: Mapping[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def write_lines(path: Path, lines: list[str], *, compress: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def run_report(
    paths: list[Path],
    group_by: tuple[str, ...] = ("principal",),
    record_filter: RecordFilter | None = None,
    teams: Mapping[str, str] | None = None,
) -> tuple[UsageReport, ScanStats]:
    report = UsageReport(group_by)
    stats = ScanStats()
    sources = iter_sources(resolve_inputs([str(path) for path in paths]), stats)
    scan(
        sources,
        Meter(PRICES, TEAMS if teams is None else teams),
        report.add,
        record_filter=record_filter,
        stats=stats,
    )
    return report, stats


@pytest.fixture
def day_file(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "day.json", [line(r) for r in DAY_RECORDS])


def costs(report: UsageReport) -> dict[tuple[str | None, ...], Decimal]:
    return {row.group: row.totals.cost_usd for row in report.rows()}


# --- aggregation -------------------------------------------------------------------------------


def test_group_by_principal_sums_costs_exactly(day_file: Path) -> None:
    # Given a day of five calls by four principals
    # When it is grouped by principal
    report, stats = run_report([day_file])
    # Then each principal's cost is the exact sum of its calls, most expensive first
    assert costs(report) == {
        ("user:alice",): COST_ALICE,
        ("user:bob",): COST_BOB,
        ("session:ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B",): COST_CHATBOT,
        ("session:ReportingJobRole/nightly",): COST_REPORTER,
    }
    assert [row.group[0] for row in report.rows()][:2] == ["user:alice", "user:bob"]
    assert report.total.cost_usd == COST_ALL
    assert (stats.files, stats.records, stats.matched, stats.malformed) == (1, 5, 5, 0)


def test_totals_count_calls_and_every_token_kind(day_file: Path) -> None:
    report, _ = run_report([day_file])
    alice = next(row.totals for row in report.rows() if row.group == ("user:alice",))
    assert (alice.calls, alice.input_tokens, alice.output_tokens) == (2, 1500, 300)
    assert (alice.cache_read_tokens, alice.cache_write_tokens) == (2000, 400)


def test_group_by_team_and_model_keeps_missing_team_apart(day_file: Path) -> None:
    # Given teams for alice (user) and ChatbotApp (app): bob and the reporter have none
    report, _ = run_report([day_file], ("team", "model"))
    assert costs(report) == {
        ("team:research", MODEL_A): COST_ALICE,
        (None, MODEL_B): COST_BOB,
        ("team:support", MODEL_B): COST_CHATBOT,
        (None, MODEL_A): COST_REPORTER,
    }


def test_group_by_app_takes_role_names_and_request_metadata(day_file: Path) -> None:
    report, _ = run_report([day_file], ("app",))
    assert costs(report) == {
        (None,): COST_ALICE + COST_BOB,
        ("app:ChatbotApp",): COST_CHATBOT,
        ("app:ReportBuilder",): COST_REPORTER,
    }


def test_group_by_role_is_none_for_users(day_file: Path) -> None:
    report, _ = run_report([day_file], ("role",))
    assert costs(report) == {
        (None,): COST_ALICE + COST_BOB,
        ("role:ChatbotApp-BedrockRole",): COST_CHATBOT,
        ("role:ReportingJobRole",): COST_REPORTER,
    }


def test_group_by_day_and_region_uses_utc_dates(day_file: Path) -> None:
    report, _ = run_report([day_file], ("day", "region"))
    assert costs(report) == {
        ("2025-11-18", "us-east-1"): COST_ALICE,
        ("2025-11-18", "us-west-2"): COST_BOB,
        ("2025-11-19", "us-east-1"): COST_CHATBOT + COST_REPORTER,
    }


def test_group_by_hour_and_principal(day_file: Path) -> None:
    report, _ = run_report([day_file], ("hour", "principal"))
    assert costs(report)[("2025-11-18T09", "user:alice")] == Decimal("0.006")
    assert costs(report)[("2025-11-18T17", "user:alice")] == Decimal("0.0051")
    assert costs(report)[("2025-11-18T09", "user:bob")] == COST_BOB
    assert len(report) == 5


def test_group_by_account_and_ou_takes_the_account_of_the_callers_arn(tmp_path: Path) -> None:
    # Given a call by a user of another account, in a log whose accountId says ACCOUNT (a claim)
    other = "444455556666"
    visitor = record(f"arn:aws:iam::{other}:user/dana", MODEL_B, "2025-11-18T10:00:00Z", 4000, 800)
    path = write_lines(tmp_path / "day.json", [line(r) for r in [*DAY_RECORDS, visitor]])
    report = UsageReport(("account", "ou"), {ACCOUNT: "ou-ab12-11111111"}.get)
    scan(iter_sources(resolve_inputs([str(path)]), ScanStats()), Meter(PRICES, TEAMS), report.add)
    # Then it is in the account its ARN names, and that account's OU (none: in the root)
    assert costs(report) == {(ACCOUNT, "ou-ab12-11111111"): COST_ALL, (other, None): COST_BOB}


def test_many_small_costs_add_up_without_rounding(tmp_path: Path) -> None:
    # Given 1,000 embedding calls of 9 tokens at 0.02 USD per 1M: 0.00000018 each
    lines = [line(record(BOB, EMBED, "2025-11-18T10:00:00Z", 9, 0)) for _ in range(1000)]
    report, _ = run_report([write_lines(tmp_path / "embed.json", lines)])
    # Then the sum is exact and printed without an exponent
    assert report.total.cost_usd == Decimal("0.00018")
    assert json.loads(render(report, "json"))[0]["cost_usd"] == "0.00018"
    assert money.exact(Decimal("1.8E-7")) == "0.00000018"
    assert money.exact(Decimal(0)) == "0"


def test_unknown_models_are_estimated_apart_and_provisioned_ones_counted_at_zero(tmp_path: Path) -> None:
    lines = [
        line(record(BOB, "example.unlisted-v1:0", "2025-11-18T10:00:00Z", 100, 10)),
        line(record(BOB, "example.unlisted-v1:0", "2025-11-18T10:00:01Z", 100, 10)),
        line(record(BOB, PROVISIONED, "2025-11-18T10:00:02Z", 100, 10)),
    ]
    report, stats = run_report([write_lines(tmp_path / "odd.json", lines)])
    # The unknown model's calls cost an estimate, kept apart and flagged; the provisioned one 0
    assert report.total.calls == 3 and report.total.cost_usd == report.total.estimated_usd > 0
    assert report.total.price_basis == "estimate x2"
    assert stats.estimated_models == {"example.unlisted-v1:0": 2}
    assert stats.provisioned_calls == 1
    summary = summary_lines(stats, price_version="hand-1", filtered=False)[-1]
    assert "2 calls of models without a price, at an estimate (example.unlisted-v1:0 x2)" in summary
    assert "1 provisioned-model call, " in summary
    # And the table shows the estimate and the basis, as the JSON does
    table = render(report, "table")
    assert "price basis" in table.splitlines()[0] and "estimate x2" in table


# --- group fields ------------------------------------------------------------------------------


def test_parse_group_by_accepts_every_field_once() -> None:
    assert parse_group_by("Principal, model,principal") == ("principal", "model")
    assert parse_group_by(",".join(GROUP_FIELDS)) == GROUP_FIELDS


def test_parse_group_by_names_the_valid_fields() -> None:
    with pytest.raises(UsageError) as raised:
        parse_group_by("principal,user")
    assert "'user'" in str(raised.value)
    assert "principal, role, app, team, model, region, operation, day, hour" in str(raised.value)


def test_parse_group_by_rejects_nothing() -> None:
    with pytest.raises(UsageError, match="at least one field"):
        parse_group_by(" , ")


# --- filters -----------------------------------------------------------------------------------


def test_since_and_until_keep_the_records_in_between(day_file: Path) -> None:
    # Given --since 10:00 on the 18th and --until the 18th (a date: that whole day)
    record_filter = record_filter_from_options(None, "2025-11-18T10:00:00Z", "2025-11-18")
    report, stats = run_report([day_file], record_filter=record_filter)
    # Then only alice's 17:40 call is left
    assert costs(report) == {("user:alice",): Decimal("0.0051")}
    assert (stats.records, stats.matched) == (5, 1)


def test_since_is_inclusive_and_until_exclusive(day_file: Path) -> None:
    record_filter = record_filter_from_options(None, "2025-11-18T09:59:59Z", "2025-11-19T00:00:00Z")
    report, _ = run_report([day_file], record_filter=record_filter)
    assert costs(report) == {("user:bob",): COST_BOB, ("user:alice",): Decimal("0.0051")}


def test_time_bounds_read_dates_offsets_and_naive_times_as_utc() -> None:
    assert parse_time_bound("2025-11-18", "--since") == datetime(2025, 11, 18, tzinfo=UTC)
    assert parse_time_bound("2025-11-18", "--until", end_of_day=True) == datetime(2025, 11, 19, tzinfo=UTC)
    assert parse_time_bound("2025-11-18T10:00:00+02:00", "--since") == datetime(2025, 11, 18, 8, tzinfo=UTC)
    assert parse_time_bound("2025-11-18T10:00", "--since") == datetime(2025, 11, 18, 10, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "18/11/2025", "2025-13-01", "2025-11-18T25:00"])
def test_bad_time_bounds_say_which_format_to_use(value: str) -> None:
    with pytest.raises(UsageError) as raised:
        record_filter_from_options(None, value, None)
    assert "--since 2025-11-18" in str(raised.value) and "2025-11-18T09:30:00Z" in str(raised.value)


def test_since_after_until_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="not before --until"):
        record_filter_from_options(None, "2025-11-19", "2025-11-18")


def test_arn_pattern_filters_on_the_identity_arn(day_file: Path) -> None:
    record_filter = record_filter_from_options("*:assumed-role/*", None, None)
    report, stats = run_report([day_file], ("role",), record_filter)
    assert costs(report) == {
        ("role:ChatbotApp-BedrockRole",): COST_CHATBOT,
        ("role:ReportingJobRole",): COST_REPORTER,
    }
    assert stats.matched == 2


def test_arn_pattern_is_case_sensitive(day_file: Path) -> None:
    report, _ = run_report([day_file], record_filter=record_filter_from_options("*:user/ALICE", None, None))
    assert len(report) == 0


def test_arn_pattern_without_glob_or_arn_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"\*:user/alice"):
        record_filter_from_options("alice", None, None)


# --- reading -----------------------------------------------------------------------------------


def test_malformed_lines_are_counted_with_file_and_line(tmp_path: Path) -> None:
    # Given a file with a truncated line at 2, a blank line at 3, a record without requestId at 4
    missing_id = {key: value for key, value in DAY_RECORDS[1].items() if key != "requestId"}
    path = write_lines(
        tmp_path / "mixed.json", [line(DAY_RECORDS[0]), line(DAY_RECORDS[2])[:40], "", line(missing_id)]
    )
    report, stats = run_report([path])
    # Then both are counted, named by file and line, and the good record is still metered
    assert stats.malformed == 2
    assert stats.malformed_shown[0][0] == f"{path}:2" and stats.malformed_shown[0][1].startswith("not JSON")
    assert stats.malformed_shown[1] == (f"{path}:4", "requestId is missing")
    assert report.total.cost_usd == Decimal("0.006")


def test_only_the_first_malformed_lines_are_listed(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.json", ["{not json"] * (MALFORMED_SHOWN + 5))
    _, stats = run_report([path])
    lines = summary_lines(stats, price_version="hand-1", filtered=False)
    assert stats.malformed == MALFORMED_SHOWN + 5
    assert sum(text.startswith(f"malformed: {path}:") for text in lines) == MALFORMED_SHOWN
    assert "malformed: ... and 5 more malformed lines" in lines
    assert "15 malformed" in lines[-1]


def test_gzipped_files_are_read_whatever_their_name(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "downloaded.json", [line(r) for r in DAY_RECORDS], compress=True)
    report, _ = run_report([path])
    assert report.total.cost_usd == COST_ALL


def test_truncated_gzip_keeps_what_was_read_and_names_the_file(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join(line(r) for r in DAY_RECORDS) + "\n").encode())
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) - 12])
    _, stats = run_report([path])
    assert stats.unreadable == [(str(path), "the gzip data ends early (truncated file)")]


def test_pretty_printed_record_and_array_files_are_read_whole(tmp_path: Path) -> None:
    single = tmp_path / "one.json"
    single.write_text(json.dumps(DAY_RECORDS[0], indent=2))
    array = tmp_path / "many.json"
    array.write_text(json.dumps(DAY_RECORDS[1:3], indent=2))
    report, stats = run_report([single, array])
    assert report.total.cost_usd == COST_ALICE + COST_BOB
    assert stats.records == 3


def test_cloudwatch_export_lines_lose_their_time_prefix() -> None:
    exported = f"2025-11-18T09:15:00.123Z {line(DAY_RECORDS[0])}\n".encode()
    assert list(iter_lines(io.BytesIO(exported))) == [(1, line(DAY_RECORDS[0]).encode() + b"\n")]


def test_missing_path_fails_before_reading(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match="no such file or directory"):
        resolve_inputs([str(tmp_path / "nowhere")])


def test_bad_s3_uri_says_what_to_type() -> None:
    with pytest.raises(UsageError, match="s3://BUCKET/PREFIX"):
        resolve_inputs(["s3:///AWSLogs/"])


def test_directory_walk_skips_data_folders_and_other_files(tmp_path: Path) -> None:
    hour = (
        tmp_path
        / "AWSLogs"
        / ACCOUNT
        / "BedrockModelInvocationLogs"
        / "us-east-1"
        / "2025"
        / "11"
        / "18"
        / "09"
    )
    (hour / "data").mkdir(parents=True)
    write_lines(hour / "a.json.gz", [line(DAY_RECORDS[0])], compress=True)
    write_lines(hour / "data" / "x_input.json.gz", ['{"messages": []}'], compress=True)
    (hour / "README.txt").write_text("not a log")
    report, stats = run_report([tmp_path])
    assert (stats.files, stats.skipped_files, stats.malformed) == (1, 2, 0)
    assert report.total.cost_usd == Decimal("0.006")


# --- rendering ---------------------------------------------------------------------------------


def test_json_rows_hold_group_fields_counters_and_exact_cost(day_file: Path) -> None:
    report, _ = run_report([day_file], ("team", "principal"))
    rows = json.loads(render(report, "json"))
    assert rows[0] == {
        "team": "team:research",
        "principal": "user:alice",
        "calls": 2,
        "input_tokens": 1500,
        "output_tokens": 300,
        "cache_read_tokens": 2000,
        "cache_write_tokens": 400,
        "cost_usd": "0.0111",
        "estimated_usd": "0",
        "price_basis": "exact",
    }
    assert rows[1]["team"] is None and rows[1]["cost_usd"] == "0.002"
    assert [row["cost_usd"] for row in rows] == ["0.0111", "0.002", "0.00075", "0.00033"]


def test_csv_has_a_header_dashes_for_missing_values_and_exact_costs(day_file: Path) -> None:
    report, _ = run_report([day_file], ("team", "model"))
    rows = list(csv.reader(io.StringIO(render(report, "csv"))))
    assert rows[0] == [
        "team",
        "model",
        "calls",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "estimated_usd",
        "price_basis",
    ]
    assert rows[1] == ["team:research", MODEL_A, "2", "1500", "300", "2000", "400", "0.0111", "0", "exact"]
    # MODEL_B's row has no us-west-2 price: charged at the fallback Region's rate, flagged
    assert rows[2] == ["-", MODEL_B, "1", "4000", "800", "0", "0", "0.002", "0", "region_fallback x1"]
    assert len(rows) == 5


def test_table_is_aligned_sorted_by_cost_and_ends_with_a_total(day_file: Path, monkeypatch) -> None:
    monkeypatch.setattr(rendering, "table_width", None)  # --wide: every column, one line a row
    report, _ = run_report([day_file], ("principal", "team"))
    lines = render(report, "table").splitlines()
    # (bob's call has no us-west-2 price: the table shows the estimated cost and the price basis)
    header = (
        "principal team calls input tokens output tokens cache read cache write cost estimated price basis"
    )
    assert lines[0].split() == header.split()
    exact = ["$0.00", "exact"]
    assert lines[2].split() == [
        "user:alice",
        "team:research",
        "2",
        "1,500",
        "300",
        "2,000",
        "400",
        "$0.01",
        *exact,
    ]
    assert lines[3].split() == [
        "user:bob",
        "-",
        "1",
        "4,000",
        "800",
        "0",
        "0",
        "$0.002000",
        "$0.00",
        "region_fallback",
        "x1",
    ]
    assert lines[-1].split() == [
        "TOTAL",
        "5",
        "6,510",
        "1,520",
        "2,000",
        "400",
        "$0.01",
        "$0.00",
        "region_fallback",
        "x1",
    ]
    assert lines[1].startswith("---") and lines[-2].startswith("---")
    # every numeric column ends at the same place on every line
    estimated_end = lines[0].index("estimated") + len("estimated")
    assert all(
        text[estimated_end - 1] != " " and text[estimated_end] == " "
        for text in lines[2:]
        if not text.startswith("-")
    )


def test_a_table_of_exact_prices_leaves_the_flag_columns_out() -> None:
    report = UsageReport(("principal",))
    assert render(report, "table").splitlines()[0].split() == [
        "principal", "calls", "input", "tokens", "output", "tokens", "cache", "read", "cache", "write", "cost"
    ]  # fmt: skip


def test_an_empty_report_renders_a_zero_total() -> None:
    report = UsageReport(("principal",))
    assert json.loads(render(report, "json")) == []
    assert render(report, "table").splitlines()[-1].split() == ["TOTAL", "0", "0", "0", "0", "0", "$0.00"]


# --- teams -------------------------------------------------------------------------------------


def test_teams_file_maps_scopes_to_team_names(tmp_path: Path) -> None:
    path = tmp_path / "teams.json"
    path.write_text(json.dumps({"user:bob": "platform", "app:ChatbotApp": "team:support"}))
    assert load_teams_file(path) == {"user:bob": "platform", "app:ChatbotApp": "support"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[1, 2]", "holds a JSON list"),
        ("{not json", "is not JSON"),
        ('{"alice": "research"}', "has no kind"),
        ('{"team:data": "research"}', "is a team"),
        ('{"user:alice": 7}', "is not a string"),
    ],
)
def test_bad_teams_files_say_what_to_write(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "teams.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_teams_file(path)


def test_missing_teams_file_fails(tmp_path: Path) -> None:
    with pytest.raises(CommandFailed, match="no such teams file"):
        load_teams_file(tmp_path / "teams.json")


# --- progress ----------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_off_a_terminal() -> None:
    assert progress_for(io.StringIO()) is None


def test_progress_updates_one_line_on_a_terminal_and_clears_it(day_file: Path) -> None:
    terminal = _Terminal()
    progress = progress_for(terminal)
    assert isinstance(progress, Progress)
    stats = ScanStats()
    sources = iter_sources(resolve_inputs([str(day_file)]), stats)
    scan(sources, Meter(PRICES, TEAMS), lambda _: None, stats=stats, progress=progress)
    progress.update(stats, force=True)
    progress.close()
    text = terminal.getvalue()
    assert "\n" not in text
    assert "\rmetering: 1 file, 5 records, " in text
    assert text.endswith("\r\x1b[K")


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0", "$0.00"), ("1234.5", "$1,234.50"), ("0.008228", "$0.008228"), ("0.00000018", "$0.00000018")],
)
def test_money_for_people_never_shows_a_nonzero_cost_as_zero(value, shown):
    assert money.dollars(Decimal(value)) == shown


def test_a_table_too_wide_leaves_out_counters_then_wraps_ids_within_120_columns(day_file: Path) -> None:
    # Given a report by principal, role, app and model (long ids), as `report` prints it by default
    report, _ = run_report([day_file], ("principal", "role", "app", "model"))
    table = render(report, "table")
    lines = table.splitlines()
    # Then no line is wider than 120 columns
    assert max(len(line) for line in lines) <= 120, table
    # and calls and cost stay, the token counters it left out are named, with the way to see them
    assert {"calls", "cost"} <= set(lines[0].split())
    assert "cache write" not in lines[0] and "; --wide shows them)" in " ".join(table.split())
    assert "\n(not shown, to fit 120 columns: cache write, cache read, output tokens" in table
    # and a wrapped id loses nothing: its pieces, read down the column, are the id
    session = "session:ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B"
    start = next(i for i, line in enumerate(lines) if line.startswith(session[:20]))
    width = len(lines[1].split("  ")[0])  # the principal column's rule
    pieces = [line[:width].strip() for line in lines[start : start + 3]]
    assert session in "".join(pieces)
