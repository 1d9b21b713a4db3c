"""Prices the table does not have, end to end on moto: a model launched yesterday counts toward its
caller's budget at a conservative, flagged estimate, and is re-priced exactly, once, when the daily
price refresh activates a version that prices it; current Claude rates published only under the
AmazonBedrockService offer code reach the active table.

Expected costs come from unit prices written here by hand (USD per 1M tokens).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.pricing import price_list
from budgetkeeper.pricing.rates import price_invocation
from budgetkeeper.pricing.table import PriceBasis
from budgetkeeper.pricing.versions import active_version, load_version
from budgetkeeper.storage.keys import ESTIMATES_PARTITION
from budgetkeeper.storage.readers import scope_rollups, usage_lines_of_day
from budgetkeeper.storage.tables import BudgetItem, TotalItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.stack import LocalStack
from tests.timeline import now_iso, window_id

ALICE = "arn:aws:iam::123456789012:user/alice"
IMAGINARY = "anthropic.claude-9-imaginary-v1:0"  # launched yesterday: in no table
SONNET_4 = "anthropic.claude-sonnet-4-20250514-v1:0"
MILLION = Decimal(1_000_000)
# The highest Claude in-region rate the bundled table knows, input and output: the estimate.
ESTIMATE_IN, ESTIMATE_OUT = Decimal("27.5"), Decimal("137.5")
# What AWS bills the new model, once the Price List has it.
EXACT_IN, EXACT_OUT = Decimal(3), Decimal(15)


def bedrock_service_entry(sku: str, usage_type: str, inference_type: str, usd: str) -> str:
    """One AmazonBedrockService product, as get_products returns it (the model only in the usage type)."""
    return json.dumps(
        {
            "serviceCode": "AmazonBedrockService",
            "product": {
                "sku": sku,
                "attributes": {
                    "servicecode": "AmazonBedrockService",
                    "regionCode": "us-east-1",
                    "usagetype": usage_type,
                    "inferenceType": inference_type,
                },
            },
            "terms": {
                "OnDemand": {
                    f"{sku}.T": {
                        "priceDimensions": {
                            f"{sku}.T.D": {"unit": "1M tokens", "pricePerUnit": {"USD": usd}}
                        },
                    }
                }
            },
        }
    )


@contextmanager
def the_price_list(monkeypatch: pytest.MonkeyPatch, documents: dict[str, dict]) -> Iterator[None]:
    """The refresh's pricing client, stubbed: DescribeServices lists `documents`' offer codes (and
    services that are not Bedrock's), each answering its products once."""
    pricing = boto3.client("pricing", region_name="us-east-1")
    real = boto3.client
    monkeypatch.setattr(
        boto3, "client", lambda name, **kw: pricing if name == "pricing" else real(name, **kw)
    )
    with Stubber(pricing) as stub:
        listed = [{"ServiceCode": code} for code in ("AmazonEC2", *documents)]
        stub.add_response("describe_services", {"Services": listed}, {"FormatVersion": "aws_v1"})
        for code, document in sorted(documents.items()):
            stub.add_response("get_products", document, {"ServiceCode": code, "FormatVersion": "aws_v1"})
        yield
        stub.assert_no_pending_responses()


def refresh(monkeypatch: pytest.MonkeyPatch, documents: dict[str, dict]) -> dict[str, Any]:
    with the_price_list(monkeypatch, documents):
        return invoke("PriceRefreshFunction", {})


def meter(input_tokens: int, output_tokens: int, model: str = IMAGINARY) -> None:
    call = converse_message(ALICE, model, input_tokens, output_tokens, timestamp=now_iso())
    result = invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([call])]))
    assert {record["result"] for record in result["records"]} == {"Ok"}


def daily_total() -> Decimal:
    return TotalItem.get("user:alice|daily", window_id("daily")).spent_usd


def executions(stack: LocalStack) -> list[dict]:
    return stack.executions()


