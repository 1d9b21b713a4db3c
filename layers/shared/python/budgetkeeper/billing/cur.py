"""The per-principal level of reconciliation: billed Bedrock cost per day, account and IAM principal
from the CUR 2.0 data export, queried in Athena (billing.reconcile compares it with the metered)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from budgetkeeper.core.settings import Settings

# The product codes Bedrock's CUR line items carry (current Claude rates bill under the third).
BEDROCK_PRODUCT_CODES = ("AmazonBedrock", "AmazonBedrockFoundationModels", "AmazonBedrockService")
BEDROCK = "Bedrock"
NOT_MODEL_CALLS = "AgentCore"  # "Amazon Bedrock AgentCore" bills agent runtime compute
ATHENA_POLL_SECONDS = 2.0
ATHENA_TIMEOUT_SECONDS = 600.0


class ReconcileFailed(RuntimeError):
    """The bill could not be read (the message says why)."""


@dataclass(frozen=True, slots=True)
class CurSource:
    """Where the CUR 2.0 data export is queried: the Glue database and table, the workgroup."""

    database: str
    table: str
    workgroup: str
    output_location: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> CurSource | None:
        """None when no CUR table is named: the per-principal level is off."""
        if not (settings.cur_database and settings.cur_table):
            return None
        return cls(
            settings.cur_database, settings.cur_table, settings.cur_workgroup, settings.cur_output_location
        )


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _name(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def _billing_periods(since: date, until: date) -> list[str]:
    periods = []
    month = date(since.year, since.month, 1)
    while month <= until:
        periods.append(month.strftime("%Y-%m"))
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    return periods


def cur_query(source: CurSource, since: date, until: date) -> str:
    """Billed Bedrock cost per day, account and IAM principal, in Athena's dialect (Trino).

    Usage line items only (as Cost Explorer's RECORD_TYPE Usage), of the billing periods the days
    fall in (the export's partition), whose product code is one of BEDROCK_PRODUCT_CODES or whose
    product name says Bedrock (third-party models bill under their own names), AgentCore's left
    out. A row per day and account with `bedrock` false carries no cost: it says the CUR has line
    items for that day, so a day without any row is still pending.
    """
    periods = ", ".join(_text(period) for period in _billing_periods(since, until))
    start = _text(f"{since.isoformat()} 00:00:00")
    end = _text(f"{(until + timedelta(days=1)).isoformat()} 00:00:00")
    return f"""WITH items AS (
  SELECT
    line_item_usage_start_date AS started,
    line_item_usage_account_id AS account,
    line_item_iam_principal AS principal,
    line_item_unblended_cost AS cost,
    (line_item_product_code IN ({", ".join(_text(code) for code in BEDROCK_PRODUCT_CODES)})
      OR COALESCE(element_at(product, 'product_name'), '') LIKE '%{BEDROCK}%')
      AND COALESCE(element_at(product, 'product_name'), '') NOT LIKE '%{NOT_MODEL_CALLS}%' AS bedrock
  FROM {_name(source.database)}.{_name(source.table)}
  WHERE billing_period IN ({periods})
    AND line_item_line_item_type = 'Usage'
    AND line_item_usage_start_date >= TIMESTAMP {start}
    AND line_item_usage_start_date < TIMESTAMP {end}
)
SELECT
  date_format(started, '%Y-%m-%d') AS day,
  account,
  bedrock,
  IF(bedrock, NULLIF(principal, '')) AS principal,
  CAST(SUM(IF(bedrock, CAST(cost AS DECIMAL(38, 10)), CAST(0 AS DECIMAL(38, 10)))) AS VARCHAR) AS billed_usd
FROM items
GROUP BY 1, 2, 3, 4
"""


CUR_COLUMNS = ("day", "account", "bedrock", "principal", "billed_usd")


def run_athena_query(
    athena: Any,
    sql: str,
    source: CurSource,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[dict[str, str | None]]:
    """Run the query in the source's workgroup, wait for it, and return its rows (values as text)."""
    request: dict[str, Any] = {
        "QueryString": sql,
        "WorkGroup": source.workgroup,
        "QueryExecutionContext": {"Database": source.database},
    }
    if source.output_location:
        request["ResultConfiguration"] = {"OutputLocation": source.output_location}
    query_id = athena.start_query_execution(**request)["QueryExecutionId"]
    started = monotonic()
    while True:
        status = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]["Status"]
        state = status["State"]
        if state == "SUCCEEDED":
            break
        if state in ("FAILED", "CANCELLED"):
            raise ReconcileFailed(
                f"Athena query {query_id} on {source.database}.{source.table} {state.lower()}: "
                f"{status.get('StateChangeReason') or 'no reason given'}"
            )
        if monotonic() - started > ATHENA_TIMEOUT_SECONDS:
            athena.stop_query_execution(QueryExecutionId=query_id)
            raise ReconcileFailed(
                f"Athena query {query_id} still {state} after {ATHENA_TIMEOUT_SECONDS:.0f}s"
            )
        sleep(ATHENA_POLL_SECONDS)
    rows: list[dict[str, str | None]] = []
    first = True
    for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
        result = page["ResultSet"]
        names = [column["Name"] for column in result["ResultSetMetadata"]["ColumnInfo"]]
        found = result["Rows"][1:] if first else result["Rows"]  # the first row is the header
        first = False
        rows.extend(
            {name: cell.get("VarCharValue") for name, cell in zip(names, row["Data"], strict=True)}
            for row in found
        )
    return rows
