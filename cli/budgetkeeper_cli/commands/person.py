"""`budgetkeeper person add|remove|list`: the identities that are one person, in any account.

A person is who spends, whatever identity they call with: an IAM user here, another in a member
account (`user:111122223333/alice`, organization mode), an API key, an SSO session. Operators map
each identity to the person; the metering then charges the person's calls to `person:NAME` as well,
and a budget of the person denies every identity mapped to them, each in its own account.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from budgetkeeper.domain.scopes import ScopeKind
from budgetkeeper_cli import options
from budgetkeeper_cli.directory import Directory
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.parsers import add_action, add_actions, add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, Column, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

NEEDS = ("teams_table",)
# Identities one human calls with; a role is shared by whoever may assume it, so it is none of them.
IDENTITY_KINDS = (ScopeKind.USER, ScopeKind.APIKEY, ScopeKind.SESSION)
_PERSON_NAME = re.compile(r"[\w.@+-]{1,128}", re.ASCII)
LIST_COLUMNS = (Column("person"), Column("identities"))

EPILOG = """\
identities: user:NAME, user:ACCOUNT/NAME, apikey:BedrockAPIKey-..., session:ROLE/SESSION,
            session:ACCOUNT/ROLE/SESSION

examples:
  budgetkeeper person add alice.martin user:alice
  budgetkeeper person add alice.martin user:111122223333/alice        # her user in a member account
  budgetkeeper person add alice.martin session:AWSReservedSSO_Dev_1a2b/alice@example.com
  budgetkeeper person remove alice.martin user:alice
  budgetkeeper person list
  budgetkeeper budget set person:alice.martin --window monthly --limit 300
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "person",
        "map identities of one or several accounts to a person, list people",
        docstring_body(__doc__),
        EPILOG,
    )
    actions = add_actions(parser, "person_action")
    add = add_action(actions, "add", "map an identity to a person", EPILOG)
    add.add_argument("person", metavar="PERSON", help="e.g. alice.martin")
    add.add_argument("scope", metavar="IDENTITY", help="e.g. user:111122223333/alice")
    add.set_defaults(func=run_add)
    remove = add_action(actions, "remove", "take an identity off a person", EPILOG)
    remove.add_argument("person", metavar="PERSON", help="e.g. alice.martin")
    remove.add_argument("scope", metavar="IDENTITY", help="e.g. user:alice")
    remove.set_defaults(func=run_remove)
    list_parser = add_action(actions, "list", "every person and their identities", EPILOG)
    list_parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    list_parser.set_defaults(func=run_list)
    for action_parser in (add, remove, list_parser):
        add_stack_options(action_parser)


def person_name(text: str) -> str:
    cleaned = text.strip()
    if not _PERSON_NAME.fullmatch(cleaned):
        raise UsageError(
            f"person {text!r} is not a name of letters, digits and ._@+- (at most 128): "
            "type e.g. alice.martin"
        )
    return cleaned


def identity_scope(text: str) -> str:
    scope = options.scope(text)
    if scope.partition(":")[0] not in IDENTITY_KINDS:
        raise UsageError(
            f"{scope} is not one person's identity: "
            f"type one of {', '.join(f'{k}:...' for k in IDENTITY_KINDS)}"
        )
    return scope


@translating_aws_errors
def run_add(args: argparse.Namespace) -> int:
    person, scope = person_name(args.person), identity_scope(args.scope)
    connect(args, needs=NEEDS)
    left = Directory.map_person(scope, person)
    sys.stdout.write(f"{scope} is person {person}{f' (was person {left})' if left else ''}\n")
    return 0


@translating_aws_errors
def run_remove(args: argparse.Namespace) -> int:
    person, scope = person_name(args.person), identity_scope(args.scope)
    connect(args, needs=NEEDS)
    Directory.unmap_person(scope, person)
    sys.stdout.write(f"{scope} is no longer person {person}\n")
    return 0


@translating_aws_errors
def run_list(args: argparse.Namespace) -> int:
    connect(args, needs=NEEDS)
    rows = [
        {"person": person, "identities": ", ".join(identities)}
        for person, identities in Directory.people().items()
    ]
    if args.format == "table" and not rows:
        sys.stdout.write("no person yet: budgetkeeper person add NAME IDENTITY\n")
        return 0
    sys.stdout.write(render(LIST_COLUMNS, rows, args.format))
    return 0
