"""IAM's own rules, for tests to check Budgetkeeper's policy documents against.

moto stores policies but does not evaluate them, so the tests read a document back and apply:
- `string_like`: IAM's `StringLike` matching, to check a condition against real `aws:userid`s;
- `policy_size` / `document_fits`: IAM's size count (characters without whitespace).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from budgetkeeper.policies import MANAGED_POLICY_LIMIT, compact_json

# The characters `policies.escape_for_condition` writes as `${*}`, `${?}` and `${$}`.
_LITERAL_VARIABLES = frozenset("*?$")
_LIKE_TOKEN = re.compile(r"\$\{([^}]*)\}|[*?]|[^*?$]+|\$")


def string_like(pattern: str, value: str) -> bool:
    """IAM's `StringLike`: case-sensitive, `*` any sequence, `?` one character, whole string.

    `${*}`, `${?}` and `${$}` stand for the literal characters. Any other policy variable is
    resolved from the request by IAM, so it cannot be checked here: ValueError.
    """
    return _like_regex(pattern).fullmatch(value) is not None


@lru_cache(maxsize=4096)
def _like_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for match in _LIKE_TOKEN.finditer(pattern):
        token = match.group()
        if match.group(1) is not None:
            literal = match.group(1)
            if literal not in _LITERAL_VARIABLES:
                raise ValueError(f"policy variable {token!r} in {pattern!r} depends on the request")
            parts.append(re.escape(literal))
        elif token == "*":
            parts.append(".*")
        elif token == "?":
            parts.append(".")
        else:
            parts.append(re.escape(token))
    return re.compile("".join(parts), re.DOTALL)


def policy_size(document: Mapping[str, Any] | str) -> int:
    """Characters as IAM counts them: the document's compact form, whitespace outside strings dropped."""
    if isinstance(document, str):
        document = json.loads(document)
    return len(compact_json(document))


def document_fits(document: Mapping[str, Any] | str, limit: int = MANAGED_POLICY_LIMIT) -> bool:
    return policy_size(document) <= limit
