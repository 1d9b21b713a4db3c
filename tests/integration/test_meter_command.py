"""`budgetkeeper meter` end to end: S3 on moto, local directory trees, exit codes.

Expected costs are computed here, independently of the package: per-1M prices written by hand for
every model the demo day uses, tokens read straight from the generated records.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from budgetkeeper_cli.main import main
from devkit import demo_data
from devkit.harness.logs import converse_message

BUCKET = "demo-invocation-logs"
DAY = date(2025, 11, 18)
ACCOUNT = demo_data.DEMO_ACCOUNT
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
MILLION = Decimal(1_000_000)

# USD per 1M tokens: input, output, cache read, 5-minute cache write, 1-hour cache write (None: no price).
# Claude 4.5 on us./eu. profiles costs 10% more than on global. and the base model.
_SONNET_45_GEO = ("3.3", "16.5", "0.33", "4.125", "6.6")
_HAIKU_45_GEO = ("1.1", "5.5", "0.11", "1.375", "2.2")
HAND_PRICES: Mapping[str, tuple[str | None, ...]] = {
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0": _SONNET_45_GEO,
    "eu.anthropic.claude-sonnet-4-5-20250929-v1:0": _SONNET_45_GEO,
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0": (
        _SONNET_45_GEO
    ),
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0": ("3", "15", "0.3", "3.75", "6"),
    "us.anthropic.claude-haiku-4-5-20251001-v1:0": _HAIKU_45_GEO,
    "eu.anthropic.claude-haiku-4-5-20251001-v1:0": _HAIKU_45_GEO,
    "global.anthropic.claude-haiku-4-5-20251001-v1:0": ("1", "5", "0.1", "1.25", "2"),
    "anthropic.claude-3-haiku-20240307-v1:0": ("0.25", "1.25", None, None, None),
    "amazon.nova-micro-v1:0": ("0.035", "0.14", "0.00875", None, None),
    "amazon.nova-lite-v1:0": ("0.06", "0.24", "0.015", None, None),
    "eu.amazon.nova-lite-v1:0": ("0.078", "0.312", "0.0195", None, None),
    "us.amazon.nova-pro-v1:0": ("0.8", "3.2", "0.2", None, None),
    "amazon.titan-embed-text-v2:0": ("0.02", "0", None, None, None),
    "us.meta.llama3-3-70b-instruct-v1:0": ("0.72", "0.72", None, None, None),
    "mistral.mistral-large-2407-v1:0": ("2", "6", None, None, None),
    f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/t2nq8y4c6w1z": ("0", "0", None, None, None),
}


def one_hour_writes(record: Mapping[str, Any]) -> int:
    """The 1-hour share of cache writes, where the body tells it (Anthropic InvokeModel and streams)."""
    body = record["output"].get("outputBodyJson")
    usage: Any = None
    if record["operation"] == "InvokeModel" and isinstance(body, dict):
        usage = body.get("usage")
    elif record["operation"] == "InvokeModelWithResponseStream" and isinstance(body, list):
        usage = next(
            (c["message"]["usage"] for c in body if isinstance(c, dict) and c.get("type") == "message_start"),
            None,
        )
    creation = usage.get("cache_creation") if isinstance(usage, dict) else None
    return int(creation.get("ephemeral_1h_input_tokens", 0)) if isinstance(creation, dict) else 0


def expected_cost(record: Mapping[str, Any]) -> Decimal:
    prices = HAND_PRICES[record["modelId"]]
    section = record["input"]
    cache_write = section.get("cacheWriteInputTokenCount", 0)
    write_1h = one_hour_writes(record)
    counts = (
        section["inputTokenCount"],
        record["output"].get("outputTokenCount", 0),
        section.get("cacheReadInputTokenCount", 0),
        cache_write - write_1h,
        write_1h,
    )
    cost = Decimal(0)
    for count, price in zip(counts, prices, strict=True):
        if count:
            assert price is not None, f"hand prices lack a token kind {record['modelId']} uses"
            cost += count * Decimal(price) / MILLION
    return cost


def principal_of(arn: str) -> str:
    resource = arn.split(":", 5)[5]
    kind, _, rest = resource.partition("/")
    if kind == "assumed-role":
        return f"session:{rest}"
    return f"apikey:{rest}" if rest.startswith("BedrockAPIKey-") else f"user:{rest}"


def expected_by_principal(records: list[dict[str, Any]]) -> dict[str, tuple[int, Decimal]]:
    calls: dict[str, int] = defaultdict(int)
    costs: dict[str, Decimal] = defaultdict(Decimal)
    for record in records:
        principal = principal_of(record["identity"]["arn"])
        calls[principal] += 1
        costs[principal] += expected_cost(record)
    return {principal: (calls[principal], costs[principal]) for principal in calls}


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


# --- S3 --------------------------------------------------------------------------------------


def test_meter_s3_prefix_matches_an_independent_sum(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a small demo day delivered to S3 as Bedrock delivers it, offloaded bodies included
    records = demo_data.generate_day(DAY, records=120, seed=11)
    keys = demo_data.write_s3_layout(records, s3, BUCKET, ACCOUNT, records_per_object=25)
    log_objects = [key for key in keys if "/data/" not in key]
    assert len(log_objects) < len(keys), "the day should offload some bodies to data/"
    # When the prefix is metered by principal as JSON
    exit_code = main(["meter", f"s3://{BUCKET}/AWSLogs/", "--group-by", "principal", "--format", "json"])
    out, err = capsys.readouterr()
    # Then every principal's calls and exact cost equal the sum computed from hand-written prices
    assert exit_code == 0, err
    rows = json.loads(out)
    assert {
        row["principal"]: (row["calls"], Decimal(row["cost_usd"])) for row in rows
    } == expected_by_principal(records)
    assert sum(row["calls"] for row in rows) == 120
    summary = err.strip().splitlines()[-1]
    assert f"read {len(log_objects)} files ({len(keys) - len(log_objects)} skipped" in summary
    assert "120 records, 0 malformed, 0 unknown-model calls" in summary


def test_meter_s3_tokens_by_model_match_the_records(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    records = demo_data.generate_day(DAY, records=80, seed=5)
    demo_data.write_s3_layout(records, s3, BUCKET, ACCOUNT)
    assert main(["meter", f"s3://{BUCKET}/", "--group-by", "region", "--format", "json"]) == 0
    rows = {row["region"]: row for row in json.loads(capsys.readouterr().out)}
    for region, row in rows.items():
        mine = [r for r in records if r["region"] == region]
        assert row["calls"] == len(mine)
        assert row["input_tokens"] == sum(r["input"]["inputTokenCount"] for r in mine)
        assert row["output_tokens"] == sum(r["output"].get("outputTokenCount", 0) for r in mine)
        assert row["cache_read_tokens"] == sum(r["input"].get("cacheReadInputTokenCount", 0) for r in mine)
        assert row["cache_write_tokens"] == sum(r["input"].get("cacheWriteInputTokenCount", 0) for r in mine)
        assert Decimal(row["cost_usd"]) == sum((expected_cost(r) for r in mine), Decimal(0))
    assert set(rows) == {r["region"] for r in records}


def test_demo_day_heavy_user_spends_the_most(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    demo_data.write_s3_layout(demo_data.generate_day(DAY), s3, BUCKET, ACCOUNT, bodies=False)
    assert main(["meter", f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[2].split()[0] == "user:alice"
    # the total, then the columns left out to fit 120 columns (SSO sessions' names are long)
    assert table[-2].startswith("TOTAL") and table[-1].endswith("--wide shows them)")


def test_meter_s3_teams_and_filters(s3: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = demo_data.generate_day(DAY, records=150, seed=2)
    demo_data.write_s3_layout(records, s3, BUCKET, ACCOUNT)
    teams_file = tmp_path / "teams.json"
    teams_file.write_text(json.dumps(demo_data.teams()))
    argv = [
        "meter",
        f"s3://{BUCKET}/AWSLogs/",
        "--teams",
        str(teams_file),
        "--group-by",
        "team",
        "--format",
        "json",
    ]
    argv += ["--arn-pattern", "*:assumed-role/*", "--since", "2025-11-18T12:00:00Z", "--until", "2025-11-18"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    kept = [
        r
        for r in records
        if ":assumed-role/" in r["identity"]["arn"] and r["timestamp"] >= "2025-11-18T12:00:00Z"
    ]
    rows = json.loads(out)
    assert sum(row["calls"] for row in rows) == len(kept)
    assert sum(Decimal(row["cost_usd"]) for row in rows) == sum((expected_cost(r) for r in kept), Decimal(0))
    assert {row["team"] for row in rows} <= {"team:data-science", "team:platform", "team:customer-experience",
                                            "team:finance", "team:search"}  # fmt: skip
    assert f"({len(kept)} matched the filters)" in err


def test_meter_s3_empty_prefix_fails(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", f"s3://{BUCKET}/nothing-here/"]) == 1
    assert "no invocation log files" in capsys.readouterr().err


def test_meter_s3_missing_bucket_fails(s3: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "s3://no-such-bucket-here/AWSLogs/"]) == 1
    assert "NoSuchBucket" in capsys.readouterr().err


# --- local directory trees ---------------------------------------------------------------------


def test_meter_local_tree_skips_data_and_reads_gzip_and_plain_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a downloaded tree: gzipped objects with data/ folders, plus a plain JSON-lines file
    records = demo_data.generate_day(DAY, records=90, seed=4)
    paths = demo_data.write_local_layout(records[:60], tmp_path, ACCOUNT, records_per_object=20)
    assert any(path.parent.name == "data" for path in paths)
    plain = tmp_path / "AWSLogs" / ACCOUNT / "BedrockModelInvocationLogs" / "extra.json"
    plain.write_text("".join(json.dumps(r) + "\n" for r in records[60:]))
    # and a data/ folder holding garbage that would be malformed if it were read
    junk = paths[0].parent / "data" / "junk_output.json.gz"
    junk.parent.mkdir(exist_ok=True)
    junk.write_bytes(gzip.compress(b"not a record\n"))
    # When the tree is metered as CSV by model
    assert main(["meter", str(tmp_path), "--group-by", "model", "--format", "csv"]) == 0
    out, err = capsys.readouterr()
    # Then every record is counted once, at the exact cost, and nothing in data/ was read
    header, *lines = out.strip().splitlines()
    rows = [dict(zip(header.split(","), line.split(","), strict=True)) for line in lines]
    assert sum(int(row["calls"]) for row in rows) == 90
    assert sum(Decimal(row["cost_usd"]) for row in rows) == sum(
        (expected_cost(r) for r in records), Decimal(0)
    )
    assert "90 records, 0 malformed" in err


def test_meter_reports_malformed_lines_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = [json.dumps(r) for r in demo_data.generate_day(DAY, records=3, seed=1)]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([good[0], *demo_data.malformed_lines(), good[1], good[2]]) + "\n")
    assert main(["meter", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"malformed: {path}:2: not JSON" in err
    assert f"malformed: {path}:3: requestId is missing" in err
    assert f"malformed: {path}:4: input.inputTokenCount is -12" in err
    assert "3 records, 4 malformed" in err


# --- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--group-by", "principal,colour"], "use a comma-separated list of principal, role, app, team"),
        (["--since", "last week"], "type e.g. --since 2025-11-18"),
        (["--until", "2025-02-30"], "type e.g. --until 2025-11-18"),
        (["--arn-pattern", "alice"], "--arn-pattern '*:user/alice'"),
    ],
)
def test_usage_errors_exit_2_and_say_what_to_type(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["meter", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err


def test_bad_s3_uri_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", "s3://"]) == 2
    assert "s3://BUCKET/PREFIX" in capsys.readouterr().err


def test_unknown_format_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["meter", str(tmp_path), "--format", "xml"])
    assert raised.value.code == 2
    assert "invalid choice: 'xml'" in capsys.readouterr().err


def test_missing_path_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["meter", str(tmp_path / "nope")]) == 1
    assert "no such file or directory" in capsys.readouterr().err


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["meter", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--group-by team,model --format csv" in out


# --- the demo day ------------------------------------------------------------------------------


def test_demo_day_is_deterministic_and_in_time_order() -> None:
    first = demo_data.generate_day(DAY, records=200)
    assert first == demo_data.generate_day(DAY, records=200)
    assert first != demo_data.generate_day(DAY, records=200, seed=8)
    assert [r["timestamp"] for r in first] == sorted(r["timestamp"] for r in first)
    assert all(r["timestamp"].startswith("2025-11-18T") for r in first)


def test_demo_day_covers_the_principals_models_regions_and_operations() -> None:
    records = demo_data.generate_day(DAY)
    assert len(records) == 3000
    arns = {r["identity"]["arn"] for r in records}
    assert arns == set(demo_data.principal_arns())
    assert len(arns) >= 20
    assert {r["modelId"] for r in records} == set(HAND_PRICES)
    assert {r["region"] for r in records} == {"us-east-1", "us-west-2", "eu-west-1"}
    assert {r["operation"] for r in records} == {
        "InvokeModel",
        "InvokeModelWithResponseStream",
        "Converse",
        "ConverseStream",
    }
    assert {r.get("errorCode") for r in records} == {None, "ThrottlingException"}
    assert any(one_hour_writes(r) for r in records)
    assert any(r.get("requestMetadata", {}).get("app") == "ReportBuilder" for r in records)
    assert len({r["requestId"] for r in records}) == 3000


def test_demo_malformed_lines_are_all_malformed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text("\n".join(demo_data.malformed_lines()) + "\n")
    assert main(["meter", str(path)]) == 0
    assert "0 records, 4 malformed" in capsys.readouterr().err


# --- price basis -------------------------------------------------------------------------------


def test_a_regional_fallback_is_flagged_in_the_json_and_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given Nova Pro called in Mumbai, a Region the bundled table has no Nova Pro row for, and in
    # us-east-1 (USD 0.80 per 1M input tokens in both: the fallback Region's rate)
    calls = [
        converse_message(
            ALICE, "amazon.nova-pro-v1:0", 1_000_000, timestamp="2025-11-18T09:00:00Z", region=region
        )
        for region in ("ap-south-1", "us-east-1")
    ]
    logs = tmp_path / "calls.json"
    logs.write_text("".join(call + "\n" for call in calls))
    # When they are metered by region, as JSON and as a table
    assert main(["meter", str(logs), "--group-by", "region", "--format", "json"]) == 0
    rows = {row["region"]: row for row in json.loads(capsys.readouterr().out)}
    assert main(["meter", str(logs), "--group-by", "region"]) == 0
    table, err = capsys.readouterr()
    # Then the Mumbai call costs the fallback rate and says so; the us-east-1 one is exact
    assert (rows["ap-south-1"]["cost_usd"], rows["ap-south-1"]["price_basis"]) == (
        "0.8",
        "region_fallback x1",
    )
    assert (rows["us-east-1"]["cost_usd"], rows["us-east-1"]["price_basis"]) == ("0.8", "exact")
    [mumbai] = [line for line in table.splitlines() if line.startswith("ap-south-1")]
    assert mumbai.split()[-2:] == ["region_fallback", "x1"] and "price basis" in table.splitlines()[0]
    # And the summary counts it
    assert "1 call at a fallback rate (region_fallback x1)" in err
