"""`budgetkeeper meter`: meter invocation log files or S3 prefixes offline and report usage and cost.

Every record is parsed, attributed and priced by `Meter.meter`, exactly as the usage calculator
Lambda does it; the report itself is built by `budgetkeeper_cli.usage_report`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from budgetkeeper.metering import Meter
from budgetkeeper.pricing import PriceTable
from budgetkeeper_cli.errors import CommandFailed
from budgetkeeper_cli.usage_report import (
    GROUP_FIELDS,
    RegionalProfiles,
    ScanStats,
    UsageReport,
    add_report_options,
    iter_sources,
    left_out_line,
    load_teams_file,
    parse_group_by,
    progress_for,
    record_filter_from_options,
    render_rows,
    report_rows,
    resolve_inputs,
    scan,
    summary_lines,
)

DESCRIPTION = """\
Meter Bedrock model invocation logs offline: parse, attribute and price every record the way the
usage calculator does, and report calls, tokens and cost per group.

Inputs are read as they come from S3: JSON-lines files, gzipped or not (.json, .json.gz, ...),
whole directory trees such as AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/
(the data/ folders of offloaded bodies are skipped), and s3://bucket/prefix URIs (credentials,
profile and endpoint from the usual AWS settings: AWS_PROFILE, AWS_ENDPOINT_URL, ...).

Malformed lines are counted and listed on stderr with file and line, never fatal. The summary on
stderr tells files read, records, malformed lines, calls to models without a price (by id) and
calls to provisioned-throughput models (billed per hour, counted at 0 here)."""

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
  budgetkeeper meter logs/ --teams teams.json --group-by team
    where teams.json maps scopes to teams: {{"user:alice": "research", "app:ChatbotApp": "support"}}
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "meter",
        help="meter invocation log files or S3 prefixes offline: usage and cost per group",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Every argument is checked before anything is read.
    group_by = parse_group_by(args.group_by)
    record_filter = record_filter_from_options(args.arn_pattern, args.since, args.until)
    teams = load_teams_file(Path(args.teams).expanduser()) if args.teams else {}
    inputs = resolve_inputs(args.inputs)

    prices = PriceTable.bundled()
    meter = Meter(prices=prices, teams=teams, profiles=RegionalProfiles())
    report = UsageReport(group_by)
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
