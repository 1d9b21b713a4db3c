"""Reconciliation through the real ReconcilerFunction on moto: calls metered by the usage calculator,
the bill from Cost Explorer (botocore's Stubber: moto does not serve GetCostAndUsage meaningfully)
and from the CUR 2.0 export (Athena via Stubber, its answer computed by running the very SQL the
builder produces on DuckDB over a CUR 2.0-shaped Parquet file made here).

Expected costs come from unit prices written here by hand: Nova Pro, USD 0.80 per 1M input tokens.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest
from botocore.stub import ANY, Stubber

from budgetkeeper.billing.cur import CurSource, cur_query
from budgetkeeper.billing.reconcile import cost_explorer_request
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.stack import LocalStack
from tests.athena_on_duckdb import to_duckdb

ACCOUNT = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
CHATBOT_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/web-1"
CHATBOT_ROLE = f"arn:aws:iam::{ACCOUNT}:role/service/ChatbotApp-BedrockRole"
BATCH_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/BatchJobs/nightly"
NOVA_PRO = "amazon.nova-pro-v1:0"
TOKENS_PER_USD = 1_250_000  # Nova Pro input: 0.80 USD per 1M tokens
CUR = CurSource("cur_exports", "cur2", "finops", "s3://results/reconcile/")


def day(clock: Any, days_ago: int) -> date:
    return clock().date() - timedelta(days=days_ago)


def meter(clock: Any, arn: str, days_ago: int, usd: int) -> None:
    """`usd` dollars of Nova Pro input for `arn`, at 10:00 UTC `days_ago` days ago, metered."""
    at = (clock() - timedelta(days=days_ago)).replace(hour=10, minute=0, second=0, microsecond=0)
    message = converse_message(
        arn, NOVA_PRO, usd * TOKENS_PER_USD, timestamp=at.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    result = invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([message])]))
    assert {record["result"] for record in result["records"]} == {"Ok"}


def ce_day(when: date, groups: dict[str, str]) -> dict[str, Any]:
    return {
        "TimePeriod": {"Start": when.isoformat(), "End": (when + timedelta(days=1)).isoformat()},
        "Total": {},
        "Groups": [
            {"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}}
            for service, amount in groups.items()
        ],
        "Estimated": True,
    }


def published(stack: LocalStack) -> list[dict]:
    from moto.sns.models import sns_backends

    topic = stack.physical_ids["BudgetEventsTopic"]
    backend = sns_backends[ACCOUNT]["us-east-1"]
    return [json.loads(message) for _, message, *_ in backend.topics[topic].sent_notifications]


@contextmanager
def the_bill(
    monkeypatch: pytest.MonkeyPatch, clock: Any, ce_pages: list[dict], athena_rows: list | None = None
):
    """The handler's Cost Explorer and Athena clients, stubbed; every other client is moto's."""
    ce = boto3.client("ce", region_name="us-east-1")
    athena = boto3.client("athena", region_name="us-east-1")
    real = boto3.client
    monkeypatch.setattr(
        boto3, "client", lambda name, **kw: {"ce": ce, "athena": athena}.get(name) or real(name, **kw)
    )
    since, until = day(clock, 3), day(clock, 1)
    with Stubber(ce) as ce_stub, Stubber(athena) as athena_stub:
        request = cost_explorer_request(since, until)
        for index, page in enumerate(ce_pages):
            token = {"NextPageToken": f"page-{index}"} if index else {}
            more = {"NextPageToken": f"page-{index + 1}"} if index + 1 < len(ce_pages) else {}
            ce_stub.add_response("get_cost_and_usage", {**page, **more}, {**request, **token})
        if athena_rows is not None:
            header, *rows = athena_rows
            athena_stub.add_response(
                "start_query_execution",
                {"QueryExecutionId": "q-1"},
                {
                    "QueryString": cur_query(CUR, since, until),
                    "WorkGroup": CUR.workgroup,
                    "QueryExecutionContext": {"Database": CUR.database},
                    "ResultConfiguration": {"OutputLocation": CUR.output_location},
                },
            )
            athena_stub.add_response(
                "get_query_execution",
                {"QueryExecution": {"Status": {"State": "RUNNING"}}},
                {"QueryExecutionId": ANY},
            )
            athena_stub.add_response(
                "get_query_execution",
                {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}},
                {"QueryExecutionId": "q-1"},
            )
            athena_stub.add_response(
                "get_query_results",
                {
                    "ResultSet": {
                        "Rows": [
                            {"Data": [{} if value is None else {"VarCharValue": str(value)} for value in row]}
                            for row in [header, *rows]
                        ],
                        "ResultSetMetadata": {
                            "ColumnInfo": [{"Name": name, "Type": "varchar"} for name in header]
                        },
                    }
                },
                {"QueryExecutionId": "q-1"},
            )
        yield
        ce_stub.assert_no_pending_responses()
        athena_stub.assert_no_pending_responses()


def reconcile(stack: LocalStack, **environment: str) -> dict:
    """The ReconcilerFunction, with the stack's environment and `environment` over it."""
    from budgetkeeper.core.settings import get_settings

    with stack.activated(), pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        get_settings.cache_clear()
        try:
            return invoke("ReconcilerFunction", {})
        finally:
            get_settings.cache_clear()


