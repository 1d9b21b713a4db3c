"""The Price List normaliser, fed through botocore's Stubber with responses kept in price_list/ beside it.

Expected unit prices (USD per 1M tokens) are written here by hand from the files' figures and units.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from budgetkeeper.domain.usage import ServiceTier, TokenCounts
from budgetkeeper.pricing.price_list import (
    EndpointKind,
    fetch_price_list,
    normalise,
    price_rows,
    service_codes,
)
from budgetkeeper.pricing.rates import PriceStatus, price_invocation
from budgetkeeper.pricing.table import PriceTable

RESPONSES = Path(__file__).parent / "price_list"
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"
SONNET_4 = "anthropic.claude-sonnet-4-20250514-v1:0"
OPUS_46 = "anthropic.claude-opus-4-6-v1"


def response(name: str) -> dict:
    return json.loads((RESPONSES / f"{name}.json").read_text())


OFFER_CODES = {
    "AmazonBedrock": "amazon_bedrock",
    "AmazonBedrockFoundationModels": "foundation_models",
    "AmazonBedrockService": "bedrock_service",
}


def described_services(*codes: str) -> dict:
    """A DescribeServices page: Bedrock's offer codes among others."""
    return {"Services": [{"ServiceCode": code} for code in codes], "FormatVersion": "aws_v1"}


@pytest.fixture
def price_list(aws_env: None) -> list[str]:
    """Every PriceList entry of the discovered offer codes, read as the refresh reads them."""
    client = boto3.client("pricing", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "describe_services",
            described_services("AmazonEC2", *OFFER_CODES, "AmazonBedrockAgentCore"),
            {"FormatVersion": "aws_v1"},
        )
        codes = service_codes(client)
        for service_code in codes:
            stub.add_response(
                "get_products",
                response(OFFER_CODES[service_code]),
                {"ServiceCode": service_code, "FormatVersion": "aws_v1"},
            )
        entries = list(fetch_price_list(client, codes))
        stub.assert_no_pending_responses()
    return entries


def test_the_offer_codes_are_discovered_not_a_fixed_list(aws_env: None) -> None:
    # Given DescribeServices listing Bedrock's three token codes, AgentCore's and others
    client = boto3.client("pricing", region_name="us-east-1")
    with Stubber(client) as stub:
        stub.add_response(
            "describe_services",
            described_services(
                "AmazonEC2", "AmazonBedrockService", "AmazonBedrockAgentCore", "AmazonBedrock"
            ),
            {"FormatVersion": "aws_v1"},
        )
        # When the refresh asks which codes to read
        codes = service_codes(client)
    # Then every Bedrock code is read, AgentCore (compute, not tokens) and other services are not
    assert codes == ["AmazonBedrock", "AmazonBedrockService"]


def test_bedrock_service_rows_are_read_by_usage_type(price_list: list[str]) -> None:
    # Given the AmazonBedrockService rows (the model named only in the usage type)
    normalised = normalise(price_list)
    table = PriceTable(price_rows(normalised.prices), version="pricelist-test")

    def cost(model_id: str) -> Decimal:
        return price_invocation(
            table, model_id, "us-east-1", TokenCounts(input=1_000_000, output=1_000_000)
        ).cost_usd

    # Then Sonnet 4 costs its standard 3 / 15, never the batch meter's 1.50 / 7.50 that shares its
    # inferenceType, and its global profile the same (facts: older models keep one price)
    assert cost(SONNET_4) == Decimal("18")
    assert cost("global." + SONNET_4) == Decimal("18")
    # And Opus 4.6 costs the regional 5.50 / 27.50 in-region and 5 / 25 globally
    assert cost(OPUS_46) == Decimal("33")
    assert cost("global." + OPUS_46) == Decimal("30")
    # And the usage type the map lacks is reported, not guessed
    assert normalised.unmapped["Claude9Mythos"] == 1


def test_two_usage_types_pricing_one_rate_differently_give_no_row() -> None:
    # Given two products of one model, Region and token kind whose usage types differ, at two prices
    # (as a batch meter would, were its usage type silent about batch)
    def product(sku: str, usage_type: str, usd: str) -> dict:
        return {
            "serviceCode": "AmazonBedrockService",
            "product": {
                "sku": sku,
                "attributes": {
                    "regionCode": "us-east-1",
                    "usagetype": usage_type,
                    "inferenceType": "Input tokens",
                },
            },
            "terms": {
                "OnDemand": {
                    "t": {"priceDimensions": {"d": {"unit": "1M tokens", "pricePerUnit": {"USD": usd}}}}
                }
            },
        }

    output = product("O", "USE1-Claude4Sonnet-output-tokens", "15")
    output["product"]["attributes"]["inferenceType"] = "Output tokens"
    entries = [
        product("A", "USE1-Claude4Sonnet-input-tokens", "3"),
        product("B", "USE1-Claude4Sonnet-input-tokens-50", "1.5"),
        output,
    ]
    # When they are grouped into rows
    normalised = normalise(entries)
    rows = price_rows(normalised.prices, normalised.skipped)
    # Then no row takes either price: the usage types disagree, and the skip says so
    assert rows == []
    assert any("two usage types" in reason for reason in normalised.skipped)


