"""Who spent a bedrock-mantle project's spend: CloudTrail data events counted per caller, the
project's metered spend split among them, labelled an estimate and never charged to anyone.

bedrock-mantle logs CreateInference as a CloudTrail data event, which LookupEvents (the Event
history) never returns: the calls arrive as EventBridge events (devkit.harness.bedrock_events,
shaped as AWS's bedrock-mantle CloudTrail page shows them) and the UnloggedSpendFunction counts them.
The project's metrics come from botocore's Stubber (test_mantle_projects.mantle_metrics).
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from budgetkeeper.core import clock as product_clock
from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.metering import mantle_callers
from budgetkeeper.metering.mantle import settled_periods
from budgetkeeper.metering.mantle_callers import BadMantleEvent, MantleCall, caller_estimate, project_callers
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import BudgetItem, TotalItem
from devkit.harness.bedrock_events import mantle_inference
from devkit.harness.lambdas import invoke
from tests.integration.cli_runner import OperatorCli
from tests.integration.test_mantle_projects import ACCOUNT, GPT_OSS, cost, mantle_metrics, sweep
from tests.timeline import now_iso

ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB = f"arn:aws:iam::{ACCOUNT}:user/bob"


def the_hour() -> str:
    return settled_periods(product_clock.now())[-1].strftime("%Y-%m-%dT%H")


def call(caller: str, project: str = "proj_a", error: str | None = None) -> dict:
    period = settled_periods(product_clock.now())[-1]
    at = (period + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return invoke(
        "UnloggedSpendFunction",
        mantle_inference(caller, project, GPT_OSS, at, account=ACCOUNT, error_code=error),
    )


@pytest.fixture
def metered_project(settings, stack, clock, monkeypatch):
    """proj_a charged 3M input and 600K output tokens of gpt-oss in the latest settled period."""
    with mantle_metrics(monkeypatch, {("proj_a", GPT_OSS): (3_000_000, 600_000)}):
        assert sweep()["charged"] == 1
    return cost(3_000_000, 600_000)


def test_a_projects_metered_spend_is_split_among_its_callers_as_an_estimate(metered_project, workflow, stack):
    # Given bob's daily budget of one cent, far below his share of the project
    BudgetItem("user:bob", "daily", limit_usd=Decimal("0.01"), grace_seconds=0).save()
    # When CloudTrail delivers alice's two calls, bob's one, and bob's refused call
    assert [call(ALICE)["counted"], call(ALICE)["counted"], call(BOB)["counted"]] == ["proj_a"] * 3
    assert "error" in call(BOB, error="AccessDenied")
    # Then the project's metered spend is split 2 to 1, each share labelled an estimate
    found = project_callers("proj_a", the_hour(), the_hour())
    assert [(s.caller, s.calls, s.tokens.input, s.tokens.output) for s in found.shares] == [
        ("user:alice", 2, 2_000_000, 400_000),
        ("user:bob", 1, 1_000_000, 200_000),
    ]
    assert all(share.estimate for share in found.shares) and found.estimate
    # And the shares add up to what the project was charged, to the nano-dollar
    assert found.cost_usd == metered_project == sum(i.cost_usd for i in scope_rollups("project:proj_a"))
    assert found.shares[1].cost_usd == cost(1_000_000, 200_000)
    # And nothing of it is charged to the callers: no rollup, no window total, no run, no deny
    assert list(scope_rollups("user:bob")) == [] and list(scope_rollups("user:alice")) == []
    assert list(TotalItem.query("user:bob|daily")) == []
    assert BudgetItem.get("user:bob", "daily").status == "ok"
    assert stack.executions() == []


def test_an_hour_with_no_call_counted_says_its_callers_are_unknown(metered_project):
    # Given no trail delivering bedrock-mantle data events (no call counted)
    found = project_callers("proj_a", the_hour(), the_hour())
    # Then the whole spend is one share with no caller, still an estimate
    [share] = found.shares
    assert (share.caller, share.calls, share.cost_usd, share.estimate) == (None, 0, metered_project, True)


def test_the_counts_read_are_bounded_and_a_cut_split_says_so(metered_project, monkeypatch):
    # Given three callers counted, and a bound of two counts per question
    for caller in (ALICE, BOB, f"arn:aws:iam::{ACCOUNT}:user/carol"):
        call(caller)
    monkeypatch.setattr(mantle_callers, "MAX_COUNTS_READ", 2)
    found = project_callers("proj_a", the_hour(), the_hour())
    # Then two counts were read, and the estimate says it is partial
    assert found.counts_truncated
    assert [share.caller for share in found.shares] == ["user:alice", "user:bob"]
    assert found.cost_usd == metered_project
    # And with the whole bound nothing is cut
    monkeypatch.setattr(mantle_callers, "MAX_COUNTS_READ", 20_000)
    assert not project_callers("proj_a", the_hour(), the_hour()).counts_truncated


def test_estimate_project_shows_the_split_labelled_an_estimate(metered_project, stack, capsys):
    call(ALICE)
    call(BOB)
    cli = OperatorCli(stack, capsys)
    day = product_clock.now().date().isoformat()
    # When an operator asks who spent the project's spend, as a table and as JSON
    table = cli.ok("estimate", "--project", "proj_a", "--since", day, "--until", day)
    document = json.loads(
        cli.ok("estimate", "--project", "proj_a", "--since", day, "--until", day, "--format", "json")
    )
    # Then both say estimate, never used to deny, and split the metered total
    assert table.startswith("ESTIMATE of who spent project:proj_a") and "never used to deny" in table
    assert "project total (metered)" in table and "estimate: the project's metered tokens" in table
    assert document["estimate"] is True and document["project"] == "proj_a"
    assert Decimal(document["total_usd"]) == metered_project
    assert [(row["principal"], row["estimate"]) for row in document["rows"]] == [
        ("user:alice", True),
        ("user:bob", True),
    ]
    # And a project id that is no project is refused with what to type
    assert "project" in cli.fails(2, "estimate", "--project", "a b", "--since", day, "--until", day)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda d: d.pop("resources"), "without project"),
        (lambda d: d["requestParameters"].pop("model"), "without model"),
        (lambda d: d.update(eventName="GetInference"), "not a bedrock-mantle CreateInference"),
        (lambda d: d.update(errorCode="ThrottlingException"), "nothing was spent"),
    ],
)
def test_an_event_that_is_no_call_on_a_project_is_refused_with_its_reason(change, reason):
    event = mantle_inference(ALICE, "proj_a", GPT_OSS, now_iso(), account=ACCOUNT)
    change(event["detail"])
    with pytest.raises(BadMantleEvent, match=reason):
        MantleCall.from_cloudtrail(event)


def test_a_split_adds_up_to_the_project_in_whole_tokens_and_exact_dollars():
    # Given 1,000,001 input tokens costing 0.15000015 USD, and callers' calls 2 to 1
    shares = caller_estimate(
        "proj_a",
        GPT_OSS,
        "us-east-1",
        TokenCounts(input=1_000_001),
        cost(1_000_001, 0),
        {"user:alice": 2, "user:bob": 1},
    )
    # Then the tokens split by largest remainder and the cost in proportion, adding up exactly
    assert [(s.caller, s.tokens.input) for s in shares] == [("user:alice", 666_667), ("user:bob", 333_334)]
    assert sum(s.cost_usd for s in shares) == cost(1_000_001, 0)
    assert shares[0].cost_usd == cost(1_000_001, 0) * 2 / 3 and all(s.estimate for s in shares)


def test_doctor_warns_while_a_metered_project_has_no_caller_counted(metered_project, stack, capsys):
    cli = OperatorCli(stack, capsys)

    def mantle_row() -> dict:
        _, out, _ = cli("doctor", "--format", "json")
        [row] = [row for row in json.loads(out) if row["check"] == "mantle callers"]
        return row

    # Given proj_a metered and no trail delivering its calls: doctor warns, with what to do
    row = mantle_row()
    assert (
        row["result"] == "warn"
        and "1 of 1 bedrock-mantle project(s)" in row["detail"]
        and "(proj_a)" in row["detail"]
    )
    assert "AWS::BedrockMantle::Project" in row["fix"]
    # When a call of it is counted, doctor is content
    call(ALICE)
    assert mantle_row()["result"] == "ok"
