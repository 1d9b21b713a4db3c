"""The EventBridge rules of Bedrock spend no invocation log records: UnloggedSpendFunction's in
template.yaml, and the regional collector's, which forward the same events of its Region to the home
Region's default bus (templates/regional-collector.yaml)."""

from __future__ import annotations

import pytest

from devkit.harness.template import REPO_ROOT, load_template
from tests.deployed_template import concrete_plain_template

COLLECTOR = REPO_ROOT / "templates" / "regional-collector.yaml"
HOME_REGION = "us-west-2"
HOME_BUS = f"arn:aws:events:{HOME_REGION}:123456789012:event-bus/default"
# The collector's rule forwarding what each UnloggedSpendFunction rule meters.
FORWARDED = {
    "BatchJobCreated": "BatchJobCreatedForwardRule",
    "BatchJobEnded": "BatchJobEndedForwardRule",
    "MantleCalls": "MantleCallsForwardRule",
}


def home_rules() -> dict[str, dict]:
    events = load_template()["Resources"]["UnloggedSpendFunction"]["Properties"]["Events"]
    return {
        name: event["Properties"]["Pattern"]
        for name, event in events.items()
        if event["Type"] == "EventBridgeRule"
    }


def collector() -> dict:
    parameters = {"HomeRegion": HOME_REGION, "DeliveryStreamName": "budgetkeeper-usage"}
    return concrete_plain_template(load_template(COLLECTOR), parameters)["Resources"]


def test_the_function_meters_batch_jobs_and_counts_mantle_calls_from_cloudtrail():
    rules = home_rules()
    assert set(rules) == set(FORWARDED)
    assert rules["MantleCalls"] == {
        "detail-type": ["AWS API Call via CloudTrail"],
        "detail": {
            "eventSource": ["bedrock-mantle.amazonaws.com"],
            "eventName": ["CreateInference"],
            "errorCode": [{"exists": False}],
        },
    }
    assert rules["BatchJobEnded"]["detail"]["status"] == ["Completed", "PartiallyCompleted", "Stopped"]


@pytest.mark.parametrize(("home_rule", "forward_rule"), sorted(FORWARDED.items()))
def test_the_collector_forwards_what_each_home_rule_meters_to_the_home_bus(home_rule, forward_rule):
    resources = collector()
    rule = resources[forward_rule]["Properties"]
    # The same events as the home stack's rule, from the collector's Region
    assert rule["EventPattern"] == home_rules()[home_rule]
    assert rule.get("EventBusName", "default") == "default" and rule.get("State", "ENABLED") == "ENABLED"
    # To the home Region's default bus, with a role, and a dead-letter queue for what it cannot send
    [target] = rule["Targets"]
    assert target["Arn"] == HOME_BUS
    assert target["RoleArn"].startswith("arn:aws:iam::123456789012:role/budgetkeeper-HomeEventBusRole-")
    assert target["DeadLetterConfig"]["Arn"].startswith(
        "arn:aws:sqs:us-east-1:123456789012:budgetkeeper-UnforwardedEventsQueue-"
    )


def test_the_forwarding_role_may_put_events_on_the_home_bus_only():
    role = collector()["HomeEventBusRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "events.amazonaws.com"} and trust["Action"] == "sts:AssumeRole"
    grants = [s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]]
    assert grants == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": HOME_BUS}]


def test_unforwarded_events_are_kept_and_alarmed_in_the_collectors_region():
    resources = load_template(COLLECTOR)["Resources"]
    assert resources["UnforwardedEventsQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    [grant] = resources["UnforwardedEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert grant["Principal"] == {"Service": "events.amazonaws.com"} and grant["Action"] == "sqs:SendMessage"
    alarm = resources["ForwardingFailedAlarm"]["Properties"]
    queues = [
        query["MetricStat"]["Metric"]["Dimensions"][0]["Value"]
        for query in alarm["Metrics"]
        if "MetricStat" in query and query["MetricStat"]["Metric"]["Namespace"] == "AWS/SQS"
    ]
    assert {"Fn::GetAtt": ["UnforwardedEventsQueue", "QueueName"]} in queues
    (expression,) = [query["Expression"] for query in alarm["Metrics"] if query.get("ReturnData")]
    assert "FILL(unforwardedEvents, 0)" in expression
