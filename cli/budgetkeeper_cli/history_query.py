"""The Athena engine's grouping query, and the pricing of its groups.

One query (Athena's dialect, Trino) does the heavy part over the raw log lines: it parses each line,
keeps the records `budgetkeeper.domain.log_records.parse_invocation` would keep (the others are counted as
malformed), and sums tokens and calls per (account, identity ARN, region, operation, model id,
hour, `requestMetadata.app`, long-context class, error code). Python then meters each group with
`Meter.meter_invocation`, the attribution and the pricing function the usage calculator uses.

Why that is exact: a price is linear in each token kind within one price row and tier (model id,
source region, tier), so the cost of a group is the sum of its requests' costs, as long as every
request of the group falls in the same tier. The tier is decided per request: the query puts each
request in a class by its own prompt (input + cache reads + cache writes) against every long-context
threshold of the price table, groups by that class, and gives `price_invocation` one request's prompt
of that class (`request_prompt_tokens`). Everything attribution reads (identity ARN, account,
model id, request-metadata app) is a group key. The 1-hour share of cache writes is taken per
request from the response body, as records.py does, and summed apart from the 5-minute writes.

What the query checks mirrors records.py: JSON object, schemaType, the required non-empty printable
strings, token counts that are non-negative integers, a missing input count only on errors and
guardrail blocks, the stream fallbacks, requestMetadata a map of strings, MAX_TOKENS_PER_CALL, and
the 1-hour split. Two differences, both on lines AWS does not write: a timestamp must have the form
Bedrock writes (`2025-11-18T10:20:41Z`, fractions and offsets allowed), where Python also accepts
other ISO forms; and "printable" is tested as "no Unicode C or Z character but the space", where
Python's `str.isprintable` also refuses unassigned code points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from budgetkeeper.domain.log_records import (
    CONVERSE,
    CONVERSE_STREAM,
    INVOCATION_LOG_SCHEMA,
    INVOKE_MODEL,
    INVOKE_MODEL_STREAM,
    MAX_TOKENS_PER_CALL,
    SERVICE_TIER_NAMES,
)
from budgetkeeper.domain.usage import Invocation, ServiceTier, TokenCounts
from budgetkeeper.metering.meter import Meter
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper_cli.rendering import counted
from budgetkeeper_cli.reports.aggregation import UsageReport
from budgetkeeper_cli.reports.filters import RecordFilter
from budgetkeeper_cli.reports.sources import BODY_FOLDER, ScanStats

# Partition columns of the table (athena.py projects them from the S3 key layout); the record has
# its own `region`, so they carry a prefix.
ACCOUNT_COLUMN = "log_account"
REGION_COLUMN = "log_region"
HOUR_COLUMN = "log_hour"
LINE_COLUMN = "line"
HOUR_FORMAT = "%Y/%m/%d/%H"  # the key layout's YYYY/MM/DD/HH (Glue's projection format yyyy/MM/dd/HH)
# A record lies in the folder of the hour Bedrock delivered it, which may be later than its own
# timestamp: the partitions read reach DELIVERY_SLACK beyond --since and --until, and the record's
# own timestamp decides.
DELIVERY_SLACK = timedelta(hours=3)

# The query's result columns, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "valid",
    "account_id",
    "identity_arn",
    "region",
    "operation",
    "model_id",
    "hour_epoch",
    "app",
    "prompt_class",
    "error_code",
    "service_tier",
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_5m_tokens",
    "cache_write_1h_tokens",
    "example_source",
)

_COUNT = r"^[0-9]{1,18}$"  # a JSON non-negative integer (more digits are over MAX_TOKENS_PER_CALL anyway)
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_NOT_PRINTABLE = r"[\p{C}\p{Z}]"  # after removing plain spaces
_GUARDRAIL = '$["amazon-bedrock-guardrailAction"]'
_METRICS = '$["amazon-bedrock-invocationMetrics"]'


def long_context_thresholds(prices: PriceTable) -> tuple[int, ...]:
    """Every long-context threshold of the table, highest first."""
    return tuple(
        sorted({row.long_context.threshold_tokens for row in prices if row.long_context}, reverse=True)
    )


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _partition(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(HOUR_FORMAT)


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S" + (".%f" if utc.microsecond else "") + "Z")


def _raw(path: str, of: str = "doc") -> str:
    """The JSON text of a value (`"x"`, `12`, `{...}`), NULL when absent or JSON null."""
    return f"NULLIF(json_format(json_extract({of}, {_sql_text(path)})), 'null')"


def _is_string(raw: str) -> str:
    return f"({raw} LIKE '\"%')"


def _is_count(raw: str) -> str:
    return f"regexp_like({raw}, '{_COUNT}')"


def _count_or_zero(raw: str) -> str:
    return f"COALESCE(TRY_CAST({raw} AS BIGINT), 0)"


def _printable_text(raw: str, value: str) -> str:
    """A non-empty printable JSON string (`_required_text`)."""
    return (
        f"({_is_string(raw)} AND {value} <> '' "
        f"AND NOT regexp_like(replace({value}, ' ', ''), '{_NOT_PRINTABLE}'))"
    )


def _optional(raw: str, check: str) -> str:
    return f"({raw} IS NULL OR {check})"


def _tier_named(body: str) -> str:
    """The tier a body names: Converse `serviceTier: {"type": ...}` (or a bare string), InvokeModel
    `service_tier`; NULL when it names none (a stream's chunk list names none either)."""
    converse = f"('{CONVERSE}', '{CONVERSE_STREAM}')"
    return (
        f"CASE WHEN operation IN {converse} THEN COALESCE("
        f"json_extract_scalar({body}, '$.serviceTier.type'), json_extract_scalar({body}, '$.serviceTier')) "
        f"ELSE json_extract_scalar({body}, '$.service_tier') END"
    )


# Offloaded bodies sit in a `data/` folder right below the hour folder (reports.sources.BODY_FOLDER), and
# only there: a `data` folder in the bucket's own prefix is part of the log root, not a body.
_BODY_PATH = f"/BedrockModelInvocationLogs/[^/]+/[0-9]{{4}}/[0-9]{{2}}/[0-9]{{2}}/[0-9]{{2}}/{BODY_FOLDER}/"


def build_query(
    *,
    database: str,
    table: str,
    thresholds: Sequence[int],
    since: datetime | None = None,
    until: datetime | None = None,
    account: str | None = None,
    region: str | None = None,
) -> str:
    """The grouping query in Athena's dialect (tested on DuckDB through a mechanical translation).

    `account` and `region` narrow the partitions read to one log account and Region."""
    where = [f"NOT regexp_like({_sql_name('$path')}, '{_BODY_PATH}')", f"trim({LINE_COLUMN}) <> ''"]
    if account is not None:
        where.append(f"{ACCOUNT_COLUMN} = {_sql_text(account)}")
    if region is not None:
        where.append(f"{REGION_COLUMN} = {_sql_text(region)}")
    if since is not None:
        where.append(f"{HOUR_COLUMN} >= {_sql_text(_partition(since - DELIVERY_SLACK))}")
    if until is not None:
        where.append(f"{HOUR_COLUMN} <= {_sql_text(_partition(until + DELIVERY_SLACK))}")
    in_range = []
    if since is not None:
        in_range.append(f"ts >= from_iso8601_timestamp({_sql_text(_iso(since))})")
    if until is not None:
        in_range.append(f"ts < from_iso8601_timestamp({_sql_text(_iso(until))})")
    keep = " AND ".join(in_range) if in_range else "TRUE"
    prompt = "(input_tokens + cache_read_tokens + cache_write_tokens)"
    prompt_class = (
        "CASE "
        + " ".join(f"WHEN {prompt} > {threshold} THEN {threshold + 1}" for threshold in thresholds)
        + " ELSE 0 END"
        if thresholds
        else "0"
    )
    chunk_object = "c -> json_format(c) LIKE '{%'"
    tier_names = ", ".join(_sql_text(name) for name in SERVICE_TIER_NAMES)
    tier_case = (
        "CASE tier_named "
        + " ".join(
            f"WHEN {_sql_text(name)} THEN {_sql_text(tier)}" for name, tier in SERVICE_TIER_NAMES.items()
        )
        + " END"
    )
    detail_raw = _raw("$.inputTokens", "d")
    return f"""WITH lines AS (
  SELECT {_sql_name("$path")} AS source, try(json_parse({LINE_COLUMN})) AS doc
  FROM {_sql_name(database)}.{_sql_name(table)}
  WHERE {" AND ".join(where)}
),
fields AS (
  SELECT
    source,
    doc,
    json_format(doc) LIKE '{{%' AS is_object,
    json_extract_scalar(doc, '$.schemaType') AS schema_type,
    {_raw("$.schemaType")} AS schema_raw,
    {_raw("$.timestamp")} AS timestamp_raw,
    json_extract_scalar(doc, '$.timestamp') AS timestamp_text,
    {_raw("$.accountId")} AS account_raw,
    json_extract_scalar(doc, '$.accountId') AS account_id,
    {_raw("$.identity.arn")} AS arn_raw,
    json_extract_scalar(doc, '$.identity.arn') AS identity_arn,
    {_raw("$.region")} AS region_raw,
    json_extract_scalar(doc, '$.region') AS region,
    {_raw("$.requestId")} AS request_raw,
    json_extract_scalar(doc, '$.requestId') AS request_id,
    {_raw("$.operation")} AS operation_raw,
    json_extract_scalar(doc, '$.operation') AS operation,
    {_raw("$.modelId")} AS model_raw,
    json_extract_scalar(doc, '$.modelId') AS model_id,
    {_raw("$.errorCode")} AS error_raw,
    json_extract_scalar(doc, '$.errorCode') AS error_code,
    {_raw("$.inferenceRegion")} AS inference_region_raw,
    {_raw("$.requestMetadata")} AS metadata_raw,
    cardinality(filter(
      map_values(TRY_CAST(json_extract(doc, '$.requestMetadata') AS MAP(VARCHAR, JSON))),
      v -> json_format(v) NOT LIKE '"%'
    )) AS metadata_non_strings,
    {_raw("$.requestMetadata.app")} AS app_raw,
    json_extract_scalar(doc, '$.requestMetadata.app') AS app,
    {_raw("$.input")} AS input_raw,
    {_raw("$.output")} AS output_raw,
    {_raw("$.input.inputTokenCount")} AS input_count_raw,
    {_raw("$.output.outputTokenCount")} AS output_count_raw,
    {_raw("$.input.cacheReadInputTokenCount")} AS cache_read_raw,
    {_raw("$.input.cacheWriteInputTokenCount")} AS cache_write_raw,
    json_extract(doc, '$.output.outputBodyJson') AS body,
    json_extract(doc, '$.input.inputBodyJson') AS input_body,
    TRY_CAST(json_extract(doc, '$.output.outputBodyJson') AS ARRAY(JSON)) AS chunks
  FROM lines
),
bodies AS (
  SELECT
    *,
    try(from_iso8601_timestamp(timestamp_text)) AS ts,
    -- InvokeModelWithResponseStream: the last object chunk carries the invocation metrics.
    element_at(filter(chunks, {chunk_object}), -1) AS last_object_chunk,
    -- ... and its message_start event the usage (with the cache-write TTL split).
    element_at(filter(chunks, c -> json_extract_scalar(c, '$.type') = 'message_start'), 1) AS message_start,
    -- Converse: the usage of the body; ConverseStream: of its last metadata event.
    COALESCE(
      json_extract(body, '$.usage'),
      json_extract(
        element_at(filter(chunks, c -> json_format(json_extract(c, '$.metadata')) LIKE '{{%'), -1),
        '$.metadata.usage'
      )
    ) AS converse_usage,
    -- The service tier, as records.py reads it: the response's (the one that served) over the request's.
    lower(COALESCE(
      {_tier_named("body")},
      {_tier_named("input_body")}
    )) AS tier_named,
    json_extract_scalar(body, '{_GUARDRAIL}') = 'INTERVENED'
      OR cardinality(filter(chunks, c -> json_extract_scalar(c, '{_GUARDRAIL}') = 'INTERVENED')) > 0
      AS guardrail_intervened
  FROM fields
),
counts AS (
  SELECT
    *,
    CASE
      WHEN input_count_raw IS NOT NULL THEN input_count_raw
      WHEN operation = '{INVOKE_MODEL_STREAM}'
        THEN {_raw(_METRICS + ".inputTokenCount", "last_object_chunk")}
    END AS input_effective_raw,
    CASE
      WHEN output_count_raw IS NOT NULL THEN output_count_raw
      WHEN operation = '{INVOKE_MODEL_STREAM}'
        THEN {_raw(_METRICS + ".outputTokenCount", "last_object_chunk")}
    END AS output_effective_raw,
    TRY_CAST(json_extract(converse_usage, '$.cacheDetails') AS ARRAY(JSON)) AS cache_details,
    CASE
      WHEN operation = '{INVOKE_MODEL}'
        AND json_format(json_extract(body, '$.usage.cache_creation')) LIKE '{{%'
        THEN {_raw("$.usage.cache_creation.ephemeral_1h_input_tokens", "body")}
      WHEN operation = '{INVOKE_MODEL_STREAM}'
        AND json_format(json_extract(message_start, '$.message.usage.cache_creation')) LIKE '{{%'
        THEN {_raw("$.message.usage.cache_creation.ephemeral_1h_input_tokens", "message_start")}
    END AS anthropic_1h_raw
  FROM bodies
),
checked AS (
  SELECT
    *,
    COALESCE(
      is_object
      AND schema_type = '{INVOCATION_LOG_SCHEMA}' AND {_is_string("schema_raw")}
      AND {_printable_text("operation_raw", "operation")}
      AND {_optional("error_raw", _is_string("error_raw"))}
      AND {_optional("inference_region_raw", _is_string("inference_region_raw"))}
      AND {_printable_text("arn_raw", "identity_arn")}
      AND {_printable_text("request_raw", "request_id")}
      AND {_printable_text("timestamp_raw", "timestamp_text")}
      AND regexp_like(timestamp_text, '{_TIMESTAMP}') AND ts IS NOT NULL
      AND {_printable_text("account_raw", "account_id")}
      AND {_printable_text("region_raw", "region")}
      AND {_printable_text("model_raw", "model_id")}
      AND {_optional("input_raw", "input_raw LIKE '{%'")}
      AND {_optional("output_raw", "output_raw LIKE '{%'")}
      AND {_optional("input_effective_raw", _is_count("input_effective_raw"))}
      AND {_optional("output_effective_raw", _is_count("output_effective_raw"))}
      AND (input_effective_raw IS NOT NULL OR error_raw IS NOT NULL OR COALESCE(guardrail_intervened, FALSE))
      AND {_optional("cache_read_raw", _is_count("cache_read_raw"))}
      AND {_optional("cache_write_raw", _is_count("cache_write_raw"))}
      AND {_optional("metadata_raw", "metadata_raw LIKE '{%' AND metadata_non_strings = 0")}
      AND {_optional("tier_named", f"tier_named IN ({tier_names})")},
      FALSE
    ) AS shape_ok,
    {_count_or_zero("input_effective_raw")} AS input_tokens,
    {_count_or_zero("output_effective_raw")} AS output_tokens,
    {_count_or_zero("cache_read_raw")} AS cache_read_tokens,
    {_count_or_zero("cache_write_raw")} AS cache_write_tokens,
    CASE
      WHEN operation IN ('{CONVERSE}', '{CONVERSE_STREAM}') THEN reduce(
        cache_details, CAST(0 AS BIGINT),
        (total, d) -> total
          + IF(json_extract_scalar(d, '$.ttl') = '1h', {_count_or_zero(_raw("$.inputTokens", "d"))}, 0),
        total -> total
      )
      ELSE {_count_or_zero("anthropic_1h_raw")}
    END AS cache_write_1h_found,
    CASE
      WHEN operation IN ('{CONVERSE}', '{CONVERSE_STREAM}') THEN cardinality(filter(
        cache_details,
        d -> json_extract_scalar(d, '$.ttl') = '1h' AND NOT {_optional(detail_raw, _is_count(detail_raw))}
      )) = 0
      ELSE {_optional("anthropic_1h_raw", _is_count("anthropic_1h_raw"))}
    END AS split_ok
  FROM counts
),
records AS (
  SELECT
    *,
    shape_ok
      AND input_tokens + output_tokens + cache_read_tokens + cache_write_tokens <= {MAX_TOKENS_PER_CALL}
      AND (cache_write_tokens = 0 OR COALESCE(split_ok, TRUE))
      AS valid,
    IF(cache_write_tokens = 0, 0, least(COALESCE(cache_write_1h_found, 0), cache_write_tokens))
      AS cache_write_1h
  FROM checked
)
SELECT
  valid,
  IF(valid, account_id) AS account_id,
  IF(valid, identity_arn) AS identity_arn,
  IF(valid, region) AS region,
  IF(valid, operation) AS operation,
  IF(valid, model_id) AS model_id,
  IF(valid, CAST(floor(to_unixtime(ts) / 3600) AS BIGINT) * 3600) AS hour_epoch,
  IF(valid, app) AS app,
  IF(valid, {prompt_class}) AS prompt_class,
  IF(valid, error_code) AS error_code,
  IF(valid, COALESCE({tier_case}, '{ServiceTier.STANDARD}')) AS service_tier,
  count(*) AS calls,
  sum(IF(valid, input_tokens, 0)) AS input_tokens,
  sum(IF(valid, output_tokens, 0)) AS output_tokens,
  sum(IF(valid, cache_read_tokens, 0)) AS cache_read_tokens,
  sum(IF(valid, cache_write_tokens - cache_write_1h, 0)) AS cache_write_5m_tokens,
  sum(IF(valid, cache_write_1h, 0)) AS cache_write_1h_tokens,
  min(source) AS example_source
FROM records
WHERE NOT valid OR ({keep})
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11
"""


# --- the groups, metered ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Group:
    """One result row of the query: a valid group of records, or the malformed lines (valid False)."""

    valid: bool
    calls: int
    invocation: Invocation | None  # the group's records summed into one; None for malformed lines
    request_prompt_tokens: int
    example_source: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, str | None]) -> Group:
        """A result row as Athena returns it: every value a string, NULL as None."""
        valid = str(row["valid"]).lower() == "true"
        calls = int(row["calls"] or 0)
        if not valid:
            return cls(False, calls, None, 0, row.get("example_source"))

        def number(name: str) -> int:
            return int(row[name] or 0)

        app = row["app"]
        invocation = Invocation(
            request_id=f"athena-group:{calls}",
            timestamp=datetime.fromtimestamp(number("hour_epoch"), UTC),
            account_id=str(row["account_id"]),
            identity_arn=str(row["identity_arn"]),
            region=str(row["region"]),
            operation=str(row["operation"]),
            model_id=str(row["model_id"]),
            tokens=TokenCounts(
                input=number("input_tokens"),
                output=number("output_tokens"),
                cache_read=number("cache_read_tokens"),
                cache_write_5m=number("cache_write_5m_tokens"),
                cache_write_1h=number("cache_write_1h_tokens"),
            ),
            request_metadata={"app": app} if app is not None else {},
            error_code=row["error_code"],
            service_tier=ServiceTier(row["service_tier"] or ServiceTier.STANDARD),
        )
        return cls(True, calls, invocation, number("prompt_class"), row.get("example_source"))


