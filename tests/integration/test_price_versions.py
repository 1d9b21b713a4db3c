"""Price versions on moto: the daily refresh from a Stubber-fed Price List, each refusal, activation,
and the same records priced under two versions, each enriched record naming its version.

Expected costs come from unit prices written here by hand (USD per 1M tokens).
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from budgetkeeper.domain.usage import ServiceTier, TokenCounts
from budgetkeeper.metering import calculator
from budgetkeeper.notify import SnsPublisher
from budgetkeeper.pricing import versions as price_versions
from budgetkeeper.pricing.rates import price_invocation
from budgetkeeper.pricing.table import PriceBasis, PriceRow, PriceTable, Rates
from budgetkeeper.pricing.versions import (
    ActivePrices,
    activate,
    active_version,
    load_version,
    refresh_from_price_list,
)
from budgetkeeper.storage.models_seen import record_models_seen
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import AuditItem, PriceVersionItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.stack import LocalStack
from tests.timeline import now_iso

RESPONSES = Path(__file__).parent.parent / "unit" / "pricing" / "price_list"
ALICE = "arn:aws:iam::111122223333:user/alice"
NOVA_PRO = "amazon.nova-pro-v1:0"
MILLION = Decimal(1_000_000)
MILLION_TOKENS = 1_000_000


def response(name: str) -> dict:
    return json.loads((RESPONSES / f"{name}.json").read_text())


def with_price(document: dict, usage_type: str, usd: str) -> dict:
    """The response with the price of one usage type replaced."""
    changed = copy.deepcopy(document)
    entries = []
    for text in changed["PriceList"]:
        entry = json.loads(text)
        if entry["product"]["attributes"]["usagetype"] == usage_type:
            for term in entry["terms"]["OnDemand"].values():
                for dimension in term["priceDimensions"].values():
                    dimension["pricePerUnit"]["USD"] = usd
        entries.append(json.dumps(entry))
    changed["PriceList"] = entries
    return changed


def run_refresh(
    stack: LocalStack, amazon: dict, foundation: dict, max_factor: str = "2", service: dict | None = None
):
    """The refresh, its Price List stubbed: the offer codes DescribeServices lists, then each one's
    products (AmazonBedrockService's only when `service` is given)."""
    client = boto3.client("pricing", region_name="us-east-1")
    publisher = SnsPublisher(stack.client("sns"), stack.physical_ids["BudgetEventsTopic"])
    documents = {"AmazonBedrock": amazon, "AmazonBedrockFoundationModels": foundation}
    if service is not None:
        documents["AmazonBedrockService"] = service
    with Stubber(client) as stub:
        listed = [{"ServiceCode": code} for code in ("AmazonEC2", *documents)]
        stub.add_response("describe_services", {"Services": listed}, {"FormatVersion": "aws_v1"})
        for service_code, document in sorted(documents.items()):
            stub.add_response(
                "get_products", document, {"ServiceCode": service_code, "FormatVersion": "aws_v1"}
            )
        return refresh_from_price_list(client, max_factor=Decimal(max_factor), notify=publisher.publish)


def notifications(stack: LocalStack) -> list[dict]:
    from moto.sns.models import sns_backends

    topic = stack.physical_ids["BudgetEventsTopic"]
    backend = sns_backends["123456789012"]["us-east-1"]
    return [json.loads(message) for _, message, *_ in backend.topics[topic].sent_notifications]


def test_a_safe_refresh_is_stored_and_activated(settings, stack):
    # Given no active version (the calculator prices with the bundled table)
    assert active_version() is None
    # When the daily refresh reads the Price List
    outcome = run_refresh(stack, response("amazon_bedrock"), response("foundation_models"))
    # Then the new version is stored, activated, and no one is alerted
    assert outcome.activated and active_version() == outcome.version
    assert PriceVersionItem.get(outcome.version).status == "active"
    assert notifications(stack) == []
    assert load_version(outcome.version).lookup(NOVA_PRO, "us-east-1") is not None


def test_a_refresh_without_rows_is_stored_not_activated_and_operators_are_told(settings, stack):
    empty = {"FormatVersion": "aws_v1", "PriceList": []}
    outcome = run_refresh(stack, empty, empty)
    assert not outcome.activated and active_version() is None
    assert PriceVersionItem.get(outcome.version).status == "refused"
    [event] = notifications(stack)
    assert event["type"] == "prices_refused" and "no price rows" in event["reason"]


def test_a_price_moving_beyond_the_factor_is_stored_not_activated_with_the_diff(settings, stack):
    # Given Nova Pro input at 0.008 per 1K (8.00 per 1M), ten times the 0.80 of the active table
    amazon = with_price(response("amazon_bedrock"), "USE1-NovaPro-input-tokens", "0.0080000000")
    # When the refresh runs with a factor of 2
    outcome = run_refresh(stack, amazon, response("foundation_models"), max_factor="2")
    # Then it is refused, and the event carries both figures
    assert not outcome.activated and active_version() is None
    [event] = notifications(stack)
    assert "amazon.nova-pro-v1:0 in us-east-1 (standard) input: 0.8 -> 8 USD per 1M" in event["reason"]
    note = json.loads(event["note"])
    assert {
        "model": NOVA_PRO,
        "region": "us-east-1",
        "tier": "standard",
        "kind": "input",
        "old": "0.8",
        "new": "8",
    } in (note["changes"])


def seen_days_ago(clock, days: int, model: str) -> None:
    """`model` priced in us-east-1 `days` ago, as the calculator records it (storage.models_seen)."""
    day = (clock() - timedelta(days=days)).date().isoformat()
    record_models_seen([(day, model, "us-east-1")], retention_seconds=400 * 86_400)


def test_a_metered_model_no_offer_code_prices_keeps_its_bundled_rate_flagged(settings, stack, clock):
    # Given Claude 3 Haiku metered 29 days ago in us-east-1 (the Price List files do not price it)
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    seen_days_ago(clock, 29, haiku)
    # When the refresh runs
    outcome = run_refresh(stack, response("amazon_bedrock"), response("foundation_models"))
    # Then it is activated, and Haiku keeps the bundled 0.25 / 1.25, flagged as kept
    assert outcome.activated
    priced = price_invocation(
        load_version(outcome.version),
        haiku,
        "us-east-1",
        TokenCounts(input=MILLION_TOKENS, output=MILLION_TOKENS),
    )
    assert (priced.basis, priced.cost_usd) == (PriceBasis.KEPT_BUNDLED, Decimal("1.50"))
    assert priced.row is not None and "no offer code prices it" in priced.row.source


def test_a_refresh_that_drops_a_metered_model_only_a_version_priced_is_not_activated(settings, stack, clock):
    # Given an active version pricing a model the bundled table does not know, metered 29 days ago
    model = "acme.only-in-a-version-v1:0"
    row = PriceRow(model, "us-east-1", Rates(Decimal(1), Decimal(2)), None, "Price List", clock().date())
    price_versions.store_version(
        PriceTable([*PriceTable.bundled(), row], version="pricelist-old"), source="test"
    )
    activate("pricelist-old", actor="test")
    seen_days_ago(clock, 29, model)
    # When a refresh without it runs
    outcome = run_refresh(stack, response("amazon_bedrock"), response("foundation_models"))
    # Then it is refused for that model: no rate to keep
    assert not outcome.activated
    assert any(
        model in reason and "metered in the last 30 days" in reason for reason in outcome.judgement.refusals
    )


def test_a_model_metered_longer_ago_does_not_hold_a_refresh_back(settings, stack, clock):
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    seen_days_ago(clock, 31, haiku)
    assert run_refresh(stack, response("amazon_bedrock"), response("foundation_models")).activated


def meter(records: list[str]) -> list[dict]:
    result = invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload(records)]))
    return [
        json.loads(line)
        for record in result["records"]
        for line in gzip.decompress(base64.b64decode(record["data"])).decode().splitlines()
    ]


