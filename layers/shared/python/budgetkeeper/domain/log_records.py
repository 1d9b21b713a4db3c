"""Decoding Firehose records and parsing Bedrock model invocation log records.

This is the per-record hot path of the usage calculator: every message is `json.loads`-ed exactly
once, and prompt and completion bodies are only looked into when the top-level counts do not say
everything (the 1-hour share of cache writes, stream counts missing at the top level).

Two Firehose configurations are understood, told apart by the gzip magic number:
- a transform Lambda on the raw subscription: each record is a gzipped CloudWatch Logs payload;
- Firehose's own `Decompression` + `CloudWatchLogProcessing` (DataMessageExtraction) +
  `AppendDelimiterToRecord`: each record is the payload's log messages, one per line. Without the
  delimiter processor the messages run together and fail to parse, so the stream must have it.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

# What parse_invocation raises for a record it refuses: part of this module's interface, re-exported.
from budgetkeeper.domain.record_rules import MalformedEvent as MalformedEvent
from budgetkeeper.domain.record_rules import (
    RecordError,
    check_account,
    check_identity_arn,
    check_model_id,
    check_printable,
    check_region,
    check_request_metadata,
    check_timestamp,
    decode_message,
)
from budgetkeeper.domain.usage import Invocation, ServiceTier, TokenCounts

INVOCATION_LOG_SCHEMA = "ModelInvocationLog"
INVOKE_MODEL = "InvokeModel"
INVOKE_MODEL_STREAM = "InvokeModelWithResponseStream"
CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
# A call a guardrail blocked: logged with no token counts and no errorCode, this key in its body.
_GUARDRAIL_ACTION = "amazon-bedrock-guardrailAction"
_GUARDRAIL_INTERVENED = "INTERVENED"
_INVOCATION_METRICS = "amazon-bedrock-invocationMetrics"
_GZIP_MAGIC = b"\x1f\x8b"
_NO_METADATA: MappingProxyType[str, str] = MappingProxyType({})
# The tier names of the runtime API (`default` is the standard tier), read case-insensitively.
SERVICE_TIER_NAMES: Mapping[str, ServiceTier] = MappingProxyType(
    {
        "default": ServiceTier.STANDARD,
        "standard": ServiceTier.STANDARD,
        "priority": ServiceTier.PRIORITY,
        "flex": ServiceTier.FLEX,
        "reserved": ServiceTier.RESERVED,
    }
)
# Sanity bound: a log claiming more tokens than this in one call (all kinds together) is malformed.
# The largest context windows Bedrock serves are about 1M tokens (Claude Sonnet 4.x long context, Nova
# Premier), so 10M leaves a tenfold margin over any real call; metering 10**15 tokens would instead
# charge millions of dollars and suspend a principal over one corrupt line. Quarantined, it stays
# visible and counted (BadEvents). Raise it if a model with a larger window appears.
MAX_TOKENS_PER_CALL = 10_000_000


class UndecodableRecord(RecordError):
    """A Firehose record that cannot be decoded at all: nothing in it can be metered."""


class PayloadKind(StrEnum):
    DATA_MESSAGE = "DATA_MESSAGE"
    CONTROL_MESSAGE = "CONTROL_MESSAGE"  # a destination health check: the caller drops it
    EXTRACTED = "EXTRACTED"  # messages Firehose already extracted from a DATA_MESSAGE


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One CloudWatch Logs event.

    For extracted records `id` is the sha256 of the message line and `timestamp_ms` is 0: Firehose
    strips CloudWatch's event id and time, and the invocation's own timestamp is in the message.
    """

    id: str
    timestamp_ms: int
    message: str


@dataclass(frozen=True, slots=True)
class LogPayload:
    """One decoded Firehose record: a CloudWatch Logs subscription payload or its extracted messages.

    `payload_id` is the sha256 of the decompressed bytes, so the same payload delivered again in
    another batch (under other Firehose record ids) has the same id. `owner`, `log_group` and
    `log_stream` are None for extracted records, which no longer carry them.
    """

    kind: PayloadKind
    payload_id: str
    owner: str | None
    log_group: str | None
    log_stream: str | None
    events: tuple[LogEvent, ...]


def decode_base64(text: str) -> bytes:
    """A Firehose record's `data`, strictly: bad base64 fails this one record, not its whole batch."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise UndecodableRecord("data is not base64") from None


def decode_firehose_data(data: bytes) -> LogPayload:
    """Decode a Firehose record's bytes (already base64-decoded) into its log events."""
    if data[:2] == _GZIP_MAGIC:
        return _decode_subscription_payload(_gunzip(data))
    return _decode_extracted_messages(data)


