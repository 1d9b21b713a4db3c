"""`budgetkeeper meter --engine athena` against `--engine local` on the same S3 objects.

S3 and Glue are moto's; the Athena query is the one the CLI sends, translated mechanically to DuckDB
and run over the objects its Glue table's partition projection names (tests/athena_on_duckdb.py).
The reports must be equal to the nano-dollar: every row, every token count, every cost, for several
groupings, with cache writes of both TTLs, inference profiles, long-context requests (alone and
summed past the threshold by short ones), errors, guardrail blocks, malformed lines and offloaded
bodies in `data/` folders.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper_cli import athena
from budgetkeeper_cli.main import main
from devkit import demo_data
from tests.athena_on_duckdb import DuckDBAthena

BUCKET = "org-bedrock-logs"
DAY = date(2025, 11, 18)  # a past day of logs; nothing here depends on today
ACCOUNT = demo_data.DEMO_ACCOUNT
OTHER_ACCOUNT = "444455556666"
EVENTS = Path(__file__).resolve().parents[2] / "events" / "invocation_logs"


class _Bedrock:
    """The two control-plane calls InferenceProfiles makes (moto has no get_inference_profile)."""

    def get_inference_profile(self, *, inferenceProfileIdentifier: str) -> dict[str, Any]:
        model = "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0"
        return {"models": [{"modelArn": model}]}

    def list_tags_for_resource(self, *, resourceARN: str) -> dict[str, Any]:
        return {"tags": [{"key": "app", "value": "ReportsCLI"}]}


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _put(s3: Any, account: str, region: str, hour: datetime, name: str, lines: list[str]) -> None:
    key = f"AWSLogs/{account}/BedrockModelInvocationLogs/{region}/{hour:%Y/%m/%d/%H}/{name}.json.gz"
    s3.put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(("\n".join(lines) + "\n").encode()))


def _line(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"))


def _invoke(timestamp: datetime, arn: str, model: str, *, prompt: int, cache_read: int = 0) -> dict[str, Any]:
    return {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": _at(timestamp),
        "accountId": ACCOUNT,
        "identity": {"arn": arn},
        "region": "us-east-1",
        "requestId": f"req-{timestamp:%H%M%S}-{prompt}-{cache_read}",
        "operation": "InvokeModel",
        "modelId": model,
        "input": {"inputTokenCount": prompt, "cacheReadInputTokenCount": cache_read},
        "output": {"outputTokenCount": 900},
    }


NOVA_PRO = "amazon.nova-pro-v1:0"


def _crafted(start: datetime) -> list[dict[str, Any]]:
    """Records the demo day lacks: tiers decided per request, Converse 1-hour writes, claimed apps."""
    alice = f"arn:aws:iam::{ACCOUNT}:user/alice"
    sonnet = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    haiku5 = "global.anthropic.claude-haiku-5-5"
    at = start + timedelta(hours=15, minutes=5)
    records = [
        # Three requests of one group: 150K + 150K are each below 200K (standard rates), 250K is over
        # (long context); their sum is over the threshold, which must not make the short ones long.
        _invoke(at, alice, sonnet, prompt=150_000),
        _invoke(at + timedelta(seconds=1), alice, sonnet, prompt=100_000, cache_read=50_000),
        _invoke(at + timedelta(seconds=2), alice, sonnet, prompt=200_001),
        _invoke(at + timedelta(seconds=3), alice, haiku5, prompt=100_001),
        _invoke(at + timedelta(seconds=4), alice, haiku5, prompt=99_999),
    ]
    converse = {
        **_invoke(at + timedelta(seconds=5), alice, sonnet, prompt=300),
        "operation": "Converse",
        "requestMetadata": {"app": "SupportDesk", "ticket": "T-1"},
    }
    converse["input"]["cacheWriteInputTokenCount"] = 5_000
    converse["output"]["outputBodyJson"] = {
        "usage": {"cacheDetails": [{"ttl": "1h", "inputTokens": 3_000}, {"ttl": "5m", "inputTokens": 2_000}]}
    }
    stream = {**converse, "requestId": "converse-stream-1", "operation": "ConverseStream"}
    stream["output"] = {
        "outputTokenCount": 40,
        "outputBodyJson": [
            {"contentBlockDelta": {"delta": {"text": "hi"}}},
            {"metadata": {"usage": {"cacheDetails": [{"ttl": "1h", "inputTokens": 4_000}]}}},
            "[DONE]",
        ],
    }
    guardrail = {
        **_invoke(at + timedelta(seconds=6), alice, sonnet, prompt=0),
        "input": {},
        "output": {"outputBodyJson": {"amazon-bedrock-guardrailAction": "INTERVENED"}},
    }
    # Service tiers, as AWS documents the bodies: Converse `serviceTier` (the response's tier wins),
    # InvokeModel `service_tier`; Nova Pro (in-region id) has standard, priority and flex rows.
    nova_pro = NOVA_PRO
    priority = {
        **_invoke(at + timedelta(seconds=7), alice, nova_pro, prompt=40_000),
        "operation": "Converse",
        "requestId": "converse-priority-1",
    }
    priority["input"] = {**priority["input"], "inputBodyJson": {"serviceTier": {"type": "priority"}}}
    priority["output"] = {**priority["output"], "outputBodyJson": {"serviceTier": {"type": "priority"}}}
    flex = {
        **_invoke(at + timedelta(seconds=8), alice, nova_pro, prompt=40_000),
        "requestId": "invoke-flex-1",
    }
    flex["input"] = {**flex["input"], "inputBodyJson": {"service_tier": "FLEX"}}
    standard = {
        **_invoke(at + timedelta(seconds=9), alice, nova_pro, prompt=40_000),
        "requestId": "invoke-default-1",
    }
    standard["input"] = {**standard["input"], "inputBodyJson": {"service_tier": "default"}}
    return [*records, converse, stream, guardrail, priority, flex, standard]


def _malformed(start: datetime) -> list[str]:
    good = _invoke(
        start + timedelta(hours=16), f"arn:aws:iam::{ACCOUNT}:user/bob", "amazon.nova-lite-v1:0", prompt=10
    )

    def broken(**changes: Any) -> str:
        record = json.loads(json.dumps(good))
        for path, value in changes.items():
            section, _, key = path.partition("__")
            if key:
                record[section][key] = value
            elif value is None:
                record.pop(section)
            else:
                record[section] = value
        return _line(record)

    return [
        *demo_data.malformed_lines(),
        "[1, 2, 3]",
        broken(schemaType="Other"),
        broken(input__inputTokenCount="12"),
        broken(input__inputTokenCount=1.5),
        broken(input__inputTokenCount=True),
        broken(input__cacheReadInputTokenCount=-1),
        broken(input__inputTokenCount=20_000_000),
        broken(identity={"arn": ""}),
        broken(identity=None),
        broken(timestamp="18/11/2025 10:00"),
        broken(timestamp="2025-11-18T16:00:00"),
        broken(requestMetadata={"app": 7}),
        broken(requestMetadata=["app"]),
        broken(errorCode=500),
        broken(modelId="model\u0007id"),
        broken(input="tokens"),
        broken(input={"inputTokenCount": 10, "inputBodyJson": {"service_tier": "turbo"}}),
        "",
        "   ",
    ]


@pytest.fixture
def logs(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[DuckDBAthena]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        glue = boto3.client("glue", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC)
        # A realistic day (offloaded bodies in data/ folders included), in two accounts and Regions.
        demo_data.write_s3_layout(demo_data.generate_day(DAY, records=400, seed=5), s3, BUCKET, ACCOUNT)
        other = demo_data.generate_day(DAY, records=60, seed=6, account_id=OTHER_ACCOUNT)
        demo_data.write_s3_layout(other, s3, BUCKET, OTHER_ACCOUNT)
        # The repository's sample records, moved to the day (the first two also kept where they were).
        for index, path in enumerate(sorted(EVENTS.glob("*.json"))):
            record = json.loads(path.read_text())
            original = datetime.fromisoformat(record["timestamp"])
            if index < 2:
                _put(
                    s3, record["accountId"], record["region"], original, f"original-{index}", [_line(record)]
                )
            moment = start + timedelta(hours=original.hour, minutes=original.minute, seconds=original.second)
            record["timestamp"] = _at(moment)
            _put(s3, record["accountId"], record["region"], moment, f"sample-{index}", [_line(record)])
        crafted = _crafted(start)
        _put(s3, ACCOUNT, "us-east-1", start + timedelta(hours=15), "crafted", [_line(r) for r in crafted])
        _put(s3, ACCOUNT, "us-east-1", start + timedelta(hours=16), "malformed", _malformed(start))
        # Delivered in the next hour's folder, a record keeps its own hour.
        late = _invoke(
            start + timedelta(hours=17, minutes=59),
            f"arn:aws:iam::{ACCOUNT}:user/carol",
            "amazon.nova-lite-v1:0",
            prompt=77,
        )
        _put(s3, ACCOUNT, "us-east-1", start + timedelta(hours=18), "late", [_line(late)])
        # A day later: outside --until, read by neither engine's report.
        after = _invoke(
            start + timedelta(days=1, hours=5),
            f"arn:aws:iam::{ACCOUNT}:user/carol",
            "amazon.nova-lite-v1:0",
            prompt=1_000,
        )
        _put(s3, ACCOUNT, "us-east-1", start + timedelta(days=1, hours=5), "after", [_line(after)])
        duck = DuckDBAthena(s3, glue, page_size=7)
        monkeypatch.setattr(athena, "aws_clients", lambda: (s3, glue, duck))
        monkeypatch.setattr(InferenceProfiles, "_bedrock", lambda self: _Bedrock())
        yield duck


def _meter(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[dict[str, Any]], str]:
    exit_code = main(["meter", f"s3://{BUCKET}/", "--format", "json", *args])
    out, err = capsys.readouterr()
    assert exit_code == 0, err
    return json.loads(out), err


GROUPINGS = ["principal,model,hour", "app,team,role,region,day", "model"]


@pytest.mark.parametrize("group_by", GROUPINGS)
def test_athena_rows_equal_local_rows_to_the_nano_dollar(logs, capsys, tmp_path, group_by):
    # Given a day of logs in S3 and a teams file
    teams = tmp_path / "teams.json"
    teams.write_text(json.dumps(demo_data.teams()))
    common = [
        "--group-by",
        group_by,
        "--teams",
        str(teams),
        "--since",
        DAY.isoformat(),
        "--until",
        DAY.isoformat(),
    ]
    # When both engines meter it
    local, local_err = _meter(capsys, *common)
    remote, remote_err = _meter(capsys, *common, "--engine", "athena")
    # Then the rows are the same, exact costs included, and so is the malformed count
    assert remote == local
    assert sum(row["calls"] for row in local) > 480
    malformed = (
        len(_malformed(datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC))) - 2
    )  # blank lines are skipped
    assert f"{malformed:,} malformed" in local_err.splitlines()[-1]
    assert f"{malformed:,} malformed" in remote_err.splitlines()[-1]


def test_long_context_is_decided_per_request_not_per_group(logs, capsys):
    # When alice's calls are metered by model on both engines
    common = [
        "--group-by",
        "principal,model",
        "--arn-pattern",
        "*:user/alice",
        "--since",
        DAY.isoformat(),
        "--until",
        DAY.isoformat(),
    ]
    local, _ = _meter(capsys, *common)
    remote, _ = _meter(capsys, *common, "--engine", "athena")
    # Then equal, and the Sonnet group is priced as 2 standard + 1 long-context request (+ the Converse ones)
    assert remote == local
    haiku = next(row for row in remote if row["model"] == "global.anthropic.claude-haiku-5-5")
    assert haiku["calls"] == 2 and haiku["input_tokens"] == 200_000


def test_without_bounds_every_hour_is_read_and_still_equal(logs, capsys):
    local, _ = _meter(capsys, "--group-by", "principal,day")
    remote, err = _meter(capsys, "--group-by", "principal,day", "--engine", "athena")
    assert remote == local
    assert {row["day"] for row in remote} >= {DAY.isoformat(), (DAY + timedelta(days=1)).isoformat()}
    assert "no --since" in err


def test_the_query_reads_only_the_hours_asked_and_reports_its_cost(logs, capsys):
    # When one account's Region is metered for one hour
    exit_code = main(
        [
            "meter",
            f"s3://{BUCKET}/AWSLogs/{ACCOUNT}/BedrockModelInvocationLogs/us-east-1/",
            "--engine",
            "athena",
            "--since",
            f"{DAY.isoformat()}T15:00:00Z",
            "--until",
            f"{DAY.isoformat()}T16:00:00Z",
            "--format",
            "csv",
        ]
    )
    out, err = capsys.readouterr()
    assert exit_code == 0, err
    # Then the query names the account, the Region and the hours (with the delivery slack) ...
    sql = logs.queries[-1]
    assert f"log_account = '{ACCOUNT}'" in sql and "log_region = 'us-east-1'" in sql
    assert "log_hour >= '2025/11/18/12'" in sql and "log_hour <= '2025/11/18/19'" in sql
    # ... the report holds only that hour's records, and stderr the bytes scanned and their price
    assert "user:alice" in out
    assert "athena: created Glue table budgetkeeper_history.invocation_logs_" in err
    assert "scanned" in err and "0.000048 USD" in err  # under 10 MB: the 10 MB minimum


def test_the_table_is_created_once_and_left_alone_after(logs, capsys):
    # Given a first run created the Glue table
    _, first = _meter(capsys, "--engine", "athena", "--since", DAY.isoformat())
    assert "created Glue table" in first
    # When the same logs are metered again
    _, again = _meter(capsys, "--engine", "athena", "--since", DAY.isoformat())
    # Then nothing is created or updated (Glue's answer says all the table should)
    assert "Glue" not in again


def test_the_service_tier_named_in_the_bodies_prices_each_call(logs, capsys):
    # Given alice's three Nova Pro calls of 40,000 input and 900 output tokens: one Converse served
    # at priority, one InvokeModel asking flex, one asking `default` (the standard tier)
    common = ["--group-by", "model", "--arn-pattern", "*:user/alice", "--since", DAY.isoformat(),
              "--until", DAY.isoformat()]  # fmt: skip
    # When both engines meter them
    local, _ = _meter(capsys, *common)
    remote, _ = _meter(capsys, *common, "--engine", "athena")
    # Then each is priced at its tier's rate (USD per 1M: priority 1.40/5.60, flex 0.40/1.60,
    # standard 0.80/3.20), on Athena as locally
    [row] = [row for row in remote if row["model"] == NOVA_PRO]
    expected = (40_000 * (Decimal("1.4") + Decimal("0.4") + Decimal("0.8"))
                + 900 * (Decimal("5.6") + Decimal("1.6") + Decimal("3.2"))) / 1_000_000  # fmt: skip
    assert row["calls"] == 3 and Decimal(row["cost_usd"]) == expected
    assert remote == local


def test_a_log_root_under_a_data_folder_is_read_and_its_bodies_still_skipped(logs, capsys):
    # Given a day of logs (offloaded bodies in HH/data/ included) under a root whose path has a data folder
    s3 = boto3.client("s3", region_name="us-east-1")
    root = "data/bedrock/"
    keys = demo_data.write_s3_layout(
        demo_data.generate_day(DAY, records=50, seed=8), s3, BUCKET, ACCOUNT, prefix=root
    )
    assert any("/data/" in key.removeprefix(root) for key in keys)  # bodies are there to skip
    # When both engines meter that root
    arguments = ["meter", f"s3://{BUCKET}/{root}", "--format", "json", "--group-by", "principal"]
    assert main(arguments) == 0
    local = json.loads(capsys.readouterr().out)
    assert main([*arguments, "--engine", "athena"]) == 0
    remote = json.loads(capsys.readouterr().out)
    # Then Athena reads the records (not zero, silently), as the local engine does, and no body
    assert sum(row["calls"] for row in local) == 50
    assert remote == local
