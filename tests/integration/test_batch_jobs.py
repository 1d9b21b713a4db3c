"""Batch inference jobs metered exactly once, end to end on moto: the real UnloggedSpendFunction
receives the EventBridge events (the job's creation through CloudTrail, its end), reads the job's
outputs from S3 and charges the creator at the batch rate through the calculator's writer.

Expected costs come from unit prices written here by hand (USD per 1M tokens, the bundled table's
batch rows for Claude Sonnet 4.5: half its on-demand rates).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from budgetkeeper.enforcement.runs import WorkflowStarter
from budgetkeeper.storage.keys import line_partition
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import BudgetItem, TotalItem
from devkit.harness.bedrock_events import (
    batch_job_created,
    batch_job_ended,
    batch_manifest,
    write_batch_outputs,
)
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.stack import LocalStack
from tests.integration.cli_runner import OperatorCli
from tests.timeline import now_iso, window_id

ACCOUNT = "123456789012"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
JOB = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/abc123xyz"
SONNET_45 = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
BUCKET, PREFIX = "batch-out", "results"
MILLION = Decimal(1_000_000)
# The batch rates of the model (input, output); it has no batch cache rates: its cache tokens are
# charged at its on-demand cache rates (read, 5-minute write), flagged.
BATCH_IN, BATCH_OUT = Decimal("1.65"), Decimal("8.25")
ON_DEMAND_IN, ON_DEMAND_OUT = Decimal("3.30"), Decimal("16.50")
ON_DEMAND_CACHE_READ, ON_DEMAND_CACHE_WRITE = Decimal("0.33"), Decimal("4.125")
# A model whose batch row has cache rates (GLM 5.3, US profile): input, output, cache read, cache write.
GLM = "us.zai.glm-5.3"
GLM_BATCH = (Decimal("0.924"), Decimal("2.904"), Decimal("0.1716"), Decimal("1.155"))


OUTPUT = f"s3://{BUCKET}/{PREFIX}/"


def created(tags: dict[str, str] | None = None) -> dict[str, Any]:
    return batch_job_created(ALICE, JOB, SONNET_45, OUTPUT, now_iso(), account=ACCOUNT, tags=tags)


def ended(status: str = "Completed") -> dict[str, Any]:
    return batch_job_ended(JOB, status, now_iso(), account=ACCOUNT)


def write_outputs(stack: LocalStack, manifest: dict[str, int] | None, records: list[dict]) -> None:
    write_batch_outputs(stack.client("s3"), OUTPUT, JOB, manifest, records)


def alice_daily() -> Decimal:
    try:
        return TotalItem.get("user:alice|daily", window_id("daily")).spent_usd
    except TotalItem.DoesNotExist:
        return Decimal(0)


def alerts(stack: LocalStack) -> list[dict]:
    from moto.sns.models import sns_backends

    topic = sns_backends[ACCOUNT]["us-east-1"].topics[stack.physical_ids["BudgetEventsTopic"]]
    return [json.loads(message) for _, message, *_ in topic.sent_notifications]


def test_a_completed_job_is_charged_once_to_its_creator_at_the_batch_rate(settings, stack, clock):
    # Given alice creates a job of 100 records: 1M input and 200K output tokens by its manifest, and
    # 50K cache-read tokens in its records' usage
    invoke("UnloggedSpendFunction", created())
    records = [{"input_tokens": 10_000, "output_tokens": 2_000, "cache_read_input_tokens": 500}] * 100
    write_outputs(stack, batch_manifest(1_000_000, 200_000, 100), records)
    # When the job's end is delivered, then delivered again, then the function is retried with it
    outcomes = [invoke("UnloggedSpendFunction", ended()) for _ in range(3)]
    # Then alice is charged once, at the batch rate (its cache reads at the on-demand cache-read
    # rate: the model has no batch cache rate), to the nano-dollar
    expected = (1_000_000 * BATCH_IN + 200_000 * BATCH_OUT + 50_000 * ON_DEMAND_CACHE_READ) / MILLION
    assert expected == Decimal("3.3165")
    assert alice_daily() == expected
    assert [outcome["charged"] for outcome in outcomes] == [True, False, False]
    # And its input and output are half the on-demand price of the same tokens
    assert (expected - 50_000 * ON_DEMAND_CACHE_READ / MILLION) * 2 == (
        1_000_000 * ON_DEMAND_IN + 200_000 * ON_DEMAND_OUT
    ) / MILLION
    # And her rollup shows the batch tier, flagged for the cache tokens priced off the batch tier;
    # her usage line the batch operation
    [rollup] = scope_rollups("user:alice")
    assert (rollup.service_tier, rollup.calls, rollup.cache_read_tokens) == ("batch", 1, 50_000)
    assert rollup.tier_fallback_calls == 1
    [line] = scope_rollups(line_partition(now_iso()[:10]))
    assert (line.operation, line.identity_arn, line.cost_usd) == ("batch", ALICE, expected)


def test_a_job_of_a_model_with_batch_cache_rates_prices_its_cache_tokens_at_them(settings, stack, clock):
    # Given alice's GLM 5.3 job: 400K input and 100K output tokens by its manifest, and in its
    # records 80K cache-read and 20K cache-write tokens
    job = batch_job_created(ALICE, JOB, GLM, OUTPUT, now_iso(), account=ACCOUNT)
    invoke("UnloggedSpendFunction", job)
    usage = {"input_tokens": 4_000, "output_tokens": 1_000}
    records = [{**usage, "cache_read_input_tokens": 800, "cache_creation_input_tokens": 200}] * 100
    write_outputs(stack, batch_manifest(400_000, 100_000, 100), records)
    # When the job ends
    assert invoke("UnloggedSpendFunction", ended())["charged"]
    # Then every token kind is charged at the model's batch rate, to the nano-dollar, unflagged
    batch_in, batch_out, batch_read, batch_write = GLM_BATCH
    expected = (
        400_000 * batch_in + 100_000 * batch_out + 80_000 * batch_read + 20_000 * batch_write
    ) / MILLION
    assert expected == Decimal("0.696828")
    assert alice_daily() == expected
    [rollup] = scope_rollups("user:alice")
    assert (rollup.service_tier, rollup.cache_write_5m_tokens, rollup.tier_fallback_calls) == (
        "batch",
        20_000,
        None,
    )


def test_a_crossing_by_a_job_starts_the_workflow_also_when_the_first_attempt_died(
    settings, stack, clock, monkeypatch
):
    # Given alice's daily budget of 1 USD and a job of hers that costs 3.3 USD
    BudgetItem("user:alice", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
    invoke("UnloggedSpendFunction", created())
    write_outputs(stack, batch_manifest(1_000_000, 200_000, 100), [])
    # When the first attempt dies after its write, as the evaluation starts
    real_publish = WorkflowStarter.publish
    monkeypatch.setattr(
        WorkflowStarter, "publish", lambda self, events: (_ for _ in ()).throw(TimeoutError())
    )
    with pytest.raises(TimeoutError):
        invoke("UnloggedSpendFunction", ended())
    assert not stack.executions()
    # and Lambda retries it
    monkeypatch.setattr(WorkflowStarter, "publish", real_publish)
    invoke("UnloggedSpendFunction", ended())
    # Then the job counts once, and the crossing starts the budget's evaluation
    assert alice_daily() == (1_000_000 * BATCH_IN + 200_000 * BATCH_OUT) / MILLION
    assert len(stack.executions()) == 1
    assert BudgetItem.get("user:alice", "daily").sweep  # marked due for the monitor, as runtime spend


def test_a_stopped_job_is_charged_for_what_its_partial_manifest_counts(settings, stack, clock):
    # Given a job stopped after 40 of its 100 records
    invoke("UnloggedSpendFunction", created())
    write_outputs(stack, batch_manifest(400_000, 80_000, processed=40, total=100), [])
    # When its end (Stopped) arrives
    invoke("UnloggedSpendFunction", ended("Stopped"))
    # Then alice pays for the 40 records processed, at the batch rate
    assert alice_daily() == (400_000 * BATCH_IN + 80_000 * BATCH_OUT) / MILLION


def test_a_job_with_no_creator_record_is_alerted_not_guessed(settings, stack, clock):
    # Given a job whose CreateModelInvocationJob call never arrived
    write_outputs(stack, batch_manifest(1_000_000, 200_000, 100), [])
    # When it ends
    outcome = invoke("UnloggedSpendFunction", ended())
    # Then nothing is charged, and operators are told which job
    assert outcome["not_metered"] == JOB
    assert not list(TotalItem.scan())
    [alert] = alerts(stack)
    assert alert["type"] == "batch_job_unmetered" and "no creator record" in alert["reason"]
    assert json.loads(alert["note"])["job"] == JOB


def test_a_job_whose_manifest_is_missing_is_alerted_with_its_creator(settings, stack, clock):
    invoke("UnloggedSpendFunction", created())
    write_outputs(stack, None, [])
    outcome = invoke("UnloggedSpendFunction", ended())
    assert outcome["not_metered"] == JOB and alice_daily() == 0
    [alert] = alerts(stack)
    assert alert["scope"] == "user:alice" and "cannot be read (NoSuchKey)" in alert["reason"]


def test_a_failed_job_bills_nothing_and_charges_nothing(settings, stack, clock):
    invoke("UnloggedSpendFunction", created())
    assert invoke("UnloggedSpendFunction", ended("Failed")) == {"charged": False}
    assert alice_daily() == 0 and alerts(stack) == []


def test_a_jobs_app_tag_is_a_claim(settings, stack, clock):
    # Given a budget on app ChatbotApp, and alice tags her job app=ChatbotApp (anyone can write any tag)
    BudgetItem("app:ChatbotApp", "daily", limit_usd=Decimal(100)).save()
    invoke("UnloggedSpendFunction", created(tags={"app": "ChatbotApp"}))
    write_outputs(stack, batch_manifest(1_000_000, 0, 10), [])
    invoke("UnloggedSpendFunction", ended())
    # Then the app's total counts it as claimed by alice: a claim reaches only the claimer
    total = TotalItem.get("app:ChatbotApp|daily", window_id("daily"))
    assert total.claimed_usd == total.spent_usd == BATCH_IN and total.claimed_by == {"user:alice"}


def test_reports_show_batch_jobs_as_their_own_operation(settings, stack, clock, capsys):
    # Given a runtime call of alice's and a batch job of hers
    call = converse_message(ALICE, SONNET_45, 1_000, 100, timestamp=now_iso())
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([call])]))
    invoke("UnloggedSpendFunction", created())
    write_outputs(stack, batch_manifest(1_000_000, 0, 10), [])
    invoke("UnloggedSpendFunction", ended())
    # When an operator asks for the day's report by operation
    day = now_iso()[:10]
    out = OperatorCli(stack, capsys).ok(
        "report", "--group-by", "operation", "--since", day, "--until", day, "--format", "json"
    )
    # Then the batch job is a row of its own, at the batch rate
    rows = {row["operation"]: row for row in json.loads(out)}
    assert set(rows) == {"runtime", "batch"}
    assert Decimal(rows["batch"]["cost_usd"]) == BATCH_IN and rows["batch"]["calls"] == 1
