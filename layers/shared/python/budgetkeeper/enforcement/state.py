"""The enforcement workflow's Step Functions payload, typed: what each task receives and returns.
`workflow_state` checks a task's input where it arrives (the workflow's tasks and the DenyFunction's
steps): a payload without a scope, or a field of the wrong JSON type, is an InvalidState that names
the field and what it must be, before anything is read or written. Fields the state machine adds
that no task reads pass through as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import NoneType
from typing import Any, Required, TypedDict


class Decision(TypedDict, total=False):
    """What an evaluation decided, read by the state machine's Choice states and the next tasks."""

    next: Required[str]  # nothing | notify | grace | suspend | stand_down
    target: Required[dict[str, Any]]  # budgets.targets.Target.to_dict()
    spared: list[str]
    dry_run: bool
    grace_seconds: int
    note: str | None


class Denies(TypedDict, total=False):
    """What ApplyDenies did: the state machine suspends only when `suspended`."""

    suspended: bool
    applied: list[Any]
    alert_only: list[dict[str, Any]]
    would_apply: list[str]
    pending: list[dict[str, str]]  # held in a member account not reachable now: retried


class Restore(TypedDict):
    windows: list[str]
    note: str | None


class WorkflowState(TypedDict, total=False):
    """One run's state. A run's input (enforcement.runs) sets the request fields; the tasks add
    theirs (`decision`, `denies`, `suspension`, `restore`, `released`); the state machine adds
    `machine` and, on a failure, `failure`."""

    scope: Required[str]
    action: str
    machine: str
    window: str
    window_id: str
    window_end: str | None
    level: str
    forecast: bool
    projected_usd: str | None  # the monitor's projection of a forecast crossing
    revision: int
    actor: str | None
    reason: str | None
    until: str | None
    execution: str | None
    decision: Decision
    denies: Denies
    suspension: dict[str, Any]
    restore: Restore
    released: dict[str, Any]
    failure: dict[str, Any]


class InvalidState(ValueError):
    """A task was given a payload that is not a workflow state."""


_OPTIONAL_TEXT = (str, NoneType)
# The JSON type each field must have when present (`scope` must be present).
_FIELD_TYPES: Mapping[str, tuple[type, ...]] = {
    "scope": (str,),
    "action": (str,),
    "machine": (str,),
    "window": (str,),
    "window_id": (str,),
    "window_end": _OPTIONAL_TEXT,
    "level": (str,),
    "forecast": (bool,),
    "projected_usd": _OPTIONAL_TEXT,
    "revision": (int,),
    "actor": _OPTIONAL_TEXT,
    "reason": _OPTIONAL_TEXT,
    "until": _OPTIONAL_TEXT,
    "execution": _OPTIONAL_TEXT,
    "decision": (dict,),
    "denies": (dict,),
    "suspension": (dict,),
    "restore": (dict,),
    "released": (dict,),
    "failure": (dict,),
}
_DECISION_TYPES: Mapping[str, tuple[type, ...]] = {
    "next": (str,),
    "target": (dict,),
    "spared": (list, NoneType),
    "dry_run": (bool, NoneType),
    "grace_seconds": (int, NoneType),
    "note": _OPTIONAL_TEXT,
}
_JSON_NAMES = {str: "a string", NoneType: "null", bool: "true or false", int: "a number", dict: "an object"}


def _check(document: Mapping[str, Any], types: Mapping[str, tuple[type, ...]], where: str) -> None:
    for name, allowed in types.items():
        if name not in document:
            continue
        value = document[name]
        if not isinstance(value, allowed) or (bool not in allowed and isinstance(value, bool)):
            wanted = " or ".join(_JSON_NAMES.get(kind, kind.__name__) for kind in allowed)
            raise InvalidState(f"{where}{name} is {value!r}: it must be {wanted}")


def workflow_state(event: Mapping[str, Any]) -> WorkflowState:
    """The state of a task event `{"task", "state", "execution"}`, checked, with the run's execution."""
    state = event.get("state")
    if not isinstance(state, dict) or not state.get("scope"):
        raise InvalidState(f"a workflow task needs a state with a scope, got {state!r:.200}")
    checked: dict[str, Any] = {**state, "execution": event.get("execution")}
    _check(checked, _FIELD_TYPES, "")
    if "decision" in checked:
        decision = checked["decision"]
        missing = [name for name in ("next", "target") if name not in decision]
        if missing:
            raise InvalidState(f"decision has no {' or '.join(missing)}")
        _check(decision, _DECISION_TYPES, "decision.")
    return checked  # type: ignore[return-value]  # checked above, field by field


def window_end_of(state: WorkflowState) -> str:
    """The end of the run's window, which an evaluation's run input always names."""
    window_end = state.get("window_end")
    if not window_end:
        raise InvalidState(f"the run of {state['scope']} names no window_end: an evaluation needs it")
    return window_end
