"""The rules a log message keeps before it is metered (budgetkeeper.domain.record_rules).

Stated as cases through `parse_invocation`, so a faster decoder swapped into `decode_message` is
checked against the same rules: every case either parses or is one MalformedEvent with its reason,
never another exception.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from budgetkeeper.domain.log_records import MalformedEvent, parse_invocation
from budgetkeeper.domain.record_rules import (
    MAX_IDENTITY_ARN_BYTES,
    MAX_METADATA_VALUE_CHARS,
    MAX_MODEL_ID_CHARS,
    PARTITION_KEY_BYTES_MAX,
    SORT_KEY_BYTES_MAX,
    decode_message,
)
from budgetkeeper.domain.scopes import parse_identity_arn
from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.storage.keys import rollup_bucket
from devkit.harness.logs import load_invocation_log, log_message


def text_of(**fields: Any) -> str:
    record = load_invocation_log("converse_request_metadata")
    record.update(fields)
    return log_message(record)


def replaced(old: str, new: str) -> str:
    text = text_of()
    assert old in text
    return text.replace(old, new, 1)


def nested(depth: int) -> str:
    return replaced('"schemaType"', '"deep":' + "[" * depth + "]" * depth + ',"schemaType"')


REJECTED = {
    "nested 5,000 levels": (nested(5_000), "JSON nested deeper than the decoder can read"),
    "nested 100,000 levels": (nested(100_000), "JSON nested deeper than the decoder can read"),
    "identity twice": (
        replaced('"identity":', '"identity":{"arn":"arn:aws:iam::111122223333:user/x"},"identity":'),
        "ambiguous JSON: key 'identity' appears twice",
    ),
    "a key twice deep in a body": (
        replaced('"schemaType"', '"body":{"a":{"k":1,"k":2}},"schemaType"'),
        "ambiguous JSON: key 'k' appears twice",
    ),
    "an integer of 5,000 digits": (
        replaced('"schemaType"', '"n":' + "9" * 5_000 + ',"schemaType"'),
        "not JSON",
    ),
    "not an object": ("[1, 2]", "not a JSON object but a JSON list"),
    "model id over the limit": (text_of(modelId="m" * (MAX_MODEL_ID_CHARS + 1)), "modelId of 513 characters"),
    "model id with a space": (
        text_of(modelId="amazon nova"),
        "modelId of 11 characters ('amazon nova') is not printable ASCII",
    ),
    "model id not ASCII": (text_of(modelId="amazon.növa"), "is not printable ASCII without spaces"),
    "region not a region": (
        text_of(region="us-east-1#x"),
        "region of 11 characters ('us-east-1#x') is not an AWS region name",
    ),
    "region too long": (text_of(region="r" * 21), "is not an AWS region name"),
    "account not 12 digits": (
        text_of(accountId="12345"),
        "accountId of 5 characters ('12345') is not a 12-digit AWS account id",
    ),
    "identity ARN over the limit": (
        text_of(identity={"arn": "a" * (MAX_IDENTITY_ARN_BYTES + 1)}),
        "identity.arn of 1025 bytes is over 1024",
    ),
    "app claim over Bedrock's limit": (
        text_of(requestMetadata={"app": "a" * (MAX_METADATA_VALUE_CHARS + 1)}),
        "requestMetadata 'app' is over Bedrock's limits",
    ),
    "metadata key over Bedrock's limit": (
        text_of(requestMetadata={"k" * 257: "v"}),
        "is over Bedrock's limits",
    ),
    "timestamp before datetime can shift it": (
        text_of(timestamp="0001-01-01T00:30:00+01:00"),
        "is not an ISO-8601 date and time",
    ),
    "timestamp at datetime's end": (text_of(timestamp="9999-12-31T23:59:59Z"), "is outside 2020 to 9000"),
    "timestamp before Bedrock": (text_of(timestamp="1999-12-31T23:59:59Z"), "is outside 2020 to 9000"),
}


@pytest.mark.parametrize("case", list(REJECTED))
def test_a_message_breaking_a_rule_is_one_malformed_event_with_its_reason(case: str) -> None:
    message, reason = REJECTED[case]

    with pytest.raises(MalformedEvent) as raised:
        parse_invocation(message)

    assert raised.value.reason.startswith(reason) or reason in raised.value.reason


@pytest.mark.parametrize(
    "message",
    [
        nested(100),
        text_of(modelId="m" * MAX_MODEL_ID_CHARS),
        text_of(modelId="arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3d4e5f6"),
        text_of(region="us-gov-west-1", timestamp="2026-03-01T01:30:00+01:00"),
        text_of(requestMetadata={"app": "a" * MAX_METADATA_VALUE_CHARS, "k" * 256: ""}),
        text_of(identity={"arn": "arn:aws:iam::111122223333:user/" + "p/" * 250 + "u" * 64}),
        text_of(identity={"arn": "arn:aws:iam::111122223333:user/alicé"}),
    ],
    ids=[
        "nested 100",
        "model at limit",
        "profile arn",
        "gov region, zone",
        "metadata at limit",
        "long path",
        "unicode arn",
    ],
)
def test_messages_within_the_rules_parse(message: str) -> None:
    assert parse_invocation(message).request_id


def test_bytes_decode_by_the_same_rules() -> None:
    with pytest.raises(MalformedEvent, match="not JSON"):
        decode_message(b'{"a": "\xff"}')
    assert decode_message(json.dumps({"a": [1]}).encode()) == {"a": [1]}


def test_the_longest_fields_the_rules_allow_fit_dynamodbs_keys() -> None:
    # The rollup sort key with the longest model, region and tier name
    longest_tier = max((tier for tier in ServiceTier), key=len)
    bucket = rollup_bucket("2026-01-01T00", "m" * MAX_MODEL_ID_CHARS, "r" * 20, longest_tier)
    assert len(bucket.encode()) <= SORT_KEY_BYTES_MAX
    # An unknown caller's scope with the longest ARN, and an app claim, as totals keys with a window
    unknown = parse_identity_arn("a" * MAX_IDENTITY_ARN_BYTES).principal_scope
    for scope in (unknown, "app:" + "a" * MAX_METADATA_VALUE_CHARS):
        assert len(f"{scope}|days:999@2026-01-01".encode()) <= PARTITION_KEY_BYTES_MAX