def _gunzip(data: bytes) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise UndecodableRecord(f"bad gzip data: {error}") from None


def _decode_subscription_payload(raw: bytes) -> LogPayload:
    try:
        envelope = json.loads(raw)
    except (ValueError, RecursionError):
        raise UndecodableRecord("gzip content is not JSON") from None
    if type(envelope) is not dict:
        raise UndecodableRecord("gzip content is not a CloudWatch Logs payload object")
    payload_id = hashlib.sha256(raw).hexdigest()
    message_type = envelope.get("messageType")
    if message_type == PayloadKind.CONTROL_MESSAGE:
        # Its one event is a health-check text with an empty id: nothing to keep.
        return LogPayload(
            kind=PayloadKind.CONTROL_MESSAGE,
            payload_id=payload_id,
            owner=_optional_text(envelope.get("owner")),
            log_group=_optional_text(envelope.get("logGroup")),
            log_stream=_optional_text(envelope.get("logStream")),
            events=(),
        )
    if message_type != PayloadKind.DATA_MESSAGE:
        raise UndecodableRecord(f"messageType {message_type!r} is neither DATA_MESSAGE nor CONTROL_MESSAGE")
    log_events = envelope.get("logEvents")
    if type(log_events) is not list:
        raise UndecodableRecord("DATA_MESSAGE has no logEvents list")
    return LogPayload(
        kind=PayloadKind.DATA_MESSAGE,
        payload_id=payload_id,
        owner=_envelope_text(envelope, "owner"),
        log_group=_envelope_text(envelope, "logGroup"),
        log_stream=_envelope_text(envelope, "logStream"),
        events=tuple(_log_event(index, event) for index, event in enumerate(log_events)),
    )


def _optional_text(value: Any) -> str | None:
    return value if type(value) is str else None


def _envelope_text(envelope: dict[str, Any], key: str) -> str:
    value = envelope.get(key)
    if type(value) is not str:
        raise UndecodableRecord(f"DATA_MESSAGE {key} is not a string")
    return value


def _log_event(index: int, event: Any) -> LogEvent:
    if type(event) is not dict:
        raise UndecodableRecord(f"logEvents[{index}] is not an object")
    event_id, timestamp_ms, message = event.get("id"), event.get("timestamp"), event.get("message")
    if type(event_id) is not str or type(timestamp_ms) is not int or type(message) is not str:
        raise UndecodableRecord(f"logEvents[{index}] lacks a string id, an integer timestamp or a message")
    return LogEvent(id=event_id, timestamp_ms=timestamp_ms, message=message)


def _decode_extracted_messages(data: bytes) -> LogPayload:
    events: list[LogEvent] = []
    for raw_line in data.split(b"\n"):
        line = raw_line.strip()  # also drops the \r of CRLF delimiters
        if not line:
            continue
        # A cheap envelope check: a log message is a JSON object; parse_invocation judges the rest.
        if line[:1] != b"{":
            raise UndecodableRecord("neither gzip nor newline-delimited JSON log messages")
        try:
            message = line.decode("utf-8")
        except UnicodeDecodeError:
            raise UndecodableRecord("extracted log messages are not UTF-8") from None
        events.append(LogEvent(id=hashlib.sha256(line).hexdigest(), timestamp_ms=0, message=message))
    return LogPayload(
        kind=PayloadKind.EXTRACTED,
        payload_id=hashlib.sha256(data).hexdigest(),
        owner=None,
        log_group=None,
        log_stream=None,
        events=tuple(events),
    )


