"""`budgetkeeper protect SCOPE --reason R [--window W]`: alerts only, never a suspension."""

from __future__ import annotations

from typing import Any

from budgetkeeper_cli.operator_runs import BUDGET_WINDOW_HELP, add_action_parser, run_windowed_action

DESCRIPTION = """\
Protect a scope's budgets: spend is still metered and every threshold still alerts, but the
workflow never suspends the scope (an exceeded budget sends a protected alert instead) until
`budgetkeeper unprotect`. The change is made by the enforcement workflow and audited with you
(your STS caller identity) as the actor. The scope needs a budget: set one first.

Protecting does not lift a suspension that is already in force: restore it."""

EPILOG = """\
examples:
  budgetkeeper protect role:ChatbotApp-BedrockRole --reason 'customer-facing; page on-call instead'
  budgetkeeper protect user:alice --window monthly --reason 'conference demo week'
"""


def register(subparsers: Any) -> None:
    parser = add_action_parser(
        subparsers,
        "protect",
        summary="never suspend a scope (alerts only), until unprotected",
        description=DESCRIPTION,
        epilog=EPILOG,
        reason_required=True,
        window_help=BUDGET_WINDOW_HELP,
    )
    parser.set_defaults(func=run_windowed_action, action="protect")
