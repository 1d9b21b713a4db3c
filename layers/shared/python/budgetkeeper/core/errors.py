"""What an AWS error says, read one way everywhere."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(error: ClientError) -> str:
    """The error's code (`NoSuchEntity`, `LimitExceeded`, ...), or "" when the response has none."""
    return str(error.response.get("Error", {}).get("Code", ""))
