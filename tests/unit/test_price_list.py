"""The Price List normaliser, fed through botocore's Stubber with responses kept in tests/unit/price_list/.

Expected unit prices (USD per 1M tokens) are written here by hand from the files' figures and units.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from budgetkeeper.price_list import EndpointKind, fetch_price_list, normalise, price_rows
from budgetkeeper.pricing import PriceStatus, PriceTable, price_invocation
from budgetkeeper.usage import ServiceTier, TokenCounts

RESPONSES = Path(__file__).parent / "price_list"
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
NOVA_PRO = "amazon.nova-pro-v1:0"


def response(name: str) -> dict:
    return json.loads((RESPONSES / f"{name}.json").read_text())


@pytest.fixture
def price_list(aws_env: None) -> list[str]:
    """Every PriceList entry of both service codes, read through the pricing client as the refresh does."""
    client = boto3.client("pricing", region_name="us-east-1")
    with Stubber(client) as stub:
        for service_code, name in (
            ("AmazonBedrock", "amazon_bedrock"),
            ("AmazonBedrockFoundationModels", "foundation_models"),
        ):
            stub.add_response(
                "get_products", response(name), {"ServiceCode": service_code, "FormatVersion": "aws_v1"}
            )
        entries = list(fetch_price_list(client))
        stub.assert_no_pending_responses()
    return entries


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
    }


def test_an_unmappable_product_is_reported_never_guessed(price_list: list[str]) -> None:
    normalised = normalise(price_list)
    assert normalised.unmapped == {"DeepSeek-R1": 1}
    assert not any("deepseek" in p.model for p in normalised.prices)
    # and the batch price is skipped as no on-demand price, not read as one
    assert normalised.skipped == {"not an on-demand token price": 1}


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
