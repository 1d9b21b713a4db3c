"""A log message decoded fast, where that provably gives what the strict decoder gives.

The strict decoder (`record_rules.decode_message`: `json.loads` with a hook on every object, so a key
twice in any object is refused) costs about 1.3 times a bare `json.loads`; orjson and msgspec decode
the same line in about 0.4 of it, but keep the last of two equal keys silently (neither can refuse
them: msgspec/msgspec#648, ijl/orjson#456). So a line is taken from them only when a cheap check
proves it has no duplicate key. Two proofs, the cheaper first:

- A line that is its own re-encoding: orjson decodes it and re-encodes the document compactly, each
  member once; when that is the line byte for byte but for the whitespace JSON allows around the
  value (Bedrock writes compact JSON, as orjson does), the line has each member once too, and
  `json.loads` reads it as the same document (orjson writes floats that read back exactly; an
  integer beyond 64 bits, which orjson decodes as a float, is re-encoded as a float and differs).
  Comparing costs a memcmp.
- Otherwise (spaces, escapes orjson does not write; a line with a space after its first key comes
  straight here): msgspec decodes it (an integer beyond 64 bits stays an integer) and orjson
  re-encodes it. Every colon of a JSON text is either a member's separator or a character inside a
  string, and the re-encoding writes every colon in its strings as a colon; so when the line holds
  no `\\u003a` escape (a colon written as an escape), its colons and the re-encoding's are as many
  exactly when no member was dropped, that is when no key appears twice.

Anything else goes to the strict decoder, which decides and words the error: a line both refuse
(not JSON, NaN, numbers out of range, lone surrogates, the int-string limit), one nested deeper than
orjson encodes (254 levels, far inside what `json.loads` reads, so both agree on depth), integers
beyond 64 bits (orjson does not encode them), a `\\u003` escape, a colon count that differs, or a
top level that is not an object. tests/unit/test_fast_decode.py checks the parity on the sample
logs, a demo day, the bad events and hostile texts.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson

_JSON_SPACE = b" \t\r\n"  # what JSON allows around a value (a line read from a file ends in a newline)
_REFUSED = (msgspec.DecodeError, orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError, ValueError)


def decode_unambiguous(message: str | bytes) -> dict[str, Any] | None:
    """The message as a JSON object when it has no key twice in any object; None: ask the strict decoder."""
    line = message if type(message) is bytes else message.encode("utf-8", "surrogatepass")
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
