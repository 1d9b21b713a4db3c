"""Pricing: expected costs come from unit prices written here by hand, never from the pricing module.

The unit prices (USD per 1M tokens) are AWS's published Bedrock prices as listed in
shared/facts/bedrock_facts.md sections 4.2 to 4.4.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import budgetkeeper_cli.main as cli
from budgetkeeper.domain.usage import ServiceTier, TokenCounts
from budgetkeeper.pricing.profiles import PROFILE_TAGS_TTL, RETRY_FAILED_LOOKUP_AFTER, InferenceProfiles
from budgetkeeper.pricing.rates import Priced, PriceStatus, price_invocation
from budgetkeeper.pricing.table import (
    PROFILE_PREFIXES,
    TOKEN_KINDS,
    ModelKind,
    PriceBasis,
    PriceTable,
    Rates,
    resolve_model_id,
)

MILLION = 1_000_000
SONNET_45 = "anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_45_US = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CLAUDE_3_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
LLAMA_3_70B = "meta.llama3-70b-instruct-v1:0"
APP_PROFILE_ARN = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/a1b2c3d4e5f6"


def usd(per_million: str, tokens: int) -> Decimal:
    """A hand-written unit price (USD per 1M tokens) times a token count."""
    return Decimal(per_million) * tokens / MILLION


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.bundled()


def price(table: PriceTable, model_id: str, region: str = "us-east-1", **tokens: int) -> Priced:
    return price_invocation(table, model_id, region, TokenCounts(**tokens))


# --- headline prices: bedrock_facts.md 4.2 (and 4.3 for GovCloud), us-east-1 ---------------------

# model id -> (input, output, cache read, cache write 5m); None: no such price to check.
HEADLINE_PRICES: dict[str, tuple[str, str | None, str | None, str | None]] = {
    # Anthropic, base ids
    CLAUDE_3_HAIKU: ("0.25", "1.25", None, None),
    "anthropic.claude-3-5-haiku-20241022-v1:0": ("0.80", "4.00", "0.08", "1.00"),
    "anthropic.claude-3-5-sonnet-20240620-v1:0": ("3", "15", "0.30", "3.75"),
    "anthropic.claude-3-5-sonnet-20241022-v2:0": ("3", "15", "0.30", "3.75"),
    "anthropic.claude-3-7-sonnet-20250219-v1:0": ("3", "15", "0.30", "3.75"),
    "anthropic.claude-sonnet-4-20250514-v1:0": ("3", "15", "0.30", "3.75"),
    "anthropic.claude-opus-4-20250514-v1:0": ("15", "75", "1.50", "18.75"),
    "anthropic.claude-opus-4-1-20250805-v1:0": ("15", "75", "1.50", "18.75"),
    # bare (in-region) ids of Claude 4.5 and later: the regional rate, 10% above global (more_facts.md)
    SONNET_45: ("3.30", "16.50", "0.33", "4.125"),
    "anthropic.claude-sonnet-4-6": ("3.30", "16.50", "0.33", "4.125"),
    "anthropic.claude-opus-4-5-20251101-v1:0": ("5.50", "27.50", "0.55", "6.875"),
    "anthropic.claude-opus-4-6-v1": ("5.50", "27.50", "0.55", "6.875"),
    "anthropic.claude-haiku-4-5-20251001-v1:0": ("1.10", "5.50", "0.11", "1.375"),
    # geo profiles of newer models: 10% above base
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0": ("3.30", "16.50", "0.33", "4.125"),
    "eu.anthropic.claude-sonnet-4-6": ("3.30", "16.50", "0.33", "4.125"),
    "jp.anthropic.claude-sonnet-4-5-20250929-v1:0": ("3.30", "16.50", "0.33", "4.125"),
    "au.anthropic.claude-sonnet-4-6": ("3.30", "16.50", "0.33", "4.125"),
    "apac.anthropic.claude-sonnet-4-6": ("3.30", "16.50", "0.33", "4.125"),
    "us.anthropic.claude-haiku-4-5-20251001-v1:0": ("1.10", "5.50", "0.11", "1.375"),
    "eu.anthropic.claude-haiku-4-5-20251001-v1:0": ("1.10", "5.50", "0.11", "1.375"),
    "us.anthropic.claude-opus-4-5-20251101-v1:0": ("5.50", "27.50", "0.55", "6.875"),
    "au.anthropic.claude-opus-4-6-v1": ("5.50", "27.50", "0.55", "6.875"),
    # global profiles: the global rate (the published base price)
    "global.anthropic.claude-sonnet-4-5-20250929-v1:0": ("3", "15", "0.30", "3.75"),
    "global.anthropic.claude-haiku-4-5-20251001-v1:0": ("1", "5", "0.10", "1.25"),
    "global.anthropic.claude-opus-4-6-v1": ("5", "25", "0.50", "6.25"),
    # geo profiles of older models: the base price
    "us.anthropic.claude-3-haiku-20240307-v1:0": ("0.25", "1.25", None, None),
    "us.anthropic.claude-3-5-haiku-20241022-v1:0": ("0.80", "4.00", "0.08", "1.00"),
    "eu.anthropic.claude-3-7-sonnet-20250219-v1:0": ("3", "15", "0.30", "3.75"),
    "apac.anthropic.claude-sonnet-4-20250514-v1:0": ("3", "15", "0.30", "3.75"),
    "eu.anthropic.claude-opus-4-1-20250805-v1:0": ("15", "75", "1.50", "18.75"),
    # Amazon Nova (no cache-write price) and Titan
    "amazon.nova-micro-v1:0": ("0.035", "0.14", "0.00875", None),
    "amazon.nova-lite-v1:0": ("0.06", "0.24", "0.015", None),
    "amazon.nova-pro-v1:0": ("0.80", "3.20", "0.20", None),
    "amazon.nova-premier-v1:0": ("2.50", "12.50", "0.625", None),
    "amazon.titan-text-express-v1": ("0.20", "0.60", None, None),
    "amazon.titan-text-lite-v1": ("0.15", "0.20", None, None),
    "amazon.titan-text-premier-v1:0": ("0.50", "1.50", None, None),
    "amazon.titan-embed-text-v1": ("0.10", None, None, None),
    "amazon.titan-embed-text-v2:0": ("0.02", None, None, None),
    "amazon.titan-embed-image-v1": ("0.80", None, None, None),
    # Meta
    "meta.llama3-8b-instruct-v1:0": ("0.30", "0.60", None, None),
    LLAMA_3_70B: ("2.65", "3.50", None, None),
    "meta.llama3-1-8b-instruct-v1:0": ("0.22", "0.22", None, None),
    "meta.llama3-1-70b-instruct-v1:0": ("0.72", "0.72", None, None),
    "meta.llama3-1-405b-instruct-v1:0": ("2.40", "2.40", None, None),
    "meta.llama3-2-1b-instruct-v1:0": ("0.10", "0.10", None, None),
    "meta.llama3-2-3b-instruct-v1:0": ("0.15", "0.15", None, None),
    "meta.llama3-2-11b-instruct-v1:0": ("0.16", "0.16", None, None),
    "meta.llama3-2-90b-instruct-v1:0": ("0.72", "0.72", None, None),
    "meta.llama3-3-70b-instruct-v1:0": ("0.72", "0.72", None, None),
    "meta.llama4-scout-17b-instruct-v1:0": ("0.17", "0.66", None, None),
    "meta.llama4-maverick-17b-instruct-v1:0": ("0.24", "0.97", None, None),
    # Mistral
    "mistral.mistral-7b-instruct-v0:2": ("0.15", "0.20", None, None),
    "mistral.mixtral-8x7b-instruct-v0:1": ("0.45", "0.70", None, None),
    "mistral.mistral-large-2402-v1:0": ("4", "12", None, None),
    "mistral.mistral-large-2407-v1:0": ("2", "6", None, None),
    "mistral.mistral-small-2402-v1:0": ("1", "3", None, None),
    "mistral.pixtral-large-2502-v1:0": ("2", "6", None, None),
    # Cohere
    "cohere.command-r-v1:0": ("0.50", "1.50", None, None),
    "cohere.command-r-plus-v1:0": ("3", "15", None, None),
    "cohere.command-text-v14": ("1", "2", None, None),
    "cohere.command-light-text-v14": ("0.30", "0.60", None, None),
    "cohere.embed-english-v3": ("0.10", None, None, None),
    "cohere.embed-multilingual-v3": ("0.10", None, None, None),
    "cohere.embed-v4:0": ("0.12", None, None, None),
}


@pytest.mark.parametrize("model_id", HEADLINE_PRICES)
def test_headline_prices_match_the_published_ones(table: PriceTable, model_id: str) -> None:
    # Given the published unit prices of the model
    input_price, output_price, cache_read_price, cache_write_price = HEADLINE_PRICES[model_id]
    # When 100K tokens of each kind (below any long-context threshold) are priced one kind at a time
    # Then each costs its unit price
    tokens = 100_000
    assert price(table, model_id, input=tokens).cost_usd == usd(input_price, tokens)
    if output_price is not None:
        assert price(table, model_id, output=tokens).cost_usd == usd(output_price, tokens)
    if cache_read_price is not None:
        assert price(table, model_id, cache_read=tokens).cost_usd == usd(cache_read_price, tokens)
    if cache_write_price is not None:
        assert price(table, model_id, cache_write_5m=tokens).cost_usd == usd(cache_write_price, tokens)


def test_govcloud_profile_costs_about_20_percent_more(table: PriceTable) -> None:
    # Given Sonnet 4.5 through the us-gov. profile, called from GovCloud (facts 4.3: 3.60 / 18)
    # When it is priced
    priced = price(table, "us-gov." + SONNET_45, "us-gov-west-1", input=1000, output=100)
    # Then it costs the GovCloud price
    assert priced.cost_usd == usd("3.60", 1000) + usd("18", 100)


# --- ids, profiles and ARNs ------------------------------------------------------------------------


def test_base_model_id_is_priced_at_its_own_row(table: PriceTable) -> None:
    # Given a Claude 3 Haiku call by its base id
    # When it is priced
    priced = price(table, CLAUDE_3_HAIKU, input=1200, output=350)
    # Then it costs 0.25 / 1.25 per 1M, from the row of that id
    assert priced.status is PriceStatus.PRICED
    assert priced.cost_usd == usd("0.25", 1200) + usd("1.25", 350)
    assert priced.model_key == CLAUDE_3_HAIKU
    assert priced.row is not None and priced.row.model == CLAUDE_3_HAIKU


def test_us_profile_of_a_newer_model_costs_ten_percent_more_than_global(table: PriceTable) -> None:
    # Given the same Sonnet 4.5 request through the us. and the global. profile
    # When both are priced
    geo = price(table, "us." + SONNET_45, input=10_000, output=2_000)
    global_ = price(table, "global." + SONNET_45, input=10_000, output=2_000)
    # Then us. costs 3.30 / 16.50 and global. the base 3 / 15
    assert geo.cost_usd == usd("3.30", 10_000) + usd("16.50", 2_000)
    assert global_.cost_usd == usd("3", 10_000) + usd("15", 2_000)


def test_sonnet_46_in_region_costs_the_regional_rate_not_the_global_one(table: PriceTable) -> None:
    # Given the same Sonnet 4.6 request by its bare id (in-region), through us. and through global.
    tokens = {"input": 10_000, "output": 2_000}
    in_region = price(table, "anthropic.claude-sonnet-4-6", **tokens)
    geographic = price(table, "us.anthropic.claude-sonnet-4-6", **tokens)
    global_ = price(table, "global.anthropic.claude-sonnet-4-6", **tokens)
    # Then in-region and geographic both cost AWS's regional 3.30 / 16.50, global the 10% lower 3 / 15
    assert in_region.cost_usd == geographic.cost_usd == usd("3.30", 10_000) + usd("16.50", 2_000)
    assert global_.cost_usd == usd("3", 10_000) + usd("15", 2_000)
    # And the row says the in-region rate was set by the table's builder, not read as LiteLLM gives it
    assert in_region.row is not None and "in_region_rate" in in_region.row.derived


def test_no_bare_id_is_priced_at_a_global_rate_below_its_regional_one(table: PriceTable) -> None:
    # Given every model whose geographic profiles agree on a rate above its global profile's (Claude
    # 4.5 and later; Nova 2, whose geo profiles differ by geography, is left to the us-east-1 list price)
    geo_rates: dict[tuple[str, str], set[Decimal]] = {}
    for row in table:
        ref = resolve_model_id(row.model)
        if row.region == "*" and ref.profile_prefix not in (None, "global", "us-gov"):
            geo_rates.setdefault((ref.base_model, row.tier), set()).add(row.rates.input)
    checked = []
    for (model, tier), rates in geo_rates.items():
        global_row = table.lookup(f"global.{model}", "*", tier)
        bare_row = table.lookup(model, "*", tier)
        if global_row is None or bare_row is None or len(rates) > 1 or min(rates) <= global_row.rates.input:
            continue
        # Then its bare (in-region) id is at the regional rate, never at the global one
        assert bare_row.rates.input == min(rates) > global_row.rates.input, (model, tier)
        checked.append(model)
    # And the check covered the models AWS names (Sonnet, Haiku and Opus 4.5, 4.6)
    assert {SONNET_45, "anthropic.claude-sonnet-4-6", "anthropic.claude-haiku-4-5-20251001-v1:0"} <= set(
        checked
    )
    assert {"anthropic.claude-opus-4-5-20251101-v1:0", "anthropic.claude-opus-4-6-v1"} <= set(checked)


def test_older_model_keeps_one_price_on_every_endpoint_kind(table: PriceTable) -> None:
    # Given Claude 3.7 Sonnet (before 4.5: one price) by its bare id and through eu.
    # Then both cost 3 / 15
    for model_id in (
        "anthropic.claude-3-7-sonnet-20250219-v1:0",
        "eu.anthropic.claude-3-7-sonnet-20250219-v1:0",
    ):
        assert price(table, model_id, input=1000, output=100).cost_usd == usd("3", 1000) + usd("15", 100)


def test_older_model_geo_profile_without_a_row_costs_the_base_price(table: PriceTable) -> None:
    # Given Claude 3.5 Sonnet through apac., which the table has no row for
    # When it is priced
    priced = price(
        table, "apac.anthropic.claude-3-5-sonnet-20240620-v1:0", "ap-south-1", input=1000, output=100
    )
    # Then it costs the base 3 / 15, and the note says how the price was chosen
    assert priced.status is PriceStatus.PRICED
    assert priced.cost_usd == usd("3", 1000) + usd("15", 100)
    assert priced.note is not None and "no row for apac." in priced.note


def test_newer_model_geo_profile_without_a_row_costs_the_geo_price(table: PriceTable) -> None:
    # Given Sonnet 4.5 through apac., which the table has no row for (its us./eu./jp./au. rows all cost 3.30)
    # When it is priced
    priced = price(table, "apac." + SONNET_45, "ap-southeast-2", input=1000, output=100)
    # Then it costs the geo price 3.30 / 16.50, not the base price
    assert priced.cost_usd == usd("3.30", 1000) + usd("16.50", 100)


def test_geo_profile_of_a_model_without_geo_rows_costs_the_base_price(table: PriceTable) -> None:
    # Given Nova Premier through us., which the table has no row for, nor any geo row of the model
    # When it is priced
    priced = price(table, "us.amazon.nova-premier-v1:0", input=1000, output=100)
    # Then it costs the base 2.50 / 12.50 (cross-region calls cost the source region's price)
    assert priced.cost_usd == usd("2.50", 1000) + usd("12.50", 100)


def test_govcloud_profile_without_a_row_costs_the_govcloud_region_price(table: PriceTable) -> None:
    # Given Haiku 4.5 through us-gov., which has no row, called from us-gov-west-1 (facts 4.3: 1.20 / 6)
    # When it is priced
    priced = price(
        table, "us-gov.anthropic.claude-haiku-4-5-20251001-v1:0", "us-gov-west-1", input=1000, output=100
    )
    # Then it costs the GovCloud price, not the commercial geo price
    assert priced.cost_usd == usd("1.20", 1000) + usd("6", 100)


def test_geo_profile_whose_siblings_disagree_is_estimated_at_the_highest(table: PriceTable) -> None:
    # Given Nova Lite through jp., which has no row, while its us./eu./apac. rows differ in price
    siblings = [
        table.lookup(f"{geo}.amazon.nova-lite-v1:0", "ap-northeast-1") for geo in ("us", "eu", "apac")
    ]
    assert len({row.rates.input for row in siblings if row}) > 1
    # When it is priced
    priced = price(table, "jp.amazon.nova-lite-v1:0", "ap-northeast-1", input=1000)
    # Then no sibling's price is picked: it is estimated at the highest of them, flagged
    assert (priced.status, priced.basis) == (PriceStatus.ESTIMATED, PriceBasis.ESTIMATE)
    assert priced.cost_usd == max(usd(str(row.rates.input), 1000) for row in siblings if row)


def test_inference_profile_arn_is_priced_as_its_profile_id(table: PriceTable) -> None:
    # Given a system inference-profile ARN, as invocation logs show cross-region calls
    arn = f"arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.{SONNET_45}"
    # When it is priced
    priced = price(table, arn, input=1000, output=100)
    # Then it is the us. profile at 3.30 / 16.50
    assert priced.model_key == "us." + SONNET_45
    assert priced.cost_usd == usd("3.30", 1000) + usd("16.50", 100)


def test_foundation_model_arn_is_priced_as_its_model_id(table: PriceTable) -> None:
    # Given a foundation-model ARN
    arn = f"arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE_3_HAIKU}"
    # When it is priced
    priced = price(table, arn, input=1000, output=100)
    # Then it is the base model at 0.25 / 1.25
    assert priced.model_key == CLAUDE_3_HAIKU
    assert priced.cost_usd == usd("0.25", 1000) + usd("1.25", 100)


def test_provisioned_model_arn_is_counted_flagged_and_free_per_token(table: PriceTable) -> None:
    # Given a provisioned-throughput model ARN (billed per hour)
    arn = "arn:aws:bedrock:us-east-1:111122223333:provisioned-model/abcd1234efgh"
    # When it is priced
    priced = price(table, arn, input=1000, output=100)
    # Then its token cost is 0 and its status says why
    assert priced.status is PriceStatus.PROVISIONED
    assert priced.cost_usd == 0
    assert priced.model_key == arn


@pytest.mark.parametrize(
    "model_id",
    [
        "anthropic.claude-3-haiku-20240307-v2:0",  # a version that does not exist
        "anthropic.claude-3-haiku",  # a prefix of a priced id
        "us.anthropic.claude-3-haiku-20240307-v1:0:200k",  # a provisioned-only context variant
        "acme.brand-new-model-v1:0",
    ],
)
def test_unknown_model_is_estimated_high_and_never_priced_like_a_similar_one(
    table: PriceTable, model_id: str
) -> None:
    # Given an id the table has no row for, some of them close to a priced id
    # When it is priced
    priced = price(table, model_id, input=1000, output=100)
    # Then it is estimated, flagged, with no row of its own, at least at Claude Opus 4's 15 / 75
    # (the highest Claude rate in bedrock_facts.md 4.2): never at a similar model's lower price
    assert (priced.status, priced.basis, priced.row) == (PriceStatus.ESTIMATED, PriceBasis.ESTIMATE, None)
    assert priced.cost_usd >= usd("15", 1000) + usd("75", 100)
    assert priced.note is not None and "estimated at the highest" in priced.note


def test_an_operators_rate_prices_unknown_models(table: PriceTable) -> None:
    # Given the operators' rate for unknown models, 2 / 8 USD per 1M
    rates = Rates(input=Decimal(2), output=Decimal(8))
    # When a model the table does not know is priced
    priced = price_invocation(
        table,
        "acme.brand-new-model-v1:0",
        "us-east-1",
        TokenCounts(input=1000, output=100),
        unknown_model_rates=rates,
    )
    # Then it costs that rate, estimated and flagged
    assert (priced.status, priced.basis) == (PriceStatus.ESTIMATED, PriceBasis.ESTIMATE)
    assert priced.cost_usd == usd("2", 1000) + usd("8", 100)
    assert priced.note is not None and "operators' rate" in priced.note


def test_a_custom_model_arn_stays_unknown_at_zero(table: PriceTable) -> None:
    # Given a custom model ARN (billed per model unit, never per token)
    arn = "arn:aws:bedrock:us-east-1:111122223333:custom-model/acme.base/abc123"
    # When it is priced
    priced = price(table, arn, input=1000, output=100)
    # Then no token price is guessed: unknown, 0 USD, flagged
    assert (priced.status, priced.cost_usd) == (PriceStatus.UNKNOWN_MODEL, 0)
    assert priced.note is not None and "never another model's price" in priced.note


@pytest.mark.parametrize(
    ("model_id", "kind", "key", "prefix"),
    [
        (CLAUDE_3_HAIKU, ModelKind.MODEL, CLAUDE_3_HAIKU, None),
        ("us-gov." + SONNET_45, ModelKind.MODEL, "us-gov." + SONNET_45, "us-gov"),
        ("deepseek.v3.2", ModelKind.MODEL, "deepseek.v3.2", None),  # dots in the id itself
        (f"arn:aws:bedrock:::foundation-model/{SONNET_45}", ModelKind.MODEL, SONNET_45, None),
        (
            f"arn:aws:bedrock:eu-west-1:1:inference-profile/global.{SONNET_45}",
            ModelKind.MODEL,
            f"global.{SONNET_45}",
            "global",
        ),
        (APP_PROFILE_ARN, ModelKind.APPLICATION_PROFILE, APP_PROFILE_ARN, None),
        (
            "arn:aws:bedrock:us-east-1:1:custom-model/amazon.nova-lite-v1:0:300k/x1",
            ModelKind.OTHER_ARN,
            None,
            None,
        ),
    ],
)
def test_model_ids_are_read_into_what_the_table_is_searched_for(
    model_id: str, kind: ModelKind, key: str | None, prefix: str | None
) -> None:
    # Given a logged modelId / When it is resolved / Then kind, key and profile prefix are as expected
    ref = resolve_model_id(model_id)
    assert (ref.kind, ref.key, ref.profile_prefix) == (kind, key or model_id, prefix)


# --- application inference profiles ------------------------------------------------------------


# GetInferenceProfile's answer for APP_PROFILE_ARN, shaped as Bedrock returns it.
APP_PROFILE_ANSWER = {
    "inferenceProfileName": "chatbot",
    "inferenceProfileArn": APP_PROFILE_ARN,
    "inferenceProfileId": "a1b2c3d4e5f6",
    "models": [{"modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{CLAUDE_3_HAIKU}"}],
    "status": "ACTIVE",
    "type": "APPLICATION",
}


@pytest.fixture
def bedrock(aws_env: None) -> Any:
    """A real botocore `bedrock` client, for Stubber; it never reaches the network."""
    return boto3.client("bedrock", region_name="us-east-1")


def test_application_profile_is_resolved_once_and_priced_as_its_model(
    table: PriceTable, bedrock: Any
) -> None:
    # Given Bedrock answers once for the profile's model and once for its tags
    profile = APP_PROFILE_ANSWER
    tags = {"tags": [{"key": "app", "value": "ChatbotApp"}, {"key": "team", "value": "data"}]}
    with Stubber(bedrock) as stubber:
        stubber.add_response(
            "get_inference_profile", profile, {"inferenceProfileIdentifier": APP_PROFILE_ARN}
        )
        stubber.add_response("list_tags_for_resource", tags, {"resourceARN": APP_PROFILE_ARN})
        profiles = InferenceProfiles(bedrock)
        # When two calls through the profile are priced and its tags are asked for twice
        first, second = (
            price_invocation(
                table, APP_PROFILE_ARN, "us-east-1", TokenCounts(input=1000, output=100), profiles
            )
            for _ in range(2)
        )
        tags_seen = [profiles.tags_for(APP_PROFILE_ARN) for _ in range(2)]
        # Then Bedrock was asked once per question (the stubber has no second answer)
        stubber.assert_no_pending_responses()
    # And both calls are priced as Claude 3 Haiku
    assert first == second
    assert first.model_key == CLAUDE_3_HAIKU
    assert first.cost_usd == usd("0.25", 1000) + usd("1.25", 100)
    assert tags_seen == [{"app": "ChatbotApp", "team": "data"}] * 2


def test_application_profile_bedrock_refuses_is_unknown_not_fatal(table: PriceTable, bedrock: Any) -> None:
    # Given Bedrock denies both questions about the profile
    with Stubber(bedrock) as stubber:
        stubber.add_client_error("get_inference_profile", "AccessDeniedException", http_status_code=403)
        stubber.add_client_error("list_tags_for_resource", "ResourceNotFoundException", http_status_code=404)
        profiles = InferenceProfiles(bedrock)
        # When a call through it is priced and its tags are read
        priced = price_invocation(table, APP_PROFILE_ARN, "us-east-1", TokenCounts(input=1000), profiles)
        tags = profiles.tags_for(APP_PROFILE_ARN)
    # Then the call is an unknown model at cost 0 and the tags are empty
    assert priced.status is PriceStatus.UNKNOWN_MODEL
    assert priced.cost_usd == 0
    assert tags == {}


# --- token kinds, tiers, regions, exactness ------------------------------------------------------


def test_cache_reads_and_writes_are_priced_by_kind(table: PriceTable) -> None:
    # Given a Sonnet 4.5 call (global profile) that reads and writes the cache, 1-hour writes at 2x input (6)
    tokens = {
        "input": 1000,
        "output": 1000,
        "cache_read": 10_000,
        "cache_write_5m": 2000,
        "cache_write_1h": 2000,
    }
    # When it is priced
    priced = price(table, "global." + SONNET_45, **tokens)
    # Then each kind costs its own rate
    assert priced.cost_usd == (
        usd("3", 1000) + usd("15", 1000) + usd("0.30", 10_000) + usd("3.75", 2000) + usd("6", 2000)
    )
    assert [charge.kind for charge in priced.charges()] == list(tokens)


def test_one_hour_writes_without_a_price_are_charged_at_the_5_minute_rate_and_flagged(
    table: PriceTable,
) -> None:
    # Given Sonnet 4, for which the source gives no 1-hour cache-write price
    # When a call with 1-hour writes is priced
    priced = price(table, "anthropic.claude-sonnet-4-20250514-v1:0", cache_write_1h=1000)
    # Then they cost the 5-minute rate (3.75), and the note says so
    assert priced.cost_usd == usd("3.75", 1000)
    assert priced.note is not None and "cache_write_1h" in priced.note


def test_prompt_over_200k_tokens_charges_every_token_at_long_context_rates(table: PriceTable) -> None:
    # Given a us. Sonnet 4.5 call whose prompt is 150K input + 60K cache reads = 210K tokens.
    # Long-context rates: 2x input (6.60, facts 4.1), 1.5x output (24.75) and 2x cache read (0.66),
    # Anthropic's rule for prompts over 200K tokens, on the us. geo price.
    # When it is priced
    priced = price(table, "us." + SONNET_45, input=150_000, cache_read=60_000, output=1000)
    # Then every token, output included, is at the long-context rate
    assert priced.long_context
    assert priced.cost_usd == usd("6.60", 150_000) + usd("0.66", 60_000) + usd("24.75", 1000)


def test_prompt_of_exactly_200k_tokens_is_at_standard_rates(table: PriceTable) -> None:
    # Given a prompt of exactly 200K tokens (the tier applies above it)
    # When it is priced
    priced = price(table, "us." + SONNET_45, input=200_000, output=1000)
    # Then standard rates apply
    assert not priced.long_context
    assert priced.cost_usd == usd("3.30", 200_000) + usd("16.50", 1000)


def test_a_region_row_prices_calls_from_that_region(table: PriceTable) -> None:
    # Given Llama 3 70B called from eu-west-2 (3.45 / 4.55), from us-east-1 (2.65 / 3.50), and from a
    # region the source names no price for
    tokens = {"input": 1000, "output": 1000}
    # When each is priced
    london = price(table, LLAMA_3_70B, "eu-west-2", **tokens)
    virginia = price(table, LLAMA_3_70B, "us-east-1", **tokens)
    frankfurt = price(table, LLAMA_3_70B, "eu-central-1", **tokens)
    # Then each region has its own price, and a region without one gets the default (*) row
    assert london.cost_usd == usd("3.45", 1000) + usd("4.55", 1000)
    assert virginia.cost_usd == usd("2.65", 1000) + usd("3.50", 1000)
    assert frankfurt.row is not None and frankfurt.row.region == "*"
    assert frankfurt.cost_usd == virginia.cost_usd


def test_costs_are_exact_decimals(table: PriceTable) -> None:
    # Given one Nova Micro input token (0.035 per 1M) and 7 output tokens (0.14 per 1M)
    # When it is priced
    priced = price(table, "amazon.nova-micro-v1:0", input=1, output=7)
    # Then the cost is an exact Decimal, equal to the sum of its charges
    assert isinstance(priced.cost_usd, Decimal)
    assert priced.cost_usd == Decimal("0.000000035") + Decimal("0.00000098")
    assert sum(charge.cost_usd for charge in priced.charges()) == priced.cost_usd


# --- the bundled table ----------------------------------------------------------------------------


def test_every_row_has_a_source_a_date_and_no_negative_price(table: PriceTable) -> None:
    # Given the bundled table / Then every row says where it came from, when, and prices >= 0
    assert len(table) > 300
    for row in table:
        assert row.source.startswith("litellm=="), row
        assert row.as_of.year >= 2025, row
        all_rates = [row.rates] if row.long_context is None else [row.rates, row.long_context.rates]
        prices = [getattr(rates, kind) for rates in all_rates for kind in TOKEN_KINDS]
        assert all(value is None or value >= 0 for value in prices), row


def test_the_table_knows_no_profile_prefix_the_resolver_does_not(table: PriceTable) -> None:
    # Given every row id made of <prefix>.<another row's id>
    models = {row.model for row in table}
    prefixes = {model.split(".", 1)[0] for model in models if model.split(".", 1)[1] in models}
    # Then each such prefix is one the resolver strips
    assert prefixes <= PROFILE_PREFIXES
    assert {"us", "eu", "apac", "jp", "au", "us-gov", "global"} <= prefixes


def test_the_bogus_claude_37_sonnet_row_is_left_out(table: PriceTable) -> None:
    # Given LiteLLM's key for a Claude 3.7 Sonnet dated 20240620, which Bedrock does not have
    # Then the table has no row for it
    assert table.lookup("anthropic.claude-3-7-sonnet-20240620-v1:0", "us-east-1") is None


# --- the `budgetkeeper price` command -----------------------------------------------------------


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], int]:
    assert "price" in cli.COMMAND_MODULES
    # Only the command under test is registered, so other sub-commands' imports do not matter here.
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("price",))
    return cli.main


def test_price_command_prints_a_table(
    run_cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a us. Sonnet 4.5 call with cache reads
    argv = [
        "price",
        "--model",
        "us." + SONNET_45,
        "--region",
        "us-east-1",
        "--input",
        "1000",
        "--output",
        "500",
    ]
    # When `budgetkeeper price` runs
    code = run_cli([*argv, "--cache-read", "2000"])
    # Then it prints each kind with its unit price and cost, and the total
    out = capsys.readouterr().out
    assert code == 0
    assert "status     priced" in out
    assert re.search(r"input\s+1,000\s+3\.3\s+0\.0033\b", out)
    assert re.search(r"cache_read\s+2,000\s+0\.33\s+0\.00066\b", out)
    total = usd("3.30", 1000) + usd("16.50", 500) + usd("0.33", 2000)
    assert re.search(rf"total\s+{re.escape(format(total.normalize(), 'f'))}$", out, re.MULTILINE)


def test_price_command_json(run_cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]) -> None:
    # Given Llama 3 70B called from eu-west-2
    argv = [
        "price",
        "--model",
        LLAMA_3_70B,
        "--region",
        "eu-west-2",
        "--input",
        "1000",
        "--output",
        "1000",
        "--json",
    ]
    # When `budgetkeeper price --json` runs
    code = run_cli(argv)
    # Then it prints one object with the cost as a decimal string and the row used
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert Decimal(document["cost_usd"]) == usd("3.45", 1000) + usd("4.55", 1000)
    assert document["status"] == "priced"
    assert document["model_key"] == LLAMA_3_70B
    row = document["price_row"]
    assert (row["region"], row["input"], row["output"]) == ("eu-west-2", "3.45", "4.55")
    assert row["source"] and row["as_of"]


def test_price_command_unknown_model_is_an_answer(
    run_cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a model the table does not know
    # When `budgetkeeper price --json` runs
    code = run_cli(
        [
            "price",
            "--model",
            "acme.nope-v1",
            "--region",
            "us-east-1",
            "--input",
            "5",
            "--output",
            "5",
            "--json",
        ]
    )
    # Then it exits 0 with status estimated, a conservative cost, flagged, and the rule
    document = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (document["status"], document["price_basis"], document["price_row"]) == (
        "estimated",
        "estimate",
        None,
    )
    assert Decimal(document["cost_usd"]) > 0
    assert "re-priced when its price arrives" in document["note"]


def test_price_command_negative_tokens_is_a_usage_error(
    run_cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a negative token count
    # When `budgetkeeper price` runs
    code = run_cli(
        ["price", "--model", CLAUDE_3_HAIKU, "--region", "us-east-1", "--input", "-5", "--output", "1"]
    )
    # Then it exits 2 and says what to type
    assert code == 2
    assert "--input 1200" in capsys.readouterr().err


def test_a_throttled_profile_look_up_is_asked_again_a_minute_later(
    table: PriceTable, bedrock: Any, clock: Any
) -> None:
    # Given Bedrock throttles the first question about a profile, then answers
    profile = APP_PROFILE_ANSWER
    tokens = TokenCounts(input=1000, output=100)
    with Stubber(bedrock) as stubber:
        stubber.add_client_error("get_inference_profile", "ThrottlingException", http_status_code=400)
        stubber.add_response("get_inference_profile", profile)
        profiles = InferenceProfiles(bedrock)
        # When calls through it are priced at once, and again after a minute
        throttled = price_invocation(table, APP_PROFILE_ARN, "us-east-1", tokens, profiles)
        soon_after = price_invocation(table, APP_PROFILE_ARN, "us-east-1", tokens, profiles)
        clock.advance(RETRY_FAILED_LOOKUP_AFTER)
        later = price_invocation(table, APP_PROFILE_ARN, "us-east-1", tokens, profiles)
        stubber.assert_no_pending_responses()
    # Then the failure is not remembered for good: the later call is priced as the profile's model
    assert throttled.status is soon_after.status is PriceStatus.UNKNOWN_MODEL
    assert later.model_key == CLAUDE_3_HAIKU
    assert later.cost_usd == usd("0.25", 1000) + usd("1.25", 100)


def test_a_profile_re_tagged_is_seen_within_the_tags_ttl(bedrock: Any, clock: Any) -> None:
    # Given a profile tagged app=ChatbotApp, re-tagged app=SupportBot afterwards
    first = {"tags": [{"key": "app", "value": "ChatbotApp"}]}
    retagged = {"tags": [{"key": "app", "value": "SupportBot"}]}
    with Stubber(bedrock) as stubber:
        stubber.add_response("list_tags_for_resource", first, {"resourceARN": APP_PROFILE_ARN})
        stubber.add_response("list_tags_for_resource", retagged, {"resourceARN": APP_PROFILE_ARN})
        profiles = InferenceProfiles(bedrock)
        # When its tags are read, again at once, and again once the TTL has passed
        seen = [profiles.tags_for(APP_PROFILE_ARN)["app"]]
        seen.append(profiles.tags_for(APP_PROFILE_ARN)["app"])
        clock.advance(PROFILE_TAGS_TTL)
        seen.append(profiles.tags_for(APP_PROFILE_ARN)["app"])
        stubber.assert_no_pending_responses()
    # Then the re-tag is seen without a cold start, and Bedrock is not asked on every call
    assert seen == ["ChatbotApp", "ChatbotApp", "SupportBot"]


# --- service tiers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "input_price", "output_price"),
    [
        (ServiceTier.STANDARD, "0.80", "3.20"),
        (ServiceTier.PRIORITY, "1.40", "5.60"),
        (ServiceTier.FLEX, "0.40", "1.60"),
    ],
)
def test_a_call_is_priced_at_its_service_tier(
    table: PriceTable, tier: ServiceTier, input_price: str, output_price: str
) -> None:
    # Given Nova Pro at a tier (priority 1.75x and flex 0.5x the standard 0.80 / 3.20)
    priced = price_invocation(
        table, "amazon.nova-pro-v1:0", "us-east-1", TokenCounts(input=1000, output=100), tier=tier
    )
    # Then it costs that tier's rates, and says so
    assert priced.cost_usd == usd(input_price, 1000) + usd(output_price, 100)
    assert priced.tier is tier and priced.row is not None and priced.row.tier is tier


@pytest.mark.parametrize(
    ("model_id", "tier", "input_price", "output_price"),
    [
        # Claude 3 Haiku has no priority price (facts 4.2: 0.25 / 1.25 standard)
        (CLAUDE_3_HAIKU, ServiceTier.PRIORITY, "0.25", "1.25"),
        # DeepSeek V3.1 (deepseek.v3-v1:0) has no flex price: the held-out review's call (0.58 / 1.68)
        ("deepseek.v3-v1:0", ServiceTier.FLEX, "0.58", "1.68"),
    ],
)
def test_a_model_without_a_price_at_the_tier_is_charged_at_standard_and_flagged(
    table: PriceTable, model_id: str, tier: ServiceTier, input_price: str, output_price: str
) -> None:
    # Given a model with no price at the tier its call was served at
    priced = price_invocation(table, model_id, "us-east-1", TokenCounts(input=1000, output=100), tier=tier)
    # Then it is charged at its standard rate, never 0 and never as an unknown model, and flagged
    assert (priced.status, priced.basis, priced.model_key) == (
        PriceStatus.PRICED,
        PriceBasis.TIER_FALLBACK,
        model_id,
    )
    assert priced.cost_usd == usd(input_price, 1000) + usd(output_price, 100)
    assert priced.note is not None and f"no {tier} price" in priced.note and priced.flagged


@pytest.mark.parametrize(
    ("model_id", "region", "input_price"),
    [
        ("amazon.nova-pro-v1:0", "ap-northeast-1", "0.80"),  # Nova in Tokyo
        ("amazon.nova-pro-v1:0", "ap-south-1", "0.80"),  # Nova in Mumbai
        ("openai.gpt-oss-120b-1:0", "ap-south-1", "0.15"),  # gpt-oss in Mumbai
        ("mistral.mistral-large-2402-v1:0", "eu-west-2", "4"),  # Mistral in London
    ],
)
def test_a_region_without_a_row_is_charged_at_the_fallback_rate_and_flagged(
    table: PriceTable, model_id: str, region: str, input_price: str
) -> None:
    # Given a model the bundled table prices with no row for the call's Region
    # When it is priced there
    priced = price(table, model_id, region, input=1000)
    # Then it costs the us-east-1 rate, flagged as a region fallback that says so
    assert (priced.status, priced.basis) == (PriceStatus.PRICED, PriceBasis.REGION_FALLBACK)
    assert priced.cost_usd == usd(input_price, 1000)
    assert priced.note is not None and f"no {region} price" in priced.note


def test_a_regional_row_and_the_fallback_regions_own_call_are_exact(table: PriceTable) -> None:
    # Given Mistral Large 2402 with a Paris row (5.20 input, facts 4.3), and Nova Pro in us-east-1
    # Then both are exact, unflagged
    paris = price(table, "mistral.mistral-large-2402-v1:0", "eu-west-3", input=1000)
    virginia = price(table, "amazon.nova-pro-v1:0", "us-east-1", input=1000)
    assert (paris.basis, paris.cost_usd) == (PriceBasis.EXACT, usd("5.20", 1000))
    assert (virginia.basis, virginia.cost_usd) == (PriceBasis.EXACT, usd("0.80", 1000))


# --- batch cache tokens ---------------------------------------------------------------------------


def test_batch_cache_tokens_without_a_batch_cache_rate_are_charged_at_the_standard_one_and_flagged(
    table: PriceTable,
) -> None:
    # Given a Claude Sonnet 4.5 batch call with cache reads and writes: its batch row has no cache rates
    tokens = TokenCounts(input=10_000, output=2_000, cache_read=4_000, cache_write_5m=1_000)
    priced = price_invocation(table, SONNET_45_US, "us-east-1", tokens, tier=ServiceTier.BATCH)
    # Then input and output are at the batch rates, the cache kinds at the on-demand ones, flagged
    expected = usd("1.65", 10_000) + usd("8.25", 2_000) + usd("0.33", 4_000) + usd("4.125", 1_000)
    assert priced.cost_usd == expected == Decimal("0.038445")
    assert priced.basis is PriceBasis.TIER_FALLBACK and priced.tier is ServiceTier.BATCH
    assert priced.note == "no batch price for cache_read, cache_write_5m: charged at the standard rate"
    # And the charges shown add up to the cost, each at the rate charged
    assert [(c.kind, c.usd_per_million) for c in priced.charges()][2:] == [
        ("cache_read", Decimal("0.33")),
        ("cache_write_5m", Decimal("4.125")),
    ]
    assert sum(charge.cost_usd for charge in priced.charges()) == priced.cost_usd
    # And without cache tokens the same call is exact
    plain = price_invocation(
        table, SONNET_45_US, "us-east-1", TokenCounts(input=10_000), tier=ServiceTier.BATCH
    )
    assert (plain.basis, plain.cost_usd) == (PriceBasis.EXACT, usd("1.65", 10_000))
