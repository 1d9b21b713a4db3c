"""`budgetkeeper me`: the caller's own scopes, spend, limits, status and next refresh.

For any IAM user or role session, with only the read rights of the stack's `SelfServiceReadPolicy`
(output `SelfServiceReadPolicyArn`): the caller's scopes come from its own ARN (STS) and the team
mapping, and each is read by its own partition key, which is all that policy allows. A scope the
policy does not let the caller read is listed as such, not an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.exceptions import PynamoDBException

from budgetkeeper.core import clock
from budgetkeeper.domain.scopes import ScopeKind, app_of_role, parse_identity_arn
from budgetkeeper.storage.tables import TeamItem
from budgetkeeper_cli.parsers import add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, json_rows, json_text, render
from budgetkeeper_cli.stack_config import (
    ACCESS_DENIED_CODES,
    add_stack_options,
    connect,
    translating_aws_errors,
)
from budgetkeeper_cli.views import STATUS_COLUMNS, budget_items, budget_states, columns, status_row

NEEDS = ("budgets_table", "totals_table", "teams_table")
ME_KEYS = (
    "scope",
    "window",
    "window_id",
    "spent_usd",
    "limit_usd",
    "percent",
    "level",
    "status",
    "next_refresh",
)

EPILOG = """\
Give callers the stack's SelfServiceReadPolicy (output SelfServiceReadPolicyArn). IAM users read
their user and API-key scopes, and their team's by their `team` tag; role sessions their role's by
the role's `budgetkeeper-role` tag; IAM Identity Center sessions their own session scope once the
instance passes the attribute `budgetkeeper-user` (the user name) for access control.

examples:
  budgetkeeper me
  budgetkeeper me --format json
  AWS_PROFILE=alice budgetkeeper me --stack-name budgetkeeper-prod
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "me",
        "your own budgets: scopes, spend, limits, status and next refresh",
        docstring_body(__doc__),
        EPILOG,
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    add_stack_options(parser)
    parser.set_defaults(func=run)


def _denied(error: BaseException) -> bool:
    cause: Any = getattr(error, "cause", None) or error.__cause__ or error
    return (
        isinstance(cause, ClientError) and cause.response.get("Error", {}).get("Code") in ACCESS_DENIED_CODES
    )


def _team_of(*scopes: str | None) -> str | None:
    for scope in scopes:
        if scope is None:
            continue
        try:
            team = TeamItem.get(scope).team  # None on an identity mapped to a person only
        except TeamItem.DoesNotExist:
            continue
        except PynamoDBException as error:
            if not _denied(error):
                raise
            continue
        if team:
            return f"{ScopeKind.TEAM}:{team}"
    return None


def my_scopes(arn: str) -> dict[str, str | None]:
    principal = parse_identity_arn(arn)
    app_name = app_of_role(principal.role_name)
    app = f"{ScopeKind.APP}:{app_name}" if app_name else None
    return {
        "principal": principal.principal_scope,
        "role": principal.role_scope,
        "app": app,
        "team": _team_of(principal.principal_scope, principal.role_scope, app),
    }


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    stack = connect(args, needs=NEEDS)
    arn = stack.caller_arn()
    scopes = my_scopes(arn)
    readable: list[str] = []
    unreadable: list[str] = []
    items = []
    for scope in dict.fromkeys(value for value in scopes.values() if value):
        try:
            items.extend(budget_items(scope))
            readable.append(scope)
        except PynamoDBException as error:
            if not _denied(error):
                raise
            unreadable.append(scope)
    rows = [status_row(state) for state in budget_states(items, stack.tunables(), clock.now())]
    if args.format == "json":
        sys.stdout.write(
            json_text(
                {
                    "caller": arn,
                    "scopes": scopes,
                    "not_readable": unreadable,
                    "budgets": json_rows(STATUS_COLUMNS, rows),
                }
            )
        )
        return 0
    if args.format == "csv":
        sys.stdout.write(render(STATUS_COLUMNS, rows, "csv"))
        return 0
    parts = [f"you are {arn}\n"]
    parts += [f"  {kind:<9} {scope}\n" for kind, scope in scopes.items() if scope]
    if unreadable:
        parts.append(f"not readable with your rights: {', '.join(unreadable)}\n")
    parts.append("\n")
    if rows:
        parts.append(render(columns(STATUS_COLUMNS, ME_KEYS), rows, "table"))
    else:
        parts.append("no budget of yours yet: the default budgets apply from your first call\n")
    sys.stdout.write("".join(parts))
    return 0
