"""Every metric the dashboard and the alarms in template.yaml name is one the functions emit.

The functions run for real (usage calculator, monitor, the enforcement workflow through the CLI),
their EMF output is captured from stdout, and each metric of our namespace that the template names
must have been emitted with that name and exactly those dimensions (names and, where the template
fixes them, values). Metrics of AWS namespaces are AWS's own: each must be one this test knows AWS
publishes, with its documented dimensions, pointing at this stack's resources.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

from budgetkeeper.core.observability import metrics
from budgetkeeper_cli.main import main
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.template import load_template
from tests.integration.test_cli import Cli, cli  # noqa: F401 - the `cli` fixture, used by name
from tests.reliability.faults import FaultInjector, faults  # noqa: F401 - the `faults` fixture, used by name
from tests.timeline import now_iso

NAMESPACE = "BedrockBudgetkeeper"
# AWS's own metrics the template may name: (namespace, metric) -> the dimension names it is published with.
AWS_METRICS: dict[tuple[str, str], frozenset[str]] = {
    ("AWS/Bedrock", "Invocations"): frozenset(),  # "across all model IDs"
    ("AWS/States", "ExecutionsFailed"): frozenset({"StateMachineArn"}),
    ("AWS/States", "ExecutionsTimedOut"): frozenset({"StateMachineArn"}),
    ("AWS/SNS", "NumberOfNotificationsFailed"): frozenset({"TopicName"}),
    ("AWS/Lambda", "Errors"): frozenset({"FunctionName"}),
    ("AWS/SQS", "ApproximateNumberOfMessagesVisible"): frozenset({"QueueName"}),
}
_SEARCH = re.compile(r"SEARCH\('\{([^}]*)\}\s+MetricName=\"([^\"]+)\"([^']*)'")
_SEARCH_VALUE = re.compile(r'(\w+)="([^"]*)"')
_PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


Named = tuple[str, str, dict[str, str | None]]  # namespace, metric, dimension -> value (None: any)


def emitted(stdout: str) -> Iterator[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every EMF line in `stdout`."""
    for line in stdout.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dimensions = {name: document[name] for name in dimension_set}
                for metric in directive["Metrics"]:
                    yield directive["Namespace"], metric["Name"], dimensions


def dashboard_metrics(template: dict[str, Any]) -> Iterator[Named]:
    body_template, variables = template["Resources"]["OperationsDashboard"]["Properties"]["DashboardBody"][
        "Fn::Sub"
    ]
    body = json.loads(_PLACEHOLDER.sub(lambda match: f"<{match.group(1)}>", body_template))
    for widget in body["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            if isinstance(entry[0], dict):  # an expression
                search = _SEARCH.search(entry[0]["expression"])
                assert search, entry
                namespace, *dimension_names = [part.strip() for part in search.group(1).split(",")]
                values = dict(_SEARCH_VALUE.findall(search.group(3)))
                yield namespace, search.group(2), {name: values.get(name) for name in dimension_names}
                continue
            plain = [part for part in entry if isinstance(part, str)]
            namespace, metric, *pairs = plain
            yield namespace, metric, dict(zip(pairs[::2], pairs[1::2], strict=True))
    assert set(variables) >= {"StateMachineArn", "EventsTopicName"}


def alarm_metrics(template: dict[str, Any]) -> Iterator[Named]:
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        properties = resource["Properties"]
        stats = [
            query["MetricStat"]["Metric"] for query in properties.get("Metrics", []) if "MetricStat" in query
        ]
        if "MetricName" in properties:
            stats.append(properties)
        for metric in stats:
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
            yield metric["Namespace"], metric["MetricName"], dimensions


def run_every_function(operator: Cli, capsys: pytest.CaptureFixture[str], sns: FaultInjector) -> str:
    """Calculator (a team, an unknown model, a bad event, a threshold crossed), monitor, workflow;
    then a workflow failure reported while SNS refuses every Publish."""
    from budgetkeeper.storage.tables import TeamItem

    outputs: list[str] = []
    TeamItem("user:alice", team="research").save()
    operator.ok("budget", "set", "user:alice", "--window", "daily", "--limit", "1", "--grace", "0")
    arn = "arn:aws:iam::111122223333:user/alice"
    messages = [
        converse_message(arn, "amazon.nova-pro-v1:0", 2_000_000, 0, timestamp=now_iso()),
        converse_message(arn, "example.model-nobody-prices-v9", 10, 10, timestamp=now_iso()),
        "{not json",
    ]
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload(messages), b"not a payload"]))
    outputs.append(capsys.readouterr().out)
    operator.wait_until_suspended("exceeded")  # the crossing started a run; it suspended alice
    invoke("BudgetMonitorFunction", {})
    outputs.append(capsys.readouterr().out)
    # (called directly: the Cli helper keeps EMF lines out of what it returns)
    assert (
        main(["restore", "user:alice", "--reason", "metrics test", "--stack-name", operator.stack_name]) == 0
    )
    outputs.append(capsys.readouterr().out)
    failure = {"scope": "user:alice", "window": "daily", "failure": {"Error": "Boom", "Cause": "a test"}}
    invoke("EnforcementFunction", {"task": "report_failure", "state": failure, "execution": "arn:test"})
    outputs.append(capsys.readouterr().out)
    operator.finish_runs()
    outputs.append(capsys.readouterr().out)
    sns.fail("sns", "Publish", "InternalError", status=500, times=10_000)
    invoke(
        "EnforcementFunction", {"task": "report_failure", "state": failure, "execution": "arn:test-sns-down"}
    )
    outputs.append(capsys.readouterr().out)
    return "\n".join(outputs)


def test_every_metric_the_dashboard_and_the_alarms_name_is_emitted(
    cli: Cli,  # noqa: F811
    capsys,
    monkeypatch,
    faults,  # noqa: F811
) -> None:
    # Given the service dimension read from the functions' environment, as in Lambda, where it is
    # set before the module is imported (in this shared process another test may import it first)
    monkeypatch.setattr(metrics.provider, "service", os.environ["POWERTOOLS_SERVICE_NAME"])
    # and every function run once through what it is there for, its EMF captured
    seen = list(emitted(run_every_function(cli, capsys, faults)))
    template = load_template()
    named = [*dashboard_metrics(template), *alarm_metrics(template)]
    assert len(named) >= 15
    for namespace, metric, dimensions in named:
        if namespace != NAMESPACE:
            # An AWS metric: one AWS publishes, with its documented dimensions
            assert (namespace, metric) in AWS_METRICS, (namespace, metric)
            assert set(dimensions) == AWS_METRICS[(namespace, metric)], (namespace, metric, dimensions)
            continue
        # Ours: emitted with this name and exactly these dimensions (and values, where fixed)
        matches = [
            found
            for ns, name, found in seen
            if (ns, name) == (namespace, metric)
            and set(found) == set(dimensions)
            and all(value is None or found[key] == value for key, value in dimensions.items())
        ]
        assert matches, f"{metric} {dimensions} is named in template.yaml but never emitted"
    # and the per-model and per-team costs carry the model and team of the calls metered
    costs = {(tuple(sorted(d.items()))) for ns, name, d in seen if name == "CostMeteredUSD"}
    assert (("Model", "amazon.nova-pro-v1:0"), ("service", "budgetkeeper")) in costs
    assert (("Team", "research"), ("service", "budgetkeeper")) in costs
