"""A log message decoded fast, where that provably gives what the strict decoder gives.
docs/architecture.md, "The fast decoder (domain.json_decode)", tells the rest.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

_JSON_SPACE = b" \t\r\n"  # what JSON allows around a value (a line read from a file ends in a newline)
_REFUSED = (msgspec.DecodeError, orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError, ValueError)


def decode_unambiguous(message: str | bytes) -> dict[str, Any] | None:
    """The message as a JSON object when it has no key twice in any object; None: ask the strict decoder."""
    line = message if type(message) is bytes else message.encode("utf-8", "surrogatepass")  # type: ignore[union-attr]
    try:
        if _first_member_compact(line):
            document = orjson.loads(line)
            if type(document) is dict and orjson.dumps(document) == line.strip(_JSON_SPACE):
                return document
        document = msgspec.json.decode(line)
        if type(document) is not dict:
            return None
        canonical = orjson.dumps(document)
    except _REFUSED:
        return None
    if b"\\u003" in line or line.count(b":") != canonical.count(b":"):
        return None
    return document


def _first_member_compact(line: bytes) -> bool:
    """Whether the line starts as compact JSON does (no space after its first key): only such a line
    can be orjson's own re-encoding, so others skip the first proof rather than pay for both."""
    colon = line.find(b'":')
    return colon > 0 and line[colon + 2 : colon + 3] != b" "
