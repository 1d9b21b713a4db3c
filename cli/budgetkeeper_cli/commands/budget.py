"""`budgetkeeper budget set|show|list|delete|reindex`: the budgets themselves.

A budget is keyed by scope and window (a scope may have a daily and a monthly budget at once).
Values a budget leaves unset follow the deployment's tunables in SSM (`/budgetkeeper/<env>/`):
`show` and `list` say which. `set` changes only what it is given; a new limit starts a new
revision, so spend that crossed the old limit can suspend again under the new one. Every change is
written to the audit table with the caller's ARN (STS) as the actor.

Statuses are the workflow's: `set` and `delete` never change one. `delete` refuses a budget on its
way to or in a suspension unless `--force`, which first restores it through the workflow.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from budgetkeeper.budgets.rules import ENFORCING, gets_default_budget
from budgetkeeper.core import clock
from budgetkeeper.storage import budget_rows
from budgetkeeper.storage.audit_rows import Change
from budgetkeeper.storage.budget_rows import BudgetEnforcing
from budgetkeeper.storage.tables import BudgetItem
from budgetkeeper_cli import options
from budgetkeeper_cli.budget_changes import (
    MISSING_MEANS,
    budget_values,
    missing_principal,
    only_window,
    set_budget,
)
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.operator_runs import DEFAULT_TIMEOUT_SECONDS, ActionRequest, run_action
from budgetkeeper_cli.parsers import add_action, add_actions, add_command
from budgetkeeper_cli.rendering import FORMATS, counted, json_text, key_value_table, render, render_csv
from budgetkeeper_cli.stack_config import Stack, add_stack_options, connect, translating_aws_errors
from budgetkeeper_cli.views import (
    BUDGET_COLUMNS,
    LIST_TABLE_KEYS,
    budget_details,
    budget_items,
    budget_row,
    columns,
)

NEEDS = ("budgets_table", "audit_table")

DESCRIPTION = """\
Manage budgets: a limit in US dollars per scope and window, with warning and critical thresholds,
a grace period before a suspension, the owner who is told, and dry-run (notify, never suspend).
Values a budget leaves unset follow the deployment's defaults (SSM /budgetkeeper/<env>/)."""

EPILOG = """\
scopes: user:NAME, apikey:BedrockAPIKey-..., role:NAME, session:ROLE/SESSION, app:NAME,
        team:NAME, account:ID
windows: daily, weekly (Monday to Sunday), monthly, days:N@YYYY-MM-DD (N-day periods from that
         date), in the budget's time zone

examples:
  budgetkeeper budget set user:alice --window daily --limit 5 --owner alice@example.com
  budgetkeeper budget set team:data --window monthly --limit 2000 --time-zone Europe/Paris \\
      --warning-percent 60 --critical-percent 85 --grace 1h
  budgetkeeper budget set user:alice --window daily --limit 8        # keeps the rest; new revision
  budgetkeeper budget show user:alice
  budgetkeeper budget list --format csv > budgets.csv
  budgetkeeper budget delete user:alice --window daily
"""

SET_EPILOG = """\
A new budget needs --window and --limit; an existing one keeps every value not given. A changed
limit starts a new revision: spend that crossed the old limit can warn and suspend again under the
new one. Raising the limit of a suspended budget does not lift the suspension: restore it.

examples:
  budgetkeeper budget set user:alice --window daily --limit 5
  budgetkeeper budget set apikey:BedrockAPIKey-x7k2 --window days:7@2026-01-05 --limit 30 --grace 90s
  budgetkeeper budget set team:data --window monthly --limit 2000 --owner data-leads@example.com \\
      --language es --time-zone Europe/Madrid
  budgetkeeper budget set role:ChatbotApp-BedrockRole --window monthly --dry-run
  budgetkeeper budget set user:new-hire --window daily --limit 5 --allow-missing

A new budget on a user, API key, role or session IAM does not have is refused (most often a typo);
--allow-missing sets it anyway, e.g. before the user is created.
"""

SHOW_EPILOG = """\
Values marked (default) are not set on the budget: they follow the deployment's tunables.

examples:
  budgetkeeper budget show user:alice
  budgetkeeper budget show team:data --window monthly --format json
"""

LIST_EPILOG = """\
The table shows the columns to compare; csv and json hold every field.

examples:
  budgetkeeper budget list
  budgetkeeper budget list --kind team --format json
"""

REINDEX_EPILOG = """\
Once, after upgrading from a version whose operators' daily and monthly budgets were not in the
budgets table's KindIndex (or weekly and days:N ones written before the index): `status`, the
console, the HTML report and the daily summary read operators' budgets there, never by a scan.
This command scans the budgets table once and indexes the budgets an operator set or protected.

examples:
  budgetkeeper budget reindex
"""

DELETE_EPILOG = """\
A budget on its way to or in a suspension (status grace, suspended or restoring) is refused:
restore it first, or pass --force to restore it through the workflow and then delete it.
Principals (users, API keys, sessions) left without any budget get the default budgets again at
their next call.

examples:
  budgetkeeper budget delete user:alice --window daily
  budgetkeeper budget delete team:data --window monthly --force --reason 'team disbanded'
"""


