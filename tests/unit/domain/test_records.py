"""Decoding Firehose records and parsing invocation log records (budgetkeeper.domain.log_records)."""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from budgetkeeper.domain.log_records import (
    LogEvent,
    MalformedEvent,
    PayloadKind,
    UndecodableRecord,
    decode_firehose_data,
    parse_invocation,
)
from budgetkeeper.domain.usage import ServiceTier, TokenCounts
from devkit.harness.logs import (
    EVENTS_DIR,
    cloudwatch_payload,
    control_payload,
    firehose_event,
    invocation_log_names,
    load_invocation_log,
    log_message,
)

# Written by hand from the fixture files: operation and tokens by kind.
EXPECTED_FIXTURES: dict[str, tuple[str, TokenCounts]] = {
    "api_key_user": ("Converse", TokenCounts(input=48, output=120)),
    "app_role_chatbot": ("InvokeModel", TokenCounts(input=412, output=96)),
    "application_inference_profile": ("Converse", TokenCounts(input=1203, output=388)),
    "converse_request_metadata": ("Converse", TokenCounts(input=35, output=446)),
    "converse_stream_inference_profile_arn": ("ConverseStream", TokenCounts(input=62, output=36)),
    "converse_stream_nova_lite": ("ConverseStream", TokenCounts(input=4, output=38)),
    "embedding_titan_embed_v2": ("InvokeModel", TokenCounts(input=9, output=0)),
    "error_throttling": ("Converse", TokenCounts()),
    "global_profile_inference_region": ("Converse", TokenCounts(input=27, output=142)),
    "invoke_model_claude3_sonnet": ("InvokeModel", TokenCounts(input=859, output=15)),
    "invoke_model_sonnet45_cache_1h": (
        "InvokeModel",
        TokenCounts(input=25, output=310, cache_read=1500, cache_write_5m=1000, cache_write_1h=2000),
    ),
    "invoke_model_stream_anthropic_cache": (
        "InvokeModelWithResponseStream",
        TokenCounts(input=12, output=85, cache_write_5m=1024, cache_write_1h=2048),
    ),
    "invoke_model_stream_titan": ("InvokeModelWithResponseStream", TokenCounts(input=7, output=11)),
    "offloaded_bodies": (
        "InvokeModelWithResponseStream",
        TokenCounts(input=1, output=326, cache_read=129709, cache_write_5m=411),
    ),
    "provisioned_model": ("InvokeModel", TokenCounts(input=530, output=42)),
    "sso_session_bob": ("Converse", TokenCounts(input=210, output=64)),
    "sso_session_carol": ("ConverseStream", TokenCounts(input=150, output=200)),
    "unknown_model": ("Converse", TokenCounts(input=11, output=3)),
}


def parse_fixture(name: str) -> Any:
    return parse_invocation(log_message(load_invocation_log(name)))


def parse_edited(name: str, edit: Any) -> Any:
    record = copy.deepcopy(load_invocation_log(name))
    edit(record)
    return parse_invocation(log_message(record))


# --- parse_invocation: the fixture files ---------------------------------------------------------


def test_every_fixture_file_has_expectations() -> None:
    assert sorted(EXPECTED_FIXTURES) == invocation_log_names()


@pytest.mark.parametrize("name", sorted(EXPECTED_FIXTURES))
def test_fixture_operation_and_tokens(name: str) -> None:
    # Given a fixture record / When it is parsed
    invocation = parse_fixture(name)
    # Then its operation and its tokens by kind are the ones written by hand
    operation, tokens = EXPECTED_FIXTURES[name]
    assert invocation.operation == operation
    assert invocation.tokens == tokens


def test_invoke_model_record_fields() -> None:
    invocation = parse_fixture("invoke_model_claude3_sonnet")

    assert invocation.request_id == "6f902217-521c-4d33-aa6f-95b9715b2fe8"
    assert invocation.timestamp == datetime(2024, 12, 23, 12, 37, 59, tzinfo=UTC)
    assert invocation.account_id == "111122223333"
    assert invocation.identity_arn == "arn:aws:iam::111122223333:user/alice"
    assert invocation.region == "ap-south-1"
    assert invocation.model_id == "anthropic.claude-3-sonnet-20240229-v1:0"
    assert invocation.inference_region is None
    assert dict(invocation.request_metadata) == {}
    assert invocation.error_code is None


def test_request_metadata_is_kept() -> None:
    invocation = parse_fixture("converse_request_metadata")

    assert dict(invocation.request_metadata) == {
        "traceId": "b956002a-fd01-47ba-9da7-07e4c9b1a6b6",
        "app": "SupportDesk",
    }


