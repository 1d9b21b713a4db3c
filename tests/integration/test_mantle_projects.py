"""bedrock-mantle projects metered from CloudWatch and suspended by tag, end to end on moto.

moto has no AWS/BedrockMantle metrics: the CloudWatch client is botocore's Stubber, answering as
the ListMetrics and GetMetricData references document. botocore has no bedrock-mantle client at
all: the project's tags are a small fake with the three tagging calls (FakeMantle), standing where
`boto3.client("bedrock-mantle")` would.

Expected costs come from unit prices written here by hand (USD per 1M tokens, gpt-oss-120b's
bundled standard rates).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from budgetkeeper.core import clock as product_clock
from budgetkeeper.domain.scopes import project_arn
from budgetkeeper.enforcement.project_tags import SUSPENDED_TAG
from budgetkeeper.metering.mantle import (
    MODEL_DIMENSION,
    NAMESPACE,
    PROJECT_DIMENSION,
    settled_periods,
)
from budgetkeeper.storage.keys import line_partition
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import BudgetItem, TotalItem
from devkit.harness.bedrock_events import scheduled_event
from devkit.harness.lambdas import invoke
from devkit.harness.workflow import wait_for_execution, wait_for_state
from tests.timeline import now_iso, window_id

ACCOUNT = "123456789012"
GPT_OSS = "openai.gpt-oss-120b-1:0"
IN_RATE, OUT_RATE = Decimal("0.15"), Decimal("0.6")
MILLION = Decimal(1_000_000)


class FakeMantle:
    """The tagging calls of a bedrock-mantle client: tags kept per project ARN, calls logged."""

    def __init__(self) -> None:
        self.tags: dict[str, dict[str, str]] = {}
        self.calls: list[tuple[str, str]] = []

    def list_tags_for_resource(self, *, resourceARN: str) -> dict[str, Any]:
        self.calls.append(("ListTagsForResource", resourceARN))
        return {"tags": [{"key": k, "value": v} for k, v in self.tags.get(resourceARN, {}).items()]}

    def tag_resource(self, *, resourceARN: str, tags: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(("TagResource", resourceARN))
        self.tags.setdefault(resourceARN, {}).update({tag["key"]: tag["value"] for tag in tags})
        return {}

    def untag_resource(self, *, resourceARN: str, tagKeys: list[str]) -> dict[str, Any]:
        self.calls.append(("UntagResource", resourceARN))
        if resourceARN not in self.tags:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "UntagResource")
        for key in tagKeys:
            self.tags[resourceARN].pop(key, None)
        return {}


def metric(project: str, model: str) -> dict[str, Any]:
    dimensions = [{"Name": PROJECT_DIMENSION, "Value": project}, {"Name": MODEL_DIMENSION, "Value": model}]
    return {"Namespace": NAMESPACE, "MetricName": "InputTokens", "Dimensions": dimensions}


@contextmanager
def mantle_metrics(
    monkeypatch: pytest.MonkeyPatch, usage: dict[tuple[str, str], tuple[int, int]], sweeps: int = 1
) -> Iterator[FakeMantle]:
    """CloudWatch (stubbed) holding `usage` (input, output tokens per project and model) in the
    latest settled period, for `sweeps` sweeps; the fake bedrock-mantle client for the deny steps."""
    cloudwatch = boto3.client("cloudwatch", region_name="us-east-1")
    mantle = FakeMantle()
    real = boto3.client

    def client(*args: Any, **kwargs: Any) -> Any:
        name = args[0] if args else kwargs.get("service_name")
        if name == "cloudwatch":
            return cloudwatch
        if name == "bedrock-mantle":
            return mantle
        return real(*args, **kwargs)

    monkeypatch.setattr(boto3, "client", client)
    period = settled_periods(product_clock.now())[-1]
    pairs = list(usage)
    with Stubber(cloudwatch) as stub:
        for _ in range(sweeps):
            stub.add_response("list_metrics", {"Metrics": [metric(*pair) for pair in pairs]})
            results = [
                {"Id": f"q{2 * index + kind}", "Timestamps": [period], "Values": [float(usage[pair][kind])]}
                for index, pair in enumerate(pairs)
                for kind in (0, 1)
            ]
            stub.add_response("get_metric_data", {"MetricDataResults": results})
        yield mantle
        stub.assert_no_pending_responses()


def sweep() -> dict[str, Any]:
    return invoke("UnloggedSpendFunction", scheduled_event(ACCOUNT, now_iso()))


def cost(input_tokens: int, output_tokens: int) -> Decimal:
    return (input_tokens * IN_RATE + output_tokens * OUT_RATE) / MILLION


def test_a_projects_metric_data_is_priced_and_charged_once_per_period(settings, stack, clock, monkeypatch):
    # Given a budget on project proj_a, and two projects' tokens in the latest settled period
    BudgetItem("project:proj_a", "daily", limit_usd=Decimal(100)).save()
    usage = {("proj_a", GPT_OSS): (2_000_000, 500_000), ("proj_b", GPT_OSS): (100_000, 10_000)}
    # When two sweeps read the same period
    with mantle_metrics(monkeypatch, usage, sweeps=2):
        first, second = sweep(), sweep()
    # Then each project is charged once, at the model's standard rate, to the nano-dollar
    assert (first["charged"], second["charged"]) == (1, 0)
    assert TotalItem.get("project:proj_a|daily", window_id("daily")).spent_usd == cost(2_000_000, 500_000)
    [rollup] = scope_rollups("project:proj_b")
    assert (rollup.cost_usd, rollup.input_tokens) == (cost(100_000, 10_000), 100_000)
    # And the account is charged both, and the usage lines say bedrock-mantle
    account = sum(item.cost_usd for item in scope_rollups(f"account:{ACCOUNT}"))
    assert account == cost(2_100_000, 510_000)
    period = settled_periods(product_clock.now())[-1]
    lines = list(scope_rollups(line_partition(period.strftime("%Y-%m-%d"))))
    assert {(line.operation, line.principal) for line in lines} == {
        ("mantle", "project:proj_a"),
        ("mantle", "project:proj_b"),
    }
    assert {line.identity_arn for line in lines} == {
        project_arn("us-east-1", ACCOUNT, name) for name in ("proj_a", "proj_b")
    }


def test_a_project_budget_crossing_runs_the_workflow_and_the_project_is_denied(
    stack, workflow, clock, monkeypatch
):
    # Given project proj_a's daily budget of 1 USD
    BudgetItem("project:proj_a", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
    workflow.max_wait_seconds = 3
    # When a sweep charges it 1.50 USD of tokens (10M input at 0.15)
    with mantle_metrics(monkeypatch, {("proj_a", GPT_OSS): (10_000_000, 0)}) as mantle:
        assert sweep()["charged"] == 1
        # Then the crossing runs the workflow, which suspends the project by tagging it
        run = next(e for e in stack.executions() if e["name"].startswith("exceeded"))
        wait_for_state(stack, run["executionArn"], "WaitForRefresh")
        arn = project_arn("us-east-1", ACCOUNT, "proj_a")
        assert mantle.tags[arn] == {SUSPENDED_TAG: "true"}
        assert BudgetItem.get("project:proj_a", "daily").status == "suspended"
        # And the window's refresh lifts the tag
        assert wait_for_execution(stack, run["executionArn"])["status"] == "SUCCEEDED"
        assert mantle.tags[arn] == {}
        assert ("TagResource", arn) in mantle.calls and ("UntagResource", arn) in mantle.calls


def test_settled_periods_end_before_the_settle_delay():
    now = product_clock.now()
    periods = settled_periods(now)
    assert periods[-1] + timedelta(minutes=5) <= now - timedelta(minutes=10)
    assert len(periods) == 24 and periods == sorted(periods)


def test_a_sweep_reads_the_metrics_of_every_region_in_use(settings, stack, clock, monkeypatch):
    # Given eu-west-1 in the `regions` setting, and a project there with tokens in the latest period
    stack.client("ssm").put_parameter(Name="/budgetkeeper/local/regions", Value="eu-west-1", Type="String")
    period = settled_periods(product_clock.now())[-1]
    clients = {
        region: boto3.client("cloudwatch", region_name=region) for region in ("us-east-1", "eu-west-1")
    }
    real = boto3.client

    def client(*args: Any, **kwargs: Any) -> Any:
        name = args[0] if args else kwargs.get("service_name")
        return clients[kwargs["region_name"]] if name == "cloudwatch" else real(*args, **kwargs)

    monkeypatch.setattr(boto3, "client", client)
    with Stubber(clients["us-east-1"]) as home, Stubber(clients["eu-west-1"]) as away:
        home.add_response("list_metrics", {"Metrics": []})
        away.add_response("list_metrics", {"Metrics": [metric("proj_eu", GPT_OSS)]})
        results = [
            {"Id": f"q{kind}", "Timestamps": [period], "Values": [float(value)]}
            for kind, value in enumerate((1_000_000, 100_000))
        ]
        away.add_response("get_metric_data", {"MetricDataResults": results})
        # When the schedule's sweep runs in the home Region
        assert sweep()["charged"] == 1
        home.assert_no_pending_responses()
        away.assert_no_pending_responses()
    # Then the eu-west-1 project is charged, in eu-west-1, as its own project ARN
    [rollup] = scope_rollups("project:proj_eu")
    assert (rollup.region, rollup.cost_usd) == ("eu-west-1", cost(1_000_000, 100_000))
    [line] = scope_rollups(line_partition(period.strftime("%Y-%m-%d")))
    assert line.identity_arn == project_arn("eu-west-1", ACCOUNT, "proj_eu")
