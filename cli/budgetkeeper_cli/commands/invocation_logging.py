"""`budgetkeeper logging check|enable [--regions ...]`: Bedrock model invocation logging per Region.

The metering sees only what Bedrock logs. Each Region in use must log to a group the metering
reads: the stack's own group in the stack's Region, a regional collector's group elsewhere
(`templates/regional-collector.yaml`). `check` says where each Region stands (exit 1 if any is
not metered); `enable` turns logging on where it is off, with the role Bedrock needs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper.core.tunables import InvalidTunable, tunable_named
from budgetkeeper_cli.bedrock_logging import (
    RegionLogging,
    check_regions,
    enable_region,
    regions_in_use,
)
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_action, add_actions, add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, Column, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

COLUMNS = (
    Column("region"),
    Column("enabled"),
    Column("log_group", "log group"),
    Column("subscribed"),
    Column("problem"),
    Column("fix"),
)

EPILOG = """\
Regions: --regions, else the stack's Region and the `regions` tunable
(budgetkeeper config set regions eu-west-1,us-west-2).

examples:
  budgetkeeper logging check
  budgetkeeper logging check --regions us-east-1,eu-west-1 --format json
  budgetkeeper logging enable
  budgetkeeper logging enable --regions eu-west-1
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "logging",
        "check and turn on Bedrock model invocation logging in each Region in use",
        docstring_body(__doc__),
        EPILOG,
    )
    actions = add_actions(parser, "logging_action")
    check = add_action(actions, "check", "whether each Region logs to a group the metering reads", EPILOG)
    check.add_argument("--format", choices=FORMATS, default="table", help="output format")
    check.set_defaults(func=run_check)
    enable = add_action(
        actions, "enable", "turn logging on where it is off, with the role Bedrock needs", EPILOG
    )
    enable.set_defaults(func=run_enable)
    for action_parser in (check, enable):
        action_parser.add_argument(
            "--regions", metavar="LIST", help="comma-separated, e.g. us-east-1,eu-west-1"
        )
        add_stack_options(action_parser)


def regions_option(text: str | None) -> tuple[str, ...] | None:
    if text is None:
        return None
    try:
        regions = tunable_named("regions").parse(text)
    except InvalidTunable as error:
        raise UsageError(f"--regions: {error}: type e.g. --regions us-east-1,eu-west-1") from None
    if not regions:
        raise UsageError("--regions is empty: type e.g. --regions us-east-1,eu-west-1")
    return tuple(regions)


def logging_row(state: RegionLogging) -> dict[str, Any]:
    return {
        "region": state.region,
        "enabled": state.enabled,
        "log_group": state.log_group,
        "subscribed": state.subscribed,
        "problem": state.problem,
        "fix": state.fix,
    }


@translating_aws_errors
def run_check(args: argparse.Namespace) -> int:
    given = regions_option(args.regions)
    stack = connect(args, needs=("budgets_table",))
    states = check_regions(stack, regions_in_use(stack, given))
    sys.stdout.write(render(COLUMNS, [logging_row(state) for state in states], args.format))
    return 0 if all(state.ok for state in states) else 1


@translating_aws_errors
def run_enable(args: argparse.Namespace) -> int:
    given = regions_option(args.regions)
    stack = connect(args, needs=("budgets_table",))
    account = str(stack.client("sts").get_caller_identity()["Account"])
    left: list[str] = []
    for state in check_regions(stack, regions_in_use(stack, given)):
        home = state.region == stack.settings.region
        if state.enabled and state.ok:
            sys.stdout.write(f"{state.region}: logging is on to {state.log_group}; nothing to do\n")
            continue
        if not home and not state.subscribed:
            sys.stdout.write(f"{state.region}: not enabled: {state.problem}; {state.fix}\n")
            left.append(state.region)
            continue
        if home:
            logs = stack.client("logs")
            found = logs.describe_log_groups(logGroupNamePrefix=state.expected_group)["logGroups"]
            if not any(group["logGroupName"] == state.expected_group for group in found):
                logs.create_log_group(logGroupName=state.expected_group)
        done = enable_region(lambda service, region: stack.regional_client(service, region), state, account)
        sys.stdout.write(f"{state.region}: {done}\n")
        if not state.subscribed:
            sys.stdout.write(f"{state.region}: but {state.problem}: {state.fix}\n")
            left.append(state.region)
    if left:
        raise CommandFailed(f"not metered yet in {', '.join(left)}: see above for what to do")
    return 0
