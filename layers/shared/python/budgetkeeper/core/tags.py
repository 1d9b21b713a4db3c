"""The IAM tags Budgetkeeper writes on users and reads back: declared here once.

`budgetkeeper user create` and `user create-key` write them; the notifier reads `email` and
`language` to reach a budget's owner, and the CLI reads `person`, `team` and `tool` to roll API-key
users up to their person and team. Values are what the operator typed (IAM tag values: at most 256
characters of letters, digits, spaces and `_.:/=+-@`).
"""

from __future__ import annotations

TEAM_TAG = "team"  # the team the user's spend rolls up to (also in the teams table)
PERSON_TAG = "person"  # the person behind the user (one person, many API-key users)
EMAIL_TAG = "email"  # where the owner of the user's budgets is told
LANGUAGE_TAG = "language"  # the language of those messages: en, es, ...
TOOL_TAG = "tool"  # an API-key user's tool (cline, claude-code, ...)
USER_TAG = "user"  # an API-key user's person user (`user create-key NAME`): NAME


def tags_of(tag_list: list[dict[str, str]]) -> dict[str, str]:
    """IAM's `[{"Key": k, "Value": v}]` as a mapping."""
    return {tag["Key"]: tag["Value"] for tag in tag_list}


def tag_list(tags: dict[str, str | None]) -> list[dict[str, str]]:
    """A mapping as IAM's tag list, leaving out the tags with no value."""
    return [{"Key": key, "Value": value} for key, value in tags.items() if value]
