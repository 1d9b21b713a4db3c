"""A batch job run in another Region, metered at home: the regional collector's EventBridge rules
forward Bedrock's events of their Region to the home Region's default bus, where the home stack's
rules (UnloggedSpendFunction's patterns) take them; end to end on moto's EventBridge.

What moto can and cannot show: moto matches event patterns and forwards to an event bus in another
Region, so the routing is real here, from the templates' own patterns. moto delivers to SQS but runs
no Lambda target, so the home rules' target is a queue standing in for the function; and moto's
cross-Region forwarding rebuilds the event (its `time`, `region` and `resources` become moto's own),
where AWS delivers it unchanged: the function is then invoked with the event as Bedrock sent it,
once the test has seen its detail arrive home.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3

from budgetkeeper.storage.keys import line_partition
from budgetkeeper.storage.readers import scope_rollups
from devkit.harness.bedrock_events import (
    batch_job_created,
    batch_job_ended,
    batch_manifest,
    mantle_inference,
    write_batch_outputs,
)
from devkit.harness.lambdas import invoke
from devkit.harness.template import REPO_ROOT, load_template
from tests.timeline import now_iso

ACCOUNT = "123456789012"
HOME, AWAY = "us-east-1", "eu-west-1"
DAVE = f"arn:aws:iam::{ACCOUNT}:user/dave"
JOB = f"arn:aws:bedrock:{AWAY}:{ACCOUNT}:model-invocation-job/eu7f3a"
SONNET_45_EU = "eu.anthropic.claude-sonnet-4-5-20250929-v1:0"
OUTPUT = "s3://batch-out-eu/results/"
# The model's batch rates (input, output), USD per 1M tokens: the bundled table's us-east-1 ones.
BATCH_IN, BATCH_OUT, MILLION = Decimal("1.65"), Decimal("8.25"), Decimal(1_000_000)


def collector_rules() -> dict[str, dict[str, Any]]:
    resources = load_template(REPO_ROOT / "templates" / "regional-collector.yaml")["Resources"]
    return {
        name: resource["Properties"]["EventPattern"]
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Events::Rule"
    }


def home_rules() -> dict[str, dict[str, Any]]:
    events = load_template()["Resources"]["UnloggedSpendFunction"]["Properties"]["Events"]
    return {name: e["Properties"]["Pattern"] for name, e in events.items() if e["Type"] == "EventBridgeRule"}


def wire(stack: Any) -> tuple[Any, str]:
    """The collector's rules in AWAY, targeting the home bus; the home stack's rules in HOME,
    targeting a queue that stands in for UnloggedSpendFunction. Returns AWAY's events client and
    the queue's URL."""
    away = boto3.client("events", region_name=AWAY)
    for name, pattern in collector_rules().items():
        away.put_rule(Name=name, EventPattern=json.dumps(pattern))
        target = {"Id": "home-bus", "Arn": f"arn:aws:events:{HOME}:{ACCOUNT}:event-bus/default"}
        away.put_targets(Rule=name, Targets=[{**target, "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/forward"}])
    sqs = boto3.client("sqs", region_name=HOME)
    queue = sqs.create_queue(QueueName="unlogged-spend-function")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    home = boto3.client("events", region_name=HOME)
    for name, pattern in home_rules().items():
        home.put_rule(Name=name, EventPattern=json.dumps(pattern))
        home.put_targets(Rule=name, Targets=[{"Id": "function", "Arn": queue_arn}])
    return away, queue


def emit(events: Any, event: dict[str, Any]) -> None:
    """What Bedrock (or CloudTrail) puts on its Region's default bus."""
    entry = {
        "Source": event["source"],
        "DetailType": event["detail-type"],
        "Detail": json.dumps(event["detail"]),
    }
    assert events.put_events(Entries=[entry])["FailedEntryCount"] == 0


def arrived(queue: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=HOME)
    bodies = []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages"):
        for message in messages:
            bodies.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def test_a_batch_job_in_another_region_is_forwarded_home_and_charged_to_its_creator(settings, stack, clock):
    away, queue = wire(stack)
    # Given dave's batch job in eu-west-1: its creation, its progress, its end; a bedrock-mantle
    # call there; and an event of another service
    created = batch_job_created(DAVE, JOB, SONNET_45_EU, OUTPUT, now_iso(), account=ACCOUNT, region=AWAY)
    running = batch_job_ended(JOB, "InProgress", now_iso(), account=ACCOUNT, region=AWAY)
    ended = batch_job_ended(JOB, "Completed", now_iso(), account=ACCOUNT, region=AWAY)
    call = mantle_inference(
        DAVE, "proj_eu", "openai.gpt-oss-120b-1:0", now_iso(), account=ACCOUNT, region=AWAY
    )
    other = {
        **created,
        "source": "aws.ec2",
        "detail": {**created["detail"], "eventSource": "ec2.amazonaws.com"},
    }
    # When they are put on eu-west-1's default bus
    for event in (created, running, ended, call, other):
        emit(away, event)
    # Then what the home stack meters arrives at its function's rules, and only that
    home = arrived(queue)
    assert sorted(json.dumps(event["detail"], sort_keys=True) for event in home) == sorted(
        json.dumps(event["detail"], sort_keys=True) for event in (created, ended, call)
    )
    # And, delivered as AWS delivers them, the job is charged to dave at the batch rate, in eu-west-1
    write_batch_outputs(stack.client("s3"), OUTPUT, JOB, batch_manifest(1_000_000, 200_000, 100), [])
    assert invoke("UnloggedSpendFunction", created)["recorded"] == JOB
    assert invoke("UnloggedSpendFunction", ended)["charged"]
    assert invoke("UnloggedSpendFunction", call)["counted"] == "proj_eu"
    [rollup] = scope_rollups("user:dave")
    assert (rollup.region, rollup.service_tier, rollup.model) == (AWAY, "batch", SONNET_45_EU)
    assert rollup.cost_usd == (1_000_000 * BATCH_IN + 200_000 * BATCH_OUT) / MILLION
    # flagged: the bundled table has no eu-west-1 row of the model
    assert rollup.region_fallback_calls == 1
    [line] = scope_rollups(line_partition(now_iso()[:10]))
    assert (line.operation, line.region, line.identity_arn) == ("batch", AWAY, DAVE)
