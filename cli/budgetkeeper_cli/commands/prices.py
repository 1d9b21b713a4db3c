"""`budgetkeeper prices show|diff|activate|export|override`: the price versions the calculator
prices with, and operators' overrides for models with no price anywhere (or only a fallback one).

Activating a version and setting an override re-price the usage charged at an estimate whose model
they price (budgetkeeper.metering.estimates): a correction of the rollups and window totals, once."""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal, InvalidOperation
from typing import Any

from budgetkeeper.core import money
from budgetkeeper.domain.usage import ServiceTier
from budgetkeeper.metering.estimates import reprice_estimates
from budgetkeeper.pricing.table import PriceTable, Rates
from budgetkeeper.pricing.versions import (
    OverrideRefused,
    UnknownPriceVersion,
    activate,
    active_table,
    active_version,
    current_table,
    diff,
    load_version,
    remove_override,
    set_override,
)
from budgetkeeper.storage.tables import transaction_connection
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.parsers import add_actions, add_command
from budgetkeeper_cli.price_rows import (
    BUNDLED,
    CHANGE_COLUMNS,
    OVERRIDE_COLUMNS,
    ROW_COLUMNS,
    VERSION_COLUMNS,
    override_rows_in_force,
    price_row,
    version_rows,
)
from budgetkeeper_cli.rendering import FORMATS, json_rows, json_text, render
from budgetkeeper_cli.stack_config import Stack, add_stack_options, connect, translating_aws_errors

DESCRIPTION = """\
Price versions: each daily refresh from the AWS Price List is stored as a version and activated
only when safe (rows present, no price moved beyond PriceMoveMaxFactor, no model metered in the
last 30 days dropped); otherwise operators get the diff on the events topic. The usage calculator
prices with the active version (re-read every few minutes), else with the bundled table.

  show [VERSION]             the versions and their status; with VERSION, its rows
  diff VERSION [--against V] what VERSION changes against the active table (or V)
  activate VERSION           price with VERSION from now on (within the calculator's cache TTL)
  export [VERSION]           the rows of VERSION (default: the active table), --format csv|json
  override MODEL_ID          price a model that has no price anywhere (neither the active version
                             nor the bundled table), USD per 1M tokens, with a reason; audited under
                             scope `prices`; --remove takes it out. A version that prices the model
                             later wins over the override. Calls it prices name it as their
                             price_version (override-<time set>)."""

EXAMPLES = {
    "show": "budgetkeeper prices show\n  budgetkeeper prices show pricelist-20261129T000000Z --format csv",
    "diff": "budgetkeeper prices diff pricelist-20261129T000000Z\n"
    "  budgetkeeper prices diff pricelist-20261129T000000Z --against pricelist-20261128T000000Z",
    "activate": "budgetkeeper prices activate pricelist-20261129T000000Z",
    "export": "budgetkeeper prices export --format csv > prices.csv\n"
    "  budgetkeeper prices export pricelist-20261129T000000Z --format json",
    "override": "budgetkeeper prices override acme.new-model-v1:0 --region us-east-1 \\\n"
    "      --input 1.5 --output 6 --reason 'launched yesterday, not in the Price List yet'\n"
    "  budgetkeeper prices override acme.new-model-v1:0 --region us-east-1 --remove --reason 'priced now'",
}


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "prices",
        "price versions from the AWS Price List: show, diff, activate, export",
        DESCRIPTION,
    )
    actions = add_actions(parser, "action")

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
    override = action("override", "price a model that has no price anywhere (or --remove the override)")
    override.add_argument("model_id", metavar="MODEL_ID")
    override.add_argument("--region", required=True, help="the source Region of the calls to price")
    override.add_argument(
        "--tier", choices=[str(tier) for tier in ServiceTier], default="standard", help="(default: standard)"
    )
    for kind in ("input", "output", "cache-read", "cache-write"):
        override.add_argument(f"--{kind}", metavar="USD_PER_M", type=_usd, help=f"USD per 1M {kind} tokens")
    override.add_argument("--reason", required=True, help="why (kept in the audit and on the row)")
    override.add_argument("--remove", action="store_true", help="take the override out")
    for sub in (show, changes, activating, export, override):
        sub.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
        add_stack_options(sub, region_option="--stack-region" if sub is override else "--region")
        sub.set_defaults(func=run)


def _usd(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"not a price: {text!r}")
    return value


def _table(version: str | None) -> PriceTable:
    try:
        return active_table() if version is None else load_version(version)
    except UnknownPriceVersion:
        raise CommandFailed(f"no price version {version!r}: `budgetkeeper prices show` lists them") from None


def _override(args: argparse.Namespace, actor: str) -> str:
    tier = ServiceTier(args.tier)
    if args.remove:
        row = remove_override(args.model_id, args.region, tier=tier, actor=actor, reason=args.reason)
        return f"override {row.version} of {row.model} in {row.region} ({tier}) removed\n"
    if args.input is None or args.output is None:
        raise UsageError("an override needs --input and --output (USD per 1M tokens)")
    rates = Rates(
        input=args.input, output=args.output, cache_read=args.cache_read, cache_write_5m=args.cache_write
    )
    row = set_override(args.model_id, args.region, rates, tier=tier, actor=actor, reason=args.reason)
    return (
        f"{row.model} in {row.region} ({tier}) is priced by override {row.version}: "
        "the calculator prices with it within minutes\n"
    )


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    needs = {
        "override": ("prices_table", "audit_table", *REPRICE_TABLES),
        "activate": ("prices_table", *REPRICE_TABLES),
    }.get(args.action, ("prices_table",))
    stack = connect(args, needs=needs)
    if args.action == "override":
        try:
            sys.stdout.write(_override(args, stack.caller_arn()))
        except OverrideRefused as error:
            raise CommandFailed(str(error)) from None
        if not args.remove:
            sys.stdout.write(_reprice(stack))
    elif args.action == "show" and args.version is None:
        rows, override_rows = version_rows(), override_rows_in_force()
        if args.format == "json":  # one document: the active version, the versions, the overrides
            sys.stdout.write(
                json_text(
                    {
                        "active": active_version(),
                        "versions": json_rows(VERSION_COLUMNS, rows),
                        "overrides": json_rows(OVERRIDE_COLUMNS, override_rows),
                    }
                )
            )
            return 0
        sys.stdout.write(f"active: {active_version() or BUNDLED}\n")
        sys.stdout.write(render(VERSION_COLUMNS, rows, args.format))
        if override_rows:
            sys.stdout.write("operator overrides (used where the active table has no price):\n")
            sys.stdout.write(render(OVERRIDE_COLUMNS, override_rows, args.format))
    elif args.action in ("show", "export"):
        table = _table(args.version)
        sys.stdout.write(render(ROW_COLUMNS, [price_row(row) for row in table], args.format))
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
        sys.stdout.write(_reprice(stack))
    return 0


REPRICE_TABLES = ("rollups_table", "totals_table")


def _reprice(stack: Stack) -> str:
    """Re-price the estimated usage the prices now in force price; what it did, for stdout."""
    retention_seconds = stack.tunables().usage_retention_days * 86_400
    report = reprice_estimates(current_table(), transaction_connection(stack.settings), retention_seconds)
    corrected = sum(report.corrected.values())
    if not corrected and not report.still_estimated:
        return ""
    difference = money.exact(report.difference_usd)
    text = f"re-priced {corrected} item(s) of estimated usage: {difference} USD corrected"
    if report.still_estimated:
        text += f"; still estimated: {', '.join(sorted(report.still_estimated))}"
    return text + "\n"
