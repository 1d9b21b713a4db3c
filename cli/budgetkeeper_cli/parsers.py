"""The shape every `budgetkeeper NOUN ACTION` sub-command parser shares."""

from __future__ import annotations

import argparse
from typing import Any


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
