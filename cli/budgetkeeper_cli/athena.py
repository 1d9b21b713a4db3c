"""Athena and Glue for `budgetkeeper meter --engine athena`: the table over the logs, the query, its cost.

The Glue table is created once per log root and kept in step idempotently: `ensure_table` creates
the database and the table when missing, updates the table only when what it should say changed (a
new account or Region under the root), and otherwise makes no write. Bedrock writes its logs under
`<root>AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/*.json.gz` (bodies too
large for the record under `HH/data/`, which the query skips by `$path`). The table projects its
partitions from that layout (account and Region as enums read from the bucket, the hour as a date),
so no crawler and no `MSCK REPAIR` is needed, and `--since/--until` read only the hours they name.

Each row is one raw line (LazySimpleSerDe over the gzipped text: Athena decompresses `.gz`), parsed
by the query with `json_parse`. A JSON SerDe would type the fields for us, but a line it cannot
parse either fails the whole query (the Hive JSON SerDe) or becomes a row of NULLs whose results AWS
documents as possibly non-deterministic (the OpenX SerDe's `ignore.malformed.json`), and it coerces
types records.py refuses (a count given as a string). The raw line lets the query count malformed
lines and judge each field's JSON type exactly as the local engine does.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.history_query import (
    ACCOUNT_COLUMN,
    HOUR_COLUMN,
    LINE_COLUMN,
    REGION_COLUMN,
    RESULT_COLUMNS,
)
from budgetkeeper_cli.reports.sources import S3Location, client_error_text

DEFAULT_WORKGROUP = "primary"
DEFAULT_DATABASE = "budgetkeeper_history"
LOGS_FOLDER = "AWSLogs/"
BEDROCK_FOLDER = "BedrockModelInvocationLogs"
FIRST_HOUR = "2023/01/01/00"  # before Bedrock's invocation logging existed: the projection's start
_ACCOUNT = re.compile(r"\d{12}")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d")

# Athena's list price: 5 USD per TB scanned, each query rounded up to a whole MB, 10 MB at least.
USD_PER_TB = Decimal(5)
BYTES_PER_TB = Decimal(1 << 40)
BYTES_PER_MB = 1 << 20
MINIMUM_BILLED_BYTES = 10 * BYTES_PER_MB
POLL_INTERVAL_S = 1.0
TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


def aws_clients() -> tuple[Any, Any, Any]:
    """S3, Glue and Athena clients, from the usual AWS settings (AWS_PROFILE, AWS_REGION, ...)."""
    import boto3  # here: the local engine needs no boto3 session

    from budgetkeeper_cli.stack_config import aws_region

    region = aws_region()
    return (
        boto3.client("s3", region_name=region),
        boto3.client("glue", region_name=region),
        boto3.client("athena", region_name=region),
    )


def query_cost_usd(scanned_bytes: int) -> Decimal:
    """What Athena bills a query that scanned `scanned_bytes` (list price; DDL is free)."""
    megabytes = -(-max(scanned_bytes, 0) // BYTES_PER_MB)
    billed = max(megabytes * BYTES_PER_MB, MINIMUM_BILLED_BYTES)
    return (billed * USD_PER_TB / BYTES_PER_TB).quantize(Decimal("0.000001"), rounding=ROUND_CEILING)


# --- the log root and its table -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LogRoot:
    """Where Bedrock's `AWSLogs/` folder is, and the account and Region the URI narrowed it to."""

    bucket: str
    prefix: str  # up to and including `AWSLogs/`
    account: str | None = None
    region: str | None = None

    @classmethod
    def from_location(cls, location: S3Location) -> LogRoot:
        """From `s3://b/`, `s3://b/logs/`, `.../AWSLogs/`, `.../AWSLogs/<account>/` or
        `.../AWSLogs/<account>/BedrockModelInvocationLogs/<region>/`."""
        before, found, after = location.prefix.partition(LOGS_FOLDER)
        if not found:
            base = (
                location.prefix
                if not location.prefix or location.prefix.endswith("/")
                else location.prefix + "/"
            )
            return cls(location.bucket, base + LOGS_FOLDER)
        parts = [part for part in after.split("/") if part]
        account = parts[0] if parts else None
        region = parts[2] if len(parts) > 2 else None
        if (
            (account is not None and not _ACCOUNT.fullmatch(account))
            or (len(parts) > 1 and parts[1] != BEDROCK_FOLDER)
            or (region is not None and not _REGION.fullmatch(region))
            or len(parts) > 3
        ):
            raise UsageError(
                f"--engine athena reads s3://BUCKET/[PREFIX/]AWSLogs/[ACCOUNT/{BEDROCK_FOLDER}/REGION/], "
                f"not {location}: choose the hours with --since and --until"
            )
        return cls(location.bucket, before + LOGS_FOLDER, account, region)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def table_name(self) -> str:
        """One table per log root, whatever narrowing the URI asked for."""
        return "invocation_logs_" + hashlib.sha256(self.uri.encode()).hexdigest()[:12]


