"""Parity: the fast decoder (budgetkeeper.domain.json_decode: msgspec, checked by orjson) and the
strict one.

record_rules.decode_message takes a line from msgspec when a colon count proves it has no key twice,
and from `json.loads` with its duplicate-key hook otherwise. Each message here is parsed both ways,
the second with the fast decoder switched off (the standard library alone): the same Invocation,
the same price, or the same error message.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest

from budgetkeeper.domain import json_decode, record_rules
from budgetkeeper.domain.log_records import MalformedEvent, parse_invocation
from budgetkeeper.metering.meter import Meter
from budgetkeeper.pricing.table import PriceTable
from devkit.demo_data import generate_day
from devkit.demo_data import teams as demo_teams
from devkit.harness.logs import invocation_log_names, load_invocation_log, log_message
from tests.reliability.test_bad_input import BAD_EVENTS

FIXTURES = invocation_log_names()


@contextmanager
def standard_library_only() -> Iterator[None]:
    """parse_invocation with the strict decoder alone: every message decoded by json.loads and its hook."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(record_rules, "decode_unambiguous", lambda message: None)
        yield


def outcome(parse: Callable[[Any], Any], message: str | bytes) -> tuple[str, Any]:
    try:
        return ("parsed", parse(message))
    except MalformedEvent as error:
        return ("malformed", error.reason)


def assert_parity(message: str | bytes) -> tuple[str, Any]:
    fast = outcome(parse_invocation, message)
    with standard_library_only():
        strict = outcome(parse_invocation, message)
    assert fast == strict, message
    return fast


