"""The usage calculator handler on moto: Firehose batches in, exact totals in DynamoDB out.

Expected costs are computed here from unit prices written by hand (AWS's published on-demand
prices, USD per 1M tokens), never by the pricing module.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
from decimal import Decimal

import pytest

from budgetkeeper.metering import calculator
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import BudgetItem, TeamItem, TotalItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import (
    cloudwatch_payload,
    control_payload,
    converse_message,
    firehose_event,
)
from tests.integration.crashes import dying_at_transaction
from tests.timeline import now_iso, window_id

ACCOUNT = "111122223333"
MILLION = Decimal(1_000_000)
# USD per 1M tokens: input, output, cache read, cache write (5 minutes)
UNIT_PRICES = {
    "amazon.nova-lite-v1:0": (Decimal("0.06"), Decimal("0.24"), Decimal("0.015"), None),
    "anthropic.claude-3-haiku-20240307-v1:0": (Decimal("0.25"), Decimal("1.25"), None, None),
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0": (
        Decimal("3.30"),
        Decimal("16.50"),
        Decimal("0.33"),
        Decimal("4.125"),
    ),
}


def expected_cost(model: str, input_tokens: int, output_tokens: int, cache_read=0, cache_write=0) -> Decimal:
    price_in, price_out, price_read, price_write = UNIT_PRICES[model]
    cost = input_tokens * price_in + output_tokens * price_out
    cost += cache_read * (price_read or 0) + cache_write * (price_write or 0)
    return cost / MILLION


def message(arn: str, model: str, input_tokens: int, output_tokens: int, **details) -> str:
    return converse_message(
        arn, model, input_tokens, output_tokens, account=ACCOUNT, timestamp=now_iso(), **details
    )


ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
BOB_SSO = f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b/bob@example.com"
CHATBOT = f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/chat-fn"
NOVA, HAIKU3, SONNET45 = UNIT_PRICES


def three_payloads() -> tuple[list[bytes], dict[str, Decimal]]:
    """Payloads of several principals and models, and the spend each scope should end with."""
    calls = [
        (ALICE, SONNET45, 1200, 800, 50_000, 2_000),
        (ALICE, NOVA, 3000, 1000, 0, 0),
        (BOB_SSO, HAIKU3, 900, 300, 0, 0),
        (CHATBOT, NOVA, 500, 250, 0, 0),
        (CHATBOT, SONNET45, 4000, 1500, 0, 0),
    ]
    payloads = [
        cloudwatch_payload(
            [message(a, m, i, o, cache_read=r, cache_write=w) for a, m, i, o, r, w in calls[:2]]
        ),
        cloudwatch_payload(
            [message(a, m, i, o, cache_read=r, cache_write=w) for a, m, i, o, r, w in calls[2:3]]
        ),
        cloudwatch_payload(
            [message(a, m, i, o, cache_read=r, cache_write=w) for a, m, i, o, r, w in calls[3:]]
        ),
    ]
    costs = [expected_cost(m, i, o, r, w) for _, m, i, o, r, w in calls]
    expected = {
        "user:alice": costs[0] + costs[1],
        "session:AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b/bob@example.com": costs[2],
        "role:AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b": costs[2],
        "app:ChatbotApp": costs[3] + costs[4],
        f"account:{ACCOUNT}": sum(costs, Decimal(0)),
    }
    return payloads, expected


def run(records: list[bytes], invocation_id: str | None = None) -> dict:
    return invoke("UsageCalculatorFunction", firehose_event(records, invocation_id=invocation_id))


def rollup_cost(scope: str) -> Decimal:
    return sum((item.cost_usd for item in scope_rollups(scope)), Decimal(0))


def daily_total(scope: str) -> Decimal:
    return TotalItem.get(f"{scope}|daily", window_id("daily")).spent_usd


def assert_spend(expected: dict[str, Decimal]) -> None:
    for scope, cost in expected.items():
        assert rollup_cost(scope) == cost, scope
    for scope in ("user:alice", "session:AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b/bob@example.com"):
        assert daily_total(scope) == expected[scope], scope


def test_totals_equal_an_independent_sum_of_hand_priced_calls(settings):
    payloads, expected = three_payloads()
    response = run(payloads)
    assert [record["result"] for record in response["records"]] == ["Ok", "Ok", "Ok"]
    assert_spend(expected)


def test_the_same_batch_delivered_again_changes_no_total(settings):
    payloads, expected = three_payloads()
    event = firehose_event(payloads)
    invoke("UsageCalculatorFunction", event)
    invoke("UsageCalculatorFunction", event)  # same recordIds, same invocation
    assert_spend(expected)


def test_the_same_payload_in_another_batch_changes_no_total(settings):
    payloads, expected = three_payloads()
    run(payloads, invocation_id="first-invocation")
    again = run([payloads[1]], invocation_id="second-invocation")
    assert again["records"][0]["result"] == "Ok"  # archived again, metered once
    assert_spend(expected)


def test_the_same_batch_split_differently_changes_no_total(settings):
    payloads, expected = three_payloads()
    run(payloads[:2])
    run(payloads[1:])
    run([payloads[2], payloads[0]])
    assert_spend(expected)


def test_a_crash_between_two_writes_then_a_retry_counts_everything_once(settings, monkeypatch):
    # Given one payload charged to 120 users: far more items than one transaction holds
    users = [f"arn:aws:iam::{ACCOUNT}:user/u{n:03d}" for n in range(120)]
    payload = cloudwatch_payload([message(arn, NOVA, 1000, 100) for arn in users])
    event = firehose_event([payload])
    # When the function dies after the claim and one chunk of counters
    timeout = TimeoutError("Task timed out after 180.00 seconds")
    with dying_at_transaction(monkeypatch, 3, timeout), pytest.raises(TimeoutError):
        invoke("UsageCalculatorFunction", event)
    # and Firehose retries the batch
    invoke("UsageCalculatorFunction", event)
    # Then every user, and the account, is charged once
    one_call = expected_cost(NOVA, 1000, 100)
    assert all(rollup_cost(f"user:u{n:03d}") == one_call for n in range(120))
    assert rollup_cost(f"account:{ACCOUNT}") == one_call * 120


def test_a_first_seen_principal_gets_the_default_budgets(settings):
    run([cloudwatch_payload([message(f"arn:aws:iam::{ACCOUNT}:user/newcomer", NOVA, 100, 10)])])
    budgets = {item.window: item for item in BudgetItem.query("user:newcomer")}
    assert set(budgets) == {"daily", "monthly"}
    assert all(item.origin == "default" and item.limit_usd is None for item in budgets.values())
    assert TotalItem.get("user:newcomer|monthly", window_id("monthly")).spent_usd == expected_cost(
        NOVA, 100, 10
    )
    # Apps and accounts are charged but get no default budget
    assert list(BudgetItem.query(f"account:{ACCOUNT}")) == []


def test_bad_input_is_kept_and_counted_and_never_sinks_its_neighbours(settings, stack, capsys):
    good = message(ALICE, NOVA, 1000, 100)
    truncated = good[: len(good) // 2]
    payload = cloudwatch_payload([good, truncated, '{"schemaType": "ModelInvocationLog"}'])
    undecodable = b"\x1f\x8b\x08\x00this is not gzip at all"
    response = run([payload, control_payload(), undecodable])
    results = [record["result"] for record in response["records"]]
    # Then the good event is metered, the control message dropped, the garbage failed unchanged
    assert results == ["Ok", "Dropped", "ProcessingFailed"]
    assert base64.b64decode(response["records"][2]["data"]) == undecodable
    assert rollup_cost("user:alice") == expected_cost(NOVA, 1000, 100)
    # and the two bad events are in the quarantine, verbatim, with their reasons
    s3 = stack.client("s3")
    bucket = settings.archive_bucket
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/")["Contents"]]
    lines = [
        json.loads(line)
        for key in keys
        for line in s3.get_object(Bucket=bucket, Key=key)["Body"].iter_lines()
    ]
    assert [line["message"] for line in lines] == [truncated, '{"schemaType": "ModelInvocationLog"}']
    assert all(line["reason"] for line in lines)
    metrics_line = next(
        json.loads(line) for line in capsys.readouterr().out.splitlines() if '"RecordsMetered"' in line
    )
    assert metrics_line["BadEvents"] == [2.0] and metrics_line["FailedRecords"] == [1.0]


def test_an_unknown_model_is_estimated_kept_apart_and_alerted_once(settings, caplog):
    # Given two batches calling a model no table prices
    imaginary = "anthropic.claude-9-imaginary-v1:0"
    run([cloudwatch_payload([message(ALICE, imaginary, 1000, 1000)])])
    run([cloudwatch_payload([message(ALICE, imaginary, 1000, 1000)])])
    # Then both are charged at the same estimate (at least Claude Opus 4's 15 / 75), kept apart as estimated
    [rollup] = list(scope_rollups("user:alice"))
    assert (rollup.model, rollup.calls, rollup.unpriced_calls, rollup.estimated_calls) == (imaginary, 2, 0, 2)
    assert rollup.cost_usd == rollup.estimated_cost_usd >= 2 * (1000 * 15 + 1000 * 75) / MILLION
    # And operators are told once, by the first batch
    alerts = [
        record for record in caplog.records if record.getMessage().startswith("new model without a price")
    ]
    assert [alert.model for alert in alerts] == [imaginary]


def test_teams_are_charged_from_the_team_table(settings):
    TeamItem("user:alice", team="data").save()
    payloads, expected = three_payloads()
    run(payloads)
    assert rollup_cost("team:data") == expected["user:alice"]


def test_the_archive_gets_enriched_lines_without_bodies(settings):
    secret = "the launch code is 0000"
    response = run([cloudwatch_payload([message(ALICE, NOVA, 10, 5, prompt=secret)])])
    lines = gzip.decompress(base64.b64decode(response["records"][0]["data"])).decode().splitlines()
    archived = json.loads(lines[0])
    assert archived["principal"] == "user:alice" and Decimal(archived["cost_usd"]) == expected_cost(
        NOVA, 10, 5
    )
    assert secret not in lines[0]


def random_words(rng: random.Random, count: int) -> str:
    vocabulary = ["revenue", "forecast", "region", "customer", "latency", "model", "quarter", "growth"]
    return " ".join(rng.choice(vocabulary) for _ in range(count))


def test_a_highly_compressible_3_mb_batch_is_metered_within_the_response_limit(settings):
    # Given ~3 MB of compressed payloads whose log text expands many times over
    rng = random.Random(3)
    payloads, calls, size = [], 0, 0
    while size < 3 * 1024 * 1024:
        body = random_words(rng, 900)
        batch = [message(ALICE, NOVA, 2000, 300, prompt=body) for _ in range(200)]
        payloads.append(cloudwatch_payload(batch))
        calls += len(batch)
        size += len(payloads[-1])
    # When metered
    response = run(payloads)
    # Then every record is Ok, the response is far below 6 MB, and every call is counted once
    assert {record["result"] for record in response["records"]} == {"Ok"}
    assert len(json.dumps(response)) < 6 * 1024 * 1024
    assert sum(item.calls for item in scope_rollups("user:alice")) == calls
    assert rollup_cost("user:alice") == expected_cost(NOVA, 2000, 300) * calls


def test_output_that_would_exceed_6_mb_uncompressed_stays_under_the_limit(settings):
    # Given 16,000 small calls: their enriched lines alone are over 6 MB of JSON
    payloads = [
        cloudwatch_payload(
            [message(f"arn:aws:iam::{ACCOUNT}:user/u{n % 20}", NOVA, 10, 5) for n in range(800)]
        )
        for _ in range(20)
    ]
    response = run(payloads)
    lines = [
        line
        for record in response["records"]
        for line in gzip.decompress(base64.b64decode(record["data"])).splitlines()
    ]
    assert sum(len(line) + 1 for line in lines) > 6 * 1024 * 1024
    assert len(json.dumps(response)) < 6 * 1024 * 1024
    assert len(lines) == 16_000


def test_records_that_do_not_fit_the_response_spill_to_s3_and_leave_a_pointer(settings, stack, monkeypatch):
    monkeypatch.setattr(calculator, "RESPONSE_BUDGET_BYTES", 2_000)
    payloads = [cloudwatch_payload([message(ALICE, NOVA, 10, 5) for _ in range(40)]) for _ in range(3)]
    response = run(payloads)
    pointers = [
        json.loads(gzip.decompress(base64.b64decode(record["data"])))
        for record in response["records"]
        if b"overflow" in gzip.decompress(base64.b64decode(record["data"]))
    ]
    assert pointers, "at least one record must have spilled"
    s3 = stack.client("s3")
    for pointer in pointers:
        bucket, key = pointer["overflow"].removeprefix("s3://").split("/", 1)
        spilled = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).splitlines()
        assert len(spilled) == pointer["lines"] == 40


# --- service tiers: USD per 1M tokens of Nova Pro (input, output), LiteLLM's priority and flex fields,
# 1.75x and 0.5x the standard 0.80 / 3.20 as AWS publishes tiers (more_facts.md)
NOVA_PRO = "amazon.nova-pro-v1:0"
NOVA_PRO_TIERS = {
    "standard": (Decimal("0.80"), Decimal("3.20")),
    "priority": (Decimal("1.40"), Decimal("5.60")),
    "flex": (Decimal("0.40"), Decimal("1.60")),
}


def invoke_model_message(model: str, input_tokens: int, output_tokens: int, service_tier: str) -> str:
    """An InvokeModel record whose body names the tier as the Bedrock user guide does (`service_tier`)."""
    record = json.loads(message(ALICE, model, input_tokens, output_tokens))
    record["operation"] = "InvokeModel"
    record["input"]["inputBodyJson"] = {
        "messages": [{"role": "user", "content": [{"text": "Summarise the report."}]}],
        "service_tier": service_tier,
    }
    record["output"]["outputBodyJson"] = {
        "output": {"message": {"role": "assistant", "content": [{"text": "ok"}]}}
    }
    return json.dumps(record)


def test_a_priority_and_a_flex_call_are_priced_at_their_tiers_rates_and_kept_apart(settings):
    # Given Nova Pro called by alice at the priority tier (Converse), the flex tier (InvokeModel) and
    # without a tier, and Claude 3 Haiku, which has no priority price, at the priority tier
    calls = [
        message(ALICE, NOVA_PRO, 10_000, 2_000, service_tier="priority"),
        invoke_model_message(NOVA_PRO, 10_000, 2_000, service_tier="flex"),
        message(ALICE, NOVA_PRO, 10_000, 2_000),
        message(ALICE, HAIKU3, 10_000, 2_000, service_tier="priority"),
    ]
    # When the usage calculator meters them
    response = run([cloudwatch_payload(calls)])
    # Then each Nova Pro call costs its tier's rates, and the rollups keep the tiers apart
    rollups = {(r.model, r.service_tier): r for r in scope_rollups("user:alice")}
    for tier, (price_in, price_out) in NOVA_PRO_TIERS.items():
        assert rollups[NOVA_PRO, tier].cost_usd == (10_000 * price_in + 2_000 * price_out) / MILLION, tier
    # And the Haiku call is charged at its standard 0.25 / 1.25, never 0, and flagged as a tier fallback
    haiku = rollups[HAIKU3, "priority"]
    haiku_cost = (10_000 * Decimal("0.25") + 2_000 * Decimal("1.25")) / MILLION
    assert (haiku.calls, haiku.unpriced_calls, haiku.tier_fallback_calls, haiku.cost_usd) == (
        1,
        0,
        1,
        haiku_cost,
    )
    # And the daily total is the sum of the four calls
    assert daily_total("user:alice") == haiku_cost + sum(
        (10_000 * price_in + 2_000 * price_out) / MILLION for price_in, price_out in NOVA_PRO_TIERS.values()
    )
    # And every enriched record names its tier and the price version
    lines = gzip.decompress(base64.b64decode(response["records"][0]["data"])).decode().splitlines()
    archived = [json.loads(line) for line in lines]
    assert [(a["service_tier"], a["price_status"], a["price_basis"]) for a in archived] == [
        ("priority", "priced", "exact"),
        ("flex", "priced", "exact"),
        ("standard", "priced", "exact"),
        ("priority", "priced", "tier_fallback"),
    ]
    assert {a["price_version"] for a in archived} == {PriceTable.bundled().version}
