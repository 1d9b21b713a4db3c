"""`budgetkeeper restore SCOPE --reason R [--window W]`: end a suspension now, by the workflow."""

from __future__ import annotations

from typing import Any

from budgetkeeper_cli.operator_runs import SUSPENSION_WINDOW_HELP, add_action_parser, run_windowed_action

DESCRIPTION = """\
Restore a suspended scope now: the enforcement workflow stops the runs that would restore it later,
detaches the deny policy (unless another suspension of the scope still holds it) and records the
restore, with you (your STS caller identity) as the actor. Without --window every suspension of the
scope ends: its budget windows and every operator's suspension of it (each `suspend` is a hold of
its own, and a restore lifts them all). With --window, only that budget's, or with --window manual
every operator's suspension of the scope and no budget's.

A budget restored in its window starts a new revision: only spend beyond what was spent at the
restore suspends it again in the same window. Exit 1 if the run fails (e.g. nothing is suspended)."""

EPILOG = """\
examples:
  budgetkeeper restore user:alice --reason 'limit raised by finance'
  budgetkeeper restore user:alice --window manual --reason 'incident closed'
  budgetkeeper restore team:data --window monthly --reason 'approved overspend'
"""


def register(subparsers: Any) -> None:
    parser = add_action_parser(
        subparsers,
        "restore",
        summary="end a suspension now (the workflow detaches the deny policy)",
        description=DESCRIPTION,
        epilog=EPILOG,
        reason_required=True,
        window_help=SUSPENSION_WINDOW_HELP,
    )
    parser.set_defaults(func=run_windowed_action, action="restore")