def edited(name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    record = copy.deepcopy(load_invocation_log(name))
    edit(record)
    return log_message(record)


def test_the_fast_decoder_takes_the_realistic_records_itself() -> None:
    # Given a demo day's records and the sample logs / When decoded / Then the fast decoder takes
    # every one (no fallback), so the parity below is the fast path's, not json.loads against itself.
    lines = [log_message(r) for r in generate_day(date(2026, 11, 23), records=300, seed=3)]
    lines += [log_message(load_invocation_log(name)) for name in FIXTURES]
    for line in lines:
        assert json_decode.decode_unambiguous(line) == json.loads(line)
        assert json_decode.decode_unambiguous(line.encode()) == json.loads(line)


def test_compact_lines_are_proven_by_their_own_re_encoding_as_read_from_a_file_or_a_log_event() -> None:
    # Given compact lines as Bedrock writes them: a log event's message (text), a file's line (bytes
    # ending in a newline, or CRLF) / When decoded with msgspec, the second proof, unavailable
    # Then orjson's re-encoding proves them alone: no line pays for both proofs
    lines = [log_message(r) for r in generate_day(date(2026, 11, 23), records=50, seed=4)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_decode.msgspec.json, "decode", lambda line: pytest.fail("second proof used"))
        for line in lines:
            expected = json.loads(line)
            for message in (line, line.encode(), line.encode() + b"\n", line.encode() + b"\r\n", " " + line):
                assert json_decode.decode_unambiguous(message) == expected


def test_lines_with_spaces_go_straight_to_the_second_proof() -> None:
    # Given lines written with spaces after colons (json.dumps' default), which cannot be orjson's
    # own re-encoding / When decoded with orjson's decoder unavailable / Then msgspec and the colon
    # count decode them alone: no line pays for both proofs
    lines = [json.dumps(r) for r in generate_day(date(2026, 11, 23), records=50, seed=4)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(json_decode.orjson, "loads", lambda line: pytest.fail("first proof tried"))
        for line in lines:
            assert json_decode.decode_unambiguous(line) == json.loads(line)


def test_a_demo_day_gives_the_same_records_and_prices() -> None:
    meter = Meter(prices=PriceTable.bundled(), teams=demo_teams())
    for record in generate_day(date(2026, 11, 23), records=2000, seed=11):
        line = log_message(record)
        for message in (line, line.encode()):
            kind, _ = assert_parity(message)
            assert kind == "parsed"
            fast = meter.meter(message)
            with standard_library_only():
                strict = meter.meter(message)
            assert fast == strict


@pytest.mark.parametrize("name", FIXTURES)
def test_every_sample_log_gives_the_same_record(name: str) -> None:
    line = log_message(load_invocation_log(name))
    assert assert_parity(line)[0] == "parsed"
    assert assert_parity(line.encode())[0] == "parsed"
    assert assert_parity(json.dumps(load_invocation_log(name), indent=2, ensure_ascii=False))[0] == "parsed"


@pytest.mark.parametrize("message", list(BAD_EVENTS.values()), ids=list(BAD_EVENTS))
def test_the_bad_events_give_the_same_error(message: str) -> None:
    assert assert_parity(message)[0] == "malformed"


SAMPLE = json.dumps(load_invocation_log("api_key_user"))
CACHE_1H = json.dumps(load_invocation_log("invoke_model_sonnet45_cache_1h"))
STREAM = log_message(load_invocation_log("invoke_model_stream_anthropic_cache"))


def changed(text: str, old: str, new: str) -> str:
    """`text` with its first `old` replaced (raw JSON the writers would not produce: NaN, 1e400)."""
    assert old in text
    return text.replace(old, new, 1)


# Raw texts the JSON writers would not produce, duplicates, depths, and values of every type where the
# parser reads.
HOSTILE_TEXTS = {
    "empty": "",
    "whitespace": "   ",
    "truncated": SAMPLE[:-7],
    "trailing garbage": SAMPLE + "x",
    "two objects": SAMPLE + SAMPLE,
    "byte order mark": "\ufeff" + SAMPLE,
    "compact, ending in CRLF": STREAM + "\r\n",
    "compact, between tabs and spaces": "\t " + STREAM + " \t\n",
    "compact, after a form feed": "\x0c" + STREAM,
    "compact, before a vertical tab": STREAM + "\x0b",
    "a string": '"ModelInvocationLog"',
    "null": "null",
    "a number": "12",
    "NaN tokens": changed(SAMPLE, '"inputTokenCount": 48', '"inputTokenCount": NaN'),
    "Infinity tokens": changed(SAMPLE, '"inputTokenCount": 48', '"inputTokenCount": Infinity'),
    "1e400 tokens": changed(SAMPLE, '"inputTokenCount": 48', '"inputTokenCount": 1e400'),
    "2**70 tokens": changed(SAMPLE, '"inputTokenCount": 48', f'"inputTokenCount": {2**70}'),
    "-2**70 tokens": changed(SAMPLE, '"inputTokenCount": 48', f'"inputTokenCount": {-(2**70)}'),
    "-0 tokens": changed(SAMPLE, '"inputTokenCount": 48', '"inputTokenCount": -0'),
    "4.8e1 tokens": changed(SAMPLE, '"inputTokenCount": 48', '"inputTokenCount": 4.8e1'),
    "escaped key": changed(SAMPLE, '"schemaType"', '"\\u0073chemaType"'),
    "escaped value": changed(SAMPLE, '"ModelInvocationLog"', '"Model\\u0049nvocationLog"'),
    "lone surrogate escape in the model id": changed(SAMPLE, '"modelId": "', '"modelId": "\\ud800'),
    "lone surrogate escape in a body": changed(CACHE_1H, '"usage": {', '"note": "\\udfff", "usage": {'),
    "duplicate identity": changed(
        SAMPLE,
        '"identity": {',
        '"identity": {"arn": "arn:aws:iam::111122223333:user/mallory"}, "identity": {',
    ),
    "duplicate arn inside identity": changed(
        SAMPLE, '"identity": {', '"identity": {"arn": "arn:aws:iam::111122223333:user/mallory", '
    ),
    "duplicate tier in a body": changed(
        CACHE_1H, '"usage": {', '"service_tier": "flex", "service_tier": "priority", "usage": {'
    ),
    "deep nesting in a body": changed(
        CACHE_1H, '"usage": {', '"deep": ' + "[" * 500 + "]" * 500 + ', "usage": {'
    ),
    "control character escape in the arn": changed(SAMPLE, "user/", "user/\\u0007"),
    "duplicate key deep in a body": changed(
        CACHE_1H, '"usage": {', '"messages": [{"content": [{"text": "a", "text": "b"}]}], "usage": {'
    ),
    "duplicate key hidden by an escaped colon": changed(
        SAMPLE, '"region": "us-east-1"', '"region": "us-east-1", "note": "a\\u003ab", "region": "us-east-1"'
    ),
    "equal keys in different objects": changed(
        CACHE_1H, '"usage": {', '"a": {"k": 1}, "b": {"k": 2}, "usage": {'
    ),
    "nesting at 250": changed(CACHE_1H, '"usage": {', '"deep": ' + "[" * 250 + "]" * 250 + ', "usage": {'),
    "nesting at 300": changed(CACHE_1H, '"usage": {', '"deep": ' + "[" * 300 + "]" * 300 + ', "usage": {'),
    "nesting at 5000": changed(CACHE_1H, '"usage": {', '"deep": ' + "[" * 5000 + "]" * 5000 + ', "usage": {'),
    "an integer of 4301 digits": changed(SAMPLE, '"inputTokenCount": 48', '"inputTokenCount": ' + "9" * 4301),
    "a colon in an escaped key": changed(SAMPLE, '"region"', '"re\\u0067ion"'),
    "invalid escape": changed(SAMPLE, '"modelId": "', '"modelId": "\\x'),
}


@pytest.mark.parametrize("message", list(HOSTILE_TEXTS.values()), ids=list(HOSTILE_TEXTS))
def test_hostile_texts_give_the_same_outcome(message: str) -> None:
    assert_parity(message)
    assert_parity(message.encode("utf-8", "surrogatepass"))


def test_bytes_that_are_not_utf8_give_the_same_error() -> None:
    assert assert_parity(SAMPLE.encode().replace(b"user/", b"user/\xff\xfe"))[0] == "malformed"


ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"a": 1}, {"type": "priority"}]
PLACES: dict[str, Callable[[dict[str, Any], Any], None]] = {
    "schemaType": lambda r, v: r.__setitem__("schemaType", v),
    "identity": lambda r, v: r.__setitem__("identity", v),
    "identity.arn": lambda r, v: r["identity"].__setitem__("arn", v),
    "requestMetadata": lambda r, v: r.__setitem__("requestMetadata", v),
    "errorCode": lambda r, v: r.__setitem__("errorCode", v),
    "inferenceRegion": lambda r, v: r.__setitem__("inferenceRegion", v),
    "input": lambda r, v: r.__setitem__("input", v),
    "output": lambda r, v: r.__setitem__("output", v),
    "input.inputTokenCount": lambda r, v: r["input"].__setitem__("inputTokenCount", v),
    "input.cacheWriteInputTokenCount": lambda r, v: r["input"].__setitem__("cacheWriteInputTokenCount", v),
    "input.inputBodyJson": lambda r, v: r["input"].__setitem__("inputBodyJson", v),
    "output.outputBodyJson": lambda r, v: r["output"].__setitem__("outputBodyJson", v),
    "output.outputBodyJson.usage": lambda r, v: r["output"]["outputBodyJson"].__setitem__("usage", v),
    "input body service_tier": lambda r, v: r["input"]["inputBodyJson"].__setitem__("service_tier", v),
    "input body serviceTier": lambda r, v: r["input"]["inputBodyJson"].__setitem__("serviceTier", v),
    "output body guardrail": lambda r, v: r["output"]["outputBodyJson"].__setitem__(
        "amazon-bedrock-guardrailAction", v
    ),
}


