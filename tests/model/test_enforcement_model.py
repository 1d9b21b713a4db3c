"""Enforcement proved by invariants over random operation sequences (tests/model/machine.py).

`make test` runs a bounded, derandomized exploration (about a minute); `make test-explore` (CI) a
longer one with a fixed seed and then a fresh one, printed; `make explore` an open-ended one.
MODEL_EXAMPLES and MODEL_STEPS set the budget; with MODEL_SEED (and pytest's --hypothesis-seed,
which the make targets pass together) the run is random from that seed instead of derandomized.
MODEL_CHECKS (e.g. "4,6") asserts only those invariants; MODEL_VERBOSE prints each step.
A failure prints the shortest sequence of steps Hypothesis found, and the seed.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Verbosity, settings
from hypothesis.stateful import run_state_machine_as_test

from tests.model.machine import EnforcementModel

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "5"))
STEPS = int(os.environ.get("MODEL_STEPS", "12"))


def explore(machine: type[EnforcementModel]) -> None:
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize="MODEL_SEED" not in os.environ,
            # Each example builds a stack on moto: slow by Hypothesis' measure, and meant to be.
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.verbose if os.environ.get("MODEL_VERBOSE") else Verbosity.normal,
        ),
    )


class Accounting(EnforcementModel):
    """Invariants 1, 2 and 5: IAM agrees with the records, overspend is denied, totals are exact."""

    checks = frozenset({1, 2, 5})


class Authority(EnforcementModel):
    """Invariants 3, 4 and 6: who may be denied (protection, exclusions, claims) and operator holds."""

    checks = frozenset({3, 4, 6})


@pytest.mark.model
def test_denies_agree_with_records_overspend_is_denied_and_totals_are_exact(aws_env):
    explore(Accounting)


@pytest.mark.model
def test_protection_claims_and_operator_holds_are_respected(aws_env):
    explore(Authority)
