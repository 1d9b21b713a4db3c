"""`budgetkeeper user create|create-key|info|delete`: IAM users for Bedrock, their keys and budgets.

A user is an IAM user tagged with its person, team, e-mail and language, in its team's group and
mapped to its team, with a budget if asked. Each API key is made for one (user, tool) on an IAM user
of its own, `BedrockAPIKey-<user>-<tool>` (the `apikey:` scope): all keys of one IAM user log the
same identity, so this is what tells tools apart in the metering; `user info` rolls them up.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper.budgets.rules import ENFORCING
from budgetkeeper.core import clock
from budgetkeeper.core.tags import EMAIL_TAG, LANGUAGE_TAG, PERSON_TAG, TEAM_TAG, TOOL_TAG, USER_TAG
from budgetkeeper.domain.scopes import InvalidScope, parse_scope
from budgetkeeper.storage import budget_rows
from budgetkeeper.storage.audit_rows import Change
from budgetkeeper.storage.budget_rows import BudgetEnforcing, BudgetExists
from budgetkeeper.storage.tables import BudgetItem
from budgetkeeper_cli import options
from budgetkeeper_cli.commands.budget import restore_before_delete
from budgetkeeper_cli.directory import (
    API_KEY_USER_PATH,
    USER_PATH,
    Directory,
    IamUser,
    api_key_user_name,
    team_name,
    tool_name,
)
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_action, add_actions, add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, Column, json_rows, json_text, key_value_table, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors
from budgetkeeper_cli.views import STATUS_COLUMNS, budget_items, budget_states, columns, status_row

NEEDS = ("teams_table", "budgets_table", "totals_table", "audit_table")
KEY_COLUMNS = (
    Column("scope"),
    Column("tool"),
    Column("key_id", "key id"),
    Column("status"),
    Column("created"),
    Column("expires"),
)
USER_BUDGET_KEYS = ("scope", "window", "spent_usd", "limit_usd", "percent", "level", "status", "next_refresh")

EPILOG = """\
examples:
  budgetkeeper user create alice --person 'Alice Martin' --team data --email alice@example.com \\
      --language en --budget 50 --window monthly
  budgetkeeper user create-key alice --tool cline           # prints the key once
  budgetkeeper user create-key alice --tool claude_code --days 90
  budgetkeeper user info alice
  budgetkeeper user delete alice                             # refused while suspended
  budgetkeeper user delete alice --force --reason 'left the company'
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "user",
        "create IAM users for Bedrock with their team and budget, give them API keys, show, delete",
        docstring_body(__doc__),
        EPILOG,
    )
    actions = add_actions(parser, "user_action")

    create = add_action(
        actions, "create", "create an IAM user in a team, tagged, with a budget if given", EPILOG
    )
    create.add_argument("name", metavar="NAME", help="the IAM user name, e.g. alice")
    create.add_argument("--person", required=True, help="who it is, e.g. 'Alice Martin'")
    create.add_argument("--team", required=True, help="an existing team (budgetkeeper team create)")
    create.add_argument("--email", help="where the owner of the user's budgets is told")
    create.add_argument("--language", help="language of those messages: en or es")
    create.add_argument("--budget", metavar="USD", help="a budget for the user, e.g. 50")
    create.add_argument("--window", help="the budget's window (default monthly): daily, weekly, monthly, ...")
    create.set_defaults(func=run_create)

    key = add_action(
        actions, "create-key", "make a Bedrock API key for one tool of a user (printed once)", EPILOG
    )
    key.add_argument("name", metavar="NAME", help="the user, e.g. alice")
    key.add_argument("--tool", required=True, help="the tool the key is for, e.g. cline")
    key.add_argument("--days", type=int, metavar="N", help="the key expires after N days (default: never)")
    key.set_defaults(func=run_create_key)

    info = add_action(actions, "info", "a user's tags, team, API keys, budgets, spend and status", EPILOG)
    info.add_argument("name", metavar="NAME", help="e.g. alice")
    info.add_argument("--format", choices=FORMATS, default="table", help="output format")
    info.set_defaults(func=run_info)

    delete = add_action(
        actions, "delete", "delete a user, its API-key users, keys, groups, budgets and deny", EPILOG
    )
    delete.add_argument("name", metavar="NAME", help="e.g. alice")
    delete.add_argument(
        "--force", action="store_true", help="restore a suspended user through the workflow first"
    )
    delete.add_argument("--reason", help="why, for the audit")
    delete.set_defaults(func=run_delete)

    for action_parser in (create, key, info, delete):
        add_stack_options(action_parser)


