"""`budgetkeeper price`: what one invocation costs, priced by the function the meter uses.

An unknown model is an answer, not a failure: the command prints the conservative estimate it is
charged at (status `estimated`, basis `estimate`) and exits 0. Every answer names its `price_basis`.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from typing import Any

from budgetkeeper.core import money
from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import Priced, price_invocation
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper_cli.errors import UsageError

# Option, TokenCounts field, help; --input and --output are required.
TOKEN_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--input", "input", "input tokens, cached ones excluded"),
    ("--output", "output", "output tokens"),
    ("--cache-read", "cache_read", "tokens read from the cache"),
    ("--cache-write", "cache_write_5m", "tokens written to a 5-minute cache"),
    ("--cache-write-1h", "cache_write_1h", "tokens written to a 1-hour cache"),
)
REQUIRED_TOKEN_FIELDS = frozenset({"input", "output"})


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "price",
        help="price one invocation from its token counts",
        description="Price one Bedrock invocation with the bundled price table, as the meter would. "
        "An unknown model prints the estimate it is charged at and exits 0 with status estimated.",
    )
    parser.add_argument(
        "--model",
        required=True,
        metavar="ID",
        help="model id, inference-profile id or Bedrock ARN, as the invocation log shows it",
    )
    parser.add_argument("--region", required=True, help="the source region of the call, e.g. us-east-1")
    for option, field, help_text in TOKEN_OPTIONS:
        required = field in REQUIRED_TOKEN_FIELDS
        parser.add_argument(
            option, dest=field, type=int, required=required, default=0, metavar="N", help=help_text
        )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tokens = token_counts(args)
    table = PriceTable.bundled()
    # The Bedrock client is only created if the model is an application inference-profile ARN.
    priced = price_invocation(
        table, args.model, args.region, tokens, InferenceProfiles(region_name=args.region)
    )
    if args.json:
        document = {
            "model_id": args.model,
            "region": args.region,
            "table_version": table.version,
            **priced.to_dict(),
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        sys.stdout.write(render(priced, args.model, args.region, table.version))
    if priced.status == "estimated":
        close = similar_models(table, args.model)
        if close:
            sys.stderr.write(f"no price for {args.model}: did you mean {' or '.join(close)}?\n")
    return 0


def similar_models(table: PriceTable, model_id: str, count: int = 3) -> list[str]:
    """Priced model ids spelled like `model_id` (a typo, or a version suffix left out)."""
    known = sorted({row.model for row in table})
    wanted = model_id.strip().lower()
    starts = [model for model in known if model.startswith(wanted)]
    return (starts or difflib.get_close_matches(wanted, known, n=count, cutoff=0.75))[:count]


def token_counts(args: argparse.Namespace) -> TokenCounts:
    for option, field, _ in TOKEN_OPTIONS:
        if getattr(args, field) < 0:
            raise UsageError(
                f"{option} is a token count and cannot be negative: type e.g. {option} 1200, or 0"
            )
    return TokenCounts(**{field: getattr(args, field) for _, field, _ in TOKEN_OPTIONS})


def render(priced: Priced, model_id: str, region: str, table_version: str) -> str:
    lines = [
        f"model      {model_id}",
        f"region     {region}",
        f"status     {priced.status}",
        f"basis      {priced.basis}",
    ]
    row = priced.row
    if row is not None:
        tier = row.long_context
        lines.append(f"price row  {row.model} in region {row.region} (table {table_version})")
        lines.append(f"source     {row.source}, as of {row.as_of.isoformat()}")
        if tier is not None and priced.long_context:
            lines.append(f"rates      long-context: prompt over {tier.threshold_tokens:,} tokens")
    if priced.rates is not None:
        lines += ["", f"{'kind':<16}{'tokens':>12}{'USD per 1M':>14}{'cost USD':>16}"]
        for charge in priced.charges():
            stand_in = "" if charge.rate_of == charge.kind else f"  (at the {charge.rate_of} rate)"
            lines.append(
                f"{charge.kind:<16}{charge.tokens:>12,}"
                f"{money.exact(charge.usd_per_million):>14}{money.exact(charge.cost_usd):>16}{stand_in}"
            )
    lines.append(f"{'total':<42}{money.exact(priced.cost_usd):>16}")
    if priced.note:
        lines.append(f"note: {priced.note}")
    return "\n".join(lines) + "\n"