@pytest.mark.parametrize("place", list(PLACES), ids=list(PLACES))
@pytest.mark.parametrize("name", ["invoke_model_sonnet45_cache_1h", "api_key_user", "error_throttling"])
def test_any_value_anywhere_the_parser_reads_gives_the_same_outcome(name: str, place: str) -> None:
    for value in ODD_VALUES:
        try:
            message = edited(name, lambda record: PLACES[place](record, value))  # noqa: B023
        except (KeyError, TypeError):
            continue  # that fixture has no such place
        assert_parity(message)


def test_a_stream_without_top_level_counts_reads_its_chunks_alike() -> None:
    def drop_counts(record: dict[str, Any]) -> None:
        del record["input"]["inputTokenCount"], record["output"]["outputTokenCount"]

    message = edited("invoke_model_stream_anthropic_cache", drop_counts)
    assert assert_parity(message) == assert_parity(message.encode())
    assert assert_parity(STREAM)[0] == "parsed"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("duplicate identity", "malformed"),
        ("duplicate arn inside identity", "malformed"),
        ("duplicate tier in a body", "malformed"),
        ("duplicate key deep in a body", "malformed"),
        ("duplicate key hidden by an escaped colon", "malformed"),
        ("equal keys in different objects", "parsed"),
        ("nesting at 300", "parsed"),
        ("nesting at 5000", "malformed"),
    ],
)
def test_a_key_twice_in_one_object_is_refused_however_it_is_hidden(name: str, kind: str) -> None:
    # Given a line with a key twice in one object (or equal keys in two objects, or deep nesting)
    # When the fast decoder parses it / Then duplicates are malformed, as the strict decoder says
    outcome_kind, reason = assert_parity(HOSTILE_TEXTS[name])
    assert outcome_kind == kind, reason
    if name.startswith("duplicate"):
        assert reason.startswith("ambiguous JSON: key")