def test_an_unknown_models_calls_cross_a_budget_at_the_estimate_and_are_corrected_once(
    settings, stack, monkeypatch, clock
):
    # Given alice's daily budget of 1 USD
    BudgetItem("user:alice", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
    # When she calls a model no price table knows: 100K input and 10K output tokens in two calls
    meter(60_000, 6_000)
    meter(40_000, 4_000)
    # Then they count at the estimate, 2.75 + 1.375 = 4.125 USD, over her limit, and a run starts
    estimate = (100_000 * ESTIMATE_IN + 10_000 * ESTIMATE_OUT) / MILLION
    assert estimate == Decimal("4.125") and daily_total() == estimate
    assert executions(stack), "the budget crossing started no evaluation"
    # And her rollup keeps the estimate apart, flagged
    [rollup] = scope_rollups("user:alice")
    assert (rollup.estimated_calls, rollup.estimated_cost_usd, rollup.cost_usd) == (2, estimate, estimate)

    # When the daily refresh activates a version that prices the model (the curated map has learnt
    # its usage-type name) at 3 / 15
    known = {**price_list.model_ids_by_usage_type_part(), "Claude9Imaginary": IMAGINARY}
    monkeypatch.setattr(price_list, "model_ids_by_usage_type_part", lambda: known)
    service = {
        "PriceList": [
            bedrock_service_entry("I", "USE1-Claude9Imaginary-input-tokens", "Input tokens", str(EXACT_IN)),
            bedrock_service_entry(
                "O", "USE1-Claude9Imaginary-output-tokens", "Output tokens", str(EXACT_OUT)
            ),
        ]
    }
    outcome = refresh(monkeypatch, {"AmazonBedrockService": service})
    # Then the version is active and the estimate is corrected to the exact 0.30 + 0.15 = 0.45 USD:
    # in her window total, her rollup (no longer estimated) and her usage line, with no ledger left
    exact = (100_000 * EXACT_IN + 10_000 * EXACT_OUT) / MILLION
    assert outcome["activated"] and active_version() == outcome["version"]
    assert outcome["repriced"]["corrected"] == {IMAGINARY: 1}
    assert daily_total() == exact == Decimal("0.45")
    [rollup] = scope_rollups("user:alice")
    assert (rollup.calls, rollup.cost_usd, rollup.estimated_calls, rollup.estimated_cost_usd) == (
        2,
        exact,
        0,
        0,
    )
    lines = usage_lines_of_day(now_iso()[:10])
    assert [(line.calls, line.cost_usd, line.estimated_calls) for line in lines] == [(2, exact, 0)]
    assert list(scope_rollups(ESTIMATES_PARTITION)) == []
    # And another refresh, a minute later, corrects nothing twice
    clock.advance(timedelta(minutes=1))
    again = refresh(monkeypatch, {"AmazonBedrockService": service})
    assert again["repriced"]["corrected"] == {} and daily_total() == exact


def test_the_operators_rate_prices_an_unknown_model(settings, stack):
    # Given the operators' rate for unknown models, 2 / 8 USD per 1M, in SSM
    stack.client("ssm").put_parameter(
        Name=f"/budgetkeeper/{stack.environment_name}/prices/unknown_model_usd_per_million",
        Value="2/8",
        Type="String",
    )
    # When alice calls a model no table knows
    meter(100_000, 10_000)
    # Then it counts at that rate, kept apart as estimated
    expected = (100_000 * Decimal(2) + 10_000 * Decimal(8)) / MILLION
    [rollup] = scope_rollups("user:alice")
    assert (rollup.cost_usd, rollup.estimated_cost_usd, rollup.estimated_calls) == (expected, expected, 1)


def test_a_refresh_whose_claude_rows_come_only_from_amazon_bedrock_service_activates_with_them(
    settings, stack, monkeypatch
):
    # Given Claude Sonnet 4 metered yesterday... in the last 30 days (the refresh must keep pricing it)
    meter(1_000, 100, model=SONNET_4)
    # And a Price List whose only Claude rows are AmazonBedrockService's (AmazonBedrock and
    # AmazonBedrockFoundationModels carry none of them): Sonnet 4 at 3 / 15 and its batch meter at half
    service = {
        "PriceList": [
            bedrock_service_entry("I", "USE1-Claude4Sonnet-input-tokens", "Input tokens", "3"),
            bedrock_service_entry("O", "USE1-Claude4Sonnet-output-tokens", "Output tokens", "15"),
            bedrock_service_entry("BI", "USE1-Claude4Sonnet-batch-input-tokens", "Input tokens", "1.5"),
            bedrock_service_entry("BO", "USE1-Claude4Sonnet-batch-output-tokens", "Output tokens", "7.5"),
        ]
    }
    empty: dict = {"PriceList": []}
    # When the refresh runs
    outcome = refresh(
        monkeypatch,
        {"AmazonBedrock": empty, "AmazonBedrockFoundationModels": empty, "AmazonBedrockService": service},
    )
    # Then the version is activated, and prices Sonnet 4 from those rows: the standard meter, exact
    assert outcome["activated"] and active_version() == outcome["version"]
    priced = price_invocation(
        load_version(outcome["version"]),
        SONNET_4,
        "us-east-1",
        TokenCounts(input=1_000_000, output=1_000_000),
    )
    assert (priced.cost_usd, priced.basis) == (Decimal(18), PriceBasis.EXACT)
    assert priced.row is not None and "AmazonBedrockService" in priced.row.source
