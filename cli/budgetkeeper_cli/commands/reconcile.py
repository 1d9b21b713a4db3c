"""`budgetkeeper reconcile`: metered spend against the bill, per service or per IAM principal and day."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from typing import Any

from budgetkeeper.billing.cur import CurSource, ReconcileFailed
from budgetkeeper.billing.reconcile import Level, Limits, reconcile
from budgetkeeper.core import clock
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_command
from budgetkeeper_cli.rendering import FORMATS, Column, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

DESCRIPTION = """\
What Budgetkeeper metered (the usage lines of the rollups table) against what AWS bills, per UTC
day: --by service compares every Bedrock service summed with Cost Explorer (usage records; third-
party models bill under their own service names); --by principal compares each IAM principal with
the CUR 2.0 export's line_item_iam_principal, through Athena (the stack's Cur* parameters name the
export, or --cur-database and --cur-table). Verdicts: in_line, drift (further apart than the
reconcile/drift_percent and reconcile/drift_min_usd tunables), unmetered (billed, never metered:
the OpenAI-compatible endpoint, batch jobs, agents), pending (the bill has no data for the day yet:
Cost Explorer and the CUR lag a day or so)."""

EPILOG = """\
examples:
  budgetkeeper reconcile --since 2026-06-01 --by service
  budgetkeeper reconcile --since 2026-06-01 --until 2026-06-07 --by principal --format csv
"""

COLUMNS = (
    Column("day"),
    Column("scope"),
    Column("account"),
    Column("metered_usd", "metered USD", numeric=True),
    Column("billed_usd", "billed USD", numeric=True),
    Column("percent_apart", "% apart", numeric=True),
    Column("verdict"),
    Column("principal_arn", "billed as"),
    Column("services"),
)
MAX_DAYS = 366


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "reconcile",
        "metered spend against the bill (Cost Explorer, the CUR), per service or principal and day",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument("--since", required=True, metavar="DATE", help="first day (YYYY-MM-DD, UTC)")
    parser.add_argument("--until", metavar="DATE", help="last day, included (default: yesterday)")
    parser.add_argument("--by", choices=[str(level) for level in Level], default="service")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--cur-database", help="the CUR 2.0 export's Glue database (default: the stack's)")
    parser.add_argument("--cur-table", help="the CUR 2.0 export's table (default: the stack's)")
    parser.add_argument(
        "--athena-workgroup", help="the Athena workgroup (default: the stack's, else primary)"
    )
    parser.add_argument("--athena-output", metavar="S3_URI", help="query results (default: the workgroup's)")
    add_stack_options(parser)
    parser.set_defaults(func=run)


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a date: type e.g. {option} 2026-06-01") from None


def _days(args: argparse.Namespace) -> tuple[date, date]:
    today = clock.now().date()
    since = _day(args.since, "--since")
    until = _day(args.until, "--until") if args.until else today - timedelta(days=1)
    if since > until:
        raise UsageError(
            f"--since {since} is after --until {until}: nothing to compare "
            f"(without --until the last day is yesterday, {today - timedelta(days=1)})"
        )
    if (until - since).days >= MAX_DAYS:
        raise UsageError(f"--since {since} to --until {until} is over {MAX_DAYS} days: narrow it")
    return since, until


def _cur(args: argparse.Namespace, outputs: dict[str, str]) -> CurSource:
    database = args.cur_database or outputs.get("CurDatabaseName")
    table = args.cur_table or outputs.get("CurTableName")
    if not (database and table):
        raise UsageError(
            "--by principal needs the CUR 2.0 export: deploy the stack with CurDatabase, CurTable and "
            "CurBucket, or type --cur-database DATABASE --cur-table TABLE"
        )
    workgroup = args.athena_workgroup or outputs.get("CurWorkGroupName") or "primary"
    return CurSource(database, table, workgroup, args.athena_output)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    since, until = _days(args)
    level = Level(args.by)
    stack = connect(args, needs=("rollups_table",))
    limits = Limits.from_tunables(stack.tunables())
    try:
        if level is Level.SERVICE:
            rows = reconcile(level, since, until, limits=limits, ce=stack.regional_client("ce", "us-east-1"))
        else:
            cur = _cur(args, stack.outputs)
            rows = reconcile(level, since, until, limits=limits, athena=stack.client("athena"), cur=cur)
    except ReconcileFailed as error:
        raise CommandFailed(str(error)) from None
    sys.stdout.write(render(COLUMNS, [row.to_dict() for row in rows], args.format))
    return 0
