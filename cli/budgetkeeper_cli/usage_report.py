"""Offline usage reports: read invocation log files, meter every record, aggregate and render.

The reading side turns paths and `s3://` URIs into a stream of log lines, file by file and line by
line, as users download the logs from S3: JSON-lines files, gzipped or not, whole
`AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/` trees (the `data/` folders
hold offloaded prompt and completion bodies, not records, and are skipped) and S3 prefixes.
Every line goes through `Meter.meter`, the parsing, attribution and pricing the usage calculator
Lambda uses, so the offline figures are the Lambda's figures.

The aggregating side (`UsageReport`) keeps one `Totals` per combination of group values, so memory
grows with the number of groups, never with the number of records. Costs are `Decimal` sums of the
per-record costs: exact, rounded only by `money.dollars()` in the table.

Reusable by report commands: `resolve_inputs` + `iter_sources` (what to read), `scan` (meter and
filter every record into a sink), `UsageReport` and `render` (aggregate and print). `budgetkeeper
report` feeds the same `UsageReport` from the usage lines of the rollups table (`add_line`), so both
commands have one set of options (`add_report_options`), one set of rows and one renderer.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import io
import json
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core import money
from budgetkeeper.domain.log_records import MalformedEvent
from budgetkeeper.domain.scopes import InvalidScope, ScopeKind, is_valid_scope_name, parse_scope
from budgetkeeper.metering.deltas import calls_counter
from budgetkeeper.metering.meter import Meter, Metered
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import PriceStatus
from budgetkeeper.pricing.table import PriceBasis
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper_cli import rendering
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.rendering import FORMATS as FORMATS  # re-exported for the meter command
from budgetkeeper_cli.rendering import Column

GROUP_FIELDS: tuple[str, ...] = ("principal", "role", "app", "team", "model", "region", "day", "hour")
COUNTER_FIELDS: tuple[str, ...] = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "cost_usd",
    "estimated_usd",
    "flagged",
)
# The bases a usage line counts calls of (usage_writer.calls_counter): every one but exact.
FLAGGED_BASES: tuple[PriceBasis, ...] = tuple(basis for basis in PriceBasis if basis is not PriceBasis.EXACT)
ROW_FIELDS: tuple[str, ...] = (*COUNTER_FIELDS[:-1], "price_basis")
MALFORMED_SHOWN = 10  # malformed lines listed one by one; the rest are counted

# Files a directory walk reads; a file named on the command line is read whatever its name.
LOG_SUFFIXES: tuple[str, ...] = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".gz")
BODY_FOLDER = "data"  # `.../HH/data/<requestId>_input.json.gz`: offloaded bodies, not records
S3_SCHEME = "s3://"
_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 16
_MAX_DOCUMENT_BYTES = 64 << 20  # a pretty-printed JSON file is read whole, up to this size
# A CloudWatch Logs export (create-export-task) writes `<ISO time> <message>` lines.
_EXPORTED_LINE = re.compile(rb"\d{4}-\d\d-\d\dT[\d:.]+Z? (\{.*)", re.DOTALL)
_PROGRESS_INTERVAL_S = 0.2


# --- group fields ------------------------------------------------------------------------------


_FIELD_VALUE: Mapping[str, Callable[[Metered], str | None]] = {
    "principal": lambda m: m.attribution.principal,
    "role": lambda m: m.attribution.role,
    "app": lambda m: m.attribution.app,
    "team": lambda m: m.attribution.team,
    "model": lambda m: m.model,
    "region": lambda m: m.invocation.region,
    "day": lambda m: m.invocation.timestamp.date().isoformat(),  # timestamps are UTC
    "hour": lambda m: m.hour,
}

# The same fields of a usage line (the rollups table's finest rollup: one hour of one caller).
_LINE_VALUE: Mapping[str, Callable[[RollupItem], str | None]] = {
    "principal": lambda line: line.principal,
    "role": lambda line: line.role,
    "app": lambda line: line.app,
    "team": lambda line: line.team,
    "model": lambda line: line.model,
    "region": lambda line: line.region,
    "day": lambda line: line.hour[:10] if line.hour else None,
    "hour": lambda line: line.hour,
}


def parse_group_by(text: str) -> tuple[str, ...]:
    """`principal,model` -> ("principal", "model"); an unknown field is a UsageError naming the valid ones."""
    fields = [name.strip().lower() for name in text.split(",") if name.strip()]
    if not fields:
        raise UsageError(
            f"--group-by needs at least one field: type e.g. --group-by principal,model "
            f"(fields: {', '.join(GROUP_FIELDS)})"
        )
    unknown = [name for name in fields if name not in GROUP_FIELDS]
    if unknown:
        raise UsageError(
            f"unknown --group-by field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: "
            f"use a comma-separated list of {', '.join(GROUP_FIELDS)}, e.g. --group-by team,model"
        )
    return tuple(dict.fromkeys(fields))


# --- aggregation -------------------------------------------------------------------------------


@dataclass(slots=True)
class Totals:
    """Calls, tokens by kind and exact cost of a group of invocations."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # 5-minute and 1-hour writes together
    cost_usd: Decimal = field(default_factory=Decimal)
    estimated_usd: Decimal = field(default_factory=Decimal)  # the part of cost_usd that is an estimate
    flagged: Counter[str] = field(default_factory=Counter)  # calls priced at anything but exact, by basis

    def add(self, metered: Metered, calls: int = 1) -> None:
        """One invocation, or `calls` of them summed into `metered` (the Athena engine's groups)."""
        tokens = metered.invocation.tokens
        priced = metered.priced
        self.calls += calls
        self.input_tokens += tokens.input
        self.output_tokens += tokens.output
        self.cache_read_tokens += tokens.cache_read
        self.cache_write_tokens += tokens.cache_write_5m + tokens.cache_write_1h
        self.cost_usd += priced.cost_usd
        if priced.flagged:
            self.flagged[str(priced.basis)] += calls
        if priced.basis is PriceBasis.ESTIMATE:
            self.estimated_usd += priced.cost_usd

    def add_line(self, line: RollupItem) -> None:
        self.calls += int(line.calls)
        self.input_tokens += int(line.input_tokens)
        self.output_tokens += int(line.output_tokens)
        self.cache_read_tokens += int(line.cache_read_tokens)
        self.cache_write_tokens += int(line.cache_write_5m_tokens) + int(line.cache_write_1h_tokens)
        self.cost_usd += line.cost_usd
        self.estimated_usd += line.estimated_cost_usd or 0
        for basis in FLAGGED_BASES:
            self.flagged[str(basis)] += int(getattr(line, calls_counter(basis)) or 0)

    def merge(self, other: Totals) -> None:
        for name in COUNTER_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def price_basis(self) -> str:
        """`exact`, or the calls priced otherwise by basis: `region_fallback x3, estimate x1`."""
        flagged = [f"{basis} x{count:,}" for basis, count in sorted(self.flagged.items()) if count]
        return ", ".join(flagged) or str(PriceBasis.EXACT)