def test_full_inference_profile_arn_is_kept_as_model_id() -> None:
    invocation = parse_fixture("converse_stream_inference_profile_arn")

    assert invocation.model_id == (
        "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0"
    )


def test_global_profile_keeps_source_and_inference_regions() -> None:
    invocation = parse_fixture("global_profile_inference_region")

    assert invocation.model_id == "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert invocation.region == "ap-southeast-2"
    assert invocation.inference_region == "ap-southeast-4"


def test_error_record_is_a_call_with_its_error_code() -> None:
    invocation = parse_fixture("error_throttling")

    assert invocation.error_code == "ThrottlingException"
    assert invocation.tokens == TokenCounts()


def test_error_record_without_counts_has_zero_tokens() -> None:
    # Given a failed call whose record reports no counts at all
    def drop_counts(record: dict[str, Any]) -> None:
        del record["input"]["inputTokenCount"]
        del record["output"]

    # When it is parsed / Then it is still a call, with no tokens
    invocation = parse_edited("error_throttling", drop_counts)
    assert invocation.error_code == "ThrottlingException"
    assert invocation.tokens == TokenCounts()


def test_embedding_has_no_output_tokens() -> None:
    record = load_invocation_log("embedding_titan_embed_v2")
    assert "outputTokenCount" not in record["output"]

    assert parse_fixture("embedding_titan_embed_v2").tokens.output == 0


def test_offloaded_bodies_still_give_counts() -> None:
    record = load_invocation_log("offloaded_bodies")
    assert "inputBodyJson" not in record["input"]
    assert "outputBodyJson" not in record["output"]

    invocation = parse_fixture("offloaded_bodies")

    assert invocation.tokens == TokenCounts(input=1, output=326, cache_read=129709, cache_write_5m=411)
    assert invocation.inference_region == "ap-southeast-4"


def test_key_order_does_not_matter() -> None:
    record = load_invocation_log("invoke_model_sonnet45_cache_1h")
    reversed_record = dict(reversed(list(record.items())))

    assert parse_invocation(log_message(reversed_record)) == parse_invocation(log_message(record))


def test_bytes_message_is_parsed_like_text() -> None:
    message = log_message(load_invocation_log("api_key_user"))

    assert parse_invocation(message.encode()) == parse_invocation(message)


# --- parse_invocation: streams and cache writes ----------------------------------------------------


def test_stream_output_count_falls_back_to_last_chunk_metrics() -> None:
    # Given a Titan stream record without the top-level output count
    def drop_output_count(record: dict[str, Any]) -> None:
        del record["output"]["outputTokenCount"]

    # Then the count comes from the last chunk's amazon-bedrock-invocationMetrics
    assert parse_edited("invoke_model_stream_titan", drop_output_count).tokens == TokenCounts(
        input=7, output=11
    )


def test_stream_counts_fall_back_past_a_done_marker() -> None:
    # Given an Anthropic stream ending with "[DONE]" and no top-level input or output counts
    def drop_counts(record: dict[str, Any]) -> None:
        del record["input"]["inputTokenCount"]
        del record["output"]["outputTokenCount"]

    tokens = parse_edited("invoke_model_stream_anthropic_cache", drop_counts).tokens

    assert (tokens.input, tokens.output) == (12, 85)


def test_stream_without_counts_anywhere_is_malformed() -> None:
    def drop_counts(record: dict[str, Any]) -> None:
        del record["input"]["inputTokenCount"]
        record["output"]["outputBodyJson"][-1].pop("amazon-bedrock-invocationMetrics")

    with pytest.raises(MalformedEvent, match=r"input\.inputTokenCount is missing"):
        parse_edited("invoke_model_stream_titan", drop_counts)


def test_cache_writes_without_a_split_are_all_five_minute() -> None:
    # Given a Converse record with cache writes: Converse bodies do not tell the TTL
    def add_cache_counts(record: dict[str, Any]) -> None:
        record["input"]["cacheReadInputTokenCount"] = 40
        record["input"]["cacheWriteInputTokenCount"] = 300

    tokens = parse_edited("converse_stream_nova_lite", add_cache_counts).tokens

    assert tokens == TokenCounts(input=4, output=38, cache_read=40, cache_write_5m=300, cache_write_1h=0)


