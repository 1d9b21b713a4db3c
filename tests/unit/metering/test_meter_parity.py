"""Parity of the whole meter: `Meter.meter`'s fast path against the standard library and the plain functions.

`Meter.meter` decodes with orjson/msgspec where a proof allows (budgetkeeper.domain.json_decode), checks each
distinct model id, region, account and caller once (record_rules), and remembers attributions by
caller (Meter.attribute). The reference here does none of that: `json.loads` with its duplicate-key
hook, then `scopes.attribute` and `pricing.price_invocation` called afresh for every message. Both
must give the same record, attribution and price, or the same error, on the sample logs, a demo day,
the bad events, the hostile texts and the abuse report's cases.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator, Mapping
from datetime import date
from typing import Any

import pytest

from budgetkeeper.domain.log_records import MalformedEvent, parse_invocation
from budgetkeeper.domain.scopes import attribute
from budgetkeeper.metering.meter import Meter, Metered
from budgetkeeper.pricing.rates import price_invocation
from budgetkeeper.pricing.table import PriceTable
from devkit.demo_data import generate_day
from devkit.demo_data import teams as demo_teams
from devkit.harness.logs import invocation_log_names, load_invocation_log, log_message
from tests.reliability.test_bad_input import BAD_EVENTS
from tests.unit.domain.test_fast_decode import HOSTILE_TEXTS, standard_library_only

PRICES = PriceTable.bundled()
TEAMS = demo_teams()
PROFILE_ARN = "arn:aws:bedrock:us-east-1:111122223333:application-inference-profile/x7p3k9q2m4ab"


def reference(message: str | bytes, *, teams: Mapping[str, str] = TEAMS) -> tuple[str, Any]:
    """The message metered by the standard library and the plain functions, nothing remembered."""
    try:
        with standard_library_only():
            invocation = parse_invocation(message)
    except MalformedEvent as error:
        return ("malformed", error.reason)
    attribution = attribute(invocation, teams=teams)
    priced = price_invocation(
        PRICES, invocation.model_id, invocation.region, invocation.tokens, tier=invocation.service_tier
    )
    return ("metered", Metered(invocation, attribution, priced))


def metered(meter: Meter, message: str | bytes) -> tuple[str, Any]:
    try:
        return ("metered", meter.meter(message))
    except MalformedEvent as error:
        return ("malformed", error.reason)


def assert_parity(meter: Meter, message: str | bytes) -> str:
    """The meter's outcome equals the reference's, the first time and again with everything remembered."""
    expected = reference(message, teams=meter.teams)
    assert metered(meter, message) == expected, message[:300]
    assert metered(meter, message) == expected, message[:300]
    return expected[0]


def spoiled(name: str, edit: Callable[[dict[str, Any]], None]) -> str:
    record = copy.deepcopy(load_invocation_log(name))
    edit(record)
    return json.dumps(record)


def setting(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets `a.b.c` to `value`."""
    *parents, key = path.split(".")

    def edit(record: dict[str, Any]) -> None:
        for parent in parents:
            record = record[parent]
        record[key] = value

    return edit


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": value}
    return value


# The cases of the abuse report (shared/repros/abuse, test_q4_batch_poison and test_q2_strings),
# built on the sample logs: each is a record the meter must meter or refuse exactly as the reference.
ABUSE_CASES: dict[str, str] = {
    "nested depth 900 in inputBodyJson": spoiled("api_key_user", setting("input.inputBodyJson", nested(900))),
    "nested depth 2000 in inputBodyJson": log_message(load_invocation_log("api_key_user")).replace(
        '"inputBodyJson":{', '"inputBodyJson":{"deep":' + '{"a":' * 2000 + '"x"' + "}" * 2000 + ",", 1
    ),
    "nested depth 2000 in outputBodyJson": log_message(load_invocation_log("api_key_user")).replace(
        '"outputBodyJson":{', '"outputBodyJson":{"deep":' + "[" * 2000 + "]" * 2000 + ",", 1
    ),
    "duplicate identity, compact": log_message(load_invocation_log("api_key_user")).replace(
        '"identity":', '"identity":{"arn":"arn:aws:iam::111122223333:user/mallory"},"identity":', 1
    ),
    "the same member twice, compact": log_message(load_invocation_log("api_key_user")).replace(
        '"region":"us-east-1"', '"region":"us-east-1","region":"us-east-1"', 1
    ),
    "900 KB prompt": spoiled("api_key_user", setting("input.inputBodyJson", {"p": "x" * 900_000})),
    "app claim of 256 characters": spoiled(
        "converse_request_metadata", setting("requestMetadata.app", "a" * 256)
    ),
    "app claim of 2100 characters": spoiled(
        "converse_request_metadata", setting("requestMetadata.app", "a" * 2100)
    ),
    "model id of 1001 characters": spoiled("api_key_user", setting("modelId", "m" * 1001)),
    "lone surrogate in inferenceRegion": spoiled(
        "api_key_user", setting("inferenceRegion", "us-east-1\ud800")
    ),
    "lone surrogate in errorCode": spoiled("api_key_user", setting("errorCode", "Throttling\ud800")),
    "lone surrogate in request metadata": spoiled(
        "converse_request_metadata", setting("requestMetadata.note", "\udfff")
    ),
    "tokens as a string": spoiled("api_key_user", setting("input.inputTokenCount", "1000")),
    "tokens just under the sanity bound": spoiled(
        "api_key_user", setting("input.inputTokenCount", 9_999_000)
    ),
    "timestamp in year 1 at +01:00": spoiled(
        "api_key_user", setting("timestamp", "0001-01-01T00:30:00+01:00")
    ),
    "timestamp 9999-12-31T23:59:59Z": spoiled("api_key_user", setting("timestamp", "9999-12-31T23:59:59Z")),
    "region of 21 characters": spoiled("api_key_user", setting("region", "r" * 21)),
    "account of 11 digits": spoiled("api_key_user", setting("accountId", "1" * 11)),
    "identity ARN over 1,024 bytes": spoiled(
        "api_key_user", setting("identity.arn", "arn:aws:iam::1:user/" + "é" * 600)
    ),
    "unknown service tier": spoiled(
        "invoke_model_sonnet45_cache_1h", setting("output.outputBodyJson.service_tier", "gold")
    ),
}


