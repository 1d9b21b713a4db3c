"""Regenerate events/usage_calculator_firehose.json from the records in events/invocation_logs/.

Usage: .venv/bin/python scripts/make_events.py
Two CloudWatch Logs DATA_MESSAGE payloads (us-east-1 records only, as one log group holds one
region's logs) and one CONTROL_MESSAGE, in one Firehose transformation event. Deterministic.
"""

from __future__ import annotations

import json

from devkit.harness.logs import (
    EVENTS_DIR,
    cloudwatch_payload,
    control_payload,
    firehose_event,
    load_invocation_log,
    log_message,
)

PAYLOADS: tuple[tuple[str, ...], ...] = (
    ("app_role_chatbot", "sso_session_bob", "sso_session_carol", "api_key_user"),
    (
        "invoke_model_stream_anthropic_cache",
        "invoke_model_sonnet45_cache_1h",
        "embedding_titan_embed_v2",
        "error_throttling",
    ),
)
INVOCATION_ID = "4b7c2a9e-3f1d-4e8a-9c6b-2d5f8e1a7c30"
ARRIVAL_TIMESTAMP_MS = 1763476200000  # 2025-11-18T14:30:00Z, after the records' own times
OUTPUT = EVENTS_DIR / "usage_calculator_firehose.json"


def main() -> None:
    datas = [
        cloudwatch_payload([log_message(load_invocation_log(name)) for name in names]) for names in PAYLOADS
    ]
    datas.append(control_payload(timestamp_ms=ARRIVAL_TIMESTAMP_MS))
    event = firehose_event(datas, invocation_id=INVOCATION_ID, arrival_timestamp_ms=ARRIVAL_TIMESTAMP_MS)
    OUTPUT.write_text(json.dumps(event, indent=2) + "\n")
    print(f"wrote {OUTPUT} ({len(datas)} records)")


if __name__ == "__main__":
    main()