def test_the_same_records_priced_under_two_versions_name_their_version(settings, stack, clock, monkeypatch):
    # Given a fresh container cache, and Nova Pro at 0.80 in the bundled table
    monkeypatch.setattr(
        calculator,
        "_active_prices",
        lambda enabled: containers.setdefault(enabled, ActivePrices(enabled=enabled)),
    )
    containers: dict[bool, ActivePrices] = {}
    call = converse_message(ALICE, NOVA_PRO, 10_000, 1_000, timestamp=now_iso())
    # When a call is metered with no active version
    [first] = meter([call])
    # Then it costs the bundled 0.80 / 3.20 and names the bundled version
    assert first["price_version"] == PriceTable.bundled().version
    assert Decimal(first["cost_usd"]) == (10_000 * Decimal("0.80") + 1_000 * Decimal("3.20")) / MILLION
    # Given a Price List version with Nova Pro input at 1.20 (within the factor), activated
    amazon = with_price(response("amazon_bedrock"), "USE1-NovaPro-input-tokens", "0.0012000000")
    outcome = run_refresh(stack, amazon, response("foundation_models"))
    assert outcome.activated
    # When the same call is metered within the cache's TTL, then after it
    [cached] = meter([call])
    clock.advance(price_versions.CACHE_TTL)
    [second] = meter([call])
    # Then the cached container still prices with the bundled table, and the next read with the new version
    assert cached["price_version"] == PriceTable.bundled().version
    assert second["price_version"] == outcome.version
    assert Decimal(second["cost_usd"]) == (10_000 * Decimal("1.20") + 1_000 * Decimal("3.20")) / MILLION


