"""The Athena engine's AWS calls, checked with botocore's Stubber (moto executes no SQL).

The table (Glue's TableInput, created once and kept in step idempotently), the query request,
polling, the pagination of results, failed, cancelled and interrupted queries, and the price of a scan.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from hypothesis import given, settings
from hypothesis import strategies as st

from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.pricing.rates import price_invocation
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper_cli import athena, history_query
from budgetkeeper_cli.athena import LogRoot, QueryProgress
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.reports.sources import S3Location

ROOT = LogRoot("org-logs", "bedrock/AWSLogs/")
DATABASE = "budgetkeeper_history"
QUERY_ID = "0f3c8a4e-1111-2222-3333-444455556666"


def _client(service: str) -> Any:
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


@pytest.fixture
def glue() -> Any:
    return _client("glue")


@pytest.fixture
def client() -> Any:
    return _client("athena")


def _not_found(stubber: Stubber, method: str, params: dict[str, Any]) -> None:
    stubber.add_client_error(method, "EntityNotFoundException", "not found", 400, expected_params=params)


# --- the log root ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "root"),
    [
        ("", LogRoot("b", "AWSLogs/")),
        ("logs", LogRoot("b", "logs/AWSLogs/")),
        ("logs/AWSLogs/", LogRoot("b", "logs/AWSLogs/")),
        ("AWSLogs/111122223333/", LogRoot("b", "AWSLogs/", "111122223333")),
        (
            "AWSLogs/111122223333/BedrockModelInvocationLogs/eu-west-1/",
            LogRoot("b", "AWSLogs/", "111122223333", "eu-west-1"),
        ),
    ],
)
def test_the_log_root_and_its_narrowing_are_read_from_the_uri(prefix, root):
    assert LogRoot.from_location(S3Location("b", prefix)) == root


def test_a_uri_below_the_region_is_refused_with_what_to_type():
    deep = S3Location("b", "AWSLogs/111122223333/BedrockModelInvocationLogs/eu-west-1/2025/11/")
    with pytest.raises(UsageError, match="--since and --until"):
        LogRoot.from_location(deep)


def test_one_table_per_log_root_whatever_the_narrowing():
    narrowed = LogRoot("org-logs", "bedrock/AWSLogs/", "111122223333")
    assert narrowed.table_name == ROOT.table_name != LogRoot("org-logs", "AWSLogs/").table_name


# --- the table ------------------------------------------------------------------------------------


def test_the_table_projects_account_region_and_hour_from_bedrocks_key_layout():
    wanted = athena.table_input(ROOT, ["111122223333", "444455556666"], ["eu-west-1", "us-east-1"])
    parameters = wanted["Parameters"]
    assert parameters["storage.location.template"] == (
        "s3://org-logs/bedrock/AWSLogs/${log_account}/BedrockModelInvocationLogs/${log_region}/${log_hour}/"
    )
    assert parameters["projection.log_account.values"] == "111122223333,444455556666"
    assert parameters["projection.log_region.values"] == "eu-west-1,us-east-1"
    assert (parameters["projection.log_hour.format"], parameters["projection.log_hour.interval.unit"]) == (
        "yyyy/MM/dd/HH",
        "HOURS",
    )
    assert wanted["StorageDescriptor"]["Columns"] == [{"Name": "line", "Type": "string"}]


def test_the_database_and_table_are_created_once(glue):
    wanted = athena.table_input(ROOT, ["111122223333"], ["us-east-1"])
    logged: list[str] = []
    with Stubber(glue) as stubber:
        # First run: nothing exists
        _not_found(stubber, "get_database", {"Name": DATABASE})
        stubber.add_response("create_database", {}, {"DatabaseInput": {"Name": DATABASE, "Description": ANY}})
        _not_found(stubber, "get_table", {"DatabaseName": DATABASE, "Name": ROOT.table_name})
        stubber.add_response("create_table", {}, {"DatabaseName": DATABASE, "TableInput": wanted})
        # Second run: both exist and say what they should: reads only
        stubber.add_response("get_database", {"Database": {"Name": DATABASE}}, {"Name": DATABASE})
        stubber.add_response(
            "get_table",
            {"Table": {**wanted, "DatabaseName": DATABASE}},
            {"DatabaseName": DATABASE, "Name": ROOT.table_name},
        )
        assert athena.ensure_table(glue, DATABASE, wanted, logged.append) == "created"
        assert athena.ensure_table(glue, DATABASE, wanted, logged.append) == "unchanged"
        stubber.assert_no_pending_responses()
    assert len(logged) == 2


def test_a_new_account_updates_the_table(glue):
    before = athena.table_input(ROOT, ["111122223333"], ["us-east-1"])
    after = athena.table_input(ROOT, ["111122223333", "444455556666"], ["us-east-1"])
    with Stubber(glue) as stubber:
        stubber.add_response("get_database", {"Database": {"Name": DATABASE}}, {"Name": DATABASE})
        stubber.add_response(
            "get_table",
            {"Table": {**before, "DatabaseName": DATABASE}},
            {"DatabaseName": DATABASE, "Name": ROOT.table_name},
        )
        stubber.add_response("update_table", {}, {"DatabaseName": DATABASE, "TableInput": after})
        assert athena.ensure_table(glue, DATABASE, after, lambda _: None) == "updated"
        stubber.assert_no_pending_responses()


def test_a_database_created_meanwhile_by_another_run_is_fine(glue):
    wanted = athena.table_input(ROOT, ["111122223333"], ["us-east-1"])
    with Stubber(glue) as stubber:
        _not_found(stubber, "get_database", {"Name": DATABASE})
        stubber.add_client_error("create_database", "AlreadyExistsException", "exists", 400)
        stubber.add_response("get_table", {"Table": {**wanted, "DatabaseName": DATABASE}})
        assert athena.ensure_table(glue, DATABASE, wanted, lambda _: None) == "unchanged"


def test_glue_access_denied_is_a_clear_error(glue):
    wanted = athena.table_input(ROOT, ["111122223333"], ["us-east-1"])
    with Stubber(glue) as stubber:
        stubber.add_client_error(
            "get_database", "AccessDeniedException", "not authorized to glue:GetDatabase"
        )
        with pytest.raises(CommandFailed, match=r"cannot prepare the Glue table .*glue:GetDatabase"):
            athena.ensure_table(glue, DATABASE, wanted, lambda _: None)


# --- the query ------------------------------------------------------------------------------------


def _execution(state: str, scanned: int = 0, **status: Any) -> dict[str, Any]:
    return {
        "QueryExecution": {
            "QueryExecutionId": QUERY_ID,
            "Status": {"State": state, **status},
            "Statistics": {"DataScannedInBytes": scanned, "EngineExecutionTimeInMillis": 1200},
        }
    }


def _run(client: Any, stream: io.StringIO | None = None, **options: Any) -> athena.QueryOutcome:
    return athena.run_query(
        client,
        "SELECT 1",
        workgroup=options.get("workgroup", "analysts"),
        database=DATABASE,
        output_location=options.get("output_location"),
        progress=QueryProgress(stream or io.StringIO()),
        sleep=options.get("sleep", lambda _: None),
        monotonic=lambda: 0.0,
    )


def test_the_query_is_started_in_the_workgroup_and_followed_to_its_end(client):
    stream = io.StringIO()
    with Stubber(client) as stubber:
        stubber.add_response(
            "start_query_execution",
            {"QueryExecutionId": QUERY_ID},
            {
                "QueryString": "SELECT 1",
                "WorkGroup": "analysts",
                "QueryExecutionContext": {"Database": DATABASE},
                "ResultConfiguration": {"OutputLocation": "s3://results/athena/"},
            },
        )
        for state, scanned in (
            ("QUEUED", 0),
            ("RUNNING", 5 << 30),
            ("RUNNING", 9 << 30),
            ("SUCCEEDED", 12 << 40),
        ):
            stubber.add_response(
                "get_query_execution", _execution(state, scanned), {"QueryExecutionId": QUERY_ID}
            )
        outcome = _run(client, stream, output_location="s3://results/athena/")
        stubber.assert_no_pending_responses()
    assert (outcome.query_id, outcome.scanned_bytes) == (QUERY_ID, 12 << 40)
    assert outcome.cost_usd == Decimal(60)  # 12 TB at 5 USD per TB
    # Not a terminal: one line per state, not per poll
    assert [line.split(",")[0] for line in stream.getvalue().splitlines()] == [
        f"athena: query {QUERY_ID} QUEUED",
        f"athena: query {QUERY_ID} RUNNING",
        f"athena: query {QUERY_ID} SUCCEEDED",
    ]


def test_a_failed_query_says_why(client):
    with Stubber(client) as stubber:
        stubber.add_response("start_query_execution", {"QueryExecutionId": QUERY_ID})
        stubber.add_response(
            "get_query_execution",
            _execution(
                "FAILED",
                StateChangeReason="HIVE_BAD_DATA: Error parsing field value",
                AthenaError={"ErrorCategory": 2, "ErrorType": 1001},
            ),
        )
        with pytest.raises(
            CommandFailed, match=rf"query {QUERY_ID} failed \(user error, 1001\): HIVE_BAD_DATA"
        ):
            _run(client)


def test_a_cancelled_query_says_so_and_what_it_scanned(client):
    with Stubber(client) as stubber:
        stubber.add_response("start_query_execution", {"QueryExecutionId": QUERY_ID})
        stubber.add_response(
            "get_query_execution",
            _execution("CANCELLED", 2_000_000, StateChangeReason="Bytes scanned limit was exceeded"),
        )
        with pytest.raises(
            CommandFailed, match=r"was cancelled .* after scanning 2,000,000 bytes: Bytes scanned limit"
        ):
            _run(client)


def test_ctrl_c_stops_the_query(client):
    def interrupt(_: float) -> None:
        raise KeyboardInterrupt

    with Stubber(client) as stubber:
        stubber.add_response("start_query_execution", {"QueryExecutionId": QUERY_ID})
        stubber.add_response("get_query_execution", _execution("RUNNING"))
        stubber.add_response("stop_query_execution", {}, {"QueryExecutionId": QUERY_ID})
        with pytest.raises(CommandFailed, match=r"interrupted: Athena query .* stopped"):
            _run(client, sleep=interrupt)
        stubber.assert_no_pending_responses()


def test_a_workgroup_without_output_location_is_a_clear_error(client):
    with Stubber(client) as stubber:
        stubber.add_client_error(
            "start_query_execution",
            "InvalidRequestException",
            "No output location provided. An output location is required either through the Workgroup "
            "result configuration setting or as an API input.",
        )
        with pytest.raises(
            CommandFailed, match=r"did not start the query \(workgroup analysts\).*output location"
        ):
            _run(client)


def _page(rows: list[list[str | None]], token: str | None = None) -> dict[str, Any]:
    page: dict[str, Any] = {
        "ResultSet": {
            "Rows": [{"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in rows],
            "ResultSetMetadata": {
                "ColumnInfo": [{"Name": name, "Type": "varchar"} for name in history_query.RESULT_COLUMNS]
            },
        },
        "UpdateCount": 0,
    }
    if token:
        page["NextToken"] = token
    return page


def _group_row(arn: str, calls: int) -> list[str | None]:
    values = {
        "valid": "true",
        "account_id": "111122223333",
        "identity_arn": arn,
        "region": "us-east-1",
        "operation": "Converse",
        "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
        "hour_epoch": "1763460000",
        "app": None,
        "prompt_class": "0",
        "service_tier": "standard",
        "error_code": None,
        "calls": str(calls),
        "input_tokens": "1000",
        "output_tokens": "200",
        "cache_read_tokens": "0",
        "cache_write_5m_tokens": "0",
        "cache_write_1h_tokens": "0",
        "example_source": "s3://org-logs/x.json.gz",
    }
    return [values[name] for name in history_query.RESULT_COLUMNS]


def test_results_are_read_page_by_page_without_the_header(client):
    header = list(history_query.RESULT_COLUMNS)
    with Stubber(client) as stubber:
        stubber.add_response(
            "get_query_results",
            _page([header, _group_row("arn:aws:iam::111122223333:user/alice", 3)], "t1"),
            {"QueryExecutionId": QUERY_ID},
        )
        stubber.add_response(
            "get_query_results",
            _page([_group_row("arn:aws:iam::111122223333:user/bob", 2)]),
            {"QueryExecutionId": QUERY_ID, "NextToken": "t1"},
        )
        rows = list(athena.result_rows(client, QUERY_ID))
        stubber.assert_no_pending_responses()
    assert [(row["identity_arn"], row["calls"], row["app"]) for row in rows] == [
        ("arn:aws:iam::111122223333:user/alice", "3", None),
        ("arn:aws:iam::111122223333:user/bob", "2", None),
    ]
    group = history_query.Group.from_row(rows[0])
    assert group.invocation is not None
    assert group.invocation.timestamp == datetime(2025, 11, 18, 10, tzinfo=UTC)
    assert (group.calls, group.invocation.tokens.input, dict(group.invocation.request_metadata)) == (
        3,
        1000,
        {},
    )


def test_results_of_another_shape_are_refused(client):
    with Stubber(client) as stubber:
        page = _page([["x"]])
        page["ResultSet"]["ResultSetMetadata"]["ColumnInfo"] = [{"Name": "x", "Type": "varchar"}]
        stubber.add_response("get_query_results", page)
        with pytest.raises(CommandFailed, match="returned columns"):
            list(athena.result_rows(client, QUERY_ID))


# --- cost and the query text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scanned", "usd"),
    [(0, "0.000048"), (10 << 20, "0.000048"), ((10 << 20) + 1, "0.000053"), (1 << 40, "5.000000")],
)
def test_a_query_costs_5_usd_per_tb_with_10_mb_at_least(scanned, usd):
    assert athena.query_cost_usd(scanned) == Decimal(usd)


def test_the_query_classes_each_request_by_every_long_context_threshold_of_the_table():
    thresholds = history_query.long_context_thresholds(PriceTable.bundled())
    assert thresholds == tuple(sorted(set(thresholds), reverse=True)) and 200_000 in thresholds
    sql = history_query.build_query(database="db", table="t", thresholds=thresholds)
    for threshold in thresholds:
        assert f"> {threshold} THEN {threshold + 1}" in sql


# --- grouping first, pricing after --------------------------------------------------------------

_request = st.builds(
    TokenCounts,
    input=st.integers(0, 400_000),
    output=st.integers(0, 50_000),
    cache_read=st.integers(0, 100_000),
    cache_write_5m=st.integers(0, 20_000),
    cache_write_1h=st.integers(0, 20_000),
)


def _priced_by_class(
    table: PriceTable, model: str, requests: list[TokenCounts], *, per_request: bool
) -> Decimal:
    thresholds = history_query.long_context_thresholds(table)
    classes: dict[int, list[TokenCounts]] = {}
    for tokens in requests:
        classes.setdefault(next((t + 1 for t in thresholds if tokens.prompt_total > t), 0), []).append(tokens)
    return sum(
        (
            price_invocation(
                table,
                model,
                "us-east-1",
                sum(members, TokenCounts()),
                request_prompt_tokens=prompt_class if per_request else None,
            ).cost_usd
            for prompt_class, members in classes.items()
        ),
        Decimal(0),
    )


@settings(max_examples=200, deadline=None)
@given(
    requests=st.lists(_request, min_size=1, max_size=6),
    model=st.sampled_from(
        [
            "us.anthropic.claude-sonnet-4-5-20250929-v1:0",  # long context over 200K
            "global.anthropic.claude-haiku-5-5",  # over 100K
            "amazon.nova-lite-v1:0",  # no long-context tier
        ]
    ),
)
def test_a_group_priced_once_costs_the_sum_of_its_requests(requests, model):
    # Given requests of one model and Region, grouped as the query groups them: by prompt class
    table = PriceTable.bundled()
    # When each class is priced once, on its summed tokens and one request's prompt class
    grouped = _priced_by_class(table, model, requests, per_request=True)
    # Then the cost is exactly the sum of the requests priced one by one
    assert grouped == sum(
        (price_invocation(table, model, "us-east-1", t).cost_usd for t in requests), Decimal(0)
    )


def test_without_the_request_prompt_a_group_of_short_requests_would_be_priced_long():
    # Given two 150K-token prompts: each below Sonnet 4.5's 200K threshold, their sum above it
    table = PriceTable.bundled()
    model = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    requests = [TokenCounts(input=150_000, output=1_000)] * 2
    one_by_one = sum((price_invocation(table, model, "us-east-1", t).cost_usd for t in requests), Decimal(0))
    # Then the per-request class prices them right, and the summed tokens alone would not
    assert _priced_by_class(table, model, requests, per_request=True) == one_by_one
    assert _priced_by_class(table, model, requests, per_request=False) > one_by_one