def test_prices_per_1k_and_per_1m_tokens_come_out_per_1m(price_list: list[str]) -> None:
    prices = {
        (p.model, p.endpoint, p.token_kind, p.tier): p.usd_per_million for p in normalise(price_list).prices
    }
    # AmazonBedrock: 0.0008 per 1K tokens is 0.80 per 1M
    assert prices[NOVA_PRO, EndpointKind.IN_REGION, "input", ServiceTier.STANDARD] == Decimal("0.80")
    assert prices[NOVA_PRO, EndpointKind.IN_REGION, "cache_read", ServiceTier.STANDARD] == Decimal("0.20")
    # AmazonBedrockFoundationModels: 3.30 per 1M tokens stays 3.30
    assert prices[SONNET_45, EndpointKind.IN_REGION, "input", ServiceTier.STANDARD] == Decimal("3.30")
    assert prices[SONNET_45, EndpointKind.IN_REGION, "cache_write_5m", ServiceTier.STANDARD] == Decimal(
        "4.125"
    )


def test_in_region_geographic_and_global_usage_types_of_one_model_stay_apart(price_list: list[str]) -> None:
    sonnet_input = {
        p.endpoint: p.usd_per_million
        for p in normalise(price_list).prices
        if p.model == SONNET_45 and p.token_kind == "input"
    }
    assert sonnet_input == {
        EndpointKind.IN_REGION: Decimal("3.30"),
        EndpointKind.GEOGRAPHIC: Decimal("3.30"),
        EndpointKind.GLOBAL: Decimal("3.00"),
    }


def test_tiered_products_are_read_at_their_tier(price_list: list[str]) -> None:
    nova_input = {
        p.tier: p.usd_per_million
        for p in normalise(price_list).prices
        if p.model == NOVA_PRO and p.token_kind == "input"
    }
    assert nova_input == {
        ServiceTier.STANDARD: Decimal("0.80"),
        ServiceTier.PRIORITY: Decimal("1.40"),
        ServiceTier.FLEX: Decimal("0.40"),
        ServiceTier.BATCH: Decimal("0.40"),
    }


def test_an_unmappable_product_is_reported_never_guessed(price_list: list[str]) -> None:
    normalised = normalise(price_list)
    assert normalised.unmapped == {"DeepSeek-R1": 1, "Claude9Mythos": 1}
    assert not any("deepseek" in p.model for p in normalised.prices)
    # and nothing else is skipped: the batch prices are read at the batch tier (next test)
    assert normalised.skipped == {}


def test_batch_meters_are_read_at_the_batch_tier(price_list: list[str]) -> None:
    # Given the batch meters (Nova Pro's feature "Batch Inference"; Sonnet 4's usage type naming
    # batch while its inferenceType says "Input tokens", as the standard meter's does)
    normalised = normalise(price_list)
    batch = {
        (p.model, p.token_kind): p.usd_per_million for p in normalised.prices if p.tier is ServiceTier.BATCH
    }
    # Then they are batch prices, never standard ones
    assert batch == {
        (NOVA_PRO, "input"): Decimal("0.4"),
        (SONNET_4, "input"): Decimal("1.5"),
        (SONNET_4, "output"): Decimal("7.5"),
    }
    # And a batch job of Sonnet 4 costs the batch 1.50 / 7.50, its on-demand calls the standard 3 / 15
    table = PriceTable(price_rows(normalised.prices), version="pricelist-test")
    tokens = TokenCounts(input=1_000_000, output=1_000_000)
    assert price_invocation(table, SONNET_4, "us-east-1", tokens, tier=ServiceTier.BATCH).cost_usd == 9
    assert price_invocation(table, SONNET_4, "us-east-1", tokens).cost_usd == 18


def test_the_rows_price_calls_by_endpoint_kind_and_tier(price_list: list[str]) -> None:
    # Given the normalised prices as a price table
    table = PriceTable(price_rows(normalise(price_list).prices), version="pricelist-test")

    def cost(model_id: str, tier: ServiceTier = ServiceTier.STANDARD) -> Decimal:
        return price_invocation(
            table, model_id, "us-east-1", TokenCounts(input=1_000_000), tier=tier
        ).cost_usd

    # Then in-region and geographic Sonnet 4.5 cost the regional 3.30, global 3.00
    assert cost(SONNET_45) == Decimal("3.30")
    assert cost("us." + SONNET_45) == Decimal("3.30")
    assert cost("eu." + SONNET_45) == Decimal("3.30")
    assert cost("global." + SONNET_45) == Decimal("3.00")
    # And Nova Pro costs its tier's rate
    assert cost(NOVA_PRO, ServiceTier.PRIORITY) == Decimal("1.40")
    assert cost(NOVA_PRO, ServiceTier.FLEX) == Decimal("0.40")
    # And a model the Price List did not map has no row: it is estimated, not priced
    priced = price_invocation(table, "deepseek.r1-v1:0", "us-east-1", TokenCounts(input=10))
    assert priced.status is PriceStatus.ESTIMATED and priced.row is None