def _folders(s3: Any, bucket: str, prefix: str) -> list[str]:
    names: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        names += [entry["Prefix"][len(prefix) :].rstrip("/") for entry in page.get("CommonPrefixes", ())]
    return names


def discover_partitions(s3: Any, root: LogRoot) -> tuple[list[str], list[str]]:
    """The accounts and Regions that have logs under the root (what the table's enums list)."""
    try:
        accounts = [name for name in _folders(s3, root.bucket, root.prefix) if _ACCOUNT.fullmatch(name)]
        regions = sorted(
            {
                name
                for account in accounts
                for name in _folders(s3, root.bucket, f"{root.prefix}{account}/{BEDROCK_FOLDER}/")
                if _REGION.fullmatch(name)
            }
        )
    except ClientError as error:
        raise CommandFailed(f"cannot list {root.uri}: {client_error_text(error)}") from None
    except BotoCoreError as error:
        raise CommandFailed(
            f"cannot list {root.uri}: {error} (check AWS_PROFILE, credentials and region)"
        ) from None
    if not accounts or not regions:
        raise CommandFailed(
            f"no Bedrock invocation logs under {root.uri} "
            f"(expected {root.prefix}<account>/{BEDROCK_FOLDER}/<region>/YYYY/MM/DD/HH/)"
        )
    return sorted(accounts), regions


def table_input(root: LogRoot, accounts: Sequence[str], regions: Sequence[str]) -> dict[str, Any]:
    """The Glue table: one raw line per row, partitions projected from Bedrock's key layout."""
    template = f"{root.uri}${{{ACCOUNT_COLUMN}}}/{BEDROCK_FOLDER}/${{{REGION_COLUMN}}}/${{{HOUR_COLUMN}}}/"
    return {
        "Name": root.table_name,
        "Description": f"Bedrock model invocation logs under {root.uri}, one raw line per row "
        "(budgetkeeper meter --engine athena)",
        "TableType": "EXTERNAL_TABLE",
        "PartitionKeys": [
            {"Name": ACCOUNT_COLUMN, "Type": "string"},
            {"Name": REGION_COLUMN, "Type": "string"},
            {"Name": HOUR_COLUMN, "Type": "string"},
        ],
        "StorageDescriptor": {
            "Columns": [{"Name": LINE_COLUMN, "Type": "string"}],
            "Location": root.uri,
            "InputFormat": "org.apache.hadoop.mapred.TextInputFormat",
            "OutputFormat": "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
            "SerdeInfo": {
                "SerializationLibrary": "org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe",
                # A JSON line holds no raw control character, so the whole line is the one column.
                "Parameters": {"field.delim": "\u0001", "serialization.format": "\u0001"},
            },
        },
        "Parameters": {
            "EXTERNAL": "TRUE",
            "projection.enabled": "true",
            f"projection.{ACCOUNT_COLUMN}.type": "enum",
            f"projection.{ACCOUNT_COLUMN}.values": ",".join(accounts),
            f"projection.{REGION_COLUMN}.type": "enum",
            f"projection.{REGION_COLUMN}.values": ",".join(regions),
            f"projection.{HOUR_COLUMN}.type": "date",
            f"projection.{HOUR_COLUMN}.format": "yyyy/MM/dd/HH",
            f"projection.{HOUR_COLUMN}.range": f"{FIRST_HOUR},NOW",
            f"projection.{HOUR_COLUMN}.interval": "1",
            f"projection.{HOUR_COLUMN}.interval.unit": "HOURS",
            "storage.location.template": template,
        },
    }


