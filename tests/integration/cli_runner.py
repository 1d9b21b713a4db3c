"""Running the `budgetkeeper` command in a test against the stack on moto, without the workflow.

`OperatorCli(stack, capsys)` calls `budgetkeeper_cli.main.main([...])` with `--stack-name` and
returns what it printed; tests that need the enforcement workflow use test_cli.py's fixture.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from budgetkeeper_cli.main import main
from devkit.harness.stack import LocalStack


@dataclass
class OperatorCli:
    stack: LocalStack
    capsys: pytest.CaptureFixture[str]
    stack_name: str = ""

    def __post_init__(self) -> None:
        self.stack_name = self.stack.publish_outputs()

    def __call__(self, *argv: str, stack: bool = True) -> tuple[int, str, str]:
        """Run `budgetkeeper ARGV [--stack-name NAME]`: (exit code, stdout, stderr)."""
        self.capsys.readouterr()
        code = main([*argv, *(("--stack-name", self.stack_name) if stack else ())])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *argv: str, stack: bool = True) -> str:
        code, out, err = self(*argv, stack=stack)
        assert code == 0, err
        return out

    def fails(self, code: int, *argv: str, stack: bool = True) -> str:
        """Run a command that must exit with `code`; returns its stderr."""
        got, out, err = self(*argv, stack=stack)
        assert got == code, (out, err)
        return err