def register(subparsers: Any) -> None:
    parser = add_command(subparsers, "budget", "set, show, list and delete budgets", DESCRIPTION, EPILOG)
    actions = add_actions(parser, "budget_action")

    set_parser = add_action(actions, "set", "create a budget or change some of its values", SET_EPILOG)
    set_parser.add_argument("scope", metavar="SCOPE", help="e.g. user:alice or team:data")
    _window_option(set_parser, "the budget's window (required for a new budget)")
    set_parser.add_argument("--limit", metavar="USD", help="the limit in US dollars, e.g. 25 or 12.50")
    set_parser.add_argument("--time-zone", metavar="ZONE", help="IANA zone of the window, e.g. Europe/Paris")
    set_parser.add_argument("--warning-percent", metavar="PCT", help="warn at this percent of the limit")
    set_parser.add_argument("--critical-percent", metavar="PCT", help="critical at this percent")
    set_parser.add_argument(
        "--grace",
        metavar="DURATION",
        help="wait between exceeding the limit and the suspension: 90s, 15m, 2h, 1d or seconds",
    )
    set_parser.add_argument("--owner", metavar="EMAIL", help="who is told about this budget")
    set_parser.add_argument(
        "--language",
        metavar="TAG",
        help="the owner's language, e.g. en or es (notices exist in en and es; others read English)",
    )
    set_parser.add_argument(
        "--dry-run",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="notify but never suspend (--no-dry-run: enforce)",
    )
    set_parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="set a new budget on a user, API key, role or session IAM does not have (yet)",
    )
    set_parser.add_argument("--reason", help="why, for the audit (optional)")
    set_parser.set_defaults(func=run_set)

    show_parser = add_action(actions, "show", "one scope's budgets with every value resolved", SHOW_EPILOG)
    show_parser.add_argument("scope", metavar="SCOPE", help="e.g. user:alice")
    _window_option(show_parser, "only this window (default: every budget of the scope)")
    _format_option(show_parser)
    show_parser.set_defaults(func=run_show)

    list_parser = add_action(actions, "list", "every budget", LIST_EPILOG)
    list_parser.add_argument(
        "--kind",
        metavar="KIND",
        help="only scopes of this kind: user, apikey, role, session, app, team, account",
    )
    _format_option(list_parser)
    list_parser.set_defaults(func=run_list)

    delete_parser = add_action(actions, "delete", "delete a budget", DELETE_EPILOG)
    delete_parser.add_argument("scope", metavar="SCOPE", help="e.g. user:alice")
    _window_option(delete_parser, "the budget's window (needed when the scope has several)")
    delete_parser.add_argument(
        "--force", action="store_true", help="restore a suspended budget through the workflow, then delete it"
    )
    delete_parser.add_argument("--reason", help="why, for the audit (optional)")
    delete_parser.set_defaults(func=run_delete)

    reindex_parser = add_action(
        actions, "reindex", "index operators' budgets written before this version", REINDEX_EPILOG
    )
    reindex_parser.set_defaults(func=run_reindex)

    for action_parser in (set_parser, show_parser, list_parser, delete_parser, reindex_parser):
        add_stack_options(action_parser)


def _window_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--window", metavar="WINDOW", help=f"daily, weekly, monthly or days:N@YYYY-MM-DD: {help_text}"
    )


def _format_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


# ----------------------------------------------------------------------------- set


@translating_aws_errors
def run_set(args: argparse.Namespace) -> int:
    scope = options.scope(args.scope)
    window = options.window(args.window) if args.window is not None else None
    values = budget_values(args)
    if values["warning_percent"] is not None and values["critical_percent"] is not None:
        options.thresholds(values["warning_percent"], values["critical_percent"])  # before any request
    stack = connect(args, needs=NEEDS)
    missing = missing_principal(stack, scope, window)
    if missing and not args.allow_missing:
        raise UsageError(
            f"{missing}: {MISSING_MEANS}; check the name "
            "(`budgetkeeper status`, `budgetkeeper user info NAME`), or set it before the principal "
            f"exists with --allow-missing: type e.g. {allow_missing_example(args, scope, window)}"
        )
    said, note = set_budget(stack, scope, window, values, args.reason)
    sys.stdout.write(said + "\n")
    if note:
        sys.stderr.write(f"note: {note}\n")
    unread = unread_language(values["language"])
    if unread:
        sys.stderr.write(f"warning: {unread}\n")
    if missing:
        sys.stderr.write(f"warning: {missing}: this budget sees no spend and denies no one until it exists\n")
    return 0


def allow_missing_example(args: argparse.Namespace, scope: str, window: str | None) -> str:
    """The refused `budget set`, with its scope, window and limit, and --allow-missing."""
    words = ["budgetkeeper", "budget", "set", scope]
    if window is not None:
        words += ["--window", window]
    if args.limit is not None:
        words += ["--limit", args.limit]
    return " ".join(map(shlex.quote, [*words, "--allow-missing"]))


