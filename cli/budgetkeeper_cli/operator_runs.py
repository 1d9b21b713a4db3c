"""Operator actions (suspend, restore, protect, unprotect) as runs of the enforcement workflow.

The CLI never writes IAM or a budget's status itself: it starts the state machine with the same
input the console uses (`budgetkeeper.enforcement.runs.operator_request`), the caller's ARN from STS as the
actor, then follows the run's history until its outcome is known, with a progress line on stderr,
and says what happened in words on stdout.

The outcome of a suspension with an end is known once the deny is attached and recorded (the run
then waits in `WaitForRefresh` until the end, and restores): the command returns at that point.
Every other action's outcome is the end of its run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TextIO

from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.enforcement.denies import describe_entry
from budgetkeeper_cli import options
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.stack_config import Stack, add_stack_options, connect, translating_aws_errors

DEFAULT_TIMEOUT_SECONDS = 300
# The states in which an operator's run has done what it was asked, though it goes on (waiting).
SETTLED_STATES = frozenset({"WaitForRefresh"})
TERMINAL_EVENTS = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}
_POLL_FIRST_SECONDS = 0.1
_POLL_MAX_SECONDS = 2.0


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="start the run, print its execution ARN and return without waiting for the outcome",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"give up waiting after this long, exit 1 (the run goes on); default {DEFAULT_TIMEOUT_SECONDS}",
    )


@dataclass
class RunHistory:
    """What a run's history says so far: states entered, outputs of exited states, its end."""

    entered: list[str] = field(default_factory=list)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # last output per state
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # last input per state
    status: str = "RUNNING"
    error: str | None = None
    cause: str | None = None

    @classmethod
    def read(cls, sfn: Any, execution_arn: str) -> RunHistory:
        history = cls()
        paginator = sfn.get_paginator("get_execution_history")
        for page in paginator.paginate(executionArn=execution_arn, includeExecutionData=True):
            for event in page["events"]:
                history._add(event)
        return history

    def _add(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if entered := event.get("stateEnteredEventDetails"):
            self.entered.append(entered["name"])
            self.inputs[entered["name"]] = _json_object(entered.get("input"))
        elif exited := event.get("stateExitedEventDetails"):
            self.outputs[exited["name"]] = _json_object(exited.get("output"))
        if kind in TERMINAL_EVENTS:
            self.status = TERMINAL_EVENTS[kind]
            details: dict[str, Any] = next(
                (value for key, value in event.items() if key.endswith("EventDetails")), {}
            )
            self.error, self.cause = details.get("error"), details.get("cause")

    @property
    def settled(self) -> bool:
        return self.status != "RUNNING" or any(name in SETTLED_STATES for name in self.entered)

    def failure(self) -> str:
        """Why the run failed, in the words of the step that failed."""
        if self.status == "ABORTED":
            return "the run was stopped before it finished (a restore stops the runs it replaces)"
        if self.status == "TIMED_OUT":
            return "the run timed out"
        reported = self.inputs.get("ReportFailure", {}).get("failure")
        if isinstance(reported, dict):
            return _failure_text(reported.get("Error"), reported.get("Cause"))
        return _failure_text(self.error, self.cause)


def _json_object(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _failure_text(error: Any, cause: Any) -> str:
    """`InvalidRequest: user:bob is not suspended` from a Lambda error's JSON cause, or as given."""
    message = cause
    if isinstance(cause, str) and cause.startswith("{"):
        parsed = _json_object(cause)
        message = parsed.get("errorMessage") or cause
    if error and message:
        return f"{error}: {message}"
    return str(error or message or "the run failed (no cause given)")


class RunProgress:
    """The run's current state on stderr: one updating line on a terminal, else a line per state."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        isatty = getattr(stream, "isatty", None)
        self._tty = bool(isatty is not None and isatty())
        self._shown = 0
        self._start = time.monotonic()

    def update(self, history: RunHistory) -> None:
        if self._tty:
            if history.entered:
                elapsed = time.monotonic() - self._start
                self._stream.write(f"\r{self._label}: {history.entered[-1]} ({elapsed:.0f}s)\x1b[K")
                self._stream.flush()
                self._shown = len(history.entered)
            return
        for name in history.entered[self._shown :]:
            self._stream.write(f"{self._label}: {name}\n")
        self._shown = len(history.entered)
        self._stream.flush()

    def close(self) -> None:
        if self._tty and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def follow(
    sfn: Any,
    execution_arn: str,
    *,
    label: str,
    timeout: float,
    stream: TextIO | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RunHistory:
    """Read the run's history until its outcome is known (or `timeout` passes: CommandFailed)."""
    progress = RunProgress(stream or sys.stderr, label)
    deadline = time.monotonic() + timeout
    interval = _POLL_FIRST_SECONDS
    try:
        while True:
            history = RunHistory.read(sfn, execution_arn)
            progress.update(history)
            if history.settled:
                return history
            if time.monotonic() > deadline:
                raise CommandFailed(
                    f"{label}: no outcome after {timeout:g}s; the run goes on: follow it with "
                    f"`aws stepfunctions describe-execution --execution-arn {execution_arn}`"
                )
            sleep(interval)
            interval = min(interval * 1.5, _POLL_MAX_SECONDS)
    finally:
        progress.close()


# ----------------------------------------------------------------------------- outcomes in words


def _target_text(target: dict[str, Any] | None) -> str:
    """`IAM user alice`; sessions denied one by one (when the workflow lists them) are named too."""
    target = target or {}
    parts = [f"IAM {target.get('kind')} {target['name']}"] if target.get("name") else []
    sessions = target.get("sessions") or ()
    if sessions:
        parts.append(f"{len(sessions)} session(s) ({', '.join(sessions)})")
    return " and ".join(parts) or "nothing in IAM"


def suspended_text(scope: str, history: RunHistory) -> str:
    if "RecordSuspended" not in history.outputs:
        last = history.entered[-1] if history.entered else "its start"
        raise CommandFailed(
            f"{scope} was not suspended: the run ended at {last} without recording a suspension "
            f"(see budgetkeeper audit {scope})"
        )
    state = history.outputs["RecordSuspended"]
    decision = state.get("decision") or {}
    until = (state.get("suspension") or {}).get("restore_at")
    when = f"until {until}" if until else "with no end (only `budgetkeeper restore` ends it)"
    target = _target_text(decision.get("target"))
    if decision.get("dry_run"):
        return f"{scope} would be suspended {when}: dry run, no deny policy attached to {target}"
    return f"{scope} suspended {when}: deny policy attached to {target}"


def restored_text(scope: str, history: RunHistory) -> str:
    state = history.outputs.get("RecordRestored") or history.outputs.get("ReleaseDenies") or {}
    restore = state.get("restore") or {}
    released = state.get("released") or {}
    windows = ", ".join(restore.get("windows") or ()) or "-"
    effects = []
    if released.get("lifted"):
        effects.append("deny lifted from " + ", ".join(map(describe_entry, released["lifted"])))
    for key, holders in (released.get("kept") or {}).items():
        effects.append(f"the deny on {describe_entry(key)} stays: still held by {', '.join(holders)}")
    if not effects:
        effects.append(restore.get("note") or "nothing was denied in IAM (dry run, or nothing to deny)")
    return f"{scope} restored ({windows}): {'; '.join(effects)}"


def protection_text(scope: str, protect: bool, window: str | None) -> str:
    which = f"the {window} budget of {scope}" if window else scope
    if protect:
        return f"{which} protected: alerts only, never suspended, until `budgetkeeper unprotect {scope}`"
    return f"{which} unprotected: its budgets are enforced again"


def outcome_text(action: str, scope: str, history: RunHistory, window: str | None = None) -> str:
    """What a settled run of `action` did, in words; CommandFailed when it did not do it."""
    if history.status not in ("RUNNING", "SUCCEEDED"):
        raise CommandFailed(f"{action} {scope} failed: {history.failure()}")
    if action == "suspend":
        return suspended_text(scope, history)
    if action == "restore":
        return restored_text(scope, history)
    return protection_text(scope, action == "protect", window)


def start_run(stack: Stack, action: str, scope: str, *, reason: str | None, **extra: Any) -> str:
    """Start the enforcement workflow for an operator's `action`, the caller as the actor: its ARN.

    The one way the CLI and the console act: the input is
    `budgetkeeper.enforcement.runs.operator_request`'s."""
    # Imported here: budgetkeeper.enforcement.runs loads Powertools (budgetkeeper.core.observability),
    # whose tracer opens an X-Ray socket at import; commands that start no run (and --help) need neither.
    from budgetkeeper.enforcement.runs import WorkflowStarter, operator_request

    name, request = operator_request(
        action, scope, actor=stack.caller_arn(), reason=reason, **{k: v for k, v in extra.items() if v}
    )
    sfn = stack.client("stepfunctions")
    execution_arn = WorkflowStarter(sfn, stack.settings.operator_machine_arn).start(name, request)
    if execution_arn is None:  # names are unique per request; a clash means a repeated request id
        raise CommandFailed(f"a run named {name} exists already: try again")
    return execution_arn


def run_action(stack: Stack, args: argparse.Namespace, request: ActionRequest) -> int:
    """Start the workflow for the request and (unless --no-wait) report its outcome; 1 if it failed."""
    action, scope = request.action, request.scope
    execution_arn = request.start(stack)
    sfn = stack.client("stepfunctions")
    label = f"{action} {scope}"
    if not args.wait:
        sys.stdout.write(f"{label}: started, execution {execution_arn}\n")
        return 0
    sys.stderr.write(f"{label}: started {execution_arn}\n")
    history = follow(sfn, execution_arn, label=label, timeout=args.timeout)
    try:
        outcome = outcome_text(action, scope, history, request.window)
    except CommandFailed as error:
        raise CommandFailed(f"{error} (execution {execution_arn})") from None
    sys.stdout.write(f"{outcome} (execution {execution_arn})\n")
    return 0


BUDGET_WINDOW_HELP = "only this budget: daily, weekly, monthly or days:N@YYYY-MM-DD (default: every budget)"
SUSPENSION_WINDOW_HELP = (
    "only this suspension: daily, weekly, monthly, days:N@YYYY-MM-DD or manual (default: all)"
)


def add_action_parser(
    subparsers: Any,
    action: str,
    *,
    summary: str,
    description: str,
    epilog: str,
    reason_required: bool = True,
    window_help: str | None = None,
) -> argparse.ArgumentParser:
    """The parser every operator action shares: SCOPE, --reason, [--window], run and stack options."""
    parser = subparsers.add_parser(
        action,
        help=summary,
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scope", metavar="SCOPE", help="e.g. user:alice, apikey:BedrockAPIKey-x7k2, team:data"
    )
    if reason_required:
        parser.add_argument("--reason", required=True, help="why, for the audit and the notifications")
    else:
        parser.add_argument("--reason", help="why, for the audit (optional)")
    if window_help:
        parser.add_argument("--window", metavar="WINDOW", help=window_help)
    add_run_options(parser)
    add_stack_options(parser)
    return parser


ACTIONS = ("suspend", "restore", "protect", "unprotect")


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """An operator's action as typed (CLI options or the console's form), checked."""

    action: str
    scope: str
    reason: str | None
    window: str | None = None  # restore, protect, unprotect: only this budget or suspension
    until: str | None = None  # suspend: restore at this moment (ISO UTC); None: only a restore ends it

    @classmethod
    def parse(
        cls,
        action: str,
        scope: str,
        reason: str | None,
        *,
        window: str | None = None,
        duration: str | None = None,
    ) -> ActionRequest:
        """UsageError, saying what to type, for anything wrong (before anything is started)."""
        if action not in ACTIONS:
            raise UsageError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
        checked_scope = options.scope(scope)
        if action == "unprotect":
            checked_reason = (reason or "").strip() or None
        else:
            checked_reason = options.reason(reason, action)
        window = (window or "").strip() or None
        until = None
        if action == "suspend":
            if (duration or "").strip():
                seconds = options.duration_seconds(str(duration), "--for", allow_zero=False)
                until = iso_utc(clock.now() + timedelta(seconds=seconds))
            window = None
        elif window is not None:
            # Only a restore may name the `manual` row; protection is about budgets.
            window = (options.operator_window if action == "restore" else options.window)(window)
        return cls(action, checked_scope, checked_reason, window, until)

    def check(self, stack: Stack) -> None:
        """UsageError, saying what to do instead, for a request the run would only fail on: an
        operator's mistake is answered here, before any run starts (and before anyone is paged)."""
        from budgetkeeper.budgets.rules import ENFORCING  # see start_run: loaded only when acting
        from budgetkeeper.enforcement.principals import why_not_suspendable
        from budgetkeeper.storage.tables import BudgetItem

        if self.action == "suspend":
            why_not = why_not_suspendable(stack.client("iam"), self.scope)
            if why_not:
                raise UsageError(
                    f"{why_not}; nothing was started (check the name with `budgetkeeper status`)"
                )
            return
        rows = [item for item in BudgetItem.query(self.scope) if self.window in (None, item.window)]
        which = f"the {self.window} budget of {self.scope}" if self.window else self.scope
        if self.action == "restore" and not any(item.status in ENFORCING for item in rows):
            raise UsageError(
                f"{which} is not suspended: nothing to restore, nothing was started "
                f"(`budgetkeeper status {self.scope}` shows its budgets)"
            )
        if self.action in ("protect", "unprotect") and not rows:
            raise UsageError(
                f"{which} has no budget to {self.action}: nothing was started "
                f"(set one first: `budgetkeeper budget set {self.scope} --window daily --limit USD`)"
            )

    def start(self, stack: Stack) -> str:
        """Check it, then start the workflow for it: the execution ARN."""
        self.check(stack)
        return start_run(
            stack, self.action, self.scope, reason=self.reason, window=self.window, until=self.until
        )


@translating_aws_errors
def run_windowed_action(args: argparse.Namespace) -> int:
    """restore, protect and unprotect: a scope, a reason, an optional window, one workflow run."""
    request = ActionRequest.parse(args.action, args.scope, args.reason, window=args.window)
    stack = connect(args, needs=("operator_machine_arn_value",))
    return run_action(stack, args, request)