def test_an_operator_activates_a_refused_version_by_hand(settings, stack):
    amazon = with_price(response("amazon_bedrock"), "USE1-NovaPro-input-tokens", "0.0080000000")
    outcome = run_refresh(stack, amazon, response("foundation_models"))
    assert not outcome.activated
    activate(outcome.version, actor="operator:alice")
    assert active_version() == outcome.version
    with pytest.raises(price_versions.UnknownPriceVersion):
        activate("pricelist-nonexistent", actor="operator:alice")


def test_the_prices_command_shows_diffs_activates_and_exports(settings, stack, capsys):
    from budgetkeeper_cli.main import main

    stack_name = stack.publish_outputs()

    def cli(*argv: str) -> str:
        capsys.readouterr()
        assert main([*argv, "--stack-name", stack_name]) == 0
        return capsys.readouterr().out

    # Given a refused version (Nova Pro input 0.80 -> 8.00)
    amazon = with_price(response("amazon_bedrock"), "USE1-NovaPro-input-tokens", "0.0080000000")
    version = run_refresh(stack, amazon, response("foundation_models")).version
    # Then `show` lists it as refused, with no active version
    listing = cli("prices", "show")
    assert "active: none (the bundled table)" in listing and version in listing and "refused" in listing
    # And `show --format json` is one JSON document with the same facts
    document = json.loads(cli("prices", "show", "--format", "json"))
    assert document["active"] is None and document["overrides"] == []
    assert [(row["version"], row["status"]) for row in document["versions"]] == [(version, "refused")]
    # And `diff` shows the move with both figures
    changes = json.loads(cli("prices", "diff", version, "--format", "json"))
    assert {
        "model": NOVA_PRO,
        "region": "us-east-1",
        "tier": "standard",
        "kind": "input",
        "old": "0.8",
        "new": "8",
    } in (changes)
    # When an operator activates it, then exports the active table as CSV
    cli("prices", "activate", version)
    exported = cli("prices", "export", "--format", "csv").splitlines()
    # Then it is the active one, and the CSV holds its rows
    assert active_version() == version
    assert exported[0].startswith("model,region,tier,input,output")
    assert any(line.startswith(f"{NOVA_PRO},us-east-1,priority,1.4,5.6") for line in exported)


NEW_MODEL = "acme.brand-new-v1:0"  # no price anywhere