def _holds(existing: Any, wanted: Any) -> bool:
    """Whether Glue's answer says all the table should (Glue adds keys of its own: ignored)."""
    if isinstance(wanted, dict):
        return isinstance(existing, dict) and all(
            _holds(existing.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        return (
            isinstance(existing, list)
            and len(existing) == len(wanted)
            and all(_holds(mine, theirs) for mine, theirs in zip(existing, wanted, strict=True))
        )
    return bool(existing == wanted)


def ensure_table(glue: Any, database: str, wanted: dict[str, Any], log: Callable[[str], None]) -> str:
    """Create the database and the table if missing, update the table if it differs: 'created',
    'updated' or 'unchanged'."""
    try:
        try:
            glue.get_database(Name=database)
        except glue.exceptions.EntityNotFoundException:
            try:
                glue.create_database(
                    DatabaseInput={"Name": database, "Description": "budgetkeeper meter --engine athena"}
                )
                log(f"athena: created Glue database {database}")
            except glue.exceptions.AlreadyExistsException:
                pass  # another run created it meanwhile
        try:
            existing = glue.get_table(DatabaseName=database, Name=wanted["Name"])["Table"]
        except glue.exceptions.EntityNotFoundException:
            glue.create_table(DatabaseName=database, TableInput=wanted)
            location = wanted["StorageDescriptor"]["Location"]
            log(f"athena: created Glue table {database}.{wanted['Name']} over {location}")
            return "created"
        if _holds(existing, {key: value for key, value in wanted.items() if key != "Description"}):
            return "unchanged"
        glue.update_table(DatabaseName=database, TableInput=wanted)
        log(f"athena: updated Glue table {database}.{wanted['Name']} (accounts or Regions changed)")
        return "updated"
    except ClientError as error:
        raise CommandFailed(
            f"cannot prepare the Glue table {database}.{wanted['Name']}: {client_error_text(error)}"
        ) from None
    except BotoCoreError as error:
        raise CommandFailed(
            f"cannot reach Glue: {error} (check AWS_PROFILE, credentials and region)"
        ) from None


# --- the query --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryOutcome:
    query_id: str
    scanned_bytes: int
    runtime_ms: int

    @property
    def cost_usd(self) -> Decimal:
        return query_cost_usd(self.scanned_bytes)


class QueryProgress:
    """While the query runs: one updating line on a terminal, a line per state change elsewhere."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        isatty = getattr(stream, "isatty", None)
        self._tty = bool(isatty is not None and isatty())
        self._last_state: str | None = None

    def update(self, query_id: str, state: str, scanned_bytes: int, elapsed_s: float) -> None:
        text = f"athena: query {query_id} {state}, {scanned_bytes / 1e9:,.2f} GB scanned, {elapsed_s:.0f}s"
        if self._tty:
            self._stream.write(f"\r{text}\x1b[K")
        elif state != self._last_state:
            self._stream.write(text + "\n")
        self._last_state = state
        self._stream.flush()

    def close(self) -> None:
        if self._tty and self._last_state is not None:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def run_query(
    athena: Any,
    sql: str,
    *,
    workgroup: str,
    database: str,
    output_location: str | None,
    progress: QueryProgress,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> QueryOutcome:
    """Start the query and wait for it; a failed or cancelled query is a CommandFailed saying why.
    Interrupted (Ctrl-C), the query is stopped, so it bills no more."""
    request: dict[str, Any] = {
        "QueryString": sql,
        "WorkGroup": workgroup,
        "QueryExecutionContext": {"Database": database},
    }
    if output_location:
        request["ResultConfiguration"] = {"OutputLocation": output_location}
    try:
        query_id = athena.start_query_execution(**request)["QueryExecutionId"]
    except ClientError as error:
        raise CommandFailed(
            f"Athena did not start the query (workgroup {workgroup}): {client_error_text(error)}"
        ) from None
    except BotoCoreError as error:
        raise CommandFailed(
            f"cannot reach Athena: {error} (check AWS_PROFILE, credentials and region)"
        ) from None
    started = monotonic()
    try:
        while True:
            execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            status = execution["Status"]
            state = status["State"]
            statistics = execution.get("Statistics", {})
            scanned = int(statistics.get("DataScannedInBytes", 0))
            progress.update(query_id, state, scanned, monotonic() - started)
            if state in TERMINAL_STATES:
                break
            sleep(POLL_INTERVAL_S)
    except KeyboardInterrupt:
        athena.stop_query_execution(QueryExecutionId=query_id)
        progress.close()
        raise CommandFailed(f"interrupted: Athena query {query_id} stopped") from None
    except ClientError as error:
        progress.close()
        raise CommandFailed(f"cannot follow Athena query {query_id}: {client_error_text(error)}") from None
    progress.close()
    if state == "FAILED":
        error_info = status.get("AthenaError", {})
        kind = error_info.get("ErrorType")
        reason = status.get("StateChangeReason") or error_info.get("ErrorMessage") or "no reason given"
        category = _CATEGORIES.get(error_info.get("ErrorCategory"), "error")
        raise CommandFailed(
            f"Athena query {query_id} failed ({category}{f', {kind}' if kind else ''}): {reason}"
        )
    if state == "CANCELLED":
        raise CommandFailed(
            f"Athena query {query_id} was cancelled (in the console, by another caller, or by the "
            f"workgroup's data limit) after scanning {scanned:,} bytes: "
            f"{status.get('StateChangeReason') or 'no reason given'}"
        )
    return QueryOutcome(query_id, scanned, int(statistics.get("EngineExecutionTimeInMillis", 0)))


_CATEGORIES = {1: "system error", 2: "user error", 3: "other error"}


def result_rows(athena: Any, query_id: str) -> Iterator[dict[str, str | None]]:
    """Every result row as {column: text or None}, page by page (the first row of the first page is
    the header). Columns are checked against the query's, so a changed query cannot be misread."""
    try:
        pages = athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id)
        first = True
        for page in pages:
            result = page["ResultSet"]
            names = [column["Name"] for column in result["ResultSetMetadata"]["ColumnInfo"]]
            if tuple(names) != RESULT_COLUMNS:
                raise CommandFailed(
                    f"Athena query {query_id} returned columns {names}, not {list(RESULT_COLUMNS)}"
                )
            rows = result["Rows"]
            if first:
                rows, first = rows[1:], False
            for row in rows:
                yield {name: cell.get("VarCharValue") for name, cell in zip(names, row["Data"], strict=True)}
    except ClientError as error:
        raise CommandFailed(
            f"cannot read the results of Athena query {query_id}: {client_error_text(error)}"
        ) from None
