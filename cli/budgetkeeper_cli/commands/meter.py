"""`budgetkeeper meter`: meter invocation log files or S3 prefixes offline and report usage and cost.

Every record is parsed, attributed and priced by `Meter.meter`, exactly as the usage calculator
Lambda does it; the report itself is built by `budgetkeeper_cli.reports`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from budgetkeeper.metering.meter import Meter
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper_cli import athena, history_query
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_command
from budgetkeeper_cli.reports.aggregation import GROUP_FIELDS, UnitOf, UsageReport, parse_group_by
from budgetkeeper_cli.reports.filters import RecordFilter, add_report_options, record_filter_from_options
from budgetkeeper_cli.reports.org_units import nearest_units
from budgetkeeper_cli.reports.rows import left_out_line, render_rows, report_rows
from budgetkeeper_cli.reports.scanning import progress_for, scan, summary_lines
from budgetkeeper_cli.reports.sources import (
    RegionalProfiles,
    ScanStats,
    iter_sources,
    load_teams_file,
    parse_s3_uri,
    resolve_inputs,
)
from budgetkeeper_cli.stack_config import aws_session

DESCRIPTION = """\
Meter Bedrock model invocation logs offline: parse, attribute and price every record the way the
usage calculator does, and report calls, tokens and cost per group.

Inputs are read as they come from S3: JSON-lines files, gzipped or not (.json, .json.gz, ...),
whole directory trees such as AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/
(the data/ folders of offloaded bodies are skipped), and s3://bucket/prefix URIs (credentials,
profile and endpoint from the usual AWS settings: AWS_PROFILE, AWS_ENDPOINT_URL, ...).

Malformed lines are counted and listed on stderr with file and line, never fatal. The summary on
stderr tells files read, records, malformed lines, calls to models without a price (by id) and
calls to provisioned-throughput models (billed per hour, counted at 0 here).