def test_metered_spend_in_line_with_cost_explorer_alerts_no_one(settings, stack, clock, monkeypatch):
    # Given alice's calls metered two days ago (2 USD) and yesterday (2 USD)
    meter(clock, ALICE, 2, 2)
    meter(clock, ALICE, 1, 2)
    # And Cost Explorer billing them under Amazon Bedrock and a third-party model's own service name,
    # over two pages, with other services beside them
    pages = [
        {
            "ResultsByTime": [
                ce_day(day(clock, 3), {"AWS Lambda": "0.40"}),
                ce_day(day(clock, 2), {"Amazon Bedrock": "1.50"}),
            ]
        },
        {
            "ResultsByTime": [
                ce_day(
                    day(clock, 2),
                    {"Claude (Amazon Bedrock Edition)": "0.52", "Amazon Bedrock AgentCore": "9"},
                ),
                ce_day(day(clock, 1), {"Amazon Bedrock": "2.00", "Amazon DynamoDB": "0.10"}),
            ]
        },
    ]
    # When the reconciler runs
    with the_bill(monkeypatch, clock, pages):
        outcome = reconcile(stack)
    # Then every day is in line (2.02 billed against 2.00 metered is 1% apart), and no one is alerted
    rows = {row["day"]: row for row in outcome["comparisons"]}
    assert [rows[day(clock, n).isoformat()]["verdict"] for n in (3, 2, 1)] == ["in_line"] * 3
    assert rows[day(clock, 2).isoformat()]["billed_usd"] == "2.02"
    assert rows[day(clock, 2).isoformat()]["services"] == [
        "Amazon Bedrock",
        "Claude (Amazon Bedrock Edition)",
    ]
    assert rows[day(clock, 2).isoformat()]["metered_usd"] == "2"
    assert outcome["alerted"] == 0 and published(stack) == []


def test_drift_alerts_operators_with_both_numbers_and_a_lagging_day_is_pending(
    settings, stack, clock, monkeypatch
):
    # Given 2 USD metered two days ago and yesterday
    meter(clock, ALICE, 2, 2)
    meter(clock, ALICE, 1, 2)
    # And Cost Explorer billing 3 USD two days ago, and nothing at all yet for yesterday (it lags)
    pages = [
        {
            "ResultsByTime": [
                ce_day(day(clock, 3), {"AWS Lambda": "0.40"}),
                ce_day(day(clock, 2), {"Amazon Bedrock": "3.00"}),
                ce_day(day(clock, 1), {}),
            ]
        }
    ]
    # When the reconciler runs
    with the_bill(monkeypatch, clock, pages):
        outcome = reconcile(stack)
    # Then two days ago is drift (33.3% apart, over the default 5% and 1 USD), yesterday pending
    verdicts = {row["day"]: row["verdict"] for row in outcome["comparisons"]}
    assert verdicts[day(clock, 2).isoformat()] == "drift"
    assert verdicts[day(clock, 1).isoformat()] == "pending"
    # And operators get one billing_drift event with both numbers; the pending day alerts no one
    [event] = published(stack)
    assert event["type"] == "billing_drift" and event["scope"] == "bedrock"
    assert (event["window_id"], event["spent_usd"], event["billed_usd"], event["percent"]) == (
        day(clock, 2).isoformat(), "2", "3", "33.3"
    )  # fmt: skip


