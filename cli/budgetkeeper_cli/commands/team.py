"""`budgetkeeper team create|list|show|add-member|remove-member`: teams, their IAM group and members.

A team is what spend rolls up to: the teams table maps member scopes (users, API-key users, roles,
role sessions, apps) to it, and the metering charges each call of a member to `team:NAME` as well.
Its IAM group (named like the team, the group a team budget denies) is created on first use with a
policy that allows Bedrock inference; IAM users join the group when they join the team.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper.core import clock
from budgetkeeper.domain.scopes import ScopeKind
from budgetkeeper_cli import options
from budgetkeeper_cli.directory import Directory, team_name
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_action, add_actions, add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, Column, json_rows, json_text, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors
from budgetkeeper_cli.views import STATUS_COLUMNS, budget_items, budget_states, columns, status_row

NEEDS = ("teams_table", "budgets_table", "totals_table")
MEMBER_KINDS = (ScopeKind.USER, ScopeKind.APIKEY, ScopeKind.ROLE, ScopeKind.SESSION, ScopeKind.APP)
LIST_COLUMNS = (Column("team"), Column("group"), Column("members", numeric=True), Column("budgets"))
TEAM_BUDGET_KEYS = ("window", "window_id", "spent_usd", "limit_usd", "percent", "level", "status")

EPILOG = """\
members: user:NAME, apikey:BedrockAPIKey-..., role:NAME, session:ROLE/SESSION, app:NAME

examples:
  budgetkeeper team create data
  budgetkeeper team create platform --member role:ChatbotApp-BedrockRole --member app:Chatbot
  budgetkeeper team add-member data user:alice
  budgetkeeper team remove-member data user:alice
  budgetkeeper team list
  budgetkeeper team show data --format json
  budgetkeeper budget set team:data --window monthly --limit 2000     # the team's budget
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "team",
        "create teams (and their IAM group), list them, show one, add and remove members",
        docstring_body(__doc__),
        EPILOG,
    )
    actions = add_actions(parser, "team_action")

    create = add_action(
        actions, "create", "create a team: its IAM group with a Bedrock invoke policy", EPILOG
    )
    create.add_argument("team", metavar="TEAM", help="e.g. data")
    create.add_argument("--member", action="append", default=[], metavar="SCOPE", help="a first member")
    create.set_defaults(func=run_create)

    list_parser = add_action(actions, "list", "every team with its group, members and budgets", EPILOG)
    list_parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    list_parser.set_defaults(func=run_list)

    show = add_action(actions, "show", "one team: its members, its group's users and its budgets", EPILOG)
    show.add_argument("team", metavar="TEAM", help="e.g. data")
    show.add_argument("--format", choices=FORMATS, default="table", help="output format")
    show.set_defaults(func=run_show)

    add = add_action(actions, "add-member", "map a scope to the team (users join its group)", EPILOG)
    add.add_argument("team", metavar="TEAM", help="e.g. data")
    add.add_argument("scope", metavar="SCOPE", help="e.g. user:alice or role:ChatbotApp-BedrockRole")
    add.set_defaults(func=run_add_member)

    remove = add_action(
        actions, "remove-member", "take a scope out of the team (users leave its group)", EPILOG
    )
    remove.add_argument("team", metavar="TEAM", help="e.g. data")
    remove.add_argument("scope", metavar="SCOPE", help="e.g. user:alice")
    remove.set_defaults(func=run_remove_member)

    for action_parser in (create, list_parser, show, add, remove):
        add_stack_options(action_parser)


def member_scope(text: str) -> str:
    scope = options.scope(text)
    kind = scope.partition(":")[0]
    if kind not in MEMBER_KINDS:
        raise UsageError(
            f"{scope} cannot be a team member: members are {', '.join(f'{k}:...' for k in MEMBER_KINDS)}"
        )
    return scope


def _add_member(directory: Directory, scope: str, team: str) -> None:
    left = directory.map_member(scope, team)
    moved = f" (moved from team {left})" if left else ""
    sys.stdout.write(f"{scope} is in team {team}{moved}\n")


@translating_aws_errors
def run_create(args: argparse.Namespace) -> int:
    team = team_name(args.team)
    members = [member_scope(text) for text in args.member]
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    if directory.ensure_team_group(team):
        sys.stdout.write(f"team {team}: IAM group {team} created with a Bedrock invoke policy\n")
    else:
        sys.stdout.write(f"team {team}: IAM group {team} exists; left as it is\n")
    for scope in members:
        _add_member(directory, scope, team)
    return 0


@translating_aws_errors
def run_list(args: argparse.Namespace) -> int:
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    budgets: dict[str, list[str]] = {}
    for item in budget_items():
        if item.scope.startswith(f"{ScopeKind.TEAM}:"):
            budgets.setdefault(item.scope.partition(":")[2], []).append(item.window)
    teams = directory.teams()
    rows = [
        {
            "team": team,
            "group": directory.group_exists(team),
            "members": len(members),
            "budgets": budgets.get(team, []),
        }
        for team, members in teams.items()
    ]
    if args.format == "table" and not rows:
        sys.stdout.write("no team yet: budgetkeeper team create NAME\n")
        return 0
    sys.stdout.write(render(LIST_COLUMNS, rows, args.format))
    return 0


@translating_aws_errors
def run_show(args: argparse.Namespace) -> int:
    team = team_name(args.team)
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    if not directory.team_known(team):
        raise CommandFailed(f"unknown team {team!r}: budgetkeeper team list shows the teams")
    members = directory.members(team)
    group_users = directory.group_users(team)
    states = budget_states(budget_items(f"{ScopeKind.TEAM}:{team}"), stack.tunables(), clock.now())
    rows = [status_row(state) for state in states]
    if args.format == "json":
        sys.stdout.write(
            json_text(
                {
                    "team": team,
                    "members": members,
                    "group_users": group_users,
                    "budgets": json_rows(STATUS_COLUMNS, rows),
                }
            )
        )
        return 0
    if args.format == "csv":
        sys.stdout.write(
            render([Column("team"), Column("member")], [{"team": team, "member": m} for m in members], "csv")
        )
        return 0
    parts = [f"team {team}\n", f"members: {', '.join(members) or 'none'}\n"]
    parts.append(f"IAM group {team}: {', '.join(group_users) or 'no users'}\n")
    if rows:
        parts.append(render(columns(STATUS_COLUMNS, TEAM_BUDGET_KEYS), rows, "table"))
    else:
        parts.append(f"no budget: budgetkeeper budget set team:{team} --window monthly --limit USD\n")
    sys.stdout.write("".join(parts))
    return 0


@translating_aws_errors
def run_add_member(args: argparse.Namespace) -> int:
    team = team_name(args.team)
    scope = member_scope(args.scope)
    stack = connect(args, needs=NEEDS)
    directory = Directory(stack.client("iam"))
    directory.require_team(team)
    _add_member(directory, scope, team)
    return 0


@translating_aws_errors
def run_remove_member(args: argparse.Namespace) -> int:
    team = team_name(args.team)
    scope = member_scope(args.scope)
    stack = connect(args, needs=NEEDS)
    Directory(stack.client("iam")).unmap_member(scope, team)
    sys.stdout.write(f"{scope} left team {team}\n")
    return 0
