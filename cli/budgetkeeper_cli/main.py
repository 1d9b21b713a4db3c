"""The `budgetkeeper` command: exit 0 on success, 1 on failure, 2 on a usage error."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from budgetkeeper_cli import rendering
from budgetkeeper_cli.errors import CommandFailed, UsageError

# Sub-command modules under budgetkeeper_cli.commands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "price",
    "prices",
    "meter",
    "report",
    "redrive",
    "budget",
    "status",
    "audit",
    "suspend",
    "restore",
    "protect",
    "unprotect",
    # issue 15: day-one onboarding
    "config",
    "team",
    "user",
    "person",
    "org",
    "invocation_logging",
    "doctor",
    "me",
    "estimate",
    "reconcile",
    "notices",
    "console",
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n(try '{self.prog} --help')\n")


def installed_version() -> str:
    """The installed package's version (pyproject.toml's, once installed)."""
    try:
        return version("bedrock-budgetkeeper")
    except PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="budgetkeeper",
        description="Meter, price and enforce budgets on Amazon Bedrock usage.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {installed_version()}")
    parser.add_argument(
        "--wide", action="store_true", help="tables as wide as their cells (default: within 120 columns)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"budgetkeeper_cli.commands.{name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rendering.table_width = None if args.wide else rendering.TABLE_WIDTH
    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"budgetkeeper {args.command}: {error}", file=sys.stderr)  # noqa: T201
        return 2
    except CommandFailed as error:
        print(f"budgetkeeper {args.command}: {error}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main())
