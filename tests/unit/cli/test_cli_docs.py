"""docs/cli.md covers every command `budgetkeeper --help` lists, and each action of each command."""

from __future__ import annotations

import argparse
import re

from budgetkeeper_cli.main import build_parser
from tests.checkout import ROOT

DOC = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


COMMANDS = subcommands(build_parser())


def test_the_contents_table_lists_every_command_help_lists_in_its_order():
    listed = re.findall(r"^\| `budgetkeeper ([a-z-]+)` \|", DOC, re.MULTILINE)
    assert listed == list(COMMANDS)


def test_every_section_the_table_points_to_exists():
    anchors = {slug(heading) for heading in re.findall(r"^#+ (.+)$", DOC, re.MULTILINE)}
    targets = re.findall(r"^\| `budgetkeeper [a-z-]+` \|.*\]\(#([^)]+)\) \|$", DOC, re.MULTILINE)
    assert len(targets) == len(COMMANDS)
    assert set(targets) <= anchors, set(targets) - anchors


def test_every_command_and_action_is_shown_in_use():
    missing = [
        " ".join(("budgetkeeper", name, *([action] if action else [])))
        for name, parser in COMMANDS.items()
        for action in (list(subcommands(parser)) or [None])
        if not re.search(rf"^budgetkeeper {name}{f' {action}' if action else ''}\b", DOC, re.MULTILINE)
    ]
    assert missing == []