@dataclass(frozen=True, slots=True)
class ReportRow:
    group: tuple[str | None, ...]  # values in the order of UsageReport.group_by; None: the record has none
    totals: Totals


class UsageReport:
    """Totals of metered invocations per combination of `group_by` values."""

    def __init__(self, group_by: Sequence[str]) -> None:
        unknown = [name for name in group_by if name not in _FIELD_VALUE]
        if unknown or not group_by:
            raise UsageError(
                f"group fields must be some of {', '.join(GROUP_FIELDS)}, not {list(group_by)!r}"
            )
        self.group_by: tuple[str, ...] = tuple(group_by)
        self._getters = tuple(_FIELD_VALUE[name] for name in self.group_by)
        self._line_getters = tuple(_LINE_VALUE[name] for name in self.group_by)
        self._groups: dict[tuple[str | None, ...], Totals] = {}

    def _totals(self, key: tuple[str | None, ...]) -> Totals:
        totals = self._groups.get(key)
        if totals is None:
            totals = self._groups[key] = Totals()
        return totals

    def add(self, metered: Metered, calls: int = 1) -> None:
        self._totals(tuple(getter(metered) for getter in self._getters)).add(metered, calls)

    def add_line(self, line: RollupItem) -> None:
        """A usage line of the rollups table: the same fields, the same counters, summed exactly."""
        self._totals(tuple(getter(line) for getter in self._line_getters)).add_line(line)

    def totals_of(self, group: tuple[str | None, ...]) -> Totals:
        """The totals of one group; zero when the report has none of it."""
        return self._groups.get(group) or Totals()

    def __len__(self) -> int:
        return len(self._groups)

    def rows(self) -> list[ReportRow]:
        """Every group, the most expensive first (then most calls, then by group values)."""
        return [
            ReportRow(group, totals)
            for group, totals in sorted(
                self._groups.items(),
                key=lambda item: (-item[1].cost_usd, -item[1].calls, tuple(v or "" for v in item[0])),
            )
        ]

    @property
    def total(self) -> Totals:
        total = Totals()
        for totals in self._groups.values():
            total.merge(totals)
        return total


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
    """--group-by, --format, --arn-pattern, --since, --until and --max-rows, as both commands take them."""
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