def test_an_override_prices_an_unknown_model_through_the_calculator_within_the_cache_ttl(
    settings, stack, clock, monkeypatch, capsys
):
    from budgetkeeper_cli.main import main

    stack_name = stack.publish_outputs()

    def cli(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, "--stack-name", stack_name])
        out, err = capsys.readouterr()
        return code, out, err

    containers: dict[bool, ActivePrices] = {}
    monkeypatch.setattr(
        calculator,
        "_active_prices",
        lambda enabled: containers.setdefault(enabled, ActivePrices(enabled=enabled)),
    )
    call = converse_message(ALICE, NEW_MODEL, 10_000, 1_000, cache_read=4_000, timestamp=now_iso())
    # Given a model no table prices: metered at a conservative estimate, flagged
    [before] = meter([call])
    assert before["price_status"] == "estimated" and before["price_basis"] == "estimate"
    # When an operator overrides its price in us-east-1 (input 2, output 8, cache read 0.5 per 1M)
    set_at = clock()
    code, out, _ = cli(
        "prices", "override", NEW_MODEL, "--region", "us-east-1", "--input", "2", "--output", "8",
        "--cache-read", "0.5", "--reason", "launched today, not in the Price List yet",
    )  # fmt: skip
    assert code == 0 and "override-" in out
    # And the call metered at an estimate before is re-priced at the override, once
    expected = (10_000 * Decimal(2) + 1_000 * Decimal(8) + 4_000 * Decimal("0.5")) / MILLION
    assert f"re-priced 1 item(s) of estimated usage: {expected - Decimal(before['cost_usd'])} USD" in out
    [rollup] = scope_rollups("user:alice")
    assert (rollup.cost_usd, rollup.estimated_calls) == (expected, 0)
    # Then a container that read its table before the override still estimates the model...
    [cached] = meter([call])
    assert cached["price_status"] == "estimated"
    # ...and once the cache TTL has passed, the call is priced at the override, which it names
    clock.advance(price_versions.CACHE_TTL)
    [after] = meter([call])
    assert (after["price_status"], after["price_basis"]) == ("priced", "exact")
    assert after["price_version"] == "override-" + set_at.strftime("%Y%m%dT%H%M%SZ")
    assert Decimal(after["cost_usd"]) == expected
    # And calls of models the table prices keep naming the table's version
    [nova] = meter([converse_message(ALICE, NOVA_PRO, 1_000, 100, timestamp=now_iso())])
    assert nova["price_version"] == PriceTable.bundled().version
    # And `prices show` lists the override as in force, and the audit keeps who set it and why
    _, listing, _ = cli("--wide", "prices", "show")
    assert NEW_MODEL in listing and "launched today" in listing
    [line] = AuditItem.query("prices")
    assert line.to_status == "override" and line.from_status == "no price"
    assert line.window == f"{NEW_MODEL}@us-east-1#standard" and "launched today" in line.reason
    assert line.actor.startswith("arn:aws:")


def test_an_override_is_refused_for_a_model_with_a_price_and_removed_with_an_audit(
    settings, stack, clock, capsys
):
    from budgetkeeper_cli.main import main

    stack_name = stack.publish_outputs()
    # When an operator tries to override Nova Pro, which the bundled table prices
    code = main(
        ["prices", "override", NOVA_PRO, "--region", "us-east-1", "--input", "9", "--output", "9",
         "--reason", "cheaper", "--stack-name", stack_name]
    )  # fmt: skip
    # Then it is refused, and nothing is stored
    assert code == 1 and "overrides are for models with no price anywhere" in capsys.readouterr().err
    assert price_versions.overrides() == ()
    # Given an override of the new model, when it is removed
    base = ["--region", "us-east-1", "--stack-name", stack_name]
    assert (
        main(["prices", "override", NEW_MODEL, "--input", "1", "--output", "2", "--reason", "r", *base]) == 0
    )
    assert main(["prices", "override", NEW_MODEL, "--remove", "--reason", "AWS prices it now", *base]) == 0
    # Then no override is left, the audit has both lines, and removing again fails
    assert price_versions.overrides() == ()
    assert [(line.from_status, line.to_status) for line in AuditItem.query("prices")] == [
        ("no price", "override"),
        ("override", "removed"),
    ]
    assert main(["prices", "override", NEW_MODEL, "--remove", "--reason", "again", *base]) == 1


def test_a_version_that_prices_an_overridden_model_wins_over_the_override(settings, stack):
    # Given an override of the new model
    row = price_versions.set_override(
        NEW_MODEL,
        "us-east-1",
        Rates(input=Decimal(1), output=Decimal(2)),
        tier=ServiceTier.STANDARD,
        actor="operator",
        reason="r",
    )
    # When a later active table prices the model itself, the override is not used
    table = PriceTable([*PriceTable.bundled(), replace(row, version=None, source="Price List")], version="v2")
    merged = price_versions.with_overrides(table, price_versions.overrides())
    assert merged is table
    # While without it, the override row prices the model and names its version
    merged = price_versions.with_overrides(PriceTable.bundled(), price_versions.overrides())
    assert merged.lookup(NEW_MODEL, "us-east-1").version == row.version