def cur_parquet(path: Path, clock: Any, rows: list[tuple] | None = None) -> Path:
    """A small CUR 2.0 export: the columns the query reads, typed as the export types them."""
    two, three = day(clock, 2), day(clock, 3)
    period = two.strftime("%Y-%m")
    rows = rows or [
        # alice: Bedrock (1.50) and a third-party model under its own product name (0.50): 2 USD
        (period, f"{two} 09:00:00", ALICE, 1.5, "Usage", "AmazonBedrock", "Amazon Bedrock"),
        (period, f"{two} 10:00:00", ALICE, 0.5, "Usage", "prod-mkt1", "Claude (Amazon Bedrock Edition)"),
        # a credit on alice, and AgentCore runtime: neither is model usage
        (period, f"{two} 10:00:00", ALICE, -1.0, "Credit", "AmazonBedrock", "Amazon Bedrock"),
        (period, f"{two} 10:00:00", ALICE, 7.0, "Usage", "BedrockAgentCore", "Amazon Bedrock AgentCore"),
        # the chatbot, billed under its role's own ARN: 1 USD, metered through a session of the role
        (period, f"{two} 11:00:00", CHATBOT_ROLE, 1.0, "Usage", "AmazonBedrock", "Amazon Bedrock"),
        # a batch job's role session: 4 USD billed, never metered (batch inference is not logged)
        (period, f"{two} 02:00:00", BATCH_SESSION, 4.0, "Usage", "AmazonBedrock", "Amazon Bedrock"),
        # three days ago: only another service (the CUR has the day; no Bedrock spend)
        (three.strftime("%Y-%m"), f"{three} 05:00:00", "", 0.3, "Usage", "AWSLambda", "AWS Lambda"),
    ]  # fmt: skip
    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE cur (billing_period VARCHAR, line_item_usage_start_date TIMESTAMP, "
        "line_item_usage_account_id VARCHAR, line_item_iam_principal VARCHAR, "
        "line_item_unblended_cost DOUBLE, "
        "line_item_line_item_type VARCHAR, line_item_product_code VARCHAR, product MAP(VARCHAR, VARCHAR))"
    )
    for period_, started, principal, cost, kind, code, name in rows:
        connection.execute(
            "INSERT INTO cur VALUES (?, ?, ?, ?, ?, ?, ?, MAP {'product_name': ?})",
            [period_, started, ACCOUNT, principal, cost, kind, code, name],
        )
    target = path / "cur2.parquet"
    connection.execute(f"COPY cur TO '{target}' (FORMAT PARQUET)")
    return target


def test_a_cur_day_billed_under_amazon_bedrock_service_reconciles(
    settings, stack, clock, monkeypatch, tmp_path
):
    # Given alice's 2 USD metered two days ago, billed in the CUR under the AmazonBedrockService
    # product code (current Claude usage), its line items naming no product name
    meter(clock, ALICE, 2, 2)
    two = day(clock, 2)
    rows = [(two.strftime("%Y-%m"), f"{two} 09:00:00", ALICE, 2.0, "Usage", "AmazonBedrockService", None)]
    pages = [
        {
            "ResultsByTime": [
                ce_day(day(clock, 3), {}),
                ce_day(two, {"Amazon Bedrock": "2.00"}),
                ce_day(day(clock, 1), {}),
            ]
        }
    ]
    answer = athena_answer(cur_parquet(tmp_path, clock, rows), clock)
    # When the reconciler runs with the CUR export named
    with the_bill(monkeypatch, clock, pages, answer):
        outcome = reconcile(
            stack, CUR_DATABASE=CUR.database, CUR_TABLE=CUR.table, CUR_WORKGROUP=CUR.workgroup,
            CUR_OUTPUT_LOCATION=CUR.output_location,
        )  # fmt: skip
    # Then alice's day is in line: the CUR's Bedrock spend counts those line items
    principals = {
        (row["scope"], row["day"]): (row["metered_usd"], row["billed_usd"], row["verdict"])
        for row in outcome["comparisons"]
        if row["level"] == "principal"
    }
    assert principals == {("user:alice", two.isoformat()): ("2", "2", "in_line")}
    assert published(stack) == []