def max_rows(text: str) -> int:
    """A count of rows, 1 or more (argparse `type`: a bad value exits 2 with the message)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number: type e.g. 20") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is fewer than one row: type e.g. 20")
    return value


# --- teams -------------------------------------------------------------------------------------

_TEAMS_EXAMPLE = (
    '{"user:alice": "research", "role:ChatbotApp-BedrockRole": "support", "app:ReportBuilder": "finance"}'
)


def load_teams_file(path: Path) -> dict[str, str]:
    """A JSON object mapping principal, role or app scopes to team names, as the teams table holds them."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CommandFailed(f"no such teams file: {path}") from None
    except OSError as error:
        raise CommandFailed(f"cannot read teams file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(
            f"teams file {path} is not JSON ({error}): write an object like {_TEAMS_EXAMPLE}"
        ) from None
    if type(document) is not dict:
        raise UsageError(
            f"teams file {path} holds a JSON {type(document).__name__}: write an object like {_TEAMS_EXAMPLE}"
        )
    teams: dict[str, str] = {}
    for scope, team in document.items():
        if type(team) is not str:
            raise UsageError(
                f"teams file {path}: the team of {scope!r} is not a string: write e.g. {_TEAMS_EXAMPLE}"
            )
        try:
            kind = parse_scope(scope).kind
        except InvalidScope as error:
            raise UsageError(f"teams file {path}: {error}") from None
        if kind is ScopeKind.TEAM:
            raise UsageError(
                f"teams file {path}: {scope!r} is a team; map principal, role or app scopes to teams"
            )
        name = team.removeprefix(f"{ScopeKind.TEAM}:")
        if not is_valid_scope_name(name):
            raise UsageError(
                f"teams file {path}: team name {team!r} of {scope!r} is empty or has control characters"
            )
        teams[scope.strip()] = name
    return teams


# --- application inference profiles ------------------------------------------------------------


class RegionalProfiles(InferenceProfiles):
    """Application inference profiles asked of Bedrock in the region their ARN names.

    Logs from several regions can hold profiles of several regions; the control-plane API is
    regional. No client is created until an application-profile ARN is met.
    """

    def __init__(self) -> None:
        super().__init__()
        self._regions: dict[str, InferenceProfiles] = {}

    def _profiles(self, arn: str) -> InferenceProfiles:
        parts = arn.split(":", 5)
        region = parts[3] if len(parts) > 3 and parts[3] else ""
        profiles = self._regions.get(region)
        if profiles is None:
            profiles = self._regions[region] = InferenceProfiles(region_name=region or None)
        return profiles

    def model_id_for(self, arn: str) -> str | None:
        return self._profiles(arn).model_id_for(arn)

    def tags_for(self, arn: str) -> dict[str, str]:
        return self._profiles(arn).tags_for(arn)


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}"


Input = Path | S3Location


@dataclass(frozen=True, slots=True)
class LogSource:
    """One file or S3 object to read: `name` is how messages name it, `open` gives its raw bytes."""

    name: str
    open: Callable[[], IO[bytes]]


