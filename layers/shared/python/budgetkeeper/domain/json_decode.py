"""A log message decoded fast, where that provably gives what the strict decoder gives.
docs/architecture.md, "The fast decoder (domain.json_decode)", tells the rest.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

_decode = msgspec.json.decode
_encode = orjson.dumps
_REFUSED = (msgspec.DecodeError, orjson.JSONEncodeError, RecursionError, ValueError)


def decode_unambiguous(message: str | bytes) -> dict[str, Any] | None:
    """The message as a JSON object when it has no key twice in any object; None: ask the strict decoder."""
    try:
        document = _decode(message)
        if type(document) is not dict:
            return None
        canonical = _encode(document)
    except _REFUSED:
        return None
    if isinstance(message, bytes):
        if b"\\u003" in message or message.count(b":") != canonical.count(b":"):
            return None
    elif "\\u003" in message or message.count(":") != canonical.count(b":"):
        return None
    return document
