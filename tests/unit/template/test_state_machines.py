"""Every ASL file, checked the way neither cfn-lint nor moto checks it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from devkit.harness.template import TEMPLATE_PATH, load_template, resources_of_type
from scripts import build_asl

STATE_MACHINES = {
    logical_id: resource["Properties"]
    for logical_id, resource in resources_of_type(load_template(), "AWS::Serverless::StateMachine").items()
}
ASL_FILES = sorted((TEMPLATE_PATH.parent / "statemachines").glob("*.asl.json"))
STATE_TYPES = {"Task", "Choice", "Wait", "Pass", "Succeed", "Fail", "Parallel", "Map"}
LAMBDA_TRANSIENT_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}


def all_states(states: dict) -> dict:
    found = dict(states)
    for state in states.values():
        for branch in state.get("Branches", []):
            found.update(all_states(branch["States"]))
        if "Iterator" in state:
            found.update(all_states(state["Iterator"]["States"]))
    return found


def choice_targets(choice: dict) -> list[str]:
    targets = [rule["Next"] for rule in choice.get("Choices", [])]
    return targets + ([choice["Default"]] if "Default" in choice else [])


def test_every_asl_file_is_written_from_a_source():
    assert {build_asl.target_of(source) for source in build_asl.sources()} == set(ASL_FILES)


@pytest.mark.parametrize("source", build_asl.sources(), ids=lambda p: p.name)
def test_committed_asl_is_what_make_asl_writes(source):
    assert build_asl.target_of(source).read_text() == build_asl.render(source), "run `make asl`"


def test_every_asl_file_is_wired_into_the_template():
    wired = {TEMPLATE_PATH.parent / props["DefinitionUri"] for props in STATE_MACHINES.values()}
    assert wired == set(ASL_FILES)


@pytest.mark.parametrize("logical_id", sorted(STATE_MACHINES))
def test_each_placeholder_has_a_substitution_and_none_is_unused(logical_id):
    properties = STATE_MACHINES[logical_id]
    text = Path(TEMPLATE_PATH.parent / properties["DefinitionUri"]).read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders == set(properties["DefinitionSubstitutions"])


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_states_are_valid_and_every_target_exists(path):
    definition = json.loads(path.read_text())
    states = all_states(definition["States"])
    assert definition["StartAt"] in states
    assert definition.get("QueryLanguage", "JSONPath") == "JSONPath"  # moto cannot run JSONata
    for name, state in states.items():
        assert state["Type"] in STATE_TYPES, name
        targets = [state["Next"]] if "Next" in state else []
        if state["Type"] == "Choice":
            targets += choice_targets(state)
        targets += [catcher["Next"] for catcher in state.get("Catch", [])]
        for target in targets:
            assert target in states, f"{name} -> {target}"
        terminal = state["Type"] in {"Succeed", "Fail", "Choice"} or state.get("End") is True
        assert terminal or "Next" in state, f"{name} neither ends nor goes on"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_every_task_retries_transient_errors_and_catches_the_rest(path):
    states = all_states(json.loads(path.read_text())["States"])
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert tasks
    for name, task in tasks.items():
        retried = {error for retrier in task.get("Retry", []) for error in retrier["ErrorEquals"]}
        assert retried, f"{name} has no Retry"
        if task["Resource"] == "arn:aws:states:::lambda:invoke":
            assert retried >= LAMBDA_TRANSIENT_ERRORS, name
        caught = [error for catcher in task.get("Catch", []) for error in catcher["ErrorEquals"]]
        assert "States.ALL" in caught, f"{name} does not catch States.ALL"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_aws_sdk_error_names_are_matched_as_aws_and_as_moto_spell_them(path):
    states = all_states(json.loads(path.read_text())["States"])
    for name, state in states.items():
        names = [e for rule in state.get("Retry", []) + state.get("Catch", []) for e in rule["ErrorEquals"]]
        for error in names:
            service, _, rest = error.partition(".")
            if service.lower() == "iam":
                assert f"Iam.{rest}" in names and f"iam.{rest}" in names, f"{name}: {error}"


@pytest.mark.parametrize("path", ASL_FILES, ids=lambda p: p.name)
def test_iam_tasks_drop_their_results(path):
    # aws-sdk results with timestamps break describe_execution in moto, and the workflow needs none.
    states = all_states(json.loads(path.read_text())["States"])
    for name, state in states.items():
        if state["Type"] == "Task" and ":aws-sdk:" in state["Resource"]:
            assert state.get("ResultPath", "missing") is None or "ResultSelector" in state, name
