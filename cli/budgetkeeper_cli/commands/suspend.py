"""`budgetkeeper suspend SCOPE --reason R [--for DURATION]`: an operator's suspension, by the workflow."""

from __future__ import annotations

import argparse
from typing import Any

from budgetkeeper_cli.operator_runs import ActionRequest, add_action_parser, run_action
from budgetkeeper_cli.stack_config import connect, translating_aws_errors

DESCRIPTION = """\
Suspend a scope now: the enforcement workflow attaches the deny policy to its IAM user, role or
group and records the suspension, with you (your STS caller identity) as the actor. With --for, the
same run restores the scope when the time is up; without it, only `budgetkeeper restore` ends it
(a window refresh does not).

The command waits until the deny is attached and prints the outcome; the progress goes to stderr.
A scope whose principal is not in IAM (a typo), or an account, is refused before any run starts
(exit 2, with what is wrong); exit 1 if the run fails, with its cause."""

EPILOG = """\
examples:
  budgetkeeper suspend user:alice --reason 'runaway notebook' --for 2h
  budgetkeeper suspend role:ChatbotApp-BedrockRole --reason 'incident 4711'
  budgetkeeper suspend team:data --reason 'quarter-end freeze' --for 3d --no-wait
"""


def register(subparsers: Any) -> None:
    parser = add_action_parser(
        subparsers,
        "suspend",
        summary="suspend a scope now (the workflow attaches the deny policy)",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    parser.add_argument(
        "--for",
        dest="duration",
        metavar="DURATION",
        help="restore after this long: 90s, 15m, 2h, 1d, 1h30m or seconds (default: no end)",
    )
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    request = ActionRequest.parse("suspend", args.scope, args.reason, duration=args.duration)
    stack = connect(args, needs=("operator_machine_arn_value",))
    return run_action(stack, args, request)
