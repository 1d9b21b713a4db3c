"""`budgetkeeper estimate --since --until [--regions | --project ID]`: spend no log attributes.

Without --project: spend before invocation logging was on. Calls per principal and model from
CloudTrail (`LookupEvents`), tokens per model from CloudWatch (`AWS/Bedrock` metrics), each model's
tokens split by the callers' share of its calls, priced.

With --project: who spent a bedrock-mantle project's metered spend. The project's charged tokens
and cost of each hour and model, split by each caller's share of its CreateInference calls (the
CloudTrail data events the stack counts, when a trail logs them). Never added to a caller's budget,
never a reason to deny.

Every format says it is an estimate: the table in its title and footer, CSV in an `estimate`
column, JSON in `"estimate": true` and the method.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from budgetkeeper.core import clock, money
from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.metering.mantle_callers import METHOD as PROJECT_METHOD
from budgetkeeper.metering.mantle_callers import project_callers
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper.storage.readers import load_teams
from budgetkeeper_cli import options
from budgetkeeper_cli.bedrock_logging import regions_in_use
from budgetkeeper_cli.commands.invocation_logging import regions_option
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.estimate import count_calls, estimate, lookup_events, model_tokens
from budgetkeeper_cli.parsers import add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, Column, json_rows, json_text, render
from budgetkeeper_cli.reports.filters import parse_time_bound
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

CLOUDTRAIL_DAYS = 90  # LookupEvents sees the last 90 days
METHOD = (
    "calls per principal and model from CloudTrail LookupEvents; tokens per model from CloudWatch "
    "AWS/Bedrock metrics, split by each principal's share of the model's calls; priced with the bundled "
    "price table"
)
COLUMNS = (
    Column("estimate"),
    Column("principal"),
    Column("team"),
    Column("model"),
    Column("region"),
    Column("calls", numeric=True),
    Column("input_tokens", "input", numeric=True),
    Column("output_tokens", "output", numeric=True),
    Column("cache_read_tokens", "cache read", numeric=True),
    Column("cache_write_tokens", "cache write", numeric=True),
    Column("cost_usd", "est. cost", numeric=True, show=money.cents),
    Column("note"),
)
NO_CALLER = "(no caller counted)"
NO_CALLER_NOTE = "no CreateInference call counted that hour: does a trail log bedrock-mantle data events?"
TABLE_KEYS = (
    "principal",
    "team",
    "model",
    "region",
    "calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
)

EPILOG = """\
examples:
  budgetkeeper estimate --since 2026-05-01 --until 2026-05-31
  budgetkeeper estimate --since 2026-05-01 --until 2026-05-31 --regions us-east-1,eu-west-1 --format csv
  budgetkeeper estimate --project proj_research --since 2026-05-01 --until 2026-05-31
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "estimate",
        "estimate spend per principal and model from CloudTrail and CloudWatch (before logging was on)",
        docstring_body(__doc__),
        EPILOG,
    )
    parser.add_argument("--since", required=True, help="a date (UTC) or ISO date and time")
    parser.add_argument("--until", required=True, help="a date (that whole day included) or ISO time")
    parser.add_argument("--regions", metavar="LIST", help="default: the stack's Region and `regions`")
    parser.add_argument(
        "--project",
        metavar="ID",
        help="a bedrock-mantle project: its metered spend split among its callers (an estimate)",
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    add_stack_options(parser)
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    since = parse_time_bound(args.since, "--since")
    until = parse_time_bound(args.until, "--until", end_of_day=True)
    if since >= until:
        raise UsageError(f"--since {args.since} is not before --until {args.until}")
    if args.project is not None:
        return run_project(args, since, until)
    oldest = clock.now() - timedelta(days=CLOUDTRAIL_DAYS)
    if since < oldest:
        raise UsageError(
            f"--since {args.since}: CloudTrail's LookupEvents keeps {CLOUDTRAIL_DAYS} days; "
            f"type a date from {oldest.date().isoformat()} on"
        )
    given = regions_option(args.regions)
    stack = connect(args, needs=("budgets_table", "teams_table"))
    calls = {}
    tokens: dict[tuple[str, str], TokenCounts] = {}
    for region in regions_in_use(stack, given):
        found = count_calls(lookup_events(stack.regional_client("cloudtrail", region), since, until))
        calls.update(found)
        models = {model for _, model, _ in found}
        for model, counts in model_tokens(
            stack.regional_client("cloudwatch", region), models, since, until
        ).items():
            tokens[(model, region)] = counts
    rows = [
        {
            "estimate": True,
            "principal": row.principal,
            "team": row.team,
            "model": row.model,
            "region": row.region,
            "calls": row.calls,
            "input_tokens": row.tokens.input,
            "output_tokens": row.tokens.output,
            "cache_read_tokens": row.tokens.cache_read,
            "cache_write_tokens": row.tokens.cache_write,
            "cost_usd": row.cost_usd,
            "note": row.note,
        }
        for row in estimate(calls, tokens, PriceTable.bundled(), load_teams())
    ]
    total = sum((row["cost_usd"] for row in rows), Decimal(0))
    if args.format == "json":
        sys.stdout.write(
            json_text(
                {
                    "estimate": True,
                    "method": METHOD,
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                    "total_usd": total,
                    "rows": json_rows(COLUMNS, rows),
                }
            )
        )
        return 0
    if args.format == "csv":
        sys.stdout.write(render(COLUMNS, rows, "csv"))
        return 0
    by_team: dict[str, Decimal] = defaultdict(Decimal)
    for row in rows:
        by_team[row["team"] or "(no team)"] += row["cost_usd"]
    shown = [column for column in COLUMNS if column.key in TABLE_KEYS]
    sys.stdout.write(f"ESTIMATE of Bedrock spend {since.isoformat()} to {until.isoformat()} (not metered)\n")
    sys.stdout.write(render(shown, rows, "table", footer={"principal": "estimated total", "cost_usd": total}))
    sys.stdout.write(
        "by team: "
        + ", ".join(f"{team} {money.cents(cost)}" for team, cost in sorted(by_team.items()))
        + "\n"
        if rows
        else ""
    )
    sys.stdout.write(f"estimate: {METHOD}\n")
    return 0


def run_project(args: argparse.Namespace, since: datetime, until: datetime) -> int:
    if args.regions is not None:
        raise UsageError("--regions reads CloudTrail's Event history; with --project leave it out")
    project = options.scope(f"project:{args.project}").removeprefix("project:")
    connect(args, needs=("rollups_table", "teams_table"))
    found = project_callers(project, since.strftime("%Y-%m-%dT%H"), until.strftime("%Y-%m-%dT%H"))
    teams = load_teams()
    rows = [
        {
            "estimate": True,
            "principal": share.caller or NO_CALLER,
            "team": teams.get(share.caller or ""),
            "model": share.model,
            "region": share.region,
            "calls": share.calls,
            "input_tokens": share.tokens.input,
            "output_tokens": share.tokens.output,
            "cache_read_tokens": share.tokens.cache_read,
            "cache_write_tokens": share.tokens.cache_write,
            "cost_usd": share.cost_usd,
            "note": None if share.caller else NO_CALLER_NOTE,
        }
        for share in found.shares
    ]
    partial = (
        "partial: more call counts than one question reads; the split used the first; narrow --since/--until"
        if found.counts_truncated
        else None
    )
    if args.format == "json":
        document = {
            "estimate": True,
            "method": PROJECT_METHOD,
            "project": project,
            "since": since.isoformat(),
            "until": until.isoformat(),
            "total_usd": found.cost_usd,
            "partial": partial,
            "rows": json_rows(COLUMNS, rows),
        }
        sys.stdout.write(json_text(document))
        return 0
    if args.format == "csv":
        sys.stdout.write(render(COLUMNS, rows, "csv"))
        return 0
    shown = [column for column in COLUMNS if column.key in TABLE_KEYS]
    sys.stdout.write(
        f"ESTIMATE of who spent project:{project}'s metered spend {since.isoformat()} to {until.isoformat()}"
        " (never used to deny)\n"
    )
    footer = {"principal": "project total (metered)", "cost_usd": found.cost_usd}
    sys.stdout.write(render(shown, rows, "table", footer=footer))
    sys.stdout.write(f"estimate: {PROJECT_METHOD}\n" + (f"{partial}\n" if partial else ""))
    return 0
