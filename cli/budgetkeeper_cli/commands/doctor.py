"""`budgetkeeper doctor`: the whole installation checked, with what to fix; exit 1 if anything is wrong.

Checks: model invocation logging in each Region in use (and that the metering reads it), the
stack's tables, state machine, deny policy, how many calls of the last days were priced at a
fallback rate or an estimate (pricing.PriceBasis), the tunables in SSM, the notification topic and who is
subscribed to it, SES sending and its sender, the Slack webhook's parameter (its value is never read
or printed), the IAM Identity Center role, and in organization mode the budgets of a member
account's principal written without its account. A `fail` is something that stops metering or
enforcement, or a secret stored in the clear (exit 1); a `warn` is something an operator should know
(exit 0).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper_cli.commands.invocation_logging import regions_option
from budgetkeeper_cli.diagnosis import COLUMNS, FAIL, WARN, diagnose
from budgetkeeper_cli.parsers import add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

EPILOG = """\
examples:
  budgetkeeper doctor
  budgetkeeper doctor --regions us-east-1,eu-west-1
  budgetkeeper doctor --format json
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "doctor",
        "check the whole installation and say what to fix (exit 1 if anything is wrong)",
        docstring_body(__doc__),
        EPILOG,
    )
    parser.add_argument(
        "--regions", metavar="LIST", help="Regions to check (default: the stack's and `regions`)"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    add_stack_options(parser)
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    given = regions_option(args.regions)
    stack = connect(args, needs=("budgets_table",))
    findings = list(diagnose(stack, given))
    sys.stdout.write(render(COLUMNS, [finding.row() for finding in findings], args.format))
    failed = [finding for finding in findings if finding.result == FAIL]
    if args.format == "table":
        warned = sum(finding.result == WARN for finding in findings)
        sys.stdout.write(
            f"\n{len(failed)} to fix, {warned} to know about\n" if failed or warned else "\nall well\n"
        )
    return 1 if failed else 0