def meter_groups(
    groups: Iterable[Group],
    meter: Meter,
    report: UsageReport,
    *,
    record_filter: RecordFilter | None = None,
    stats: ScanStats | None = None,
) -> ScanStats:
    """Attribute and price every group as the Lambda does, into `report`; counts into `stats`.

    `record_filter` applies its ARN pattern here (the ARN is a group key); the query applied its
    time bounds to each record.
    """
    stats = stats if stats is not None else ScanStats()
    arn_only = (
        RecordFilter(record_filter.arn_pattern) if record_filter and record_filter.arn_pattern else None
    )
    for group in groups:
        if group.invocation is None:
            stats.malformed += group.calls
            if group.example_source:
                stats.malformed_shown.append(
                    (
                        group.example_source,
                        f"{group.calls:,} malformed lines in range, in this file and others",
                    )
                )
            continue
        stats.records += group.calls
        metered = meter.meter_invocation(group.invocation, request_prompt_tokens=group.request_prompt_tokens)
        if arn_only is not None and not arn_only.matches(metered):
            continue
        stats.matched += group.calls
        stats.count_price(metered, group.calls)
        report.add(metered, group.calls)
    return stats


def summary_lines(
    stats: ScanStats, *, query_id: str, scanned_bytes: int, cost_usd: Decimal, price_version: str
) -> list[str]:
    """What the query read and cost, and what could not be metered, for stderr."""
    lines = [f"malformed: {where}: {reason}" for where, reason in stats.malformed_shown]
    lines.append(
        f"athena: query {query_id} scanned {scanned_bytes:,} bytes: {cost_usd} USD "
        "(list price 5 USD per TB, 10 MB minimum per query)"
    )
    lines.append(
        f"summary: {counted(stats.records, 'record')} in range"
        + (f" ({stats.matched:,} matched the ARN pattern)" if stats.matched != stats.records else "")
        + f", {stats.malformed:,} malformed, {', '.join(stats.price_notes())}, prices {price_version}"
    )
    return lines
