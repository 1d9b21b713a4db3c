"""Running the real state machine on moto: Lambda tasks go to the real handlers, waits shrink.

moto executes the ASL itself (`execute_state_machine`), but its Lambda backend without Docker
only echoes payloads, and its Wait states sleep in real time. Here a task's Lambda call runs the
handler template.yaml names, in this process, and a Wait lasts at most `max_wait_seconds`. A Wait
until a timestamp counts from the product's clock (`budgetkeeper.core.clock`), not the machine's, so a
test that set the clock sees the waits that moment implies.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import default_user_config
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction

from budgetkeeper.core import clock
from devkit.harness.lambdas import invoke
from devkit.harness.stack import LocalStack
from devkit.harness.template import load_template, resources_of_type


class AsyncInvocations:
    """Lambda's asynchronous invocations (SNS to a function) here: one worker, in order, after the
    caller has moved on, as in Lambda; a failed invocation is kept in `errors`, never raised to the
    publisher."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self._queue: queue.Queue[Any] = queue.Queue()
        self._worker = threading.Thread(target=self._run, name="lambda-async", daemon=True)
        self._worker.start()

    def submit(self, call: Any) -> None:
        self._queue.put(call)

    def drain(self, timeout: float = 120) -> None:
        """Wait until every invocation submitted so far has run."""
        done = threading.Event()
        self._queue.put(done.set)
        if not done.wait(timeout):
            raise TimeoutError("asynchronous invocations still running")

    def stop(self) -> None:
        self.drain()
        self._queue.put(None)
        self._worker.join(timeout=10)

    def _run(self) -> None:
        while (call := self._queue.get()) is not None:
            try:
                call()
            except Exception as error:  # Lambda keeps it (retries, then the on-failure destination)
                self.errors.append(error)


class _Throttled(LambdaClientError):
    """Lambda's answer to an invocation over a function's reserved concurrency: HTTP 429."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


@dataclass
class WaitControl:
    """How long Wait states last here: at most `max_wait_seconds`, or until `release()`; and the
    functions SNS invokes, which run apart (`deliveries.drain()` waits for them).

    A function with a reserved concurrency of one runs one invocation at a time; a second one waits
    for it, or, with `throttle_when_busy`, is refused with `TooManyRequestsException` as Lambda
    refuses it (counted in `throttled`), for the state machine's Retry to try again.

    With `follow_clock`, a Wait lasts instead until the product's clock (`budgetkeeper.core.clock`)
    reaches its end, as it would in Step Functions: a test moves the clock and `settle()`s."""

    max_wait_seconds: float = 0.0
    follow_clock: bool = False
    released: threading.Event = field(default_factory=threading.Event)
    deliveries: AsyncInvocations = field(default_factory=AsyncInvocations)
    throttle_when_busy: bool = False
    throttled: int = 0
    # The end of each Wait under way (follow_clock), by the waiting run's environment.
    _wait_ends: dict[int, datetime] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        """End every wait now and from now on: the demo's "fast-forward to the refresh"."""
        self.released.set()

    def wait_ends(self) -> list[datetime]:
        """When each Wait under way ends (follow_clock), earliest first."""
        with self._lock:
            return sorted(self._wait_ends.values())

    def settle(self, stack: LocalStack, *, timeout: float = 30) -> None:
        """Block until nothing moves without the clock (follow_clock): every running execution is
        in a Wait that ends later, and every asynchronous invocation has run."""
        sfn = stack.client("stepfunctions")
        machines = [
            stack.physical_ids[logical_id]
            for logical_id in resources_of_type(load_template(), "AWS::Serverless::StateMachine")
        ]
        deadline = time.monotonic() + timeout
        quiet_polls, running, asleep = 0, 0, 0
        while quiet_polls < 2:  # twice in a row: a run may be between its start and its first state
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{running} executions running, {asleep} of them in a Wait that ends later"
                )
            self.deliveries.drain(timeout)
            running = sum(
                len(page["executions"])
                for machine in machines
                for page in sfn.get_paginator("list_executions").paginate(
                    stateMachineArn=machine, statusFilter="RUNNING"
                )
            )
            now = clock.now()
            with self._lock:
                asleep = sum(1 for end in self._wait_ends.values() if end > now)
            quiet_polls = quiet_polls + 1 if running == asleep else 0
            time.sleep(0.02)


