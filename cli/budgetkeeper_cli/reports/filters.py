"""Which records a report keeps (identity ARN glob, time bounds), and the options `meter` and
`report` share."""

from __future__ import annotations

import argparse
import fnmatch
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from budgetkeeper.metering.meter import Metered
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.rendering import FORMATS
from budgetkeeper_cli.reports.aggregation import GROUP_FIELDS

# --- filters -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordFilter:
    """Which metered records a report keeps: identity ARN glob, `since <= timestamp < until`."""

    arn_pattern: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    _arn_match: Callable[[str], Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.arn_pattern is not None:
            matcher = re.compile(fnmatch.translate(self.arn_pattern)).match
            object.__setattr__(self, "_arn_match", matcher)

    @property
    def is_active(self) -> bool:
        return self.arn_pattern is not None or self.since is not None or self.until is not None

    def matches(self, metered: Metered) -> bool:
        return self.keeps(metered.invocation.identity_arn, metered.invocation.timestamp)

    def keeps(self, identity_arn: str, timestamp: datetime) -> bool:
        if self._arn_match is not None and self._arn_match(identity_arn) is None:
            return False
        if self.since is not None and timestamp < self.since:
            return False
        return self.until is None or timestamp < self.until


def parse_time_bound(text: str, option: str, *, end_of_day: bool = False) -> datetime:
    """A `--since`/`--until` value: a date (midnight UTC; with `end_of_day`, the next midnight) or an
    ISO date and time (UTC when it names no zone)."""
    value = text.strip()
    example = f"type e.g. {option} 2025-11-18 or {option} 2025-11-18T09:30:00Z"
    try:
        if "T" not in value and " " not in value and len(value) <= 10:
            day = date.fromisoformat(value)
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date or an ISO-8601 date and time: {example}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def record_filter_from_options(arn_pattern: str | None, since: str | None, until: str | None) -> RecordFilter:
    """The filter the `--arn-pattern`, `--since` and `--until` options ask for (UsageError when wrong)."""
    if arn_pattern is not None and not (
        arn_pattern.startswith("arn:") or any(c in arn_pattern for c in "*?[")
    ):
        raise UsageError(
            f"--arn-pattern {arn_pattern!r} is neither an ARN nor a glob and would match nothing: "
            "type e.g. --arn-pattern '*:user/alice' "
            "or --arn-pattern '*:assumed-role/ChatbotApp-BedrockRole/*'"
        )
    start = parse_time_bound(since, "--since") if since is not None else None
    end = parse_time_bound(until, "--until", end_of_day=True) if until is not None else None
    if start is not None and end is not None and start >= end:
        raise UsageError(
            f"--since {since} is not before --until {until}: nothing could match "
            "(a date for --until includes that whole day)"
        )
    return RecordFilter(arn_pattern, start, end)


# --- options shared by `meter` and `report` ----------------------------------------------------


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """--group-by, --format, --arn-pattern, --since, --until, --max-rows and --wide, as both commands
    take them."""
    parser.add_argument(
        "--group-by",
        default="principal",
        metavar="FIELDS",
        help=f"comma-separated group fields, from: {','.join(GROUP_FIELDS)} (default: principal)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="table (costs rounded for people, with a total), csv or json (exact costs); default: table",
    )
    parser.add_argument(
        "--arn-pattern",
        metavar="GLOB",
        help="only calls whose identity ARN matches this glob, e.g. '*:user/alice' (case-sensitive)",
    )
    parser.add_argument(
        "--since",
        metavar="ISO",
        help="only calls at or after this time: a date (midnight UTC) or e.g. 2025-11-18T09:00:00Z",
    )
    parser.add_argument(
        "--until",
        metavar="ISO",
        help="only calls before this time; a date includes that whole day (UTC)",
    )
    parser.add_argument(
        "--max-rows",
        type=max_rows,
        metavar="N",
        help="print at most N rows, the most expensive first (the total still counts every group)",
    )
    parser.add_argument(
        "--wide",
        action="store_true",
        default=argparse.SUPPRESS,  # absent: budgetkeeper's own --wide (before the command) stands
        help="a table as wide as its cells, every column on one line a row (default: within 120 columns)",
    )


def max_rows(text: str) -> int:
    """A count of rows, 1 or more (argparse `type`: a bad value exits 2 with the message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: type e.g. 20") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is fewer than one row: type e.g. 20")
    return value
