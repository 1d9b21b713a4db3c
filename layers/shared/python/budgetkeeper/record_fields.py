"""The fields of an invocation log record that the parser reads, decoded by msgspec in one pass.

A record is a few KB, nearly all of it prompt and completion bodies the parser never reads.
`msgspec` decodes straight into these typed dicts and skips every other key without building it,
in about a quarter of `json.loads`'s time on realistic records (bench/bench_metering.py).

What comes out is a plain dict holding the keys declared here, each value exactly as `json.loads`
gives it (`Any`: the same ints, strings, lists and dicts; a duplicate key keeps its last value), so
the rules in `records.py` run unchanged on it. A key a rule reads must be declared here, or the rule
sees it absent. What msgspec refuses (not JSON, a declared object that is not one, NaN, numbers out
of float range, lone surrogates) makes `decode_fields` return None: the caller then decodes with
`json.loads` and the same rules, so every record gets the result and the error message the standard
library gives (tests/unit/test_record_fields.py checks that parity).
"""

from __future__ import annotations

from typing import Any, TypedDict

import msgspec

# Keys with dashes cannot be class attributes: the functional form.
Body = TypedDict(
    "Body",
    {
        "serviceTier": Any,  # Converse
        "service_tier": Any,  # InvokeModel
        "usage": Any,  # the 1-hour share of cache writes
        "amazon-bedrock-guardrailAction": Any,
    },
    total=False,
)
# A body: an object, a stream's list of chunks, or whatever else a record may carry there.
BodyValue = Body | list[Any] | str | int | float | bool | None


class Input(TypedDict, total=False):
    inputTokenCount: Any
    cacheWriteInputTokenCount: Any
    cacheReadInputTokenCount: Any
    inputBodyJson: BodyValue


class Output(TypedDict, total=False):
    outputTokenCount: Any
    outputBodyJson: BodyValue


class Identity(TypedDict, total=False):
    arn: Any


class Record(TypedDict, total=False):
    schemaType: Any
    timestamp: Any
    accountId: Any
    identity: Identity | str | int | float | bool | list[Any] | None
    region: Any
    requestId: Any
    operation: Any
    modelId: Any
    errorCode: Any
    inferenceRegion: Any
    requestMetadata: Any
    input: Input | None
    output: Output | None


_decode = msgspec.json.Decoder(Record).decode


def decode_fields(message: str | bytes) -> Record | None:
    """The record's fields, or None when msgspec refuses it (the caller asks `json.loads` instead)."""
    try:
        return _decode(message)
    except (msgspec.DecodeError, ValueError):  # ValueError: a str with lone surrogates is not UTF-8
        return None
