"""What the archive bucket holds, in the formats this module alone writes.

- enriched lines (`enriched_line`): one JSON line per metered invocation, without prompt or
  completion bodies; the usage calculator hands them back to Firehose, which delivers them here.

Objects the usage calculator writes to the archive bucket itself, beside Firehose's delivery:
- `quarantine/YYYY/MM/DD/<batch>.jsonl`: log events that could not be metered, verbatim, with the
  reason, the Firehose record and CloudWatch event they came from. Nothing else deletes them.
- `overflow/YYYY/MM/DD/<batch>/<record>.jsonl.gz`: enriched lines of a record whose output would
  not fit Lambda's 6 MB response; the record's archived line then points at this object.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from budgetkeeper.core import money
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.metering.meter import Metered


@dataclass(frozen=True, slots=True)
class BadEvent:
    record_id: str
    payload_id: str
    log_group: str | None
    log_stream: str | None
    event_id: str
    reason: str
    message: str  # verbatim
    slot: str | None = None  # the payload's marker slot (metering.writer.payload_slot)
    # The account whose log held it (CloudWatch Logs' `owner`): a redrive judges its caller by it again.
    owner: str | None = None

    def to_line(self) -> str:
        return json.dumps(
            {
                "record_id": self.record_id,
                "payload_id": self.payload_id,
                "log_group": self.log_group,
                "log_stream": self.log_stream,
                "event_id": self.event_id,
                "reason": self.reason,
                "message": self.message,
                "slot": self.slot,
                "owner": self.owner,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_line(cls, line: str | bytes) -> BadEvent:
        """A quarantine line back (`to_line`); KeyError or ValueError if it is not one."""
        document = json.loads(line)
        return cls(
            str(document["record_id"]),
            str(document["payload_id"]),
            document.get("log_group"),
            document.get("log_stream"),
            str(document["event_id"]),
            str(document["reason"]),
            str(document["message"]),
            document.get("slot"),  # absent from lines written before slots
            document.get("owner"),  # absent from lines written before organization mode
        )


class ArchiveBucket:
    def __init__(self, s3_client: Any, bucket: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket

    def quarantine(self, batch_id: str, events: Sequence[BadEvent], now: datetime) -> str:
        key = f"quarantine/{now:%Y/%m/%d}/{batch_id}.jsonl"
        body = "".join(event.to_line() + "\n" for event in events).encode()
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/x-ndjson")
        return f"s3://{self._bucket}/{key}"

    def overflow(self, batch_id: str, record_id: str, compressed_lines: bytes, now: datetime) -> str:
        key = f"overflow/{now:%Y/%m/%d}/{batch_id}/{record_id}.jsonl.gz"
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=compressed_lines, ContentEncoding="gzip")
        return f"s3://{self._bucket}/{key}"


def gzip_lines(lines: Sequence[str]) -> bytes:
    return gzip.compress("".join(line + "\n" for line in lines).encode(), compresslevel=6, mtime=0)


def enriched_line(metered: Metered, price_version: str) -> str:
    """The enriched record Firehose archives: no prompt or completion bodies.

    `price_version` is the batch's table; a call priced by an operator override names the override.
    `price_basis` says how the price was found (pricing.PriceBasis): anything but `exact` is flagged."""
    row = metered.priced.row
    price_version = row.version if row is not None and row.version else price_version
    invocation, attribution, tokens = metered.invocation, metered.attribution, metered.invocation.tokens
    return json.dumps(
        {
            "request_id": invocation.request_id,
            "timestamp": iso_utc(invocation.timestamp),
            "account": invocation.account_id,
            "region": invocation.region,
            "inference_region": invocation.inference_region,
            "operation": invocation.operation,
            "model_id": invocation.model_id,
            "model": metered.model,
            "service_tier": str(invocation.service_tier),
            "price_status": str(metered.priced.status),
            "price_basis": str(metered.priced.basis),
            "price_version": price_version,
            "principal": attribution.principal,
            "role": attribution.role,
            "app": attribution.app,
            "team": attribution.team,
            "identity_arn": invocation.identity_arn,
            "tokens": {
                "input": tokens.input,
                "output": tokens.output,
                "cache_read": tokens.cache_read,
                "cache_write_5m": tokens.cache_write_5m,
                "cache_write_1h": tokens.cache_write_1h,
            },
            "cost_usd": money.exact(metered.priced.cost_usd),
            "error_code": invocation.error_code,
        },
        separators=(",", ":"),
    )
