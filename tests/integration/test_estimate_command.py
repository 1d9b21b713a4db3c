"""`budgetkeeper estimate`: CloudTrail calls (botocore Stubber: moto has no LookupEvents) and
CloudWatch AWS/Bedrock token metrics (moto), split by call share and priced; the expected split
and cost are computed by hand below."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from budgetkeeper.core import clock
from budgetkeeper_cli.stack_config import Stack
from tests.integration.cli_runner import OperatorCli

ACCOUNT = "123456789012"
PRO, LITE = "amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"


@pytest.fixture
def trail(monkeypatch: pytest.MonkeyPatch):
    stubbed = boto3.client("cloudtrail", region_name="us-east-1")
    original = Stack.client
    monkeypatch.setattr(
        Stack, "client", lambda self, service: stubbed if service == "cloudtrail" else original(self, service)
    )
    with Stubber(stubbed) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def cli(stack, settings, capsys, trail) -> OperatorCli:
    return OperatorCli(stack, capsys)


def event(name: str, user: str, model: str, at: datetime, error: str | None = None) -> dict[str, Any]:
    """A LookupEvents event as CloudTrail documents it: the record itself is a JSON string."""
    record = {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "IAMUser",
            "principalId": "AIDAEXAMPLE",
            "arn": f"arn:aws:iam::{ACCOUNT}:user/{user}",
            "accountId": ACCOUNT,
            "userName": user,
        },
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "eventSource": "bedrock.amazonaws.com",
        "eventName": name,
        "awsRegion": "us-east-1",
        "sourceIPAddress": "192.0.2.10",
        "userAgent": "Boto3/1.40.0",
        "requestParameters": {"modelId": model},
        "responseElements": None,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
    }
    if error:
        record["errorCode"] = error
    return {
        "EventId": f"{name}-{user}-{at.timestamp()}",
        "EventName": name,
        "ReadOnly": "false",
        "EventTime": at,
        "EventSource": "bedrock.amazonaws.com",
        "Username": user,
        "CloudTrailEvent": json.dumps(record),
    }


def put_tokens(stack, model: str, metric: str, at: datetime, value: int) -> None:
    stack.client("cloudwatch").put_metric_data(
        Namespace="AWS/Bedrock",
        MetricData=[
            {
                "MetricName": metric,
                "Dimensions": [{"Name": "ModelId", "Value": model}],
                "Timestamp": at,
                "Value": value,
            }
        ],
    )


def test_tokens_are_split_by_call_share_priced_and_labelled_an_estimate(
    cli: OperatorCli, stack, trail
) -> None:
    # Given, over the last three days: Nova Pro called 3 times by alice and once by bob, Nova Lite
    # twice by alice and once by carol; a refused call and a control-plane call that cost nothing
    day = clock.now().replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)
    since = (day - timedelta(hours=12)).date()
    until = (day + timedelta(days=1)).date()
    events = [
        *(event("Converse", "alice", PRO, day + timedelta(minutes=m)) for m in range(3)),
        event("InvokeModel", "bob", PRO, day),
        event("ConverseStream", "alice", f"arn:aws:bedrock:us-east-1::foundation-model/{LITE}", day),
        event("InvokeModel", "alice", LITE, day),
        event("InvokeModel", "carol", LITE, day),
        event("InvokeModel", "bob", PRO, day, error="ThrottlingException"),
        event("ListFoundationModels", "bob", "", day),
    ]
    window = {
        "LookupAttributes": [{"AttributeKey": "EventSource", "AttributeValue": "bedrock.amazonaws.com"}],
        "StartTime": datetime(since.year, since.month, since.day, tzinfo=UTC),
        "EndTime": datetime(until.year, until.month, until.day, tzinfo=UTC) + timedelta(days=1),
    }
    trail.add_response("lookup_events", {"Events": events[:4], "NextToken": "page-2"}, window)
    trail.add_response("lookup_events", {"Events": events[4:]}, {**window, "NextToken": "page-2"})
    # and CloudWatch counted Nova Pro 4,000 input and 2,000 output tokens, Nova Lite 1,000 input
    put_tokens(stack, PRO, "InputTokenCount", day, 2500)
    put_tokens(stack, PRO, "InputTokenCount", day + timedelta(hours=1), 1500)
    put_tokens(stack, PRO, "OutputTokenCount", day, 2000)
    put_tokens(stack, LITE, "InputTokenCount", day, 1000)
    stack.client("iam").create_user(UserName="alice")
    cli.ok("team", "create", "data", "--member", "user:alice")
    # When the estimate is asked for, as JSON
    out = cli.ok("estimate", "--since", since.isoformat(), "--until", until.isoformat(), "--format", "json")
    document = json.loads(out)
    # Then, by hand: Nova Pro ($0.80 in / $3.20 out per 1M): alice 3/4 -> 3,000 in, 1,500 out
    #   = 3000 * 0.8e-6 + 1500 * 3.2e-6 = 0.0024 + 0.0048 = 0.0072; bob 1/4 -> 1,000 / 500 = 0.0024.
    # Nova Lite ($0.06 in): 1,000 by 2:1 is 666.67 : 333.33 -> 667 (largest remainder) : 333
    #   = 667 * 0.06e-6 = 0.00004002 and 333 * 0.06e-6 = 0.00001998.
    got = {
        (row["principal"], row["model"]): (
            row["calls"],
            row["input_tokens"],
            row["output_tokens"],
            row["cost_usd"],
        )
        for row in document["rows"]
    }
    assert got == {
        ("user:alice", PRO): (3, 3000, 1500, "0.0072"),
        ("user:bob", PRO): (1, 1000, 500, "0.0024"),
        ("user:alice", LITE): (2, 667, 0, "0.00004002"),
        ("user:carol", LITE): (1, 333, 0, "0.00001998"),
    }
    assert document["estimate"] is True and "CloudTrail" in document["method"]
    assert Decimal(document["total_usd"]) == Decimal("0.0072") + Decimal("0.0024") + Decimal("0.00006")
    assert {row["principal"]: row["team"] for row in document["rows"]}["user:alice"] == "data"


def test_the_table_and_csv_say_estimate_too(cli: OperatorCli, stack, trail) -> None:
    day = clock.now() - timedelta(days=1)
    since = day.date().isoformat()
    for _ in range(2):
        trail.add_response("lookup_events", {"Events": [event("Converse", "dave", PRO, day)]})
    put_tokens(stack, PRO, "InputTokenCount", day, 1000)  # 1000 * 0.8e-6 = 0.0008
    table = cli.ok("estimate", "--since", since, "--until", since)
    assert table.startswith("ESTIMATE of Bedrock spend")
    assert "estimated total" in table and table.rstrip().splitlines()[-1].startswith("estimate: calls per")
    [row] = list(
        csv.DictReader(io.StringIO(cli.ok("estimate", "--since", since, "--until", since, "--format", "csv")))
    )
    assert (row["estimate"], row["principal"], row["cost_usd"]) == ("true", "user:dave", "0.0008")


def test_a_period_older_than_cloudtrail_keeps_is_refused(cli: OperatorCli) -> None:
    old = (clock.now() - timedelta(days=120)).date().isoformat()
    err = cli.fails(2, "estimate", "--since", old, "--until", (clock.now().date()).isoformat())
    assert "CloudTrail's LookupEvents keeps 90 days" in err
