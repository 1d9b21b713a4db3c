"""The shape every `budgetkeeper NOUN ACTION` sub-command parser shares."""

from __future__ import annotations

import argparse
from typing import Any


def add_command(
    subparsers: Any, name: str, help_text: str, description: str | None, epilog: str | None = None
) -> argparse.ArgumentParser:
    """A command's parser: its one-line help in the list, its description and examples in --help."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help_text,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def docstring_body(doc: str | None) -> str | None:
    """A command module's docstring without its first paragraph (the one-line summary)."""
    return doc.split("\n\n", 1)[1].strip() if doc else None


def add_actions(parser: argparse.ArgumentParser, dest: str) -> Any:
    """The required ACTION of a `budgetkeeper NOUN ACTION` command."""
    return parser.add_subparsers(dest=dest, metavar="ACTION", required=True)


def add_action(actions: Any, name: str, help_text: str, epilog: str) -> argparse.ArgumentParser:
    """An action parser whose description is its help, with the command's examples below."""
    parser: argparse.ArgumentParser = actions.add_parser(
        name,
        help=help_text,
        description=help_text[0].upper() + help_text[1:] + ".",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser
