"""How a usage-journal entry holds its rows (storage.journal_codec): every field back as written,
entries of the version before still read, and smaller than they were: pure, no table."""

from __future__ import annotations

import base64
import gzip
import json
from decimal import Decimal

import pytest

from budgetkeeper.storage.journal_codec import ENTRY_FORMAT, JournalEntryError, decode_rows, encode_rows
from budgetkeeper.storage.keys import line_bucket, line_partition, rollup_bucket
from budgetkeeper.storage.tables import RollupItem

HOUR = "2026-11-23T10"
EXPIRES = 1_829_952_000
ARN = "arn:aws:sts::111122223333:assumed-role/ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B"
PRINCIPAL = "session:ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B"


def rollup(scope: str, tier: str | None = "standard", **counters) -> RollupItem:
    model, region = "us.anthropic.claude-haiku-4-5-20251001-v1:0", "us-east-1"
    bucket = rollup_bucket(HOUR, model, region, tier or "standard")
    return RollupItem(
        scope,
        bucket,
        hour=HOUR,
        model=model,
        region=region,
        service_tier=tier,
        expires_at=EXPIRES,
        **counters,
    )


def line(
    role: str | None, app: str | None, team: str | None, operation: str | None, **counters
) -> RollupItem:
    key = (HOUR, "amazon.nova-pro-v1:0", "us-west-2", ARN, PRINCIPAL, role, app, team, operation)
    return RollupItem(
        line_partition(HOUR[:10]),
        line_bucket(key),
        hour=HOUR,
        model=key[1],
        region=key[2],
        identity_arn=ARN,
        principal=PRINCIPAL,
        role=role,
        app=app,
        team=team,
        operation=operation,
        expires_at=EXPIRES,
        **counters,
    )


def every_kind_of_row() -> list[RollupItem]:
    tokens = {"input_tokens": 1200, "output_tokens": 340, "cache_read_tokens": 9, "cache_write_5m_tokens": 8}
    return [
        rollup("role:ChatbotApp-BedrockRole", calls=3, errors=1, cost_usd=Decimal("0.0123450"), **tokens),
        rollup(PRINCIPAL, calls=3, errors=1, cost_usd=Decimal("0.0123450"), **tokens),  # the same counters
        rollup(
            "team:research", tier="priority", calls=1, cache_write_1h_tokens=2**70, cost_usd=Decimal("1E-9")
        ),
        rollup(  # every flag, one of them zero, and an estimate
            "account:111122223333",
            tier="flex",
            calls=4,
            unpriced_calls=1,
            cost_usd=Decimal("2.50"),
            region_fallback_calls=2,
            tier_fallback_calls=0,
            kept_bundled_calls=1,
            estimated_calls=3,
            estimated_cost_usd=Decimal("0.75"),
        ),
        rollup("user:old", tier=None, calls=1),  # written before tiers: its sort key says nothing of one
        line("role:ChatbotApp-BedrockRole", "app:ChatbotApp", "team:customer-experience", None, calls=2),
        line(None, None, None, "batch", calls=1, cost_usd=Decimal("-0.5")),  # a correction
        line(None, "app:Mantle", None, "mantle", calls=1, charged='["user:x"]'),
        RollupItem("user:u1", "not-a-made-key", calls=1),  # nothing to make its key from
        RollupItem(
            "usage#2026-11-22", f"{HOUR}#a-late-line", hour=HOUR, calls=1
        ),  # a day's partition of another hour
    ]


def as_stored(rows: list[RollupItem]) -> list[dict]:
    return [row.serialize() for row in rows]


def test_every_field_of_every_kind_of_row_reads_back_as_written():
    rows = every_kind_of_row()
    data = encode_rows(rows)
    assert data[0] == ENTRY_FORMAT
    assert as_stored(decode_rows(data)) == as_stored(rows)


def test_amounts_keep_their_digits_and_a_zero_flag_stays_zero():
    (back,) = decode_rows(
        encode_rows([rollup("app:a", calls=1, cost_usd=Decimal("0.10"), tier_fallback_calls=0)])
    )
    assert str(back.cost_usd) == "0.10"
    assert back.tier_fallback_calls == 0 and back.region_fallback_calls is None


def v1_entry(rows: list[RollupItem]) -> bytes:
    """An entry as version 1 wrote it (main before version 2): each row's DynamoDB JSON, zero
    counters left out, gzipped."""
    document = [{k: v for k, v in row.serialize().items() if v != {"N": "0"}} for row in rows]
    return gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0)


def test_an_entry_written_before_version_2_is_still_read():
    rows = [
        row for row in every_kind_of_row() if row.tier_fallback_calls != 0
    ]  # v1 read a zero flag as absent
    assert as_stored(decode_rows(v1_entry(rows))) == as_stored(rows)


def test_bytes_of_no_known_version_are_refused_with_what_they_are():
    with pytest.raises(JournalEntryError, match="no known version"):
        decode_rows(b"\x07rest")


def test_a_row_holding_what_an_entry_does_not_keep_is_refused_not_dropped():
    with pytest.raises(JournalEntryError, match="batch_job"):
        encode_rows([RollupItem("user:u1", "b", calls=1, batch_job='{"job": 1}')])


# Three rows of every_kind_of_row() (a priority-tier rollup, one with every flag, a usage line) as
# version 2 first wrote them.
WRITTEN_BY_VERSION_2 = (
    "Ap1TQU7DMBD8S87eamdtJ/GxIHgA4hblEEKkVoi2KonE81nHCXVUTqxvs7NreWbcNGlfDEV3ncMgLCUBJPYVnNS+M+fQHT8mcuRJ2R7MWF3I"
    "Bcuytz4DWqJltW6RzLOgkct2/RqxET/fsnXh8dCNb+dxf7nQIvRLhPsEx+XvFDnP06kfVWLCXh4yxf87P5vx9/Di3K25ethPX+P5c7jS8K0/"
    "7jic+qFQcxoYzg5Qsw8ohStUDrBsnThT4IlCpLvIyfiF7LyKJzNsTcG7ykeebLYqj4s23sYpCKglBC/M8506bo3Ttr/rYumWmxxlBFFCZeqE"
    "B4P4BANFbdu2Pw=="
)


def test_an_entry_version_2_wrote_reads_back_as_it_was():
    # Entries wait in the journal across deploys: a field order, the dictionary or a key made again
    # from the fields changed under version 2 would misread them (such a change needs version 3).
    rows = every_kind_of_row()
    written = decode_rows(base64.b64decode(WRITTEN_BY_VERSION_2))
    assert as_stored(written) == as_stored([rows[2], rows[3], rows[5]])


def test_an_entry_of_a_batch_is_under_half_the_bytes_of_version_1():
    # Forty rows as a batch writes them: callers' lines and the rollups their calls are charged to
    rows = []
    for n in range(8):
        counters = {"calls": n + 1, "input_tokens": 1000 * n + 17, "output_tokens": 300 * n + 5}
        counters["cost_usd"] = Decimal(f"0.{n}0123{n}")
        rows += [rollup(f"user:u{n}", **counters), rollup(f"team:t{n % 3}", **counters)]
        rows += [rollup(f"account:11112222333{n % 2}", **counters), rollup(f"app:a{n % 4}", **counters)]
        rows.append(line(f"role:r{n}", f"app:a{n % 4}", f"team:t{n % 3}", None, **counters))
    assert len(encode_rows(rows)) < len(v1_entry(rows)) / 2