--engine athena runs the heavy part in Amazon Athena for months of logs: it creates (once) a Glue
database and table over s3://bucket/prefix/AWSLogs/ with partitions projected from Bedrock's key
layout, runs one query that sums tokens and calls per group of records within --since/--until,
then attributes and prices the groups here with the same code: the same rows, to the nano-dollar.
The bytes the query scanned and its cost (Athena's list price) are printed on stderr."""

EPILOG = f"""\
group fields: {", ".join(GROUP_FIELDS)}
  principal, role, app and team are scope strings (user:alice, role:ChatbotApp-BedrockRole, ...);
  day is YYYY-MM-DD and hour YYYY-MM-DDTHH, both UTC; model is the priced model id.

examples:
  budgetkeeper meter ~/Downloads/AWSLogs/
  budgetkeeper meter s3://my-bedrock-logs/AWSLogs/111122223333/BedrockModelInvocationLogs/us-east-1/2025/11/
  budgetkeeper meter logs/ --group-by team,model --format csv > spend.csv
  budgetkeeper meter logs/ --group-by day --since 2025-11-01 --until 2025-11-30 --format json
  budgetkeeper meter logs/ --arn-pattern '*:assumed-role/ChatbotApp-BedrockRole/*' --group-by hour
  budgetkeeper meter s3://my-bedrock-logs/ --engine athena --since 2025-01-01 --until 2025-12-31 \\
      --group-by team,model --teams teams.json
  budgetkeeper meter logs/ --teams teams.json --group-by team
    where teams.json maps scopes to teams: {{"user:alice": "research", "app:ChatbotApp": "support"}}
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "meter",
        "meter invocation log files or S3 prefixes offline: usage and cost per group",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="PATH_OR_S3_URI",
        help="a log file, a directory tree of log files, or s3://bucket/prefix",
    )
    add_report_options(parser)
    parser.add_argument(
        "--teams",
        metavar="FILE.json",
        help="JSON object mapping principal, role or app scopes to team names (default: no teams)",
    )
    parser.add_argument(
        "--engine",
        choices=("local", "athena"),
        default="local",
        help="local: read every record on this machine (default); athena: group the records in "
        "Amazon Athena, then attribute and price the groups here (one s3:// input)",
    )
    parser.add_argument(
        "--athena-workgroup",
        default=athena.DEFAULT_WORKGROUP,
        metavar="NAME",
        help=f"Athena workgroup of the query (default: {athena.DEFAULT_WORKGROUP}; the stack's "
        "<stack>-history workgroup when deployed with InvocationLogBucketName)",
    )
    parser.add_argument(
        "--athena-database",
        default=athena.DEFAULT_DATABASE,
        metavar="NAME",
        help=f"Glue database of the log table, created if missing (default: {athena.DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--athena-output",
        metavar="S3_URI",
        help="where Athena writes the query's results (default: the workgroup's output location)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Every argument is checked before anything is read.
    group_by = parse_group_by(args.group_by)
    record_filter = record_filter_from_options(args.arn_pattern, args.since, args.until)
    teams = load_teams_file(Path(args.teams).expanduser()) if args.teams else {}
    if args.engine == "athena":
        return _run_on_athena(args, group_by, record_filter, teams)
    inputs = resolve_inputs(args.inputs)

    prices = PriceTable.bundled()
    meter = Meter(prices=prices, teams=teams, profiles=RegionalProfiles())
    report = UsageReport(group_by, _unit_of(group_by))
    stats = ScanStats()
    scan(
        iter_sources(inputs, stats),
        meter,
        report.add,
        record_filter=record_filter,
        stats=stats,
        progress=progress_for(sys.stderr),
    )

    if stats.files == 0:
        raise CommandFailed(
            f"no invocation log files in {' '.join(args.inputs)} "
            "(read are .json, .json.gz, .jsonl, .ndjson and .gz files outside data/ folders)"
        )
    rows = report_rows(report, max_rows=args.max_rows)
    sys.stdout.write(render_rows(rows, args.format))
    sys.stdout.flush()
    for line in left_out_line(rows) + summary_lines(
        stats, price_version=prices.version, filtered=record_filter.is_active
    ):
        sys.stderr.write(line + "\n")
    if stats.unreadable:
        names = ", ".join(name for name, _ in stats.unreadable)
        raise CommandFailed(
            f"{len(stats.unreadable)} file(s) could not be read and are not in the report: {names}"
        )
    return 0


def _unit_of(group_by: tuple[str, ...]) -> UnitOf | None:
    """For --group-by ou: AWS Organizations, with the credentials of the environment."""
    return nearest_units(aws_session(None).client("organizations")) if "ou" in group_by else None


def _run_on_athena(
    args: argparse.Namespace, group_by: tuple[str, ...], record_filter: RecordFilter, teams: dict[str, str]
) -> int:
    if len(args.inputs) != 1 or not args.inputs[0].startswith("s3://"):
        raise UsageError(
            "--engine athena reads one s3://BUCKET/PREFIX where Bedrock delivers its logs, "
            "e.g. s3://my-bedrock-logs/ or s3://my-bedrock-logs/AWSLogs/111122223333/"
        )
    if args.athena_output is not None and not args.athena_output.startswith("s3://"):
        raise UsageError(
            f"--athena-output {args.athena_output!r} is not an S3 URI: type e.g. s3://my-results/athena/"
        )
    root = athena.LogRoot.from_location(parse_s3_uri(args.inputs[0]))
    if record_filter.since is None:
        sys.stderr.write("athena: no --since: every hour since the logs began is read (and billed)\n")
    s3, glue, athena_client = athena.aws_clients()
    accounts, regions = athena.discover_partitions(s3, root)
    log = _stderr_line
    athena.ensure_table(glue, args.athena_database, athena.table_input(root, accounts, regions), log)

    prices = PriceTable.bundled()
    sql = history_query.build_query(
        database=args.athena_database,
        table=root.table_name,
        thresholds=history_query.long_context_thresholds(prices),
        since=record_filter.since,
        until=record_filter.until,
        account=root.account,
        region=root.region,
    )
    outcome = athena.run_query(
        athena_client,
        sql,
        workgroup=args.athena_workgroup,
        database=args.athena_database,
        output_location=args.athena_output,
        progress=athena.QueryProgress(sys.stderr),
    )
    meter = Meter(prices=prices, teams=teams, profiles=RegionalProfiles())
    report = UsageReport(group_by, _unit_of(group_by))
    stats = history_query.meter_groups(
        map(history_query.Group.from_row, athena.result_rows(athena_client, outcome.query_id)),
        meter,
        report,
        record_filter=record_filter,
    )
    rows = report_rows(report, max_rows=args.max_rows)
    sys.stdout.write(render_rows(rows, args.format))
    sys.stdout.flush()
    for line in left_out_line(rows) + history_query.summary_lines(
        stats,
        query_id=outcome.query_id,
        scanned_bytes=outcome.scanned_bytes,
        cost_usd=outcome.cost_usd,
        price_version=prices.version,
    ):
        log(line)
    return 0


def _stderr_line(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
