"""Starting enforcement runs: the crossing event, run names, run inputs and the starter.

Everything that starts a run builds it here, so a run's name and input have one shape: the usage
calculator and the monitor start the evaluation machine (evaluations, due restores); the operators'
CLI and console start the operators' machine (suspend, restore, protect, unprotect). Which machine
takes which action is the state machine's (README, "Who may start what"). Run names are
deterministic: the same crossing, restore or request started twice is one run.
This module does not load the workflow's tasks (their idempotency store and SNS set-up).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from budgetkeeper.core import clock
from budgetkeeper.core.actors import MONITOR_ACTOR, SYSTEM_ACTOR
from budgetkeeper.core.money import cents, exact
from budgetkeeper.core.observability import logger, metrics
from budgetkeeper.core.windows import iso_utc

EXECUTION_NAME_LIMIT = 80
_EXECUTION_NAME_FORBIDDEN = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    """Spend (or its forecast) of one budget reached a level: an evaluation run is due."""

    scope: str
    window: str
    window_id: str
    level: str  # warning | critical | exceeded
    forecast: bool
    spent_usd: Decimal
    limit_usd: Decimal
    percent: Decimal
    window_end: str
    revision: int
    closed_window: bool  # spend landed in a window that has already ended

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for name in ("spent_usd", "limit_usd", "percent"):
            document[name] = str(document[name])
        return document


class ThresholdPublisher(Protocol):
    def publish(self, events: Sequence[ThresholdCrossed]) -> None: ...


def execution_name(prefix: str, *parts: object) -> str:
    """A Step Functions execution name: deterministic, at most 80 characters, no `:` or `/`.

    Names are unique per state machine for 90 days, so the same parts never start two runs.
    """
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    safe_prefix = _EXECUTION_NAME_FORBIDDEN.sub("-", prefix)[:30]
    return f"{safe_prefix}-{digest[:40]}"[:EXECUTION_NAME_LIMIT]


# Each builder returns (run name, run input).


def evaluation_request(
    event: ThresholdCrossed,
    *,
    actor: str = SYSTEM_ACTOR,
    reason: str | None = None,
    projected_usd: Decimal | None = None,
) -> tuple[str, dict[str, Any]]:
    """An evaluation of a crossing. The name leaves out who asked, so the calculator's run and
    the monitor's backstop for the same crossing are one run. The reason is the audit's (cents,
    English); notices word the same facts from the structured fields, in their reader's language."""
    level = "forecast" if event.forecast else event.level
    name = execution_name(level, event.scope, event.window, event.window_id, level, event.revision)
    return name, {
        "action": "evaluate",
        "scope": event.scope,
        "window": event.window,
        "window_id": event.window_id,
        "window_end": event.window_end,
        "level": event.level,
        "forecast": event.forecast,
        "revision": event.revision,
        "actor": actor,
        "reason": reason or f"spend {cents(event.spent_usd)} is {event.percent}% of {cents(event.limit_usd)}",
        **({"projected_usd": exact(projected_usd)} if projected_usd is not None else {}),
    }


def due_restore_request(
    scope: str, window: str, *, reason: str, occasion: object
) -> tuple[str, dict[str, Any]]:
    """A restore the monitor starts (a suspension past its end with no run waiting, a restore that
    died half way); `occasion` names the instance, so the next sweep does not start it twice.
    The run checks the budget's record calls for it (WorkflowTasks.prepare_due_restore)."""
    name = execution_name("restore", scope, window, occasion)
    return name, {
        "action": "restore_due",
        "scope": scope,
        "window": window,
        "actor": MONITOR_ACTOR,
        "reason": reason,
    }


def operator_request(
    action: str, scope: str, *, actor: str, reason: str | None, **extra: Any
) -> tuple[str, dict[str, Any]]:
    """An operator's action (the console takes the same JSON); every request is a new run."""
    request = {"action": action, "scope": scope, "actor": actor, "reason": reason, **extra}
    return execution_name(action, scope, actor, reason, iso_utc(clock.now()), uuid.uuid4().hex), request


# How many times one run (one name) is started anew after its earlier attempts failed.
MAX_ATTEMPTS = 5
_ENDED_WITHOUT_SUCCESS = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def attempt_name(name: str, attempt: int) -> str:
    """`name` for the first attempt; `name-a2`, `name-a3`... for the next ones (80 characters at most)."""
    if attempt == 1:
        return name
    suffix = f"-a{attempt}"
    return name[: EXECUTION_NAME_LIMIT - len(suffix)] + suffix


class WorkflowStarter:
    """Starts the enforcement state machine under deterministic names.

    A start whose run is running or succeeded is a no-op: the same crossing is handled once. A
    start whose earlier attempt failed (or timed out, or was stopped) starts the next attempt, so a
    failure never makes a budget unenforceable for the rest of its window.
    """

    def __init__(self, sfn_client: Any, state_machine_arn: str) -> None:
        self._sfn = sfn_client
        self._arn = state_machine_arn

    def start(self, name: str, request: dict[str, Any]) -> str | None:
        """The new execution's ARN, or None when this run is already under way or done."""
        for attempt in range(1, MAX_ATTEMPTS + 1):
            this_attempt = attempt_name(name, attempt)
            try:
                response = self._sfn.start_execution(
                    stateMachineArn=self._arn, name=this_attempt, input=json.dumps(request)
                )
            except self._sfn.exceptions.ExecutionAlreadyExists:
                status = self._status_of(this_attempt)
                if status not in _ENDED_WITHOUT_SUCCESS:
                    logger.info("already handled", execution_name=this_attempt, status=status)
                    return None
                continue  # that attempt failed: the next one
            metrics.add_metric(name="WorkflowStarts", unit=MetricUnit.Count, value=1)
            return str(response["executionArn"])
        logger.error("every attempt of this run failed", execution_name=name, attempts=MAX_ATTEMPTS)
        return None

    def _status_of(self, name: str) -> str:
        # arn:...:stateMachine:<machine> -> arn:...:execution:<machine>:<name>
        execution_arn = self._arn.replace(":stateMachine:", ":execution:", 1) + ":" + name
        return str(self._sfn.describe_execution(executionArn=execution_arn)["status"])

    def publish(self, events: Sequence[ThresholdCrossed]) -> None:
        """The usage calculator's threshold events, each started as an evaluation run."""
        for event in events:
            self.start(*evaluation_request(event))