def parse_invocation(message: str | bytes) -> Invocation:
    """Parse one model invocation log record (schemaType ModelInvocationLog).

    Counts come from the record's top-level `input.*TokenCount` and `output.outputTokenCount`, which
    bodies offloaded to S3 leave in place. A failed call (`errorCode`) is still a call, charged
    whatever tokens it reports, 0 when it reports none. The rules are checked in a fixed order, so
    a record breaking several is always refused for the same one.
    """
    record = decode_message(message)
    schema = record.get("schemaType")
    if schema != INVOCATION_LOG_SCHEMA:
        raise MalformedEvent(f"schemaType is {schema!r}, not {INVOCATION_LOG_SCHEMA!r}")

    operation = _required_text(record, "operation")
    error_code = record.get("errorCode")
    if error_code is not None and type(error_code) is not str:
        raise MalformedEvent("errorCode is not a string")
    inference_region = record.get("inferenceRegion")
    if inference_region is not None and type(inference_region) is not str:
        raise MalformedEvent("inferenceRegion is not a string")
    identity = record.get("identity")
    identity_arn = identity.get("arn") if type(identity) is dict else None
    if type(identity_arn) is not str or not identity_arn:
        raise MalformedEvent("identity.arn is missing")

    request_id = _required_text(record, "requestId")
    timestamp = check_timestamp(_required_text(record, "timestamp"))
    account_id = _required_text(record, "accountId", check_account)
    check_identity_arn(identity_arn)
    region = _required_text(record, "region", check_region)
    model_id = _required_text(record, "modelId", check_model_id)
    input_section = _section(record, "input")
    output_section = _section(record, "output")
    return Invocation(
        request_id,
        timestamp,
        account_id,
        identity_arn,
        region,
        operation,
        model_id,
        _token_counts(input_section, output_section, operation, error_code),
        inference_region,
        _request_metadata(record.get("requestMetadata")),
        error_code,
        _service_tier(input_section, output_section, operation),
    )


def _required_text(record: dict[str, Any], key: str, check: Callable[[str], str] | None = None) -> str:
    """A non-empty string, printable; `check` (its field's rule, printable included) when given."""
    value = record.get(key)
    if type(value) is not str or not value:
        raise MalformedEvent(f"{key} is missing" if value is None else f"{key} is not a non-empty string")
    return check(value) if check is not None else check_printable(key, value)


def _section(record: dict[str, Any], key: str) -> dict[str, Any]:
    section = record.get(key)
    if section is None:
        return {}
    if type(section) is not dict:
        raise MalformedEvent(f"{key} is not an object")
    return section


def _count(section: dict[str, Any], path: str, key: str) -> int | None:
    """A token count, None when absent; `type() is int` keeps out bools and floats."""
    value = section.get(key)
    if value is None or (type(value) is int and value >= 0):
        return value
    raise MalformedEvent(f"{path}.{key} is {value!r}, not a non-negative integer")


def _token_counts(
    input_section: dict[str, Any], output_section: dict[str, Any], operation: str, error_code: str | None
) -> TokenCounts:
    input_tokens = _count(input_section, "input", "inputTokenCount")
    output_tokens = _count(output_section, "output", "outputTokenCount")
    if operation == INVOKE_MODEL_STREAM and (input_tokens is None or output_tokens is None):
        metrics = _stream_invocation_metrics(output_section.get("outputBodyJson"))
        if input_tokens is None:
            input_tokens = _count(metrics, _INVOCATION_METRICS, "inputTokenCount")
        if output_tokens is None:
            output_tokens = _count(metrics, _INVOCATION_METRICS, "outputTokenCount")
    if input_tokens is None:
        # A failed call, or one a guardrail blocked before the model ran, is a call of 0 tokens.
        if error_code is None and not _guardrail_intervened(output_section.get("outputBodyJson")):
            raise MalformedEvent("input.inputTokenCount is missing")
        input_tokens = 0
    cache_write = _count(input_section, "input", "cacheWriteInputTokenCount") or 0
    cache_read = _count(input_section, "input", "cacheReadInputTokenCount") or 0
    output_tokens = output_tokens or 0  # embeddings report no output count
    if input_tokens + output_tokens + cache_read + cache_write > MAX_TOKENS_PER_CALL:
        raise MalformedEvent(f"more than {MAX_TOKENS_PER_CALL:,} tokens in one call: not a real count")
    if not cache_write:
        return TokenCounts(input_tokens, output_tokens, cache_read)
    cache_write_1h = _cache_write_1h(operation, output_section, cache_write)
    return TokenCounts(input_tokens, output_tokens, cache_read, cache_write - cache_write_1h, cache_write_1h)


def _stream_invocation_metrics(chunks: Any) -> dict[str, Any]:
    """The metrics Bedrock appends to the last event chunk; streams may end with a "[DONE]" string."""
    if type(chunks) is list:
        for chunk in reversed(chunks):
            if type(chunk) is dict:
                metrics = chunk.get(_INVOCATION_METRICS)
                return metrics if type(metrics) is dict else {}
    return {}


def _guardrail_intervened(body: Any) -> bool:
    """Whether the response says a guardrail blocked the call (InvokeModel body, or a stream chunk)."""
    if type(body) is dict:
        return body.get(_GUARDRAIL_ACTION) == _GUARDRAIL_INTERVENED
    if type(body) is list:
        return any(type(chunk) is dict and _guardrail_intervened(chunk) for chunk in body)
    return False