def user_name(text: str) -> str:
    """An IAM user name for a person (not an API-key user's)."""
    try:
        return parse_scope(f"user:{text.strip()}").name
    except InvalidScope as error:
        raise UsageError(str(error)) from None


def _existing(directory: Directory, name: str) -> IamUser:
    user = directory.user(name)
    if user is None:
        raise CommandFailed(f"no IAM user {name}: budgetkeeper user create {name} --person ... --team ...")
    return user


# ----------------------------------------------------------------------------- create


@translating_aws_errors
def run_create(args: argparse.Namespace) -> int:
    name = user_name(args.name)
    team = team_name(args.team)
    person = args.person.strip()
    if not person:
        raise UsageError("--person is empty: type e.g. --person 'Alice Martin'")
    email = options.email(args.email, "--email") if args.email else None
    language = options.language(args.language) if args.language else None
    if args.window is not None and args.budget is None:
        raise UsageError("--window goes with --budget: type e.g. --budget 50 --window monthly")
    limit = options.limit_usd(args.budget, "--budget") if args.budget is not None else None
    window = options.window(args.window) if args.window is not None else "monthly"
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    directory.require_team(team)
    tags = {PERSON_TAG: person, TEAM_TAG: team, EMAIL_TAG: email, LANGUAGE_TAG: language}
    user = directory.create_user(name, USER_PATH, tags)
    directory.map_member(user.scope, team)
    sys.stdout.write(f"{user.scope}: IAM user {user.arn} created in team {team}\n")
    if limit is not None:
        values = {"limit_usd": limit, "owner_email": email, "language": language}
        change = Change(actor=stack.caller_arn(), at=clock.now(), reason="user created")
        try:
            budget_rows.create_budget(
                user.scope, window, values, f"budget created: limit {limit} USD", change
            )
        except BudgetExists:
            sys.stdout.write(f"{user.scope} {window}: a budget exists already; left as it is\n")
        else:
            sys.stdout.write(f"{user.scope} {window}: budget created (limit {limit} USD)\n")
    return 0


# ----------------------------------------------------------------------------- keys


@translating_aws_errors
def run_create_key(args: argparse.Namespace) -> int:
    name = user_name(args.name)
    tool = tool_name(args.tool)
    if args.days is not None and not 1 <= args.days <= 36_600:
        raise UsageError(f"--days {args.days}: type a number of days from 1 to 36600, or leave it out")
    key_user_name = api_key_user_name(name, tool)
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    user = _existing(directory, name)
    team = user.tags.get(TEAM_TAG)
    key_user = directory.user(key_user_name)
    if key_user is None:
        tags = {
            PERSON_TAG: user.tags.get(PERSON_TAG, name),
            TEAM_TAG: team,
            EMAIL_TAG: user.tags.get(EMAIL_TAG),
            LANGUAGE_TAG: user.tags.get(LANGUAGE_TAG),
            TOOL_TAG: tool,
            USER_TAG: name,
        }
        key_user = directory.create_user(key_user_name, API_KEY_USER_PATH, tags)
        if team:
            directory.map_member(key_user.scope, team)
        sys.stdout.write(f"{key_user.scope}: IAM user created for {name}'s {tool} key\n")
    key = directory.create_api_key(key_user.name, args.days)
    expires = key.get("ExpirationDate")
    sys.stdout.write(
        f"API key {key['ServiceSpecificCredentialId']} for {key_user.scope}"
        f"{f', expires {expires}' if expires else ', no expiry'}. It is shown this once; give it to "
        f"{name} for {tool} (AWS_BEARER_TOKEN_BEDROCK):\n{key['ServiceCredentialSecret']}\n"
    )
    return 0