def athena_answer(parquet: Path, clock: Any) -> list[list]:
    """The query the builder produces, translated to DuckDB's dialect, run over the Parquet file."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f'CREATE SCHEMA "{CUR.database}"')
    connection.execute(
        f'CREATE VIEW "{CUR.database}"."{CUR.table}" AS SELECT * FROM read_parquet(\'{parquet}\')'
    )
    result = connection.execute(to_duckdb(cur_query(CUR, day(clock, 3), day(clock, 1))))
    header = [column[0] for column in result.description]
    return [
        header,
        *[
            [None if v is None else str(v).lower() if isinstance(v, bool) else v for v in row]
            for row in result.fetchall()
        ],
    ]


def test_billed_spend_a_principal_never_metered_is_found_and_alerted(
    settings, stack, clock, monkeypatch, tmp_path
):
    # Given alice (2 USD) and the chatbot's session (1 USD) metered two days ago
    meter(clock, ALICE, 2, 2)
    meter(clock, CHATBOT_SESSION, 2, 1)
    # And the bill: Cost Explorer's 7 USD (the batch job too), the CUR's line items per principal
    pages = [
        {
            "ResultsByTime": [
                ce_day(day(clock, 3), {"AWS Lambda": "0.30"}),
                ce_day(day(clock, 2), {"Amazon Bedrock": "6.50", "Claude (Amazon Bedrock Edition)": "0.50"}),
                ce_day(day(clock, 1), {}),
            ]
        }
    ]
    rows = athena_answer(cur_parquet(tmp_path, clock), clock)
    # When the reconciler runs
    # (the CUR 2.0 export named to the function, as the template's Cur* parameters do)
    with the_bill(monkeypatch, clock, pages, rows):
        outcome = reconcile(
            stack, CUR_DATABASE=CUR.database, CUR_TABLE=CUR.table, CUR_WORKGROUP=CUR.workgroup,
            CUR_OUTPUT_LOCATION=CUR.output_location,
        )  # fmt: skip
    # Then per principal: alice and the chatbot's role in line; the batch job's session billed
    # 4 USD, never metered
    principals = {
        row["scope"]: (row["metered_usd"], row["billed_usd"], row["verdict"])
        for row in outcome["comparisons"]
        if row["level"] == "principal"
    }
    assert principals == {
        "user:alice": ("2", "2", "in_line"),
        "role:ChatbotApp-BedrockRole": ("1", "1", "in_line"),
        "session:BatchJobs/nightly": ("0", "4", "unmetered"),
    }
    # And operators are told of the unmetered principal (with its ARN) and of the service-level drift
    events = {(event["scope"], event["window_id"]): event for event in published(stack)}
    assert set(events) == {
        ("session:BatchJobs/nightly", day(clock, 2).isoformat()),
        ("bedrock", day(clock, 2).isoformat()),
    }
    unmetered = events[("session:BatchJobs/nightly", day(clock, 2).isoformat())]
    assert unmetered["type"] == "billing_drift" and "billed but never metered" in unmetered["reason"]
    assert (unmetered["spent_usd"], unmetered["billed_usd"]) == ("0", "4")
    assert json.loads(unmetered["note"])["principal_arn"] == BATCH_SESSION
    assert events[("bedrock", day(clock, 2).isoformat())]["billed_usd"] == "7"


def test_the_reconcile_command_shows_the_table_and_says_what_to_type(
    settings, stack, clock, monkeypatch, capsys
):
    from budgetkeeper_cli import stack_config
    from budgetkeeper_cli.main import main

    stack_name = stack.publish_outputs()
    # Given 2 USD metered two days ago, billed 3 USD; yesterday not in Cost Explorer yet
    meter(clock, ALICE, 2, 2)
    ce = boto3.client("ce", region_name="us-east-1")
    monkeypatch.setattr(stack_config.Stack, "regional_client", lambda self, service, region: ce)
    since, until = day(clock, 2), day(clock, 1)
    page = {"ResultsByTime": [ce_day(since, {"Amazon Bedrock": "3.00"}), ce_day(until, {})]}
    # When an operator asks for the table per service, as JSON
    with Stubber(ce) as stub:
        stub.add_response("get_cost_and_usage", page, cost_explorer_request(since, until))
        capsys.readouterr()
        code = main(["reconcile", "--since", since.isoformat(), "--by", "service", "--format", "json",
                     "--stack-name", stack_name])  # fmt: skip
        out, err = capsys.readouterr()
    # Then it shows both numbers and the verdict of each day, yesterday being the default last day
    assert code == 0, err
    assert [
        (row["day"], row["metered_usd"], row["billed_usd"], row["verdict"]) for row in json.loads(out)
    ] == [
        (since.isoformat(), "2", "3", "drift"),
        (until.isoformat(), "0", None, "pending"),
    ]
    # And bad arguments get a message that says what to type
    assert main(["reconcile", "--since", "June 1", "--stack-name", stack_name]) == 2
    assert "is not a date: type e.g. --since " in capsys.readouterr().err
    assert (
        main(["reconcile", "--since", since.isoformat(), "--by", "principal", "--stack-name", stack_name])
        == 2
    )
    assert "type --cur-database DATABASE --cur-table TABLE" in capsys.readouterr().err