def parse_s3_uri(text: str) -> S3Location:
    bucket, _, prefix = text[len(S3_SCHEME) :].partition("/")
    if not bucket:
        raise UsageError(f"{text!r} names no bucket: type s3://BUCKET/PREFIX, e.g. s3://my-logs/AWSLogs/")
    return S3Location(bucket, prefix)


def resolve_inputs(texts: Sequence[str]) -> list[Input]:
    """Paths and S3 URIs as typed; a local path that does not exist is a CommandFailed, before any reading."""
    inputs: list[Input] = []
    for text in texts:
        if text.startswith(S3_SCHEME):
            inputs.append(parse_s3_uri(text))
            continue
        path = Path(text).expanduser()
        if not path.exists():
            raise CommandFailed(f"no such file or directory: {text}")
        inputs.append(path)
    return inputs


def is_log_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(LOG_SUFFIXES)


@dataclass(slots=True)
class ScanStats:
    """What a scan read, and what it could not meter."""

    files: int = 0
    skipped_files: int = 0  # in data/ folders, or not named like a log file
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    records: int = 0  # metered records, before filters
    matched: int = 0  # records the filter kept
    malformed: int = 0
    malformed_shown: list[tuple[str, str]] = field(default_factory=list)  # (file:line, reason), first few
    unknown_models: Counter[str] = field(default_factory=Counter)  # matched calls by model key
    provisioned_calls: int = 0  # matched calls to provisioned-throughput models
    empty_inputs: list[str] = field(default_factory=list)  # inputs that held no log file
    estimated_models: Counter[str] = field(default_factory=Counter)  # matched calls at an estimate
    fallback_calls: Counter[str] = field(default_factory=Counter)  # matched calls at a fallback rate

    def count_price(self, metered: Metered, calls: int = 1) -> None:
        """Count matched calls that were not priced exactly, by why."""
        priced = metered.priced
        if priced.status is PriceStatus.UNKNOWN_MODEL:
            self.unknown_models[priced.model_key] += calls
        elif priced.status is PriceStatus.PROVISIONED:
            self.provisioned_calls += calls
        elif priced.status is PriceStatus.ESTIMATED:
            self.estimated_models[priced.model_key] += calls
        elif priced.flagged:
            self.fallback_calls[str(priced.basis)] += calls

    def price_notes(self) -> list[str]:
        """The summary's parts on calls not priced exactly."""
        unknown = f"{sum(self.unknown_models.values()):,} unknown-model calls" + _by_count(
            self.unknown_models
        )
        estimated = (
            f"{sum(self.estimated_models.values()):,} calls of models without a price, at an estimate"
            + _by_count(self.estimated_models)
        )
        fallback = f"{sum(self.fallback_calls.values()):,} calls at a fallback rate" + _by_count(
            self.fallback_calls
        )
        return [unknown, estimated, fallback, f"{self.provisioned_calls:,} provisioned-model calls"]


def _by_count(counts: Counter[str]) -> str:
    if not counts:
        return ""
    return " (" + ", ".join(f"{name} x{count:,}" for name, count in counts.most_common()) + ")"


def iter_sources(
    inputs: Iterable[Input], stats: ScanStats, s3_client: Callable[[], Any] | None = None
) -> Iterator[LogSource]:
    """Every log file under the inputs, in a stable order; S3 listings are read page by page.

    `s3_client` makes the S3 client (default: `boto3.client("s3")`, which follows AWS_PROFILE,
    AWS_ENDPOINT_URL and the other usual settings); it is called once, at the first S3 input.
    """
    client: Any = None
    for item in inputs:
        found = False
        if isinstance(item, S3Location):
            if client is None:
                client = (s3_client or _default_s3_client)()
            sources = _s3_sources(client, item, stats)
        else:
            sources = _local_sources(item, stats)
        for source in sources:
            found = True
            yield source
        if not found:
            stats.empty_inputs.append(str(item))