def unread_language(language: str | None) -> str | None:
    """What the owner will read instead when no notices exist in `language` (the renderer falls
    back to English for a reader; an operator who chose the language is told now)."""
    from budgetkeeper.notify.render import DEFAULT_LANGUAGE, default_renderer

    if not language:
        return None
    renderer = default_renderer()
    if renderer.language_for(language) != DEFAULT_LANGUAGE or language.lower().startswith(DEFAULT_LANGUAGE):
        return None
    return (
        f"no notices in {language!r} yet: the owner reads them in English "
        f"(notices exist in {', '.join(renderer.languages())}; a language is a folder of templates)"
    )


# ----------------------------------------------------------------------------- show, list


@translating_aws_errors
def run_show(args: argparse.Namespace) -> int:
    scope = options.scope(args.scope)
    window = options.window(args.window) if args.window is not None else None
    stack = connect(args, needs=("budgets_table",))
    items = [item for item in budget_items(scope) if window is None or item.window == window]
    if not items:
        which = f"no {window} budget" if window else "no budget"
        default = " (it gets the default budgets at its first call)" if gets_default_budget(scope) else ""
        raise CommandFailed(f"{scope} has {which}{default}: set one with budget set {scope} --window ...")
    tunables = stack.tunables()
    rows = [budget_row(item, tunables) for item in items]
    if args.format == "table":
        sys.stdout.write("\n".join(key_value_table(budget_details(row)) for row in rows))
    elif args.format == "json":
        sys.stdout.write(
            json_text([{column.key: row[column.key] for column in BUDGET_COLUMNS} for row in rows])
        )
    else:
        sys.stdout.write(render_csv(BUDGET_COLUMNS, rows))
    return 0


@translating_aws_errors
def run_list(args: argparse.Namespace) -> int:
    kind = options.scope_kind(args.kind) if args.kind is not None else None
    stack = connect(args, needs=("budgets_table",))
    tunables = stack.tunables()
    rows = [
        budget_row(item, tunables) for item in budget_items() if not kind or item.scope.startswith(f"{kind}:")
    ]
    shown = columns(BUDGET_COLUMNS, LIST_TABLE_KEYS) if args.format == "table" else list(BUDGET_COLUMNS)
    sys.stdout.write(render(shown, rows, args.format))
    return 0


# ----------------------------------------------------------------------------- delete


@translating_aws_errors
def run_delete(args: argparse.Namespace) -> int:
    scope = options.scope(args.scope)
    window = options.window(args.window) if args.window is not None else None
    stack = connect(args, needs=NEEDS)
    window = window or only_window(scope, "delete")
    try:
        item = BudgetItem.get(scope, window, consistent_read=True)
    except BudgetItem.DoesNotExist:
        others = [other.window for other in budget_items(scope)]
        raise CommandFailed(
            f"{scope} has no {window} budget"
            + (f" (its budgets: {', '.join(others)})" if others else " (it has no budget)")
        ) from None
    if item.status in ENFORCING:
        if not args.force:
            raise CommandFailed(
                f"{scope} {window} is {item.status}: deleting it would leave the deny policy with nothing "
                f"to restore it. Restore it first (budgetkeeper restore {scope} --window {window} "
                "--reason '...'), or pass --force to restore it through the workflow and then delete it"
            )
        restore_before_delete(stack, scope, window, args.reason)
        item = BudgetItem.get(scope, window, consistent_read=True)
    try:
        budget_rows.delete_budget(item, Change(actor=stack.caller_arn(), at=clock.now(), reason=args.reason))
    except BudgetEnforcing:
        raise CommandFailed(
            f"{scope} {window} started a suspension meanwhile: not deleted; see budgetkeeper status {scope}"
        ) from None
    remaining = budget_items(scope)
    note = ""
    if not remaining and gets_default_budget(scope):
        note = "; it gets the default budgets again at its next call"
    sys.stdout.write(f"{scope} {window}: budget deleted{note}\n")
    return 0


def restore_before_delete(stack: Stack, scope: str, window: str, reason: str | None) -> None:
    restore_args = argparse.Namespace(wait=True, timeout=DEFAULT_TIMEOUT_SECONDS)
    if not stack.settings.operator_machine_arn_value:
        raise CommandFailed(
            "--force restores through the workflow: name the state machine "
            "(--stack-name, or --state-machine-arn)"
        )
    run_action(
        stack,
        restore_args,
        ActionRequest("restore", scope, (reason or "").strip() or "budget deleted", window),
    )


# ----------------------------------------------------------------------------- reindex


@translating_aws_errors
def run_reindex(args: argparse.Namespace) -> int:
    connect(args, needs=("budgets_table",))
    indexed = budget_rows.index_operator_budgets()
    sys.stdout.write("".join(f"{key}: indexed\n" for key in indexed))
    sys.stdout.write(f"{counted(len(indexed), 'budget')} indexed; every operator's budget is in the index\n")
    return 0