# ----------------------------------------------------------------------------- info


def _key_rows(directory: Directory, key_users: list[IamUser]) -> list[dict[str, Any]]:
    rows = []
    for key_user in key_users:
        keys = directory.api_keys(key_user.name)
        for key in keys or [{}]:
            rows.append(
                {
                    "scope": key_user.scope,
                    "tool": key_user.tags.get(TOOL_TAG),
                    "key_id": key.get("ServiceSpecificCredentialId"),
                    "status": key.get("Status"),
                    "created": str(key["CreateDate"]) if key.get("CreateDate") else None,
                    "expires": str(key["ExpirationDate"]) if key.get("ExpirationDate") else None,
                }
            )
    return rows


@translating_aws_errors
def run_info(args: argparse.Namespace) -> int:
    name = user_name(args.name)
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    user = _existing(directory, name)
    key_users = directory.api_key_users(name)
    scopes = [user.scope, *(key_user.scope for key_user in key_users)]
    items = [item for scope in scopes for item in budget_items(scope)]
    rows = [status_row(state) for state in budget_states(items, stack.tunables(), clock.now())]
    keys = _key_rows(directory, key_users)
    if args.format == "json":
        sys.stdout.write(
            json_text(
                {
                    "user": user.name,
                    "arn": user.arn,
                    "tags": user.tags,
                    "groups": user.groups,
                    "scopes": scopes,
                    "keys": json_rows(KEY_COLUMNS, keys),
                    "budgets": json_rows(STATUS_COLUMNS, rows),
                }
            )
        )
        return 0
    if args.format == "csv":
        sys.stdout.write(render(STATUS_COLUMNS, rows, "csv"))
        return 0
    pairs = [("user", user.scope), ("arn", user.arn)]
    pairs += [(key, value) for key, value in sorted(user.tags.items())]
    pairs.append(("groups", ", ".join(user.groups) or "none"))
    parts = [key_value_table(pairs), "\nAPI keys:\n"]
    parts.append(
        render(KEY_COLUMNS, keys, "table")
        if keys
        else f"none (budgetkeeper user create-key {name} --tool TOOL)\n"
    )
    parts.append("\nbudgets:\n")
    parts.append(
        render(columns(STATUS_COLUMNS, USER_BUDGET_KEYS), rows, "table")
        if rows
        else "none yet (the default budgets apply from the first call)\n"
    )
    sys.stdout.write("".join(parts))
    return 0


# ----------------------------------------------------------------------------- delete


def _enforcing(scope: str) -> list[BudgetItem]:
    return [item for item in BudgetItem.query(scope, consistent_read=True) if item.status in ENFORCING]


@translating_aws_errors
def run_delete(args: argparse.Namespace) -> int:
    name = user_name(args.name)
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    user = _existing(directory, name)
    people = [user, *directory.api_key_users(name)]
    enforcing = [item for person in people for item in _enforcing(person.scope)]
    if enforcing and not args.force:
        held = ", ".join(f"{item.scope} {item.window} ({item.status})" for item in enforcing)
        raise CommandFailed(
            f"{name} is being suspended or is suspended: {held}. Restore first (budgetkeeper restore SCOPE "
            "--reason '...'), or pass --force to restore through the workflow and then delete"
        )
    for item in enforcing:
        restore_before_delete(stack, item.scope, item.window, args.reason or "user deleted")
    change = Change(actor=stack.caller_arn(), at=clock.now(), reason=args.reason or "user deleted")
    for person in people:
        for item in BudgetItem.query(person.scope, consistent_read=True):
            try:
                budget_rows.delete_budget(item, change)
            except BudgetEnforcing:
                raise CommandFailed(
                    f"{item.scope} {item.window} started a suspension meanwhile: nothing more deleted; "
                    f"see budgetkeeper status {item.scope}"
                ) from None
            sys.stdout.write(f"{item.scope} {item.window}: budget deleted\n")
        for done in directory.delete_user(person, stack.settings.deny_policy_arn_value):
            sys.stdout.write(f"{person.scope}: {done}\n")
    return 0
