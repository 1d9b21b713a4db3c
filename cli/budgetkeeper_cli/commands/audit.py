"""`budgetkeeper audit [SCOPE] [--since ISO]`: who changed what, when and why."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper_cli import options
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.parsers import add_command
from budgetkeeper_cli.rendering import FORMATS, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors
from budgetkeeper_cli.views import AUDIT_COLUMNS, audit_items, audit_row

DESCRIPTION = """\
The audit lines: every status change of a budget (warning, critical, grace, suspended, restored),
protections and budget changes, each with its actor (the workflow, `budgetkeeper`, or the ARN of
the operator who asked), the reason and the run. The system never deletes them. Oldest first,
newest last. Without a SCOPE every scope's lines are read (a scan of the audit table)."""

EPILOG = """\
examples:
  budgetkeeper audit user:alice
  budgetkeeper audit --since 2026-11-01 --format csv > november.csv
  budgetkeeper audit team:data --since 2026-11-23T09:00:00Z --format json
  budgetkeeper audit --last 20
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "audit",
        "audit lines of a scope, or of every scope: status changes, actors, reasons",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument("scope", metavar="SCOPE", nargs="?", help="e.g. user:alice (default: every scope)")
    parser.add_argument(
        "--since",
        metavar="ISO",
        help="only lines at or after this time: a date (midnight UTC) or e.g. 2026-11-23T09:00:00Z",
    )
    parser.add_argument("--last", type=int, metavar="N", help="only the newest N lines")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    add_stack_options(parser)
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    scope = options.scope(args.scope) if args.scope is not None else None
    since = options.since(args.since) if args.since is not None else None
    if args.last is not None and args.last < 1:
        raise UsageError(f"--last {args.last} shows nothing: type e.g. --last 20")
    connect(args, needs=("audit_table",))
    rows = [audit_row(item) for item in audit_items(scope, since, args.last)]
    if args.format == "table" and not rows:
        sys.stdout.write(
            "no audit lines" + (f" for {scope}" if scope else "") + (" since then" if since else "") + "\n"
        )
        return 0
    sys.stdout.write(render(AUDIT_COLUMNS, rows, args.format))
    return 0
