"""A burst of runs reaching ApplyDenies at once (issue 28, finding 6): every one ends suspended.

The DenyFunction runs one invocation at a time (reserved concurrency 1: IAM has no conditional
writes), so Lambda throttles the runs that reach it while it is busy, and the state machine's Retry
on `Lambda.TooManyRequestsException` is what queues them. Two checks of that policy, as the
committed ASL states it: a simulation of a hundred runs against a function busy 5 s per run, and
the burst itself on moto, the real ASL and handlers, with Lambda's throttling injected
(`WaitControl.throttle_when_busy`) and Step Functions' time scaled (`DenyPace`).
On moto, 20 runs keep `make test` fast; `make test-scale` (run by CI) sets DENY_BURST=100 for the
finding's hundred (about 2.5 minutes).
"""

from __future__ import annotations

import heapq
import json
import os
import random
import time
from typing import Any
from unittest import mock

from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from budgetkeeper.enforcement.runs import WorkflowStarter, operator_request
from budgetkeeper.storage.tables import BudgetItem
from devkit.harness import workflow
from devkit.harness.stack import LocalStack
from devkit.harness.template import REPO_ROOT
from devkit.harness.workflow import WaitControl, real_handlers, wait_for_execution

BURST = 100
MOTO_BURST = int(os.environ.get("DENY_BURST", "20"))
# What one ApplyDenies may take in AWS (the deny records, then IAM's calls): the policy is sized so
# that a burst of BURST such runs queues without one running out of attempts.
DENY_SECONDS = 5
THROTTLED = "Lambda.TooManyRequestsException"
ONCALL = "arn:aws:iam::123456789012:user/oncall"


class DenyPace:
    """Step Functions' time at PACE on moto: every retry pause scaled by PACE, and every
    ApplyDenies kept busy DENY_SECONDS x PACE (its work here takes a fraction of that).

    A fixed scale, not one measured from the runs: a throttled retry costs moto more CPU than it
    costs Step Functions, so a scale that followed the measured pace fed on itself (slower denies,
    longer pauses) until runs waited for minutes. Holding each deny for its full share keeps the
    burst the one the policy is sized for, whatever the machine's speed, as long as the real work
    fits in the share (`durations` says how long it took)."""

    PACE = 0.2  # 0.05 left a deny 0.25 s: a hundred runs' retries alone filled it on 2 cores

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._invoke = workflow.invoke

    def invoke(self, logical_id: str, event: dict[str, Any]) -> Any:
        if event.get("task") != "apply_denies":
            return self._invoke(logical_id, event)
        started = time.perf_counter()
        try:
            return self._invoke(logical_id, event)
        finally:
            took = time.perf_counter() - started
            self.durations.append(took)
            time.sleep(max(0.0, DENY_SECONDS * self.PACE - took))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds * self.PACE)


def apply_denies_retry_on_throttling() -> dict[str, Any]:
    definition = json.loads((REPO_ROOT / "statemachines" / "budget_enforcement.asl.json").read_text())
    retriers = definition["States"]["ApplyDenies"]["Retry"]
    return next(retrier for retrier in retriers if THROTTLED in retrier["ErrorEquals"])


def runs_out_of_attempts(policy: dict[str, Any], *, runs: int, busy_seconds: float, seed: int) -> int:
    """How many of `runs` arriving within a second exhaust `policy` against a one-at-a-time function.

    Step Functions' semantics: the n-th retry waits IntervalSeconds x BackoffRate^(n-1), at most
    MaxDelaySeconds, a uniform fraction of that with JitterStrategy FULL; after MaxAttempts retries
    the error goes on (here: to UndoDenies, the run fails)."""
    rng = random.Random(seed)
    arrivals = [(rng.uniform(0, 1), run, 0) for run in range(runs)]
    heapq.heapify(arrivals)
    free_at, exhausted = 0.0, 0
    while arrivals:
        moment, run, retries = heapq.heappop(arrivals)
        if moment >= free_at:
            free_at = moment + busy_seconds
            continue
        if retries >= policy.get("MaxAttempts", 3):
            exhausted += 1
            continue
        delay = policy.get("IntervalSeconds", 1) * policy.get("BackoffRate", 2.0) ** retries
        delay = min(delay, policy.get("MaxDelaySeconds", delay))
        if policy.get("JitterStrategy") == "FULL":
            delay = rng.uniform(0, delay)
        heapq.heappush(arrivals, (moment + delay, run, retries + 1))
    return exhausted


def test_the_throttling_retry_outlasts_a_burst_of_a_hundred_runs():
    policy = apply_denies_retry_on_throttling()
    assert policy.get("JitterStrategy") == "FULL"  # runs retrying in step would collide again
    exhausted = [
        runs_out_of_attempts(policy, runs=BURST, busy_seconds=DENY_SECONDS, seed=seed) for seed in range(50)
    ]
    assert max(exhausted) == 0


def test_a_burst_of_runs_reaching_apply_denies_at_once_all_end_suspended(stack: LocalStack, settings):
    # Given MOTO_BURST IAM users, and Lambda throttling the DenyFunction while it runs
    iam = stack.client("iam")
    users = [f"burst-{index:03d}" for index in range(MOTO_BURST)]
    for user in users:
        iam.create_user(UserName=user)
    control = WaitControl(throttle_when_busy=True)
    control.deliveries.submit = lambda call: None  # the notices are not what this test is about
    starter = WorkflowStarter(
        stack.client("stepfunctions"), stack.physical_ids["BudgetEnforcementStateMachine"]
    )
    pace = DenyPace()
    with (
        real_handlers(stack, control),
        mock.patch.object(workflow, "invoke", pace.invoke),
        mock.patch.object(retrier_decl, "time", pace),
    ):
        # When an operator suspends them all at once: the runs reach ApplyDenies together
        started = [
            starter.start(*operator_request("suspend", f"user:{user}", actor=ONCALL, reason="burst"))
            for user in users
        ]
        ended = [wait_for_execution(stack, arn, timeout=600) for arn in started]
    # Then Lambda throttled them, and every run still ended suspended: none failed, none undid its deny
    assert control.throttled > MOTO_BURST and len(pace.durations) == MOTO_BURST
    assert [run["status"] for run in ended] == ["SUCCEEDED"] * MOTO_BURST, [r.get("cause") for r in ended][:3]
    deny_policy = stack.physical_ids["BedrockDenyPolicy"]
    for user in users:
        assert BudgetItem.get(f"user:{user}", "manual").status == "suspended"
        attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
        assert [policy["PolicyArn"] for policy in attached] == [deny_policy]
