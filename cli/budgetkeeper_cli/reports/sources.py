"""What an offline report reads: paths and `s3://` URIs turned into log files, line by line.

JSON-lines files, gzipped or not, whole `AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/`
trees (the `data/` folders hold offloaded prompt and completion bodies, not records, and are skipped)
and S3 prefixes; the teams file and the application inference profiles the metering asks about.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.domain.scopes import InvalidScope, ScopeKind, is_valid_scope_name, parse_scope
from budgetkeeper.metering.meter import Metered
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import PriceStatus
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.rendering import counted

# Files a directory walk reads; a file named on the command line is read whatever its name.
LOG_SUFFIXES: tuple[str, ...] = (".json", ".json.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz", ".gz")
BODY_FOLDER = "data"  # `.../HH/data/<requestId>_input.json.gz`: offloaded bodies, not records
S3_SCHEME = "s3://"
_GZIP_MAGIC = b"\x1f\x8b"
_READ_CHUNK = 1 << 16
_MAX_DOCUMENT_BYTES = 64 << 20  # a pretty-printed JSON file is read whole, up to this size
# A CloudWatch Logs export (create-export-task) writes `<ISO time> <message>` lines.
_EXPORTED_LINE = re.compile(rb"\d{4}-\d\d-\d\dT[\d:.]+Z? (\{.*)", re.DOTALL)

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
        unknown = counted(sum(self.unknown_models.values()), "unknown-model call") + _by_count(
            self.unknown_models
        )
        estimated = (
            counted(sum(self.estimated_models.values()), "call")
            + " of models without a price, at an estimate"
            + _by_count(self.estimated_models)
        )
        fallback = f"{counted(sum(self.fallback_calls.values()), 'call')} at a fallback rate" + _by_count(
            self.fallback_calls
        )
        return [unknown, estimated, fallback, counted(self.provisioned_calls, "provisioned-model call")]


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
        raise CommandFailed(f"cannot list {location}: {client_error_text(error)}") from None
    except BotoCoreError as error:
        raise CommandFailed(
            f"cannot list {location}: {error} (check AWS_PROFILE, credentials and region)"
        ) from None


def client_error_text(error: ClientError) -> str:
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
