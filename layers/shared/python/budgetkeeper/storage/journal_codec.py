"""How a usage-journal entry (storage.usage_journal) holds its rows: the bytes of its `deltas`.

An entry is written once (in the batch's transaction) and deleted once (in the fold's), each
charged on its size in whole KB, twice inside a transaction: so its rows are written small.

Version 2, written since: a version byte, then raw deflate, with a preset dictionary of what every
entry repeats, of the JSON array `[strings, counters, rows]`:
- `strings`: each string once; a row refers to its strings by index.
- `counters`: each list of counters (storage.tables.ROLLUP_COUNTERS' order, trailing nulls left
  out, amounts as decimal strings) once: the rollups a caller's calls are charged to mostly share theirs.
- `rows`: each `[scope, bucket, expires_at, counters, *ROW_STRINGS]`, trailing nulls left out.
  A usage line's scope (its day's partition) and a rollup's or usage line's sort key are null when
  the row's own fields make them (storage.keys): made again when read. So a change to those keys
  needs a new version; the two field orders are part of the version too (append only).
Version 1, entries written before: the gzip of each row's DynamoDB JSON. Still read, so entries
waiting for the fold when a version deploys are folded and read as before.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from budgetkeeper.storage.keys import LINE_PARTITION_PREFIX, line_bucket, line_partition, rollup_bucket
from budgetkeeper.storage.tables import ROLLUP_COUNTERS, RollupItem

ENTRY_FORMAT = 2
_FORMAT_BYTE = bytes([ENTRY_FORMAT])
_GZIP_MAGIC = b"\x1f\x8b"  # version 1
# What describes a row besides its key, its TTL and its counters: what a fold sets on the row.
ROW_STRINGS: tuple[str, ...] = ("hour", "model", "region", "service_tier", "identity_arn", "principal")
ROW_STRINGS += ("role", "app", "team", "operation", "charged")
_HELD = frozenset({"scope", "bucket", "expires_at", *ROW_STRINGS, *ROLLUP_COUNTERS})
# What deflate may refer back to from an entry's first byte: the JSON every entry repeats, scope
# kinds, ARN parts, model id parts, Regions. The most frequent last (nearer is cheaper). Frozen
# with version 2: decoding needs the very bytes that encoded.
_DICTIONARY_V2 = (
    b'"priority","flex","reserved","batch","mantle","ou:","person:","project:",'
    b'"cohere.","deepseek.","openai.","qwen.","mistral.","meta.llama","amazon.titan-","amazon.nova-",'
    b'"anthropic.claude-","apac.","eu.","global.","us.","-v2:0","-v1:0",'
    b'"ap-southeast-2","ap-northeast-1","eu-central-1","eu-west-1","us-east-2","us-west-2","us-east-1",'
    b'"arn:aws:sts::",":assumed-role/AWSReservedSSO_","arn:aws:iam::",":user/BedrockAPIKey-",":user/",'
    b'"apikey:","session:","account:","app:","team:","role:","user:","standard",'
    b"[null,null,null,null,null,null],[null,null,"
)


class JournalEntryError(ValueError):
    """An entry's bytes are of no known version, or a row holds what an entry cannot."""


def encode_rows(rows: Sequence[RollupItem]) -> bytes:
    """The `deltas` of an entry holding `rows` (version 2)."""
    strings: dict[str, int] = {}
    counters: dict[tuple[Any, ...], int] = {}

    def ref(value: str | None) -> int | None:
        return None if value is None else strings.setdefault(value, len(strings))

    encoded = []
    for row in rows:
        extra = {name for name, value in row.attribute_values.items() if value is not None} - _HELD
        if extra:
            raise JournalEntryError(f"a usage-journal entry keeps no {sorted(extra)} of a row")
        values = _trimmed([_counter_value(getattr(row, name)) for name in ROLLUP_COUNTERS])
        scope = None if row.scope == _line_scope(row.hour) else row.scope
        bucket = None if row.bucket == _derived_bucket(row.scope, row) else row.bucket
        fields = [ref(scope), ref(bucket), row.expires_at, counters.setdefault(tuple(values), len(counters))]
        encoded.append(_trimmed(fields + [ref(getattr(row, name)) for name in ROW_STRINGS]))
    document = [list(strings), [list(values) for values in counters], encoded]
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=_DICTIONARY_V2)
    text = json.dumps(document, separators=(",", ":")).encode()
    return _FORMAT_BYTE + deflate.compress(text) + deflate.flush()


def decode_rows(data: bytes) -> list[RollupItem]:
    """The rows an entry's `deltas` hold, each with its deltas as counters (version 2 or 1)."""
    if data.startswith(_GZIP_MAGIC):
        return [RollupItem.from_raw_data(raw) for raw in json.loads(gzip.decompress(data))]
    if not data.startswith(_FORMAT_BYTE):
        raise JournalEntryError(f"a usage-journal entry of no known version (first byte {data[:1]!r})")
    inflate = zlib.decompressobj(-15, zdict=_DICTIONARY_V2)
    strings, counters, encoded = json.loads(inflate.decompress(data[1:]) + inflate.flush())
    rows = []
    for scope_ref, bucket_ref, expires_at, counters_ref, *string_refs in encoded:
        named = [None if i is None else strings[i] for i in string_refs]
        values: dict[str, Any] = dict(zip(ROW_STRINGS, named, strict=False))
        values |= {
            name: Decimal(value) if isinstance(value, str) else value
            for name, value in zip(ROLLUP_COUNTERS, counters[counters_ref], strict=False)
            if value is not None
        }
        row = RollupItem(expires_at=expires_at, **values)
        row.scope = _line_scope(row.hour) if scope_ref is None else strings[scope_ref]
        row.bucket = _derived_bucket(row.scope, row) if bucket_ref is None else strings[bucket_ref]
        rows.append(row)
    return rows


def _trimmed(values: list[Any]) -> list[Any]:
    while values and values[-1] is None:
        values.pop()
    return values


def _counter_value(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value  # exact, and told apart from counts


def _line_scope(hour: str | None) -> str | None:
    return line_partition(hour[:10]) if hour else None


def _derived_bucket(scope: str | None, row: RollupItem) -> str | None:
    """The sort key a usage line's or a rollup's fields make; None when they make none."""
    if scope is None or row.hour is None or row.model is None or row.region is None:
        return None
    if scope.startswith(LINE_PARTITION_PREFIX):
        if row.identity_arn is None or row.principal is None:
            return None
        key = (row.hour, row.model, row.region, row.identity_arn, row.principal)
        return line_bucket((*key, row.role, row.app, row.team, row.operation))
    if row.service_tier is None:
        return None
    return rollup_bucket(row.hour, row.model, row.region, row.service_tier)