def _cache_write_1h(operation: str, output_section: dict[str, Any], cache_write: int) -> int:
    """The 1-hour share of cache writes, from the response body where the log has it.

    Converse and ConverseStream report it in `usage.cacheDetails` (the runtime API's TokenUsage:
    `[{"ttl": "1h", "inputTokens": N}, ...]`); InvokeModel with Anthropic's native body in
    `usage.cache_creation.ephemeral_1h_input_tokens`. The top-level count stays authoritative: the
    body only splits it, and every write it does not attribute to the 1-hour cache is a 5-minute write.
    """
    body = output_section.get("outputBodyJson")
    if operation in (CONVERSE, CONVERSE_STREAM):
        return min(_converse_one_hour_writes(body), cache_write)
    if operation == INVOKE_MODEL and type(body) is dict:
        usage = body.get("usage")
    elif operation == INVOKE_MODEL_STREAM and type(body) is list:
        usage = _message_start_usage(body)
    else:
        return 0
    cache_creation = usage.get("cache_creation") if type(usage) is dict else None
    if type(cache_creation) is not dict:
        return 0
    one_hour = _count(cache_creation, "usage.cache_creation", "ephemeral_1h_input_tokens") or 0
    return min(one_hour, cache_write)


def _converse_one_hour_writes(body: Any) -> int:
    if type(body) is dict:
        usage = body.get("usage")
    elif type(body) is list:  # ConverseStream: the usage is in the closing `metadata` event
        usage = next(
            (
                chunk["metadata"].get("usage")
                for chunk in reversed(body)
                if type(chunk) is dict and type(chunk.get("metadata")) is dict
            ),
            None,
        )
    else:
        return 0
    details = usage.get("cacheDetails") if type(usage) is dict else None
    if type(details) is not list:
        return 0
    return sum(
        _count(detail, "usage.cacheDetails[]", "inputTokens") or 0
        for detail in details
        if type(detail) is dict and detail.get("ttl") == "1h"
    )


def _message_start_usage(chunks: list[Any]) -> Any:
    for chunk in chunks:
        if type(chunk) is dict and chunk.get("type") == "message_start":
            message = chunk.get("message")
            return message.get("usage") if type(message) is dict else None
    return None


def _request_metadata(metadata: Any) -> Mapping[str, str]:
    if metadata is None:
        return _NO_METADATA
    if type(metadata) is not dict or not all(
        type(key) is str and type(value) is str for key, value in metadata.items()
    ):
        raise MalformedEvent("requestMetadata is not a map of strings")
    return check_request_metadata(metadata)


def _service_tier(
    input_section: dict[str, Any], output_section: dict[str, Any], operation: str
) -> ServiceTier:
    """The service tier of the call, from the bodies the log keeps (when text delivery is on).

    Converse and ConverseStream name it as `serviceTier: {"type": "priority|default|flex|reserved"}`
    (the runtime API's ServiceTier); InvokeModel bodies as `"service_tier": "priority|default|flex"`
    (the Bedrock user guide's service tiers page). The response states the tier that served the
    request, so a tier there wins over the one asked for. The `X-Amzn-Bedrock-Service-Tier` header of
    InvokeModel is not in the log: such a call is priced at the standard tier. A tier name this code
    does not know is a malformed record (quarantined and counted), never priced at a guessed rate.
    """
    key = "serviceTier" if operation in (CONVERSE, CONVERSE_STREAM) else "service_tier"
    asked = _named_tier("input", input_section.get("inputBodyJson"), key)
    served = _named_tier("output", output_section.get("outputBodyJson"), key)
    return served or asked or ServiceTier.STANDARD


def _named_tier(section_name: str, body: Any, key: str) -> ServiceTier | None:
    """The tier a body names under `key` (Converse's `{"type": ...}` unwrapped), None when none."""
    if type(body) is not dict:
        return None  # absent, offloaded to S3, or a stream's chunk list
    name = body.get(key)
    if type(name) is dict and key == "serviceTier":
        name = name.get("type")
    if name is None:
        return None
    tier = SERVICE_TIER_NAMES.get(name.lower()) if type(name) is str else None
    if tier is None:
        raise MalformedEvent(
            f"{section_name} service tier {name!r} is not one of {', '.join(SERVICE_TIER_NAMES)}"
        )
    return tier