def test_top_level_cache_write_count_bounds_the_one_hour_share() -> None:
    # Given a body claiming more 1h writes (2000) than the record's total (1500)
    def shrink_total(record: dict[str, Any]) -> None:
        record["input"]["cacheWriteInputTokenCount"] = 1500

    tokens = parse_edited("invoke_model_sonnet45_cache_1h", shrink_total).tokens

    assert (tokens.cache_write_5m, tokens.cache_write_1h) == (0, 1500)


def test_cache_writes_from_a_body_without_cache_creation_are_five_minute() -> None:
    def drop_split(record: dict[str, Any]) -> None:
        del record["output"]["outputBodyJson"]["usage"]["cache_creation"]

    tokens = parse_edited("invoke_model_sonnet45_cache_1h", drop_split).tokens

    assert (tokens.cache_write_5m, tokens.cache_write_1h) == (3000, 0)


def test_converse_cache_details_give_the_one_hour_share() -> None:
    # Given a Converse record whose usage splits 100,000 cache writes as 1-hour (TokenUsage.cacheDetails)
    def one_hour_writes(record: dict[str, Any]) -> None:
        record["input"]["cacheWriteInputTokenCount"] = 100_000
        record["output"]["outputBodyJson"]["usage"]["cacheDetails"] = [{"ttl": "1h", "inputTokens": 100_000}]

    tokens = parse_edited("api_key_user", one_hour_writes).tokens

    # Then they are priced as 1-hour writes, not 5-minute ones
    assert (tokens.cache_write_5m, tokens.cache_write_1h) == (0, 100_000)


def test_converse_stream_cache_details_split_both_ttls() -> None:
    def both_ttls(record: dict[str, Any]) -> None:
        record["input"]["cacheWriteInputTokenCount"] = 700
        record["output"]["outputBodyJson"]["usage"]["cacheDetails"] = [
            {"ttl": "5m", "inputTokens": 300},
            {"ttl": "1h", "inputTokens": 400},
        ]

    tokens = parse_edited("converse_stream_nova_lite", both_ttls).tokens

    assert (tokens.cache_write_5m, tokens.cache_write_1h) == (300, 400)


def test_a_call_blocked_by_a_guardrail_is_a_call_of_zero_tokens() -> None:
    # Given a real-shaped record of a call a guardrail blocked: no token counts, no errorCode
    def blocked(record: dict[str, Any]) -> None:
        del record["input"]["inputTokenCount"]
        del record["output"]["outputTokenCount"]
        record["output"]["outputBodyJson"] = {
            "amazon-bedrock-guardrailAction": "INTERVENED",
            "content": [{"type": "text", "text": "Sorry, the model cannot answer this question."}],
        }

    invocation = parse_edited("app_role_chatbot", blocked)

    # Then it is metered as a call, at 0 model tokens (guardrail text units bill apart)
    assert invocation.tokens == TokenCounts()
    assert invocation.error_code is None


def test_a_stream_blocked_by_a_guardrail_is_a_call_of_zero_tokens() -> None:
    def blocked(record: dict[str, Any]) -> None:
        del record["input"]["inputTokenCount"]
        del record["output"]["outputTokenCount"]
        record["output"]["outputBodyJson"] = [{"amazon-bedrock-guardrailAction": "INTERVENED"}]

    assert parse_edited("invoke_model_stream_titan", blocked).tokens == TokenCounts()


# --- parse_invocation: timestamps ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-18T10:03:27Z", datetime(2025, 11, 18, 10, 3, 27, tzinfo=UTC)),
        ("2025-11-18T10:03:27.250Z", datetime(2025, 11, 18, 10, 3, 27, 250000, tzinfo=UTC)),
        ("2025-11-18T12:03:27+02:00", datetime(2025, 11, 18, 10, 3, 27, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(text: str, expected: datetime) -> None:
    def set_timestamp(record: dict[str, Any]) -> None:
        record["timestamp"] = text

    timestamp = parse_edited("api_key_user", set_timestamp).timestamp

    assert timestamp == expected
    assert timestamp.tzinfo is UTC


# --- parse_invocation: malformed records -----------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ('{"schemaType": "ModelInvocationLog", ', "not JSON"),
        ("[1, 2]", "not a JSON object but a JSON list"),
        ('{"schemaType": "SomethingElse"}', "schemaType is 'SomethingElse', not 'ModelInvocationLog'"),
        ("{}", "schemaType is None, not 'ModelInvocationLog'"),
    ],
)
def test_unusable_messages_are_malformed(message: str, reason: str) -> None:
    with pytest.raises(MalformedEvent) as raised:
        parse_invocation(message)

    assert raised.value.reason.startswith(reason)


