"""What one invocation log message may hold before it is metered: the rules every decoder keeps.
docs/architecture.md, "Record rules (domain.record_rules)", tells the rest.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from budgetkeeper.domain.json_decode import decode_unambiguous

# DynamoDB's key limits (UTF-8 bytes): a partition key, and a sort key.
PARTITION_KEY_BYTES_MAX = 2_048
SORT_KEY_BYTES_MAX = 1_024
MAX_MODEL_ID_CHARS = 512
MAX_IDENTITY_ARN_BYTES = 1_024
MAX_METADATA_KEY_CHARS = 256
MAX_METADATA_VALUE_CHARS = 256
EARLIEST_TIMESTAMP = datetime(2020, 1, 1, tzinfo=UTC)
LATEST_TIMESTAMP = datetime(9000, 1, 1, tzinfo=UTC)

_MODEL_ID = re.compile(rf"[!-~]{{1,{MAX_MODEL_ID_CHARS}}}", re.ASCII)
_REGION = re.compile(r"[a-z0-9-]{1,20}", re.ASCII)
_ACCOUNT = re.compile(r"\d{12}", re.ASCII)
# Values that passed a rule, remembered: model ids, regions, accounts and callers repeat from record
# to record (a failure raises, so it is never remembered).
_CHECKED_VALUES = 4096


class RecordError(Exception):
    """Input that cannot be metered; `reason` says why in a few words, fit for a log line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedEvent(RecordError):
    """One log message that is not a usable invocation log record."""


class DuplicateKey(ValueError):
    """A JSON object names one key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise DuplicateKey(f"key {twice[:64]!r} appears twice in one object")
    return document


def decode_message(message: str | bytes) -> dict[str, Any]:
    """One log message as a JSON object, or MalformedEvent saying why not (never another error)."""
    record = decode_unambiguous(message)  # msgspec, when it provably agrees with the rules below
    if record is not None:
        return record
    try:
        record = json.loads(message, object_pairs_hook=_unique_keys)
    except DuplicateKey as error:
        raise MalformedEvent(f"ambiguous JSON: {error}") from None
    except RecursionError:
        raise MalformedEvent("JSON nested deeper than the decoder can read") from None
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, the int-string limit
        raise MalformedEvent(f"not JSON: {error}") from None
    if type(record) is not dict:
        raise MalformedEvent(f"not a JSON object but a JSON {type(record).__name__}")
    return record


def check_printable(key: str, value: str) -> str:
    if not value.isprintable():
        # Such text ends up in DynamoDB keys: a lone surrogate cannot be encoded to UTF-8, and AWS
        # never writes control characters here.
        raise MalformedEvent(f"{key} has control characters or invalid unicode")
    return value


def _matching(key: str, value: str, pattern: re.Pattern[str], rule: str) -> str:
    check_printable(key, value)
    if not pattern.fullmatch(value):
        raise MalformedEvent(f"{key} of {len(value)} characters ({value[:32]!r}) is not {rule}")
    return value


@functools.lru_cache(maxsize=_CHECKED_VALUES)
def check_model_id(model_id: str) -> str:
    rule = f"printable ASCII without spaces, at most {MAX_MODEL_ID_CHARS}"
    return _matching("modelId", model_id, _MODEL_ID, rule)


@functools.lru_cache(maxsize=_CHECKED_VALUES)
def check_region(region: str) -> str:
    return _matching("region", region, _REGION, "an AWS region name ([a-z0-9-], at most 20)")


@functools.lru_cache(maxsize=_CHECKED_VALUES)
def check_account(account_id: str) -> str:
    return _matching("accountId", account_id, _ACCOUNT, "a 12-digit AWS account id")


@functools.lru_cache(maxsize=_CHECKED_VALUES)
def check_identity_arn(arn: str) -> str:
    # Any printable text: an ARN of a form we do not know is charged as `unknown:<arn>`, raw.
    check_printable("identity.arn", arn)
    if len(arn.encode()) > MAX_IDENTITY_ARN_BYTES:
        raise MalformedEvent(f"identity.arn of {len(arn.encode())} bytes is over {MAX_IDENTITY_ARN_BYTES}")
    return arn


def check_request_metadata(metadata: Mapping[str, str]) -> Mapping[str, str]:
    for key, value in metadata.items():
        if not 1 <= len(key) <= MAX_METADATA_KEY_CHARS or len(value) > MAX_METADATA_VALUE_CHARS:
            raise MalformedEvent(
                f"requestMetadata {key[:32]!r} is over Bedrock's limits (keys of 1 to "
                f"{MAX_METADATA_KEY_CHARS}, values of at most {MAX_METADATA_VALUE_CHARS} characters)"
            )
    return metadata


def check_timestamp(text: str) -> datetime:
    """An ISO-8601 time with a zone, in UTC, within the range budgets can window."""
    try:
        moment = datetime.fromisoformat(text)  # C code: reads the logs' `2024-12-23T12:37:59Z` form
        if moment.tzinfo is None:
            raise MalformedEvent(f"timestamp {text[:40]!r} has no time zone")
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise MalformedEvent(f"timestamp {text[:40]!r} is not an ISO-8601 date and time") from None
    if not EARLIEST_TIMESTAMP <= moment < LATEST_TIMESTAMP:
        raise MalformedEvent(
            f"timestamp {text[:40]!r} is outside {EARLIEST_TIMESTAMP.year} to {LATEST_TIMESTAMP.year}"
        )
    return moment
