"""The workflow's Step Functions payload is checked where a task receives it."""

from __future__ import annotations

import pytest

from budgetkeeper.enforcement.state import InvalidState, workflow_state
from budgetkeeper.enforcement.workflow_entry import run_task


def event(**state: object) -> dict[str, object]:
    return {"task": "evaluate", "state": state, "execution": "arn:aws:states:us-east-1:1:execution:m:run"}


def test_a_state_is_read_with_its_execution_and_keeps_what_no_task_reads():
    state = workflow_state(event(scope="user:alice", window="daily", undo_failure={"Error": "x"}))
    assert state["execution"] == "arn:aws:states:us-east-1:1:execution:m:run"
    assert state["window"] == "daily"
    assert state["undo_failure"] == {"Error": "x"}  # type: ignore[typeddict-item]  # passed through


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({}, "needs a state with a scope"),
        ({"scope": "user:alice", "window": 5}, "window is 5: it must be a string"),
        ({"scope": "user:alice", "window": None}, "window is None: it must be a string"),
        ({"scope": "user:alice", "forecast": "yes"}, "forecast is 'yes': it must be true or false"),
        ({"scope": "user:alice", "revision": True}, "revision is True: it must be a number"),
        ({"scope": "user:alice", "decision": {"next": "suspend"}}, "decision has no target"),
        (
            {"scope": "user:alice", "decision": {"next": "suspend", "target": {}, "dry_run": "no"}},
            "decision.dry_run is 'no'",
        ),
    ],
)
def test_a_task_refuses_a_state_that_is_not_a_workflow_state_before_it_reads_anything(state, message):
    # No tables, no clients: the check comes before the task touches anything.
    with pytest.raises(InvalidState, match=message):
        run_task(None, event(**state))  # type: ignore[arg-type]