def _delete_identity_arn(record: dict[str, Any]) -> None:
    del record["identity"]["arn"]


def _delete(key: str) -> Any:
    def edit(record: dict[str, Any]) -> None:
        del record[key]

    return edit


def _set_input(key: str, value: Any) -> Any:
    def edit(record: dict[str, Any]) -> None:
        record["input"][key] = value

    return edit


def _set(key: str, value: Any) -> Any:
    def edit(record: dict[str, Any]) -> None:
        record[key] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (_delete("requestId"), "requestId is missing"),
        (_delete("timestamp"), "timestamp is missing"),
        (_delete_identity_arn, "identity.arn is missing"),
        (_delete("identity"), "identity.arn is missing"),
        (_delete("modelId"), "modelId is missing"),
        (_set("modelId", ""), "modelId is not a non-empty string"),
        (_set("timestamp", "2025-04-99T23:00:17Z"), "timestamp '2025-04-99T23:00:17Z' is not an ISO-8601"),
        (_set("timestamp", "2025-04-29T23:00:17"), "timestamp '2025-04-29T23:00:17' has no time zone"),
        (_set_input("inputTokenCount", -5), "input.inputTokenCount is -5, not a non-negative integer"),
        (_set_input("inputTokenCount", "48"), "input.inputTokenCount is '48', not a non-negative integer"),
        (_set_input("inputTokenCount", 48.0), "input.inputTokenCount is 48.0, not a non-negative integer"),
        (_set_input("cacheReadInputTokenCount", True), "input.cacheReadInputTokenCount is True"),
        (_delete("input"), "input.inputTokenCount is missing"),
        (_set("input", []), "input is not an object"),
        (_set("requestMetadata", {"app": 7}), "requestMetadata is not a map of strings"),
        (_set("errorCode", 500), "errorCode is not a string"),
    ],
)
def test_broken_records_are_malformed_with_a_reason(edit: Any, reason: str) -> None:
    # Given a valid record broken in one place / When it is parsed / Then the reason names the place
    with pytest.raises(MalformedEvent) as raised:
        parse_edited("api_key_user", edit)

    assert raised.value.reason.startswith(reason)


def test_a_broken_one_hour_count_in_the_body_is_malformed() -> None:
    def break_split(record: dict[str, Any]) -> None:
        record["output"]["outputBodyJson"]["usage"]["cache_creation"]["ephemeral_1h_input_tokens"] = "2000"

    with pytest.raises(MalformedEvent, match=r"usage\.cache_creation\.ephemeral_1h_input_tokens is '2000'"):
        parse_edited("invoke_model_sonnet45_cache_1h", break_split)


# --- decode_firehose_data: CloudWatch Logs payloads ------------------------------------------------


def fixture_messages(*names: str) -> list[str]:
    return [log_message(load_invocation_log(name)) for name in names]


def test_data_message_with_many_events() -> None:
    # Given one gzipped DATA_MESSAGE holding 250 log events
    messages = fixture_messages("api_key_user", "sso_session_bob") * 125
    data = cloudwatch_payload(
        messages,
        log_group="/aws/bedrock/modelinvocations",
        log_stream="aws/bedrock/modelinvocations",
        owner="111122223333",
        first_event_id="39326632960779123570926488980995627123248982766462862353",
        timestamp_ms=1763467212000,
    )

    # When it is decoded
    payload = decode_firehose_data(data)

    # Then every event comes back, in order, with the envelope's fields
    assert payload.kind is PayloadKind.DATA_MESSAGE
    assert (payload.owner, payload.log_group, payload.log_stream) == (
        "111122223333",
        "/aws/bedrock/modelinvocations",
        "aws/bedrock/modelinvocations",
    )
    assert len(payload.events) == 250
    assert payload.events[0] == LogEvent(
        id="39326632960779123570926488980995627123248982766462862353",
        timestamp_ms=1763467212000,
        message=messages[0],
    )
    assert payload.events[249].id == "39326632960779123570926488980995627123248982766462862602"
    assert [event.message for event in payload.events] == messages


def test_builder_event_ids_carry_the_event_time() -> None:
    # CloudWatch ids are 56 digits with the event time (ms) in the bits from 144 up
    payload = decode_firehose_data(
        cloudwatch_payload(fixture_messages("sso_session_bob", "sso_session_carol"))
    )

    assert [len(event.id) for event in payload.events] == [56, 56]
    assert [int(event.id) >> 144 for event in payload.events] == [1763465405000, 1763465507000]
    assert [event.timestamp_ms for event in payload.events] == [1763465405000, 1763465507000]


