"""`budgetkeeper estimate --since --until [--regions]`: spend before invocation logging was on.

Calls per principal and model from CloudTrail (`LookupEvents`), tokens per model from CloudWatch
(`AWS/Bedrock` metrics), each model's tokens split by the callers' share of its calls, priced.
Every format says it is an estimate: the table in its title and footer, CSV in an `estimate`
column, JSON in `"estimate": true` and the method.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from budgetkeeper.core import clock, money
from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper.storage.readers import load_teams
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
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    add_stack_options(parser)
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    since = parse_time_bound(args.since, "--since")
    until = parse_time_bound(args.until, "--until", end_of_day=True)
    if since >= until:
        raise UsageError(f"--since {args.since} is not before --until {args.until}")
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