def every_message() -> Iterator[tuple[str, str | bytes]]:
    for name in invocation_log_names():
        line = log_message(load_invocation_log(name))
        yield f"sample {name}", line
        yield f"sample {name} as bytes", line.encode()
        yield f"sample {name} indented", json.dumps(load_invocation_log(name), indent=2)
    for cases, kind in ((BAD_EVENTS, "bad event"), (HOSTILE_TEXTS, "hostile text"), (ABUSE_CASES, "abuse")):
        for name, message in cases.items():
            yield f"{kind}: {name}", message
            yield f"{kind}: {name} as bytes", message.encode("utf-8", "surrogatepass")


MESSAGES = dict(every_message())


@pytest.mark.parametrize("message", list(MESSAGES.values()), ids=list(MESSAGES))
def test_every_sample_and_bad_input_is_metered_or_refused_as_the_standard_library_does(
    message: str | bytes,
) -> None:
    assert_parity(Meter(prices=PRICES, teams=TEAMS), message)


def test_the_abuse_cases_are_refused_where_a_rule_says_so() -> None:
    # Given the abuse report's cases / When metered / Then the ones no rule refuses are metered (the
    # parity above would also hold if every case failed alike)
    meter = Meter(prices=PRICES, teams=TEAMS)
    outcomes = {name: assert_parity(meter, message) for name, message in ABUSE_CASES.items()}
    assert {name for name, kind in outcomes.items() if kind == "metered"} == {
        "nested depth 900 in inputBodyJson",
        "900 KB prompt",
        "app claim of 256 characters",
        "tokens just under the sanity bound",
        # no rule reads these fields: never part of a key (the archive writes them JSON-escaped)
        "lone surrogate in inferenceRegion",
        "lone surrogate in errorCode",
        "lone surrogate in request metadata",
    }


def test_a_demo_day_is_metered_alike_by_one_meter_remembering_its_callers() -> None:
    meter = Meter(prices=PRICES, teams=TEAMS)
    for record in generate_day(date(2026, 11, 23), records=1500, seed=5):
        assert assert_parity(meter, log_message(record)) == "metered"


def converse_call(*, arn: str, account: str = "111122223333", metadata: dict[str, str] | None = None) -> str:
    record = copy.deepcopy(load_invocation_log("converse_request_metadata"))
    record["identity"]["arn"], record["accountId"] = arn, account
    if metadata is None:
        del record["requestMetadata"]
    else:
        record["requestMetadata"] = metadata
    return log_message(record)


WORKER = "arn:aws:sts::111122223333:assumed-role/Worker/w-1"


def test_one_caller_claiming_two_apps_is_charged_to_each_claim() -> None:
    # Given one meter and one caller whose calls claim two apps, then none / When metered in turn
    meter = Meter(prices=PRICES, teams={"app:Billing": "finance"})
    apps = [
        meter.meter(converse_call(arn=WORKER, metadata=metadata)).attribution.app
        for metadata in ({"app": "Billing"}, {"app": "Search"}, None, {"app": "Billing"})
    ]
    # Then each call is charged to the app it claims, never the one remembered from the caller's last
    assert apps == ["app:Billing", "app:Search", None, "app:Billing"]


def test_one_caller_arn_logged_under_two_accounts_is_charged_to_each_account() -> None:
    meter = Meter(prices=PRICES, teams={})
    accounts = [
        meter.meter(converse_call(arn=WORKER, account=account)).attribution.account
        for account in ("111122223333", "444455556666", "111122223333")
    ]
    assert accounts == ["account:111122223333", "account:444455556666", "account:111122223333"]


class RetaggedProfiles:
    """An application inference profile whose `app` tag an admin changes between two calls."""

    def __init__(self) -> None:
        self.tags = {"app": "SalesReports"}

    def tags_for(self, arn: str) -> dict[str, str]:
        return dict(self.tags) if arn == PROFILE_ARN else {}

    def model_id_for(self, arn: str) -> str | None:
        return "anthropic.claude-3-haiku-20240307-v1:0" if arn == PROFILE_ARN else None


def test_a_call_through_a_profile_follows_the_profile_tags_when_they_change() -> None:
    # Given a meter whose profile resolver reports the profile's current tags
    profiles = RetaggedProfiles()
    meter = Meter(prices=PRICES, teams={}, profiles=profiles)  # type: ignore[arg-type]
    record = copy.deepcopy(load_invocation_log("converse_request_metadata"))
    record["modelId"] = PROFILE_ARN
    del record["requestMetadata"]
    message = log_message(record)
    # When the tag changes between two calls of the same caller
    first = meter.meter(message).attribution.app
    profiles.tags = {"app": "Forecasts"}
    second = meter.meter(message).attribution.app
    # Then each call is charged to the app the tag named at the time (the tags expire: not remembered)
    assert (first, second) == ("app:SalesReports", "app:Forecasts")
