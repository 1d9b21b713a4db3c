"""An Athena client for tests: the query as the CLI sends it, mechanically translated, run on DuckDB.

moto stores Glue tables but executes no SQL. This client reads the Glue table the CLI created (from
moto's Glue), lists the S3 objects its partition projection names (the `storage.location.template`
with the account and Region enums, the hour from the key), splits them into lines as Hadoop's
TextInputFormat does (gzip by magic number), loads (line, partition columns, "$path") into DuckDB and
runs the query. The translation is sqlglot's Trino -> DuckDB transpiler, plus one AST rewrite:
Trino's `reduce(array, start, step, finish)` requires `finish`, DuckDB's `list_reduce` has none, so
an identity `finish` (`s -> s`, the only kind the query uses) is dropped; anything else fails.
Results come back in Athena's GetQueryResults shape (all values strings, a header row first), in
pages of `page_size` rows with NextToken, so the CLI's pagination runs too.
"""

from __future__ import annotations

import gzip
import re
import uuid
from datetime import datetime
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp

_GZIP_MAGIC = b"\x1f\x8b"
_LINE_BREAK = re.compile(rb"\r\n|\n|\r")


def to_duckdb(athena_sql: str) -> str:
    """Athena's dialect (Trino) to DuckDB's, mechanically."""
    tree = sqlglot.parse_one(athena_sql, read="trino")
    for node in tree.find_all(exp.Reduce):
        finish = node.args.get("finish")
        if finish is not None:
            assert isinstance(finish, exp.Lambda), finish
            (parameter,) = finish.expressions
            assert finish.this == parameter, f"not an identity finish: {finish.sql()}"
            node.set("finish", None)
    return tree.sql(dialect="duckdb")


def _lines(data: bytes) -> list[bytes]:
    if data[:2] == _GZIP_MAGIC:
        data = gzip.decompress(data)
    lines = _LINE_BREAK.split(data)
    return lines[:-1] if lines and lines[-1] == b"" else lines


class DuckDBAthena:
    def __init__(self, s3: Any, glue: Any, *, page_size: int = 3) -> None:
        self._s3, self._glue, self._page_size = s3, glue, page_size
        self._executions: dict[str, dict[str, Any]] = {}
        self.queries: list[str] = []  # the Athena SQL received, for assertions

    # -- the calls the CLI makes --

    def start_query_execution(self, **request: Any) -> dict[str, Any]:
        sql = request["QueryString"]
        self.queries.append(sql)
        database = request["QueryExecutionContext"]["Database"]
        connection = duckdb.connect()
        connection.execute("SET TimeZone = 'UTC'")
        scanned = 0
        tree = sqlglot.parse_one(sql, read="trino")
        named = {cte.alias for cte in tree.find_all(exp.CTE)}
        for table in tree.find_all(exp.Table):
            if table.db or table.name not in named:
                scanned += self._load(connection, table.db or database, table.name)
        result = connection.execute(to_duckdb(sql))
        names = [column[0] for column in result.description]
        rows = [[None if value is None else _text(value) for value in row] for row in result.fetchall()]
        query_id = str(uuid.uuid4())
        self._executions[query_id] = {"names": names, "rows": rows, "scanned": scanned}
        return {"QueryExecutionId": query_id}

    def get_query_execution(self, QueryExecutionId: str) -> dict[str, Any]:
        execution = self._executions[QueryExecutionId]
        return {
            "QueryExecution": {
                "QueryExecutionId": QueryExecutionId,
                "Status": {"State": "SUCCEEDED"},
                "Statistics": {"DataScannedInBytes": execution["scanned"], "EngineExecutionTimeInMillis": 1},
            }
        }

    def get_paginator(self, name: str) -> Any:
        assert name == "get_query_results"
        return self

    def paginate(self, QueryExecutionId: str) -> Any:
        execution = self._executions[QueryExecutionId]
        names = execution["names"]
        rows = [names, *execution["rows"]]  # Athena's first row is the header
        metadata = {"ColumnInfo": [{"Name": name, "Type": "varchar"} for name in names]}
        for start in range(0, len(rows), self._page_size):
            page = rows[start : start + self._page_size]
            yield {
                "ResultSet": {
                    "Rows": [
                        {"Data": [{} if v is None else {"VarCharValue": v} for v in row]} for row in page
                    ],
                    "ResultSetMetadata": metadata,
                },
                **({"NextToken": str(start)} if start + self._page_size < len(rows) else {}),
            }

    # -- the table, as partition projection reads it --

    def _load(self, connection: Any, database: str, name: str) -> int:
        table = self._glue.get_table(DatabaseName=database, Name=name)["Table"]
        parameters = table["Parameters"]
        assert parameters["projection.enabled"] == "true"
        keys = [key["Name"] for key in table["PartitionKeys"]]
        template = parameters["storage.location.template"]
        enums = {
            key: parameters[f"projection.{key}.values"].split(",")
            for key in keys
            if parameters[f"projection.{key}.type"] == "enum"
        }
        (hour_key,) = (key for key in keys if parameters[f"projection.{key}.type"] == "date")
        assert parameters[f"projection.{hour_key}.format"] == "yyyy/MM/dd/HH"
        bucket, _, template_key = template.removeprefix("s3://").partition("/")
        placeholder = re.compile(r"\$\{(\w+)\}")
        pattern = re.compile(
            "".join(
                f"(?P<{part}>[^/]+)" if index % 2 else re.escape(part)
                for index, part in enumerate(placeholder.split(template_key))
            ).replace(f"(?P<{hour_key}>[^/]+)", f"(?P<{hour_key}>\\d{{4}}/\\d\\d/\\d\\d/\\d\\d)")
            + "(?P<rest>.+)"
        )
        connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{database}"')
        columns = ", ".join(f'"{key}" VARCHAR' for key in keys)
        connection.execute(f'CREATE TABLE "{database}"."{name}" (line VARCHAR, {columns}, "$path" VARCHAR)')
        rows: list[tuple[str | None, ...]] = []
        scanned = 0
        for page in self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=template_key.split("$")[0]
        ):
            for entry in page.get("Contents", ()):
                match = pattern.fullmatch(entry["Key"])
                if match is None or any(match[key] not in values for key, values in enums.items()):
                    continue
                datetime.strptime(match[hour_key], "%Y/%m/%d/%H")  # a real hour, as the projection names
                data = self._s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
                scanned += len(data)
                path = f"s3://{bucket}/{entry['Key']}"
                for line in _lines(data):
                    rows.append((line.decode("utf-8", "replace"), *(match[key] for key in keys), path))
        if rows:
            connection.executemany(
                f'INSERT INTO "{database}"."{name}" VALUES ({", ".join("?" * (len(keys) + 2))})', rows
            )
        return scanned


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
