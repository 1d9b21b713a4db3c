"""Who may start what, on the real state machine definition: each machine takes only its own actions.

IAM lets the usage calculator and the monitor start the evaluation machine only, and only holders
of the operators' policy start the operators' machine (tests/unit/template/test_template_security.py). Here:
whatever the input says, the evaluation machine does no operator's action, and a due restore lifts
only a suspension whose record calls for it.
"""

from __future__ import annotations

import copy
import json
import threading

from budgetkeeper.enforcement.runs import WorkflowStarter, due_restore_request, operator_request
from budgetkeeper.storage.tables import BudgetItem
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import wait_for_execution, wait_for_state
from tests.integration.test_enforcement_workflow import (
    attached,
    executions,
    notifications,
    set_budget,
    spend,
    user_arn,
)

ONCALL = "arn:aws:iam::123456789012:user/oncall"


def run_on(stack: LocalStack, machine: str, name: str, request: dict) -> dict:
    starter = WorkflowStarter(stack.client("stepfunctions"), stack.physical_ids[machine])
    return wait_for_execution(stack, starter.start(name, request))


def suspended_by_its_budget(stack: LocalStack, workflow, user: str) -> dict:
    """`user` over its daily budget: the evaluation run has suspended it and waits for the refresh."""
    stack.client("iam").create_user(UserName=user)
    set_budget(f"user:{user}")
    workflow.max_wait_seconds = 60
    spend(user_arn(user), "1.5")
    run = next(run for run in executions(stack) if run["name"].startswith("exceeded"))
    wait_for_state(stack, run["executionArn"], "WaitForRefresh")
    assert attached(stack, user) == [stack.physical_ids["BedrockDenyPolicy"]]
    return run


def test_the_evaluation_machine_takes_no_operators_action_whatever_its_input_says(stack, workflow):
    suspended_by_its_budget(stack, workflow, "hugo")
    # When a role that may start evaluations only asks it for an operator's action, claiming to be
    # an operator and even to run on the operators' machine
    for action in ("restore", "protect", "unprotect", "suspend"):
        name, request = operator_request(
            action, "user:hugo", actor=ONCALL, reason="looks like an operator", machine="operator"
        )
        run = run_on(stack, "BudgetEvaluationStateMachine", name, request)
        # Then the run fails at its first choice, and nothing changed
        assert (run["status"], run.get("error")) == ("FAILED", "ActionNotTaken"), action
    assert attached(stack, "hugo") == [stack.physical_ids["BedrockDenyPolicy"]]
    row = BudgetItem.get("user:hugo", "daily")
    assert (row.status, row.protected) == ("suspended", False)


def test_the_operators_machine_takes_no_evaluation(stack, workflow):
    event_run = suspended_by_its_budget(stack, workflow, "ines")
    described = stack.client("stepfunctions").describe_execution(executionArn=event_run["executionArn"])
    crossing = json.loads(described["input"])
    run = run_on(stack, "BudgetEnforcementStateMachine", "evaluate-again", crossing)
    assert (run["status"], run.get("error")) == ("FAILED", "ActionNotTaken")


def test_a_due_restore_lifts_only_a_suspension_whose_end_has_passed(stack, workflow):
    suspended_by_its_budget(stack, workflow, "jon")
    # When the monitor's role asks for a restore of a suspension that ends at the window's refresh
    name, request = due_restore_request("user:jon", "daily", reason="not due at all", occasion="now")
    run = run_on(stack, "BudgetEvaluationStateMachine", name, request)
    # Then the run refuses it, saying why, and jon stays denied
    assert run["status"] == "FAILED"
    assert "no restore is due for user:jon daily: its suspension ends at" in run.get("cause", "")
    assert attached(stack, "jon") == [stack.physical_ids["BedrockDenyPolicy"]]
    assert BudgetItem.get("user:jon", "daily").status == "suspended"


def _budget_writes(calls: list[tuple[str, dict]], table: str) -> list[tuple[str, set[str], str]]:
    """Each write to `table` among DynamoDB calls: (operation, attribute names, ReturnValues)."""
    writes = []
    for operation, arguments in calls:
        items = [arguments] if operation in ("PutItem", "UpdateItem", "DeleteItem") else []
        items += [next(iter(entry.values())) for entry in arguments.get("TransactItems", [])]
        items += [
            request.get("PutRequest") or request.get("DeleteRequest")
            for request in (arguments["RequestItems"].get(table, []) if operation == "BatchWriteItem" else [])
        ]
        for item in items:
            if item.get("TableName", table) != table or operation in ("GetItem", "Query", "BatchGetItem"):
                continue
            names = set(item.get("Key", {})) | set(item.get("Item", {}))
            names |= set(item.get("ExpressionAttributeNames", {}).values())
            writes.append((operation, names, arguments.get("ReturnValues", "NONE")))
    return writes


def test_the_usage_calculator_writes_only_the_budget_attributes_iam_lets_it(stack, workflow, monkeypatch):
    # IAM lets the calculator's role UpdateItem budget rows naming only CALCULATOR_ATTRIBUTES, with
    # no ReturnValues beyond the updated ones (template.yaml): what it really sends must fit.
    from pynamodb.connection.base import Connection

    from budgetkeeper.storage.budget_rows import CALCULATOR_ATTRIBUTES

    calls: list[tuple[str, dict]] = []
    dispatch = Connection.dispatch
    caller = threading.get_ident()  # the runs it starts execute in moto's threads: not the calculator

    def recording(self, operation: str, arguments: dict) -> dict:
        if threading.get_ident() == caller:
            calls.append((operation, copy.deepcopy(arguments)))
        return dispatch(self, operation, arguments)

    stack.client("iam").create_user(UserName="kim")
    set_budget("user:kim", limit="1")
    monkeypatch.setattr(Connection, "dispatch", recording)
    spend(user_arn("kim"), "0.95")  # a crossing: its budget is marked due, its run started
    spend(user_arn("lee"), "0.10")  # a principal seen first: its default budgets are created
    writes = _budget_writes(calls, stack.physical_name("BudgetsTable"))
    assert {operation for operation, _, _ in writes} == {"UpdateItem"}
    assert len(writes) >= 3  # kim's due mark, lee's default budgets
    for _, names, returns in writes:
        assert names <= set(CALCULATOR_ATTRIBUTES) and returns == "NONE", (names, returns)
    assert BudgetItem.get("user:lee", "daily").status == "ok"  # read as its default
    assert BudgetItem.get("user:kim", "daily").sweep == "due"


def test_a_budget_of_a_principal_gone_from_iam_is_told_without_paging(stack, workflow):
    # Given a budget of a user that no longer exists in IAM (deleted after its last call)
    set_budget("user:gone")
    workflow.max_wait_seconds = 2
    spend(user_arn("gone"), "1.5")
    for run in executions(stack):
        wait_for_execution(stack, run["executionArn"])
    # Then operators are told it cannot be suspended, as a routine event (no SMS)
    [event] = [event for event in notifications(stack) if event["type"] == "cannot_suspend"]
    assert "user gone no longer exists in IAM" in event["note"]
    assert event["routine"] is True
