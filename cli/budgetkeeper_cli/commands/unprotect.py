"""`budgetkeeper unprotect SCOPE [--window W]`: budgets of the scope are enforced again."""

from __future__ import annotations

from typing import Any

from budgetkeeper_cli.operator_runs import BUDGET_WINDOW_HELP, add_action_parser, run_windowed_action

DESCRIPTION = """\
Lift the protection of a scope's budgets: from now on an exceeded budget suspends the scope again
after its grace period. The change is made by the enforcement workflow and audited with you (your
STS caller identity) as the actor."""

EPILOG = """\
examples:
  budgetkeeper unprotect role:ChatbotApp-BedrockRole
  budgetkeeper unprotect user:alice --window monthly --reason 'demo week is over'
"""


def register(subparsers: Any) -> None:
    parser = add_action_parser(
        subparsers,
        "unprotect",
        summary="enforce a protected scope's budgets again",
        description=DESCRIPTION,
        epilog=EPILOG,
        reason_required=False,
        window_help=BUDGET_WINDOW_HELP,
    )
    parser.set_defaults(func=run_windowed_action, action="unprotect")
