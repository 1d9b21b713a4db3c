"""`budgetkeeper prices show|diff|activate|export`: the price versions the calculator prices with."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from budgetkeeper.price_versions import (
    UnknownPriceVersion,
    activate,
    active_table,
    active_version,
    diff,
    load_version,
    versions,
)
from budgetkeeper.pricing import TOKEN_KINDS, PriceTable
from budgetkeeper_cli.errors import CommandFailed
from budgetkeeper_cli.rendering import FORMATS, Column, render
from budgetkeeper_cli.stack_config import add_stack_options, connect, translating_aws_errors

DESCRIPTION = """\
Price versions: each daily refresh from the AWS Price List is stored as a version and activated
only when safe (rows present, no price moved beyond PriceMoveMaxFactor, no model metered in the
last 30 days dropped); otherwise operators get the diff on the events topic. The usage calculator
prices with the active version (re-read every few minutes), else with the bundled table.

  show [VERSION]             the versions and their status; with VERSION, its rows
  diff VERSION [--against V] what VERSION changes against the active table (or V)
  activate VERSION           price with VERSION from now on (within the calculator's cache TTL)
  export [VERSION]           the rows of VERSION (default: the active table), --format csv|json"""

EXAMPLES = {
    "show": "budgetkeeper prices show\n  budgetkeeper prices show pricelist-20261129T000000Z --format csv",
    "diff": "budgetkeeper prices diff pricelist-20261129T000000Z\n"
    "  budgetkeeper prices diff pricelist-20261129T000000Z --against pricelist-20261128T000000Z",
    "activate": "budgetkeeper prices activate pricelist-20261129T000000Z",
    "export": "budgetkeeper prices export --format csv > prices.csv\n"
    "  budgetkeeper prices export pricelist-20261129T000000Z --format json",
}

VERSION_COLUMNS = (
    Column("version"),
    Column("status"),
    Column("created_at"),
    Column("rows", numeric=True),
    Column("refusals"),
)
ROW_COLUMNS = (
    Column("model"),
    Column("region"),
    Column("tier"),
    *(Column(kind, numeric=True) for kind in TOKEN_KINDS),
    Column("long_context"),
    Column("source"),
    Column("as_of"),
)
CHANGE_COLUMNS = (
    Column("model"),
    Column("region"),
    Column("tier"),
    Column("kind"),
    Column("old", numeric=True),
    Column("new", numeric=True),
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prices",
        help="price versions from the AWS Price List: show, diff, activate, export",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        return actions.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=f"examples:\n  {EXAMPLES[name]}\n",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    show = action("show", "the versions, or the rows of one")
    show.add_argument("version", metavar="VERSION", nargs="?")
    changes = action("diff", "what a version changes against the active table (or --against)")
    changes.add_argument("version", metavar="VERSION")
    changes.add_argument(
        "--against", metavar="VERSION", help="compare with this version (default: the active)"
    )
    activating = action("activate", "price with a version from now on")
    activating.add_argument("version", metavar="VERSION")
    export = action("export", "the rows of a version (default: the active table)")
    export.add_argument("version", metavar="VERSION", nargs="?")
    for sub in (show, changes, activating, export):
        sub.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
        add_stack_options(sub)
        sub.set_defaults(func=run)


def _table(version: str | None) -> PriceTable:
    try:
        return active_table() if version is None else load_version(version)
    except UnknownPriceVersion:
        raise CommandFailed(f"no price version {version!r}: `budgetkeeper prices show` lists them") from None


def _row(row: Any) -> dict[str, Any]:
    data = row.to_dict()
    return {**data, "long_context": None if row.long_context is None else row.long_context.threshold_tokens}


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    connect(args, needs=("prices_table",))
    if args.action == "show" and args.version is None:
        rows = [
            {
                "version": item.version,
                "status": item.status,
                "created_at": item.created_at,
                "rows": item.row_count,
                "refusals": "; ".join(item.refusals or ()) or None,
            }
            for item in versions()
        ]
        sys.stdout.write(f"active: {active_version() or 'none (the bundled table)'}\n")
        sys.stdout.write(render(VERSION_COLUMNS, rows, args.format))
    elif args.action in ("show", "export"):
        table = _table(args.version)
        sys.stdout.write(render(ROW_COLUMNS, [_row(row) for row in table], args.format))
    elif args.action == "diff":
        changes = diff(_table(args.against), _table(args.version))
        rows = [{**change.to_dict(), "old": change.old, "new": change.new} for change in changes]
        sys.stdout.write(render(CHANGE_COLUMNS, rows, args.format))
    else:
        _table(args.version)
        activate(args.version, actor="budgetkeeper")
        sys.stdout.write(
            f"price version {args.version} is active: the calculator prices with it within minutes\n"
        )
    return 0
