"""`budgetkeeper status [SCOPE]`: where budgets stand now."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper.budgets.rules import gets_default_budget
from budgetkeeper.core import clock
from budgetkeeper.storage.readers import MOST_WATCHED, budgets_to_watch, scope_budgets
from budgetkeeper_cli import options
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.parsers import add_command
from budgetkeeper_cli.rendering import FORMATS, counted, json_rows, json_text, render, render_table
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors
from budgetkeeper_cli.views import (
    AUDIT_COLUMNS,
    STATUS_COLUMNS,
    audit_items,
    audit_row,
    budget_states,
    columns,
    execution_statuses,
    status_row,
)

AUDIT_LINES = 5
NEEDS = ("budgets_table", "totals_table", "audit_table")
SCOPE_TABLE_KEYS = (
    "window",
    "window_id",
    "spent_usd",
    "limit_usd",
    "percent",
    "level",
    "status",
    "protected",
    "next_refresh",
    "execution_arn",
    "execution_status",
)
ALL_TABLE_KEYS = (
    "scope",
    "window",
    "spent_usd",
    "limit_usd",
    "percent",
    "level",
    "status",
    "next_refresh",
    "execution_arn",
    "execution_status",
)

DESCRIPTION = """\
Where budgets stand now: spend in the current window (from the window totals the usage calculator
keeps), the limit and the percent of it used, the level that spend reaches (ok, warning, critical,
exceeded), the enforcement status the workflow recorded, when the window refreshes (or when a
suspension ends), and the run handling it.

With a SCOPE: every budget of the scope, every operator's suspension of it (a row each: window
`manual`, or `manual#<id>` for one made while another held the scope), and its last audit lines.
Without: every budget at or over its warning threshold, and every budget on its way to or in a
suspension. It reads the budgets operators set and the budgets the monitor watches (its sparse
index: near or over a threshold, in grace, suspended, restoring), never every default budget, so
sessions a caller mints do not slow it down; at most --most of the watched ones, the rest counted."""

EPILOG = f"""\
formats: table; json (with a SCOPE: an object with "budgets" and "audit"); csv (the budget rows
only: `budgetkeeper audit SCOPE --format csv` gives the audit lines)

examples:
  budgetkeeper status
  budgetkeeper status user:alice
  budgetkeeper status team:data --format json
  BUDGETKEEPER_STACK=budgetkeeper-prod budgetkeeper status --format csv > attention.csv

The last {AUDIT_LINES} audit lines are shown; `budgetkeeper audit SCOPE` shows them all.
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "status",
        "spend, limit, status and refresh of a scope's budgets, or of every budget needing attention",
        DESCRIPTION,
        EPILOG,
    )
    parser.add_argument("scope", metavar="SCOPE", nargs="?", help="e.g. user:alice (default: every scope)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument(
        "--most",
        type=int,
        default=MOST_WATCHED,
        metavar="N",
        help=f"without a SCOPE, read at most N watched budgets (default: {MOST_WATCHED})",
    )
    add_stack_options(parser)
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    scope = options.scope(args.scope) if args.scope is not None else None
    if args.most < 1:
        raise UsageError(f"--most {args.most} reads nothing: type e.g. --most {MOST_WATCHED}")
    stack = connect(args, needs=NEEDS)
    tunables = stack.tunables()
    now = clock.now()
    if scope:
        items, unread = scope_budgets(scope), 0
    else:
        watched = budgets_to_watch(args.most)
        items, unread = watched.items, watched.more
    states = budget_states(sorted(items, key=lambda item: (item.scope, item.window)), tunables, now)
    if scope is None:
        states = [state for state in states if state.needs_attention]
    runs = execution_statuses(
        stack.client("stepfunctions"), [s.item.execution_arn for s in states if s.item.execution_arn]
    )
    rows = [status_row(state, runs.get(state.item.execution_arn or "")) for state in states]
    if scope is None:
        _print_all(rows, args.format)
        if unread:
            more = counted(unread, "more watched budget")
            sys.stderr.write(f"{more} not read: type --most {args.most + unread}\n")
    else:
        _print_scope(
            scope, rows, [audit_row(item) for item in audit_items(scope, last=AUDIT_LINES)], args.format
        )
    return 0


def _print_all(rows: list[dict[str, Any]], output_format: str) -> None:
    if output_format == "table" and not rows:
        sys.stdout.write("no budget is at or over its warning threshold, and none is suspended\n")
        return
    shown = columns(STATUS_COLUMNS, ALL_TABLE_KEYS) if output_format == "table" else list(STATUS_COLUMNS)
    sys.stdout.write(render(shown, rows, output_format))


def _print_scope(
    scope: str, rows: list[dict[str, Any]], audit: list[dict[str, Any]], output_format: str
) -> None:
    if output_format == "json":
        sys.stdout.write(
            json_text(
                {
                    "scope": scope,
                    "budgets": json_rows(STATUS_COLUMNS, rows),
                    "audit": json_rows(AUDIT_COLUMNS, audit),
                }
            )
        )
        return
    if output_format == "csv":
        sys.stdout.write(render(STATUS_COLUMNS, rows, "csv"))
        return
    parts = [f"{scope}\n"]
    if rows:
        parts.append(render_table(columns(STATUS_COLUMNS, SCOPE_TABLE_KEYS), rows))
    else:
        default = " (it gets the default budgets at its first call)" if gets_default_budget(scope) else ""
        parts.append(f"no budget{default}\n")
    audit_keys = [column.key for column in AUDIT_COLUMNS if column.key != "scope"]
    if audit:
        parts.append(f"\nlast {counted(len(audit), 'audit line')} (budgetkeeper audit {scope} shows all):\n")
        parts.append(render_table(columns(AUDIT_COLUMNS, audit_keys), audit))
    else:
        parts.append("\nno audit lines\n")
    sys.stdout.write("".join(parts))