def _local_sources(path: Path, stats: ScanStats) -> Iterator[LogSource]:
    if not path.is_dir():
        yield LogSource(str(path), lambda p=path: open(p, "rb"))  # noqa: SIM115 - closed by the reader
        return
    for folder, dirnames, filenames in os.walk(path, onerror=_raise):
        if BODY_FOLDER in dirnames:
            dirnames.remove(BODY_FOLDER)
            stats.skipped_files += sum(len(files) for _, _, files in os.walk(Path(folder, BODY_FOLDER)))
        dirnames.sort()
        for filename in sorted(filenames):
            if not is_log_name(filename):
                stats.skipped_files += 1
                continue
            file_path = Path(folder, filename)
            yield LogSource(str(file_path), lambda p=file_path: open(p, "rb"))  # noqa: SIM115


def _raise(error: OSError) -> None:
    raise CommandFailed(f"cannot list {error.filename}: {error.strerror or error}")


def _default_s3_client() -> Any:
    import boto3  # here: reading local files needs no boto3 session

    return boto3.client("s3")


def _s3_sources(client: Any, location: S3Location, stats: ScanStats) -> Iterator[LogSource]:
    paginator = client.get_paginator("list_objects_v2")
    try:
        for page in paginator.paginate(Bucket=location.bucket, Prefix=location.prefix):
            for entry in page.get("Contents", ()):
                key = entry["Key"]
                if key.endswith("/"):
                    continue
                relative = key[len(location.prefix) :]
                if key != location.prefix and (
                    BODY_FOLDER in relative.split("/")[:-1] or not is_log_name(relative.rsplit("/", 1)[-1])
                ):
                    stats.skipped_files += 1
                    continue
                yield LogSource(
                    f"{S3_SCHEME}{location.bucket}/{key}",
                    lambda k=key: _s3_stream(client, location.bucket, k),
                )
    except ClientError as error:
        raise CommandFailed(f"cannot list {location}: {_client_error_text(error)}") from None
    except BotoCoreError as error:
        raise CommandFailed(
            f"cannot list {location}: {error} (check AWS_PROFILE, credentials and region)"
        ) from None


def _client_error_text(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'error')}: {details.get('Message') or error}"


def _s3_stream(client: Any, bucket: str, key: str) -> IO[bytes]:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    return io.BufferedReader(_RawBody(body), buffer_size=_READ_CHUNK)


