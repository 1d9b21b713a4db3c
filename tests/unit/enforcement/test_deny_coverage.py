"""The deny covers every action of the Bedrock services that can spend (finding 1 of issue 28).

The Service Authorization Reference, as the pinned cfn-lint ships it (`Policies.json`), lists every
IAM action. Each action of a `bedrock*` prefix is denied by `BEDROCK_DENY_ACTIONS` or reviewed in
`tests/unit/enforcement/bedrock_actions_reviewed.py` as unable to spend. A new action is a failure here, not a
silent gap.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

from budgetkeeper.domain.policies import BEDROCK_DENY_ACTIONS, SessionDenies, session_deny_document
from devkit.harness.template import load_template
from tests.iam_eval import document_fits
from tests.unit.enforcement.bedrock_actions_reviewed import NOT_SPENDING

ROLE_ID = "AROA3XFRBF535PLBIFPI4"


@cache
def service_actions() -> dict[str, frozenset[str]]:
    """Every `bedrock*` prefix and its actions (lowercase, as the data spells them)."""
    import cfnlint

    specs = json.loads(
        (Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json").read_text()
    )
    return {
        service: frozenset(f"{service}:{action}" for action in entry["Actions"])
        for service, entry in specs.items()
        if service == "bedrock" or service.startswith("bedrock-")
    }


def all_actions() -> frozenset[str]:
    return frozenset().union(*service_actions().values())


def denied_by(patterns: Iterable[str], action: str) -> bool:
    """IAM's action matching: case-insensitive, `*` and `?` wildcards, the service prefix exact."""
    service, name = action.split(":")
    return any(
        pattern.split(":")[0].lower() == service and fnmatch.fnmatchcase(name, pattern.split(":")[1].lower())
        for pattern in patterns
    )


def reviewed() -> frozenset[str]:
    return frozenset(action for actions in NOT_SPENDING.values() for action in actions)


def gaps(patterns: Iterable[str]) -> list[str]:
    """Actions that are neither denied by `patterns` nor reviewed as unable to spend."""
    patterns = tuple(patterns)
    return sorted(
        action for action in all_actions() if not denied_by(patterns, action) and action not in reviewed()
    )


def test_the_data_has_the_bedrock_services():
    assert {"bedrock", "bedrock-agentcore", "bedrock-mantle", "bedrock-websearch"} <= set(service_actions())
    assert len(all_actions()) > 500


def test_every_bedrock_action_is_denied_or_reviewed_as_unable_to_spend():
    assert gaps(BEDROCK_DENY_ACTIONS) == []


@pytest.mark.parametrize("entry", BEDROCK_DENY_ACTIONS)
def test_each_deny_entry_is_needed_removing_it_leaves_a_gap(entry):
    # Every entry of the deny stands for at least one action that can spend: without it, the
    # coverage test fails (naming the actions it would have denied).
    without = [pattern for pattern in BEDROCK_DENY_ACTIONS if pattern != entry]
    uncovered = gaps(without)
    assert uncovered, f"{entry} denies nothing that can spend"
    assert all(denied_by([entry], action) for action in uncovered)


def test_the_reviewed_list_is_current():
    # No stale entry: each reviewed action exists, is listed once, and is not denied (a reviewed
    # action that is also denied means one of the two decisions is out of date).
    listed = [action for actions in NOT_SPENDING.values() for action in actions]
    assert len(listed) == len(set(listed))
    assert sorted(set(listed) - all_actions()) == []
    assert sorted(action for action in listed if denied_by(BEDROCK_DENY_ACTIONS, action)) == []
    assert all(reason.strip() for reason in NOT_SPENDING)


@pytest.mark.parametrize(
    "way_to_spend",
    [
        # the review's finding 1, by name
        "bedrock-agentcore:InvokeAgentRuntime",
        "bedrock-agentcore:InvokeAgentRuntimeWithWebSocketStream",
        "bedrock-agentcore:StartCodeInterpreterSession",
        "bedrock-agentcore:StartBrowserSession",
        "bedrock-agentcore:InvokeGateway",
        "bedrock-agentcore:Evaluate",
        "bedrock-agentcore:StartMemoryExtractionJob",
        "bedrock:CreateMarketplaceModelEndpoint",
        "bedrock:UpdateMarketplaceModelEndpoint",
        "bedrock:StartIngestionJob",
        "bedrock:IngestKnowledgeBaseDocuments",
        "bedrock:Rerank",
        "bedrock:CreateAdvancedPromptOptimizationJob",
        "bedrock-mantle:CreateReservation",
        "bedrock-mantle:UpdateReservation",
        "bedrock-websearch:InvokeSearch",
        # and what was denied before
        "bedrock:InvokeModel",
        "bedrock:InvokeModelWithResponseStream",
        "bedrock:CallWithBearerToken",
        "bedrock:InvokeAgent",
        "bedrock:InvokeInlineAgent",
        "bedrock:InvokeFlow",
        "bedrock:RetrieveAndGenerate",
        "bedrock:CreateModelInvocationJob",
        "bedrock-mantle:CreateInference",
        "bedrock-mantle:CallWithBearerToken",
    ],
)
def test_the_deny_covers_each_way_to_spend(way_to_spend):
    assert way_to_spend.lower() in all_actions()
    assert denied_by(BEDROCK_DENY_ACTIONS, way_to_spend.lower())


@pytest.mark.parametrize("pattern", BEDROCK_DENY_ACTIONS)
def test_every_denied_entry_names_iam_actions(pattern):
    # An unknown name would deny nothing (cfn-lint's W3037): each entry names, or its wildcard
    # matches, at least one real action.
    service = pattern.split(":")[0]
    assert any(denied_by([pattern], action) for action in service_actions()[service]), pattern


def test_template_deny_policy_lists_exactly_the_builders_actions():
    policy = load_template()["Resources"]["BedrockDenyPolicy"]["Properties"]["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Deny"
    assert statement["Resource"] == "*"
    assert list(statement["Action"]) == list(BEDROCK_DENY_ACTIONS)
    assert len(BEDROCK_DENY_ACTIONS) == len(set(BEDROCK_DENY_ACTIONS))


def sessions_that_fit(name_length: int) -> int:
    """How many sessions with names of `name_length` characters one role's deny policy holds."""
    count = 0
    while document_fits(
        session_deny_document(
            ROLE_ID, SessionDenies(frozenset(f"{i:0{name_length}d}" for i in range(count + 1)))
        )
    ):
        count += 1
    return count


def test_session_policy_capacity_with_the_full_deny():
    # README (Budgets and enforcement) states these figures: sessions per role within IAM's
    # 6,144-character managed-policy limit, by session-name length.
    assert [sessions_that_fit(length) for length in (8, 24, 64)] == [147, 99, 54]