@contextmanager
def real_handlers(stack: LocalStack, waits: WaitControl | None = None) -> Iterator[WaitControl]:
    control = waits or WaitControl()
    by_name = {stack.physical_ids[logical_id]: logical_id for logical_id in stack.function_arns}
    # A function with a reserved concurrency of one runs one invocation at a time, as in Lambda
    # (where a second one is throttled and retried): the DenyFunction relies on it.
    functions = resources_of_type(load_template(), "AWS::Serverless::Function")
    one_at_a_time = {
        logical_id: threading.Lock()
        for logical_id, function in functions.items()
        if function["Properties"].get("ReservedConcurrentExecutions") == 1
    }

    def invoke_real_handler(backend, function_name, qualifier, body, headers, response_headers):
        logical_id = by_name[function_name.rsplit(":", 1)[-1]]
        one = one_at_a_time.get(logical_id)
        if one is not None and control.throttle_when_busy and one.locked():
            control.throttled += 1  # (two arriving together may both pass: the second then waits)
            raise _Throttled()
        try:
            with one or contextlib.nullcontext():
                result = invoke(logical_id, json.loads(body) if body else {})
        except Exception as error:  # reported to Step Functions as a function error, as Lambda does
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {
                    "errorType": type(error).__name__,
                    "errorMessage": str(error),
                    "stackTrace": traceback.format_exception(error),
                }
            ).encode()
        return json.dumps(result).encode()

    def deliver_sns(backend, function_name, message, subject=None, qualifier=None):
        logical_id = by_name[function_name]
        record = {
            "EventSource": "aws:sns",
            "Sns": {"Type": "Notification", "Message": message, "Subject": subject},
        }
        control.deliveries.submit(lambda: invoke(logical_id, {"Records": [record]}))

    def short_wait(self, env, wait_seconds):
        if control.follow_clock:
            return wait_on_the_clock(env, wait_seconds)
        deadline = time.monotonic() + min(wait_seconds, control.max_wait_seconds)
        # Slices keep the wait interruptible by StopExecution (program_state_event) and release().
        while env.is_running() and not control.released.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            env.program_state_event.wait(min(remaining, 0.05))

    def wait_on_the_clock(env, wait_seconds):
        end = clock.now() + timedelta(seconds=wait_seconds)
        with control._lock:
            control._wait_ends[id(env)] = end
        try:
            while env.is_running() and not control.released.is_set() and clock.now() < end:
                env.program_state_event.wait(0.02)
        finally:
            with control._lock:
                control._wait_ends.pop(id(env), None)

    def seconds_until_timestamp(self, env):
        self.string.eval(env=env)
        text = env.stack.pop()
        target = self._from_timestamp_string(timestamp=text)
        if target is None:  # the run fails as moto (and Step Functions) fails it
            raise FailureEventException(self._create_failure_event(env, text))
        # Exact, not moto's whole seconds: a run must not leave its Wait before the timestamp.
        return (target.replace(tzinfo=UTC) - clock.now()).total_seconds()

    with (
        mock.patch.object(LambdaSimpleBackend, "invoke", invoke_real_handler),
        mock.patch.object(LambdaBackend, "send_sns_message", deliver_sns),
        mock.patch.object(WaitFunction, "_wait_interval", short_wait),
        mock.patch.object(Timestamp, "_get_wait_seconds", seconds_until_timestamp),
        # Retry intervals pause as briefly as waits do (moto sleeps them in real time).
        mock.patch.object(retrier_decl, "time", SimpleNamespace(sleep=lambda seconds: time.sleep(0.01))),
    ):
        try:
            yield control
        finally:
            control.deliveries.stop()


@contextmanager
def executor_on(stack: LocalStack) -> Iterator[None]:
    """moto's Step Functions executor on for a while, in a `mock_aws` that has it off: the state
    machines are made again in the executing backend, so runs started here run the ASL, and the
    executions started before stay where they are, not run. In-process moto only (a moto server
    reads its own configuration)."""
    with mock.patch.dict(default_user_config, {"stepfunctions": {"execute_state_machine": True}}):
        stack.create_state_machines()
        yield


def wait_for_execution(stack: LocalStack, execution_arn: str, *, timeout: float = 120) -> dict[str, Any]:
    """The execution once it has left RUNNING (or as it is when the timeout passes)."""
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def wait_for_state(stack: LocalStack, execution_arn: str, state_name: str, *, timeout: float = 120) -> None:
    """Block until the execution has entered `state_name` (e.g. a Wait); an execution that ended
    without entering it fails the wait at once."""
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = sfn.describe_execution(executionArn=execution_arn)["status"]
        history = sfn.get_execution_history(executionArn=execution_arn)["events"]
        if any(event.get("stateEnteredEventDetails", {}).get("name") == state_name for event in history):
            return
        if status != "RUNNING":
            entered = [
                e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e
            ]
            raise AssertionError(f"{execution_arn} ended {status} without entering {state_name}: {entered}")
        time.sleep(0.05)
    raise TimeoutError(f"{execution_arn} never entered {state_name}")