class _RawBody(io.RawIOBase):
    """botocore's StreamingBody as a raw stream, so io.BufferedReader can peek and split lines."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


# --- reading -----------------------------------------------------------------------------------


def iter_lines(stream: IO[bytes]) -> Iterator[tuple[int | str, bytes | str]]:
    """(line number or item label, record text) for every record in a log file, gzipped or not.

    JSON-lines files are read line by line. A pretty-printed JSON file (its first line is only `{`
    or `[`: one record or an array of records, like the repository's fixtures) is read whole.
    Lines of a CloudWatch Logs export (`<ISO time> <message>`) lose their time prefix.
    """
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[arg-type]
    reader: IO[bytes] = buffered
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        reader = gzip.GzipFile(fileobj=buffered, mode="rb")
    first = True
    for number, line in enumerate(reader, 1):
        if not line or line.isspace():
            continue
        if first:
            first = False
            opening = line.strip()
            if opening in (b"{", b"["):
                yield from _document_records(number, line + reader.read(_MAX_DOCUMENT_BYTES))
                return
        if line[:1] != b"{" and (exported := _EXPORTED_LINE.match(line)) is not None:
            line = exported.group(1)
        yield number, line


def _document_records(number: int, data: bytes) -> Iterator[tuple[int | str, bytes | str]]:
    try:
        document = json.loads(data)
    except ValueError:
        yield number, data  # the meter says why it is not JSON
        return
    if type(document) is list:
        for index, item in enumerate(document, 1):
            yield f"item {index}", json.dumps(item)
    else:
        yield number, json.dumps(document)


# --- scanning ----------------------------------------------------------------------------------


class Progress:
    """One updating line on a terminal: files, records and elapsed time; silent elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._start = time.monotonic()
        self._next = self._start + _PROGRESS_INTERVAL_S
        self._shown = False

    def update(self, stats: ScanStats, *, force: bool = False) -> None:
        now = time.monotonic()
        if now < self._next and not force:
            return
        self._next = now + _PROGRESS_INTERVAL_S
        self._stream.write(
            f"\rmetering: {stats.files:,} files, {stats.records + stats.malformed:,} records, "
            f"{now - self._start:.1f}s\x1b[K"
        )
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def progress_for(stream: TextIO) -> Progress | None:
    """A progress line only when `stream` is a terminal: never in pipes, files or CI logs."""
    isatty = getattr(stream, "isatty", None)
    return Progress(stream) if isatty is not None and isatty() else None


_READ_ERRORS = (OSError, EOFError, zlib.error, BotoCoreError, ClientError)


def scan(
    sources: Iterable[LogSource],
    meter: Meter,
    sink: Callable[[Metered], None],
    *,
    record_filter: RecordFilter | None = None,
    stats: ScanStats | None = None,
    progress: Progress | None = None,
) -> ScanStats:
    """Meter every line of every source; records the filter keeps go to `sink`.

    Malformed lines are counted (the first few kept with file and line) and never stop the scan. A
    file that cannot be read (bad gzip, S3 error) is recorded in `stats.unreadable` and the scan
    goes on with the next one; records read from it before the error stay counted.
    """
    stats = stats if stats is not None else ScanStats()
    keep = record_filter.matches if record_filter is not None and record_filter.is_active else None
    shown = stats.malformed_shown
    for source in sources:
        stats.files += 1
        try:
            with source.open() as stream:
                for where, line in iter_lines(stream):
                    try:
                        metered = meter.meter(line)
                    except MalformedEvent as error:
                        stats.malformed += 1
                        if len(shown) < MALFORMED_SHOWN:
                            shown.append((f"{source.name}:{where}", error.reason))
                        continue
                    stats.records += 1
                    if progress is not None and not stats.records & 0xFF:
                        progress.update(stats)
                    if keep is not None and not keep(metered):
                        continue
                    stats.matched += 1
                    stats.count_price(metered)
                    sink(metered)
        except _READ_ERRORS as error:
            stats.unreadable.append((source.name, _read_error_text(error)))
        if progress is not None:
            progress.update(stats)
    if progress is not None:
        progress.close()
    return stats


def _read_error_text(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return _client_error_text(error)
    if isinstance(error, EOFError):
        return "the gzip data ends early (truncated file)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def summary_lines(stats: ScanStats, *, price_version: str, filtered: bool) -> list[str]:
    """What was read and what could not be metered, for stderr."""
    lines = [f"malformed: {where}: {reason}" for where, reason in stats.malformed_shown]
    if stats.malformed > len(stats.malformed_shown):
        lines.append(
            f"malformed: ... and {stats.malformed - len(stats.malformed_shown):,} more malformed lines"
        )
    lines += [f"unreadable: {name}: {reason}" for name, reason in stats.unreadable]
    lines += [f"note: no invocation log files in {name}" for name in stats.empty_inputs]
    skipped = (
        f" ({stats.skipped_files:,} skipped: data/ bodies or not log files)" if stats.skipped_files else ""
    )
    parts = [
        f"read {stats.files:,} file{'' if stats.files == 1 else 's'}{skipped}",
        f"{stats.records:,} records" + (f" ({stats.matched:,} matched the filters)" if filtered else ""),
        f"{stats.malformed:,} malformed",
    ]
    parts += [*stats.price_notes(), f"prices {price_version}"]
    lines.append("summary: " + ", ".join(parts))
    return lines


# --- rendering ---------------------------------------------------------------------------------
# Through the one renderer every command uses (budgetkeeper_cli.rendering).

_COUNTER_TITLES: Mapping[str, str] = {
    "calls": "calls",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
    "cache_read_tokens": "cache read",
    "cache_write_tokens": "cache write",
}


OTHERS = "(others)"  # the group value of the row that sums the groups --top leaves out


COMPARE_COLUMNS: tuple[Column, ...] = (
    Column("previous_calls", "prev calls", numeric=True, show="{:,}".format),
    Column("previous_cost_usd", "prev cost", numeric=True, show=money.dollars),
    Column("change_usd", "change", numeric=True, show=money.dollars),
    Column("change_percent", "change %", numeric=True, show=lambda value: f"{value:+.1f}%"),
)


def columns(group_by: Sequence[str], *, compare: bool = False) -> list[Column]:
    """The columns of a usage report: group fields, counters, cost (and the comparison)."""
    return [
        *(Column(name) for name in group_by),
        *(Column(name, title, numeric=True, show="{:,}".format) for name, title in _COUNTER_TITLES.items()),
        Column("cost_usd", "cost", numeric=True, show=money.dollars),
        Column("estimated_usd", "estimated", numeric=True, show=money.dollars),
        Column("price_basis", "price basis"),
        *(COMPARE_COLUMNS if compare else ()),
    ]


def _row(group: Sequence[str | None], group_by: Sequence[str], totals: Totals) -> dict[str, Any]:
    return {
        **dict(zip(group_by, group, strict=True)),
        **{name: getattr(totals, name) for name in ROW_FIELDS},
    }


def _comparison(current: Totals, previous: Totals) -> dict[str, Any]:
    change = current.cost_usd - previous.cost_usd
    percent = (change * 100 / previous.cost_usd).quantize(Decimal("0.1")) if previous.cost_usd else None
    return {
        "previous_calls": previous.calls,
        "previous_cost_usd": previous.cost_usd,
        "change_usd": change,
        "change_percent": percent,
    }


@dataclass(frozen=True, slots=True)
class ReportRows:
    """The rows a report prints, and what it left out of them."""

    columns: list[Column]
    rows: list[dict[str, Any]]
    total: dict[str, Any]  # the footer of the table: every group, also those not printed
    left_out: int = 0  # groups --max-rows did not print


def report_rows(
    report: UsageReport,
    *,
    previous: UsageReport | None = None,
    top: int | None = None,
    max_rows: int | None = None,
) -> ReportRows:
    """Rows, the most expensive first; with `previous`, each group against the window before.

    `top` keeps the N most expensive groups and sums the rest in one row whose group values are
    `(others)`, so the rows still add up to the total; `max_rows` prints at most N rows.
    """
    group_by = report.group_by
    ranked = report.rows()
    if previous is not None:  # groups only the previous window had, at zero now
        seen = {row.group for row in ranked}
        ranked += [ReportRow(row.group, Totals()) for row in previous.rows() if row.group not in seen]
    rows: list[tuple[tuple[str | None, ...], Totals, Totals | None]] = [
        (row.group, row.totals, previous.totals_of(row.group) if previous is not None else None)
        for row in ranked
    ]
    if top is not None and len(rows) > top:
        others, others_before = Totals(), Totals() if previous is not None else None
        for _, totals, before in rows[top:]:
            others.merge(totals)
            if others_before is not None and before is not None:
                others_before.merge(before)
        rows = [*rows[:top], ((OTHERS,) * len(group_by), others, others_before)]
    shown = rows if max_rows is None else rows[:max_rows]
    printed = [
        {**_row(group, group_by, totals), **(_comparison(totals, before) if before is not None else {})}
        for group, totals, before in shown
    ]
    total = _row(["TOTAL", *([""] * (len(group_by) - 1))], group_by, report.total)
    if previous is not None:
        total.update(_comparison(report.total, previous.total))
    return ReportRows(columns(group_by, compare=previous is not None), printed, total, len(rows) - len(shown))


FLAG_COLUMNS = frozenset({"estimated_usd", "price_basis"})


def render_rows(rows: ReportRows, output_format: str) -> str:
    """Table (costs rounded for people, a total line), csv or json (exact costs). A table shows
    the estimated cost and price basis only when some call was not priced exactly; csv and json
    always carry them."""
    columns = rows.columns
    if output_format == "table" and rows.total["price_basis"] == PriceBasis.EXACT:
        columns = [column for column in columns if column.key not in FLAG_COLUMNS]
    return rendering.render(columns, rows.rows, output_format, footer=rows.total)


def render(report: UsageReport, output_format: str, *, max_rows: int | None = None) -> str:
    """Table (costs rounded for people, the most expensive group first, a total line), csv or json."""
    return render_rows(report_rows(report, max_rows=max_rows), output_format)


def left_out_line(rows: ReportRows) -> list[str]:
    """What --max-rows left out, for stderr."""
    if not rows.left_out:
        return []
    return [f"note: {rows.left_out:,} more row{'s' if rows.left_out > 1 else ''} not shown (--max-rows)"]
