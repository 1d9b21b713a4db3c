"""`budgetkeeper report`: usage and cost per group from the rollups table, with charts in HTML."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from budgetkeeper.core import clock
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.parsers import add_command
from budgetkeeper_cli.reports.aggregation import GROUP_FIELDS, UsageReport, parse_group_by
from budgetkeeper_cli.reports.filters import add_report_options, max_rows, record_filter_from_options
from budgetkeeper_cli.reports.html import write_html_report
from budgetkeeper_cli.reports.org_units import nearest_units
from budgetkeeper_cli.reports.rollups import fill, report_window
from budgetkeeper_cli.reports.rows import left_out_line, render_rows, report_rows
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

COMPARE_CHOICES = ("previous",)

DESCRIPTION = """\
Usage and cost per group, read from the hourly rollups the usage calculator keeps (never from the
raw logs): the options and rows of `budgetkeeper meter`, for the deployed stack. For the same
records, `report` and `meter` give the same numbers, to the nano-dollar.

The window is on the hour (UTC; the rollups are hourly). Without --since: the current month so far.
--compare previous adds each group's calls and cost in the window before, and the change: a window
starting on a month's first midnight is compared with the same stretch of the month before (June
1-10 with May 1-10), any other with the window of the same length just before it.
--top N keeps the N most expensive groups and sums the rest in one `(others)` row.
--html FILE writes one self-contained HTML file (charts drawn as inline SVG, no script, opens
offline): spend per day, team and model, the top principals, an hour-of-day heat map and the
budgets with their usage, each with its table."""

EPILOG = f"""\
group fields: {", ".join(GROUP_FIELDS)} (as for `budgetkeeper meter`)

examples:
  budgetkeeper report --group-by team,model
  budgetkeeper report --group-by principal --top 10 --compare previous
  budgetkeeper report --group-by ou,account   (organization mode: AWS Organizations is read)
  budgetkeeper report --since 2026-05-01 --until 2026-05-31 --group-by day --format csv > may.csv
  budgetkeeper report --arn-pattern '*:assumed-role/ChatbotApp-BedrockRole/*' --group-by hour
  budgetkeeper report --html spend.html
"""

NEEDS = ("rollups_table", "budgets_table", "totals_table")


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "report",
        "usage and cost per group from the rollups of the deployed stack; --html for charts",
        DESCRIPTION,
        EPILOG,
    )
    add_report_options(parser)
    parser.add_argument(
        "--compare",
        choices=COMPARE_CHOICES,
        help="previous: each group against the window before (calls, cost, change)",
    )
    parser.add_argument(
        "--top", type=max_rows, metavar="N", help="the N most expensive groups, the rest in one (others) row"
    )
    parser.add_argument(
        "--html", metavar="FILE", help="also write the report with charts to this self-contained HTML file"
    )
    add_stack_options(parser)
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    # Every argument is checked before anything is read.
    group_by = parse_group_by(args.group_by)
    record_filter_from_options(args.arn_pattern, None, None)  # the pattern's own checks
    now = clock.now()
    window = report_window(args.since, args.until, now)
    html_path = Path(args.html).expanduser() if args.html else None
    if html_path is not None and not html_path.parent.is_dir():
        raise UsageError(f"--html {args.html}: no such directory {html_path.parent}")
    stack = connect(args, needs=NEEDS)

    unit_of = nearest_units(stack.client("organizations")) if "ou" in group_by else None
    report = UsageReport(group_by, unit_of)
    fill([report], window, args.arn_pattern)
    previous = None
    if args.compare == "previous":
        previous = UsageReport(group_by, unit_of)
        fill([previous], window.previous(), args.arn_pattern)
    rows = report_rows(report, previous=previous, top=args.top, max_rows=args.max_rows)
    sys.stdout.write(render_rows(rows, args.format))
    sys.stdout.flush()
    notes = [f"window: {window}" + (f", compared with {window.previous()}" if previous is not None else "")]
    notes += left_out_line(rows)
    if html_path is not None:
        write_html_report(html_path, window, args.arn_pattern, stack.tunables(), now, args.top)
        notes.append(f"html: {html_path}")
    for line in notes:
        sys.stderr.write(line + "\n")
    return 0
