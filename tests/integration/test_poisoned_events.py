"""One caller's poisoned event never stops metering for the rest of its batch (issue 25).

Each case sends a victim's call and one poisoned event, in separate Firehose records of one batch,
through the real UsageCalculatorFunction handler on moto. Before per-event isolation each of them
failed the whole batch (RecursionError, DynamoDB's ValidationException on a key, OverflowError) or
charged an ambiguous record to somebody.
"""

from __future__ import annotations

import json

import pytest

from budgetkeeper.core import clock
from budgetkeeper.storage.readers import scope_rollups
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, firehose_event
from tests.integration.test_usage_calculator import ACCOUNT, NOVA, expected_cost, message

VICTIM = f"arn:aws:sts::{ACCOUNT}:assumed-role/Worker/victim"
MALLORY = f"arn:aws:sts::{ACCOUNT}:assumed-role/Worker/mallory"


def poisoned(replace: tuple[str, str] | None = None, **fields: object) -> str:
    """Mallory's call with `fields` set and, then, one piece of its JSON text replaced verbatim."""
    record = json.loads(message(MALLORY, NOVA, 1000, 100))
    record.update(fields)
    text = json.dumps(record, separators=(",", ":"))
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    return text


def nested_body(depth: int) -> tuple[str, str]:
    return ('"inputTokenCount":1000', '"inputTokenCount":1000,"inputBodyJson":' + "[" * depth + "]" * depth)


CASES = {
    "nested 5,000 levels deep": (lambda: poisoned(nested_body(5_000)), "nested deeper"),
    "model id of 1,001 characters": (lambda: poisoned(modelId="m" * 1_001), "modelId of 1001 characters"),
    "app claim of 2,100 characters": (
        lambda: poisoned(requestMetadata={"app": "a" * 2_100}),
        "requestMetadata 'app' is over Bedrock's limits",
    ),
    "identity ARN of 3,000 characters": (
        lambda: poisoned(identity={"arn": "arn:aws:sts::" + "x" * 3_000}),
        "identity.arn of 3013 bytes is over 1024",
    ),
    "timestamp at datetime's lower edge": (
        lambda: poisoned(timestamp="0001-01-01T00:30:00+01:00"),
        "is not an ISO-8601 date and time",
    ),
    "timestamp at datetime's upper edge": (lambda: poisoned(timestamp="9999-12-31T23:59:59Z"), "is outside"),
    "two identity keys": (
        lambda: poisoned(('"identity":', f'"identity":{{"arn":"{VICTIM}"}},"identity":')),
        "ambiguous JSON: key 'identity' appears twice",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_victim_is_metered_and_the_poisoned_event_quarantined(settings, stack, capsys, case):
    # Given a batch with the victim's call and, in another record, one poisoned event
    make_poison, reason = CASES[case]
    poison = make_poison()
    victim = cloudwatch_payload([message(VICTIM, NOVA, 1000, 100)])
    # (a timestamp of its own: the harness would read it from the poisoned message)
    attacker = cloudwatch_payload([poison], timestamp_ms=int(clock.now().timestamp() * 1000))

    # When the handler meters it (it must not raise)
    response = invoke("UsageCalculatorFunction", firehose_event([victim, attacker]))

    # Then the victim's call is metered exactly, and nothing is charged to Mallory or by her claim
    assert [record["result"] for record in response["records"]] == ["Ok", "Dropped"]
    victim_rollups = list(scope_rollups("session:Worker/victim"))
    assert [(r.calls, r.cost_usd) for r in victim_rollups] == [(1, expected_cost(NOVA, 1000, 100))]
    assert list(scope_rollups("session:Worker/mallory")) == []
    # and the poisoned event is quarantined verbatim with its reason, and counted
    lines = quarantined_lines(stack, settings)
    assert [line["message"] for line in lines] == [poison]
    assert reason in lines[0]["reason"]
    metrics_line = next(
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"RecordsMetered"' in line
    )
    assert metrics_line["BadEvents"] == [1.0] and metrics_line["RecordsMetered"] == [1.0]


def test_a_defect_one_event_exposes_quarantines_that_event_only(settings, stack, monkeypatch):
    # Given attribution fails on Mallory's calls with an error no rule foresaw
    from budgetkeeper.metering import meter

    real_attribute = meter.attribute

    def attribute(invocation, **kwargs):
        if invocation.identity_arn == MALLORY:
            raise KeyError("a defect")
        return real_attribute(invocation, **kwargs)

    monkeypatch.setattr(meter, "attribute", attribute)
    batch = [cloudwatch_payload([message(VICTIM, NOVA, 1000, 100)]), cloudwatch_payload([poisoned()])]

    # When the batch is metered
    invoke("UsageCalculatorFunction", firehose_event(batch))

    # Then the victim is metered, Mallory's event is quarantined with the error as its reason
    assert sum(r.calls for r in scope_rollups("session:Worker/victim")) == 1
    [line] = quarantined_lines(stack, settings)
    assert line["reason"] == "cannot be metered: KeyError: 'a defect'"


def quarantined_lines(stack, settings) -> list[dict]:
    s3 = stack.client("s3")
    bucket = settings.archive_bucket
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])
    return [
        json.loads(line)
        for obj in listed
        for line in s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].iter_lines()
    ]
