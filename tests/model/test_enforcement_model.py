"""Enforcement proved by invariants over random operation sequences (tests/model/machine.py).

Two explorations, each asserting all six invariants: one starts from a budget on a shared scope
(maybe with someone its deny reaches protected or excluded) and leans on spend and claims; the
other starts from an operator's hold besides, and leans on holds meeting holds, budgets and time.

`make test` runs both briefly and derandomized (about a minute); `make test-explore` (CI) longer,
from a fixed seed and then from a fresh one, printed; `make explore` open-ended. MODEL_EXAMPLES and
MODEL_STEPS set the budget; with MODEL_SEED (and pytest's --hypothesis-seed, which the make targets
pass together) the run is random from that seed instead of derandomized. MODEL_SHRINK_SECONDS
bounds the time spent shrinking a failure (Hypothesis' own bound is 5 minutes). MODEL_CHECKS
(e.g. "4,6") asserts only those invariants; MODEL_VERBOSE prints each step as it runs (with -s).
A failure prints the shortest sequence of steps found, and the seed.
"""

from __future__ import annotations

import contextlib
import os
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.internal.conjecture import engine
from hypothesis.stateful import initialize, run_state_machine_as_test

from tests.model.machine import HOLD_ENDS, HOLD_SCOPES, EnforcementModel

EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "5"))
STEPS = int(os.environ.get("MODEL_STEPS", "12"))
SHRINK_SECONDS = os.environ.get("MODEL_SHRINK_SECONDS")


def explore(machine: type[EnforcementModel]) -> None:
    with contextlib.ExitStack() as bounds:
        if SHRINK_SECONDS:  # Hypothesis has no setting for it; its own constant is read per run
            bounds.enter_context(mock.patch.object(engine, "MAX_SHRINKING_SECONDS", int(SHRINK_SECONDS)))
        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=STEPS,
                deadline=None,
                database=None,
                derandomize="MODEL_SEED" not in os.environ,
                # The explain phase reruns the failure step by step: minutes here, for a note.
                phases=[Phase.explicit, Phase.generate, Phase.shrink],
                report_multiple_bugs=False,  # shrink the first failure only
                # Each example builds a stack on moto: slow by Hypothesis' measure, and meant to be.
                suppress_health_check=list(HealthCheck),
                verbosity=Verbosity.verbose if os.environ.get("MODEL_VERBOSE") else Verbosity.normal,
            ),
        )


class SpendAndClaims(EnforcementModel):
    """From a budget on a shared scope: trusted and claimed spend, budgets, protection, exclusions."""


class OperatorHolds(EnforcementModel):
    """From an operator's hold too: holds meeting other holds, restores, budgets and time."""

    @initialize(
        targets=(EnforcementModel.held, EnforcementModel.cast),
        scope=st.sampled_from(HOLD_SCOPES),
        ends=st.sampled_from(HOLD_ENDS),
    )
    def first_hold(self, scope: str, ends: str | None) -> str:
        return self.suspend(scope, ends)


@pytest.mark.model
def test_enforcement_invariants_from_spend_and_claims(aws_env):
    explore(SpendAndClaims)


@pytest.mark.model
def test_enforcement_invariants_with_operator_holds(aws_env):
    explore(OperatorHolds)