def test_control_message_has_no_events() -> None:
    payload = decode_firehose_data(control_payload(timestamp_ms=1763476200000))

    assert payload.kind is PayloadKind.CONTROL_MESSAGE
    assert payload.events == ()


def test_payload_id_is_the_sha256_of_the_decompressed_payload() -> None:
    data = cloudwatch_payload(fixture_messages("api_key_user"), timestamp_ms=1763467339000)

    assert decode_firehose_data(data).payload_id == hashlib.sha256(gzip.decompress(data)).hexdigest()


def test_payload_id_is_stable_across_redelivery() -> None:
    # Given the same CloudWatch payload delivered in two Firehose batches, under other record ids
    data = cloudwatch_payload(fixture_messages("api_key_user", "unknown_model"), timestamp_ms=1763467339000)
    first = firehose_event([data], invocation_id="batch-1")["records"][0]
    again = firehose_event([data], invocation_id="batch-2")["records"][0]
    assert first["recordId"] != again["recordId"]

    # Then both decode to the same payload id, even if recompressed differently on the way
    first_id = decode_firehose_data(base64.b64decode(first["data"])).payload_id
    again_id = decode_firehose_data(base64.b64decode(again["data"])).payload_id
    recompressed_id = decode_firehose_data(gzip.compress(gzip.decompress(data), compresslevel=1)).payload_id
    assert first_id == again_id == recompressed_id


def test_payload_ids_differ_for_different_payloads() -> None:
    one = cloudwatch_payload(fixture_messages("api_key_user"), timestamp_ms=1763467339000)
    other = cloudwatch_payload(fixture_messages("unknown_model"), timestamp_ms=1763467339000)

    assert decode_firehose_data(one).payload_id != decode_firehose_data(other).payload_id


def test_firehose_event_file_decodes_and_parses() -> None:
    # Given events/usage_calculator_firehose.json (made by scripts/make_events.py)
    event = json.loads((EVENTS_DIR / "usage_calculator_firehose.json").read_text())

    # When each record is decoded and its events parsed
    payloads = [decode_firehose_data(base64.b64decode(record["data"])) for record in event["records"]]

    # Then two DATA payloads of four invocations each and one CONTROL message come out
    assert [payload.kind for payload in payloads] == [
        PayloadKind.DATA_MESSAGE,
        PayloadKind.DATA_MESSAGE,
        PayloadKind.CONTROL_MESSAGE,
    ]
    request_ids = [parse_invocation(e.message).request_id for p in payloads for e in p.events]
    assert request_ids == [
        "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8",
        "9f0a1b2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
        "2c3d4e5f-6a7b-4c8d-9e0f-1a2b3c4d5e6f",
        "7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a",
        "c7d9e2a4-1f3b-4c5d-8e6f-7a8b9c0d1e2f",
        "e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7",
        "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
        "0b1c2d3e-4f5a-4b6c-9d7e-8f9a0b1c2d3e",
    ]


# --- decode_firehose_data: records Firehose already extracted --------------------------------------


def test_extracted_newline_delimited_messages() -> None:
    # Given messages Firehose decompressed, extracted and delimited with newlines
    messages = fixture_messages("api_key_user", "sso_session_bob", "unknown_model")
    data = ("\n".join(messages) + "\n").encode()

    payload = decode_firehose_data(data)

    # Then each line is an event whose id is derived from its content
    assert payload.kind is PayloadKind.EXTRACTED
    assert (payload.owner, payload.log_group, payload.log_stream) == (None, None, None)
    assert [event.message for event in payload.events] == messages
    assert [event.id for event in payload.events] == [
        hashlib.sha256(message.encode()).hexdigest() for message in messages
    ]
    assert {event.timestamp_ms for event in payload.events} == {0}
    assert payload.payload_id == hashlib.sha256(data).hexdigest()


def test_extracted_event_ids_are_stable_across_batches() -> None:
    messages = fixture_messages("api_key_user", "unknown_model")
    together = decode_firehose_data(("\n".join(messages) + "\n").encode())
    alone = decode_firehose_data((messages[1] + "\n").encode())

    assert together.events[1].id == alone.events[0].id


def test_extracted_lines_with_crlf_and_blank_lines() -> None:
    messages = fixture_messages("api_key_user", "unknown_model")
    data = f"{messages[0]}\r\n\r\n{messages[1]}".encode()

    assert [event.message for event in decode_firehose_data(data).events] == messages


