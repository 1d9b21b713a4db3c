"""`budgetkeeper config show|set|reset [KEY]`: the deployment's tunables in SSM Parameter Store.

The names, defaults, meanings and readers are `budgetkeeper.core.tunables.TUNABLES`, the one place
they are declared. `set` checks a value as the functions will read it (and the thresholds against
each other) before it writes; `reset` deletes the parameter, so the default applies again.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper.core.tunables import TUNABLES, InvalidTunable, Tunable, check_tunable, tunable_named
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_action, add_actions, add_command
from budgetkeeper_cli.rendering import FORMATS, Column, render
from budgetkeeper_cli.stack_config import Stack, add_stack_options, connect, translating_aws_errors

COLUMNS = (
    Column("key"),
    Column("value"),
    Column("source"),
    Column("default"),
    Column("meaning"),
)

DESCRIPTION = """\
The deployment's tunables: SSM parameters under /budgetkeeper/<env>/ that the functions read
within a minute of a change. A parameter not set takes its default; a value the functions cannot
use is reported by `show` as invalid (the functions use the default and alert)."""

KEYS_HELP = "keys:\n" + "".join(
    f"  {tunable.parameter:<30} {tunable.description} (default {tunable.default or 'empty'!s})\n"
    for tunable in TUNABLES
)

EPILOG = f"""\
{KEYS_HELP}
examples:
  budgetkeeper config show
  budgetkeeper config show time_zone --format json
  budgetkeeper config set time_zone Europe/Paris
  budgetkeeper config set thresholds/warning_percent 60
  budgetkeeper config reset dry_run
  budgetkeeper config show --environment prod     # no stack needed, only the environment
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "config",
        "show, set and reset the deployment's tunables (SSM parameters)",
        DESCRIPTION,
        EPILOG,
    )
    actions = add_actions(parser, "config_action")

    show = add_action(actions, "show", "every tunable (or one) with its value, default and meaning", EPILOG)
    show.add_argument("key", metavar="KEY", nargs="?", help="e.g. time_zone (default: every key)")
    show.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    show.set_defaults(func=run_show)

    set_parser = add_action(actions, "set", "check a value and write it", EPILOG)
    set_parser.add_argument("key", metavar="KEY", help="e.g. thresholds/warning_percent")
    set_parser.add_argument("value", metavar="VALUE", help="e.g. 60")
    set_parser.set_defaults(func=run_set)

    reset = add_action(actions, "reset", "delete the parameter: its default applies again", EPILOG)
    reset.add_argument("key", metavar="KEY", help="e.g. dry_run")
    reset.set_defaults(func=run_reset)

    for action_parser in (show, set_parser, reset):
        add_stack_options(action_parser)


def _tunable(key: str) -> Tunable:
    try:
        return tunable_named(key)
    except InvalidTunable as error:
        raise UsageError(f"{error} (budgetkeeper config show lists them)") from None


def _row(tunable: Tunable, current: dict[str, str]) -> dict[str, Any]:
    value = current.get(tunable.parameter)
    if value is None:
        source = "default"
    else:
        try:
            tunable.parse(value)
            source = "set"
        except InvalidTunable as error:
            source = f"invalid ({error}): the default applies"
    return {
        "key": tunable.parameter,
        "value": tunable.default if value is None else value,
        "source": source,
        "default": tunable.default,
        "meaning": tunable.description,
    }


@translating_aws_errors
def run_show(args: argparse.Namespace) -> int:
    chosen = [_tunable(args.key)] if args.key else list(TUNABLES)
    stack = connect(args, environment_only=True)
    current = stack.parameter_values()
    rows = [_row(tunable, current) for tunable in chosen]
    if args.format == "table":
        sys.stdout.write(f"{stack.settings.parameter_prefix}\n")
    sys.stdout.write(render(COLUMNS, rows, args.format))
    return 0


@translating_aws_errors
def run_set(args: argparse.Namespace) -> int:
    tunable = _tunable(args.key)
    stack = connect(args, environment_only=True)
    current = stack.parameter_values()
    try:
        value = check_tunable(tunable, args.value, current)
    except InvalidTunable as error:
        raise UsageError(
            f"{error}: nothing written; type e.g. budgetkeeper config set {tunable.parameter} "
            f"{tunable.default or 'VALUE'} (budgetkeeper config show {tunable.parameter} shows the value now)"
        ) from None
    name = stack.settings.parameter_prefix + tunable.parameter
    if not value:
        # SSM refuses empty values; an empty setting is its default (only lists default to empty).
        if tunable.default:
            raise UsageError(f"{tunable.parameter} cannot be empty: type e.g. {tunable.default}")
        return _delete(stack, tunable, name, current)
    previous = current.get(tunable.parameter)
    stack.client("ssm").put_parameter(
        Name=name, Value=value, Type="String", Overwrite=True, Description=tunable.description[:1024]
    )
    was = f"was {previous}" if previous is not None else f"was the default {tunable.default or 'empty'}"
    sys.stdout.write(f"{name} = {value} ({was}); the functions read it within a minute\n")
    return 0


@translating_aws_errors
def run_reset(args: argparse.Namespace) -> int:
    tunable = _tunable(args.key)
    stack = connect(args, environment_only=True)
    current = stack.parameter_values()
    return _delete(stack, tunable, stack.settings.parameter_prefix + tunable.parameter, current)


def _delete(stack: Stack, tunable: Tunable, name: str, current: dict[str, str]) -> int:
    rest = {key: value for key, value in current.items() if key != tunable.parameter}
    try:
        check_tunable(tunable, tunable.default, rest)
    except InvalidTunable as error:
        raise CommandFailed(
            f"{error} once {tunable.parameter} is back to its default: nothing changed"
        ) from None
    if tunable.parameter not in current:
        sys.stdout.write(f"{name} is not set: the default {tunable.default or 'empty'} applies\n")
        return 0
    stack.client("ssm").delete_parameter(Name=name)
    default = tunable.default or "empty"
    sys.stdout.write(f"{name} deleted (was {current[tunable.parameter]}): the default {default} applies\n")
    return 0
