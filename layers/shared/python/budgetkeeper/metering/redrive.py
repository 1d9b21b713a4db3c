"""Replaying what metering could not take, after a fix, through the usage calculator's own path.

Two sources, both in the archive bucket:
- `errors/processing-failed/YYYY/MM/DD/...`: Firehose's error output. When a batch failed every
  invocation (or a record came back `ProcessingFailed`), Firehose writes each record there as a JSON
  document (`attemptsMade`, `arrivalTimestamp`, `errorCode`, `errorMessage`, `rawData` the record's
  data in base64, `lambdaArn`...), one after another, gzipped when the stream compresses. Those
  records are fed to `UsageCalculator.process` as a batch: the payload markers make a record metered
  before (in part or whole) count once. The markers expire (`dedupe_ttl_days`), so an object whose
  records were all metered moves to `redriven/<its key>` (`redriven_key`): a later redrive, at any
  age, does not read it again.
- `quarantine/YYYY/MM/DD/<batch>.jsonl` (budgetkeeper.metering.archive): events that could not be metered;
  `UsageCalculator.redrive_quarantined` meters those that parse now, each once.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass

from budgetkeeper.metering.archive import BadEvent

PROCESSING_FAILED_PREFIX = "errors/processing-failed/"
QUARANTINE_PREFIX = "quarantine/"
REDRIVEN_PREFIX = "redriven/"
_GZIP_MAGIC = b"\x1f\x8b"


class NotReplayable(ValueError):
    """An object under a redrive prefix that is not in the format expected there."""


@dataclass(frozen=True, slots=True)
class FailedRecord:
    record_id: str  # where it came from (object key and position), for the report
    data: str  # base64, as Firehose handed it to the function
    error_code: str | None


def _documents(body: bytes) -> Iterator[object]:
    text = (gzip.decompress(body) if body[:2] == _GZIP_MAGIC else body).decode("utf-8")
    decoder, position = json.JSONDecoder(), 0
    while True:  # one document per line, or run together: both are read
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return
        document, position = decoder.raw_decode(text, position)
        yield document


def failed_records(key: str, body: bytes) -> list[FailedRecord]:
    """The records of one Firehose error-output object."""
    records = []
    try:
        for index, document in enumerate(_documents(body)):
            if not isinstance(document, dict) or not isinstance(document.get("rawData"), str):
                raise NotReplayable(f"{key}: document {index + 1} has no rawData: not Firehose error output")
            code = document.get("errorCode") or document.get("ErrorCode")
            records.append(FailedRecord(f"{key}#{index + 1}", document["rawData"], code))
    except (ValueError, UnicodeDecodeError, OSError) as error:
        if isinstance(error, NotReplayable):
            raise
        raise NotReplayable(f"{key}: not Firehose error output ({error})") from error
    return records


def redriven_key(key: str) -> str:
    """Where a processing-failed object goes once every record of it is metered: out of the redrive's way."""
    if not key.startswith(PROCESSING_FAILED_PREFIX):
        raise ValueError(f"{key} is not under {PROCESSING_FAILED_PREFIX}")
    return REDRIVEN_PREFIX + key


def quarantined_events(key: str, body: bytes) -> list[BadEvent]:
    """The events of one quarantine object."""
    try:
        return [BadEvent.from_line(line) for line in body.decode("utf-8").splitlines() if line.strip()]
    except (ValueError, KeyError, UnicodeDecodeError) as error:
        raise NotReplayable(f"{key}: not a quarantine file ({error!r})") from error