# --- decode_firehose_data: undecodable data --------------------------------------------------------


def _truncated_gzip() -> bytes:
    data = cloudwatch_payload(fixture_messages("api_key_user"), timestamp_ms=1763467339000)
    return data[: len(data) // 2]


def _gzip_json(document: Any) -> bytes:
    return gzip.compress(json.dumps(document).encode(), mtime=0)  # the same test ids in every xdist worker


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"hello, this is not a log record", "neither gzip nor newline-delimited JSON log messages"),
        (b"\x00\x01\x02binary", "neither gzip nor newline-delimited JSON log messages"),
        (b'{"ok": true}\n\xff\xfe', "neither gzip nor newline-delimited JSON log messages"),
        (b'{"text": "\xff"}\n', "extracted log messages are not UTF-8"),
        (_truncated_gzip(), "bad gzip data"),
        (b"\x1f\x8b" + b"garbage" * 4, "bad gzip data"),
        (gzip.compress(b"garbage, not JSON", mtime=0), "gzip content is not JSON"),
        (_gzip_json([1, 2, 3]), "gzip content is not a CloudWatch Logs payload object"),
        (
            _gzip_json({"messageType": "OTHER"}),
            "messageType 'OTHER' is neither DATA_MESSAGE nor CONTROL_MESSAGE",
        ),
        (
            _gzip_json({"messageType": "DATA_MESSAGE", "owner": "1", "logGroup": "g", "logStream": "s"}),
            "DATA_MESSAGE has no logEvents list",
        ),
        (
            _gzip_json({"messageType": "DATA_MESSAGE", "logGroup": "g", "logStream": "s", "logEvents": []}),
            "DATA_MESSAGE owner is not a string",
        ),
        (
            _gzip_json(
                {
                    "messageType": "DATA_MESSAGE",
                    "owner": "1",
                    "logGroup": "g",
                    "logStream": "s",
                    "logEvents": [{"id": "1", "timestamp": "soon", "message": "{}"}],
                }
            ),
            "logEvents[0] lacks a string id, an integer timestamp or a message",
        ),
    ],
)
def test_undecodable_data(data: bytes, reason: str) -> None:
    with pytest.raises(UndecodableRecord) as raised:
        decode_firehose_data(data)

    assert raised.value.reason.startswith(reason)


# --- service tiers ---------------------------------------------------------------------------------


def converse_with(request_tier: Any = None, response_tier: Any = None) -> dict[str, Any]:
    record = copy.deepcopy(load_invocation_log("converse_request_metadata"))
    if request_tier is not None:
        record["input"]["inputBodyJson"]["serviceTier"] = {"type": request_tier}
    if response_tier is not None:
        record["output"]["outputBodyJson"]["serviceTier"] = {"type": response_tier}
    return record


@pytest.mark.parametrize(
    ("request_tier", "response_tier", "expected"),
    [
        (None, None, ServiceTier.STANDARD),
        ("default", None, ServiceTier.STANDARD),
        ("priority", None, ServiceTier.PRIORITY),
        ("flex", None, ServiceTier.FLEX),
        ("reserved", None, ServiceTier.RESERVED),
        ("PRIORITY", None, ServiceTier.PRIORITY),
        # the response states the tier that served the call: it wins over the one asked for
        ("priority", "default", ServiceTier.STANDARD),
    ],
)
def test_a_converse_call_is_read_at_the_tier_its_bodies_name(
    request_tier: str | None, response_tier: str | None, expected: ServiceTier
) -> None:
    invocation = parse_invocation(log_message(converse_with(request_tier, response_tier)))
    assert invocation.service_tier is expected


def test_an_invoke_model_body_names_its_tier_as_service_tier() -> None:
    record = copy.deepcopy(load_invocation_log("invoke_model_claude3_sonnet"))
    record["input"]["inputBodyJson"]["service_tier"] = "flex"
    assert parse_invocation(log_message(record)).service_tier is ServiceTier.FLEX


@pytest.mark.parametrize("tier", ["turbo", 3, {"type": "priority"}])
def test_a_tier_no_one_knows_is_a_malformed_record_not_a_guess(tier: Any) -> None:
    record = copy.deepcopy(load_invocation_log("invoke_model_claude3_sonnet"))
    record["input"]["inputBodyJson"]["service_tier"] = tier
    with pytest.raises(MalformedEvent, match="service tier"):
        parse_invocation(log_message(record))
