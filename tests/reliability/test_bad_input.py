"""Bad input to the usage calculator (issue 12): each case is metered, failed or quarantined, and
counted, and none of them crashes its batch or sinks its neighbours.

Every test sends the real handler, on moto, a Firehose batch holding one good payload beside the bad
input, then checks three things: the good call is metered exactly (DynamoDB totals), the bad input is
where an operator finds it (a `ProcessingFailed` record, or the quarantine object in S3), and the
batch's EMF metrics count it.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import string
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from budgetkeeper.domain.log_records import MAX_TOKENS_PER_CALL
from budgetkeeper.metering import calculator
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import TotalItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from tests.timeline import now_iso, window_id

ACCOUNT = "111122223333"
ALICE = f"arn:aws:iam::{ACCOUNT}:user/alice"
NOVA = "amazon.nova-lite-v1:0"
# Nova Lite on demand, USD per 1M tokens (AWS's published price, written by hand): input, output
NOVA_IN, NOVA_OUT = Decimal("0.06"), Decimal("0.24")
GOOD_IN, GOOD_OUT = 1000, 100
GOOD_COST = (GOOD_IN * NOVA_IN + GOOD_OUT * NOVA_OUT) / Decimal(1_000_000)
FIREHOSE_RECORD_MAX = 1000 * 1024  # bytes: Firehose's maximum record size (API_Record)
LAMBDA_RESPONSE_MAX = 6 * 1024 * 1024  # Lambda's synchronous response limit


def log_record(arn: str = ALICE, model: str = NOVA, **details: Any) -> dict[str, Any]:
    """A good Converse invocation log record (a dict, for tests to spoil)."""
    return json.loads(
        converse_message(arn, model, GOOD_IN, GOOD_OUT, account=ACCOUNT, timestamp=now_iso(), **details)
    )


def good_message() -> str:
    return json.dumps(log_record())


def run(event: dict[str, Any]) -> dict[str, Any]:
    return invoke("UsageCalculatorFunction", event)


def results(response: dict[str, Any]) -> list[str]:
    return [record["result"] for record in response["records"]]


def emf(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """The batch's EMF metrics line, as the handler printed it (the lines of cost per model and
    per team are apart: one line per dimension value)."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    lines = [line for line in lines if "RecordsMetered" in line]
    assert len(lines) == 1, lines
    return lines[0]


def count(metrics: dict[str, Any], name: str) -> float:
    value = metrics[name]
    return value[0] if isinstance(value, list) else value


def quarantined(stack: Any, bucket: str) -> list[dict[str, Any]]:
    s3 = stack.client("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/").get("Contents", [])
    return [
        json.loads(line)
        for item in listing
        for line in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].iter_lines()
    ]


def rollup_cost(scope: str) -> Decimal:
    return sum((item.cost_usd for item in scope_rollups(scope)), Decimal(0))


def rollup_calls(scope: str) -> int:
    return sum(int(item.calls) for item in scope_rollups(scope))


def assert_alice_metered(calls: int = 1) -> None:
    """The good calls, and nothing else, reached alice's rollups and her daily budget's total."""
    assert rollup_calls("user:alice") == calls
    assert rollup_cost("user:alice") == GOOD_COST * calls
    assert TotalItem.get("user:alice|daily", window_id("daily")).spent_usd == GOOD_COST * calls


def archived_lines(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(base64.b64decode(record["data"])).splitlines()]


# --- records Firehose hands over that cannot be decoded at all: ProcessingFailed, FailedRecords ---


def _truncated_gzip() -> bytes:
    whole = cloudwatch_payload([good_message()])
    return whole[: len(whole) // 2]


def _gzipped_json_that_is_not_a_log_payload() -> bytes:
    return gzip.compress(b'{"Records": [{"eventSource": "s3.amazonaws.com"}]}', mtime=0)


@pytest.mark.parametrize(
    "bad_data",
    [_truncated_gzip(), _gzipped_json_that_is_not_a_log_payload()],
    ids=["truncated gzip", "gzipped JSON that is not a CloudWatch Logs payload"],
)
def test_an_undecodable_record_fails_alone_and_is_counted(settings, stack, capsys, bad_data):
    # Given a good payload and a record whose data cannot be decoded
    event = firehose_event([cloudwatch_payload([good_message()]), bad_data])
    # When the batch is metered
    response = run(event)
    # Then only that record fails, handed back unchanged for Firehose's processing-failed prefix
    assert results(response) == ["Ok", "ProcessingFailed"]
    assert base64.b64decode(response["records"][1]["data"]) == bad_data
    # and the good call is metered exactly, the failure counted, nothing quarantined
    assert_alice_metered()
    metrics = emf(capsys)
    assert count(metrics, "FailedRecords") == 1 and count(metrics, "BadEvents") == 0
    assert quarantined(stack, settings.archive_bucket) == []


@pytest.mark.parametrize(
    "bad_base64",
    ["this is not base64!", "QUJDRA=", "QUJD\nRA=="],
    ids=["not the base64 alphabet", "bad padding", "a line break"],
)
def test_a_record_whose_data_is_not_base64_fails_alone_and_is_counted(settings, capsys, bad_base64):
    # Given a batch in which one record's data is not valid base64 (Firehose's own encoding)
    event = firehose_event([cloudwatch_payload([good_message()]), b"placeholder"])
    event["records"][1]["data"] = bad_base64
    # When the batch is metered
    response = run(event)
    # Then the batch does not raise; the record fails, its data valid base64 of the text received
    assert results(response) == ["Ok", "ProcessingFailed"]
    assert base64.b64decode(response["records"][1]["data"], validate=True) == bad_base64.encode()
    # and the good call is metered exactly, the failed record counted
    assert_alice_metered()
    assert count(emf(capsys), "FailedRecords") == 1


# --- log events that are not usable invocation logs: quarantined verbatim, BadEvents ---------------


def _without(key: str) -> str:
    record = log_record()
    del record[key]
    return json.dumps(record)


def _with_tokens(section: str, key: str, value: int) -> str:
    record = log_record()
    record[section][key] = value
    return json.dumps(record)


def _with_identity(arn: str) -> str:
    record = log_record()
    record["identity"] = {"arn": arn}
    return json.dumps(record)  # ensure_ascii: a lone surrogate is written as the escape \ud800


BAD_EVENTS = {
    "JSON that is not an invocation log": '{"eventVersion":"1.08","eventSource":"bedrock.amazonaws.com"}',
    "an array, not an object": "[1, 2, 3]",
    "a log without identity": _without("identity"),
    "a log whose identity has no arn": _with_identity(""),
    "negative input tokens": _with_tokens("input", "inputTokenCount", -1000),
    "negative output tokens": _with_tokens("output", "outputTokenCount", -5),
    "10**15 input tokens": _with_tokens("input", "inputTokenCount", 10**15),
    "cache reads beyond the sanity bound": _with_tokens("input", "cacheReadInputTokenCount", 10_000_000),
    "a control character in the identity ARN": _with_identity(f"arn:aws:iam::{ACCOUNT}:user/al\x07ice"),
    "a lone surrogate in the identity ARN": _with_identity(f"arn:aws:iam::{ACCOUNT}:user/al\ud800ice"),
    "a lone surrogate in the model id": json.dumps(log_record(model="amazon.nova-lite-v1:0\udfff")),
}


@pytest.mark.parametrize("bad_message", list(BAD_EVENTS.values()), ids=list(BAD_EVENTS))
def test_a_bad_event_is_quarantined_verbatim_and_counted(settings, stack, capsys, bad_message):
    # Given a good payload whose second event is not a usable invocation log
    payload = cloudwatch_payload([good_message(), bad_message])
    # When the batch is metered
    response = run(firehose_event([payload]))
    # Then the record is Ok with the good call's archived line only
    assert results(response) == ["Ok"]
    assert [line["principal"] for line in archived_lines(response["records"][0])] == ["user:alice"]
    # and the good call is metered exactly, and nothing of the bad one reached the account
    assert_alice_metered()
    assert rollup_cost(f"account:{ACCOUNT}") == GOOD_COST
    # and the bad event is in the quarantine verbatim, with a reason, and counted
    [line] = quarantined(stack, settings.archive_bucket)
    assert line["message"] == bad_message and line["reason"]
    metrics = emf(capsys)
    assert count(metrics, "BadEvents") == 1 and count(metrics, "FailedRecords") == 0
    assert count(metrics, "RecordsMetered") == 1


def test_the_sanity_bound_itself_is_a_legitimate_call(settings, capsys):
    # Given a call of exactly MAX_TOKENS_PER_CALL tokens (input and output together)
    output = 1_000
    record = log_record()
    record["input"]["inputTokenCount"] = MAX_TOKENS_PER_CALL - output
    record["output"]["outputTokenCount"] = output
    # When metered
    run(firehose_event([cloudwatch_payload([json.dumps(record)])]))
    # Then it is metered at its full price, not quarantined
    expected = ((MAX_TOKENS_PER_CALL - output) * NOVA_IN + output * NOVA_OUT) / Decimal(1_000_000)
    assert rollup_cost("user:alice") == expected
    assert count(emf(capsys), "BadEvents") == 0


# --- an unknown ARN as modelId: the unknown-model rule (0 USD, counted, never another model) -------

# The modelId as logged, and the key the rollup keeps: the ARN itself, or the id a foundation-model ARN
# names (pricing.resolve_model_id strips those), never a priced model's id.
UNKNOWN_MODEL_ARNS = {
    "custom model": (f"arn:aws:bedrock:us-east-1:{ACCOUNT}:custom-model/amazon.nova-lite-v1:0/a1b2c3d4e5f6",)
    * 2,
    "imported model": (f"arn:aws:bedrock:us-east-1:{ACCOUNT}:imported-model/k2h9p0q1r2s3",) * 2,
    "application profile Bedrock does not know": (
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/zz9plural",
    )
    * 2,
    "not a Bedrock ARN": (f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/amazon-nova-lite",) * 2,
}


class BedrockWithoutProfiles:
    """Bedrock's control plane answering as it does for a profile that does not exist. Moto does not
    implement GetInferenceProfile (it raises NotImplementedError, which real Bedrock never does)."""

    def _not_found(self, operation: str) -> ClientError:
        error = {"Error": {"Code": "ResourceNotFoundException", "Message": "profile not found"}}
        return ClientError(error, operation)  # type: ignore[arg-type]

    def get_inference_profile(self, **_: Any) -> dict[str, Any]:
        raise self._not_found("GetInferenceProfile")

    def list_tags_for_resource(self, **_: Any) -> dict[str, Any]:
        raise self._not_found("ListTagsForResource")


@pytest.mark.parametrize(
    ("model_arn", "model_key"), list(UNKNOWN_MODEL_ARNS.values()), ids=list(UNKNOWN_MODEL_ARNS)
)
def test_an_unknown_model_arn_is_counted_at_zero_never_as_another_model(
    settings, capsys, monkeypatch, model_arn, model_key
):
    # Given a good call and a call of 5,000 tokens to an ARN the price table cannot price
    monkeypatch.setattr(
        calculator, "_inference_profiles", lambda region: InferenceProfiles(BedrockWithoutProfiles())
    )
    bob = f"arn:aws:iam::{ACCOUNT}:user/bob"
    unknown = json.dumps(
        log_record(arn=bob, model=model_arn) | {"input": {"inputTokenCount": 5000}, "output": {}}
    )
    # When the batch is metered
    response = run(firehose_event([cloudwatch_payload([good_message(), unknown])]))
    # Then both calls are counted; the unknown one at 0 USD under its own key, never Nova Lite's price
    assert results(response) == ["Ok"]
    assert_alice_metered()
    [rollup] = scope_rollups("user:bob")
    assert (rollup.model, rollup.calls, rollup.unpriced_calls, rollup.cost_usd) == (model_key, 1, 1, 0)
    assert rollup.input_tokens == 5000
    assert rollup_cost(f"account:{ACCOUNT}") == GOOD_COST
    archived = archived_lines(response["records"][0])[1]
    assert (archived["model_id"], archived["price_status"]) == (model_arn, "unknown_model")
    # and the metric counts it
    metrics = emf(capsys)
    assert count(metrics, "UnknownModelCalls") == 1 and count(metrics, "RecordsMetered") == 2


def test_a_foundation_model_the_table_lacks_is_estimated_under_its_own_key_never_as_another(
    settings, capsys, monkeypatch
):
    # Given a good call and a call of 5,000 tokens to a foundation model no price table has yet
    monkeypatch.setattr(
        calculator, "_inference_profiles", lambda region: InferenceProfiles(BedrockWithoutProfiles())
    )
    model_arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v9:0"
    unknown = json.dumps(
        log_record(arn=f"arn:aws:iam::{ACCOUNT}:user/bob", model=model_arn)
        | {"input": {"inputTokenCount": 5000}, "output": {}}
    )
    # When the batch is metered
    response = run(firehose_event([cloudwatch_payload([good_message(), unknown])]))
    # Then it counts toward budgets at the flagged estimate under its own key (README, "Estimates"),
    # neither at 0 nor at Nova Lite's price
    assert results(response) == ["Ok"]
    assert_alice_metered()
    [rollup] = scope_rollups("user:bob")
    assert (rollup.model, rollup.calls, rollup.estimated_calls, rollup.unpriced_calls) == (
        "amazon.nova-lite-v9:0", 1, 1, 0,
    )  # fmt: skip
    assert rollup.cost_usd == rollup.estimated_cost_usd > 5000 * NOVA_IN / Decimal(1_000_000)
    archived = archived_lines(response["records"][0])[1]
    assert (archived["model_id"], archived["price_status"]) == (model_arn, "estimated")
    metrics = emf(capsys)
    assert count(metrics, "EstimatedCalls") == 1 and count(metrics, "UnknownModelCalls") == 0


# --- records at Firehose's 1,000 KiB maximum -------------------------------------------------------


def _random_text(rng: random.Random, size: int) -> str:
    """Text gzip cannot shrink much, so that a compressed record still holds few calls."""
    return "".join(rng.choices(string.ascii_letters + string.digits, k=size))


def _max_extracted_record(rng: random.Random) -> tuple[bytes, int]:
    """Newline-delimited log messages (Firehose's own extraction) of exactly the maximum size."""
    lines = []
    while True:
        line = json.dumps(log_record(prompt=_random_text(rng, 3000))) + "\n"
        if sum(map(len, lines)) + len(line) > FIREHOSE_RECORD_MAX - 4000:
            break
        lines.append(line)
    room = FIREHOSE_RECORD_MAX - sum(map(len, lines))
    last = json.dumps(log_record(prompt="")) + "\n"
    lines.append(json.dumps(log_record(prompt="x" * (room - len(last)))) + "\n")
    data = "".join(lines).encode()
    assert len(data) == FIREHOSE_RECORD_MAX
    return data, len(lines)


def _max_gzip_record(rng: random.Random) -> tuple[bytes, int]:
    """A gzipped CloudWatch Logs payload just under the maximum size."""
    messages: list[str] = []
    data = cloudwatch_payload(messages)
    while True:
        step = [json.dumps(log_record(prompt=_random_text(rng, 3000))) for _ in range(20)]
        bigger = cloudwatch_payload(messages + step)
        if len(bigger) > FIREHOSE_RECORD_MAX:
            break
        messages, data = messages + step, bigger
    assert FIREHOSE_RECORD_MAX - 60_000 < len(data) <= FIREHOSE_RECORD_MAX
    return data, len(messages)


def test_records_at_the_firehose_maximum_are_metered_within_the_response_limit(settings, capsys):
    # Given a batch of one small payload and two records at Firehose's 1,000 KiB maximum
    rng = random.Random(12)
    extracted, extracted_calls = _max_extracted_record(rng)
    gzipped, gzipped_calls = _max_gzip_record(rng)
    event = firehose_event([cloudwatch_payload([good_message()]), extracted, gzipped])
    # When the batch is metered
    response = run(event)
    # Then every call is metered exactly once, and the response stays within Lambda's 6 MB
    assert results(response) == ["Ok", "Ok", "Ok"]
    assert_alice_metered(calls=1 + extracted_calls + gzipped_calls)
    assert len(json.dumps(response).encode()) < LAMBDA_RESPONSE_MAX
    metrics = emf(capsys)
    assert count(metrics, "RecordsMetered") == 1 + extracted_calls + gzipped_calls
    assert count(metrics, "BadEvents") == 0 and count(metrics, "FailedRecords") == 0


# --- unicode and control characters in principal names and request metadata -----------------------


def test_a_principal_name_outside_iams_characters_is_charged_as_unknown_with_its_raw_arn(settings, capsys):
    # Given a call whose user name has characters IAM names cannot have (printable unicode)
    odd_arn = f"arn:aws:iam::{ACCOUNT}:user/alicé-ünïcode✓"
    odd = json.dumps(log_record(arn=odd_arn), ensure_ascii=False)
    # When it is metered beside a good call
    response = run(firehose_event([cloudwatch_payload([good_message(), odd])]))
    # Then it is charged to `unknown:<raw ARN>` and to its account, never to a guessed user
    assert results(response) == ["Ok"]
    assert_alice_metered()
    assert rollup_cost(f"unknown:{odd_arn}") == GOOD_COST
    assert rollup_cost(f"account:{ACCOUNT}") == GOOD_COST * 2
    # and the archived lines stay valid JSON, holding the raw ARN
    archived = archived_lines(response["records"][0])
    assert [line["principal"] for line in archived] == ["user:alice", f"unknown:{odd_arn}"]
    assert archived[1]["identity_arn"] == odd_arn
    assert count(emf(capsys), "BadEvents") == 0


APP_CLAIMS = {
    "printable unicode": ("Chätbot✓", "app:Chätbot✓"),
    "a control character": ("Chat\x00bot", None),
    "a newline": ("Chatbot\n", None),
    "a lone surrogate": ("Chat\ud800bot", None),
    "surrounding spaces": (" Chatbot ", None),
}


@pytest.mark.parametrize(("claimed", "app_scope"), list(APP_CLAIMS.values()), ids=list(APP_CLAIMS))
def test_request_metadata_names_an_app_only_when_printable(settings, capsys, claimed, app_scope):
    # Given a call whose requestMetadata claims an app, and other metadata with control characters
    metadata = {"app": claimed, "ticket\t": "line one\nline two\x1b[31m"}
    claim = json.dumps(log_record(request_metadata=metadata))
    # When it is metered beside a good call
    response = run(firehose_event([cloudwatch_payload([good_message(), claim])]))
    # Then the call is metered (to alice: twice the good cost) and the app is charged only when printable
    assert results(response) == ["Ok"]
    assert rollup_cost("user:alice") == GOOD_COST * 2
    archived = archived_lines(response["records"][0])
    assert archived[1]["app"] == app_scope
    if app_scope is not None:
        assert rollup_cost(app_scope) == GOOD_COST
    assert count(emf(capsys), "BadEvents") == 0


# --- a call a guardrail blocked ---------------------------------------------------------------------


def test_a_guardrail_blocked_call_is_counted_as_a_call_of_zero_tokens(settings, capsys):
    # Given a call a guardrail blocked: no token counts, no errorCode, the intervention in the body
    blocked = log_record()
    del blocked["input"]["inputTokenCount"], blocked["output"]["outputTokenCount"]
    blocked["output"]["outputBodyJson"] = {"amazon-bedrock-guardrailAction": "INTERVENED", "output": {}}
    # When it is metered beside a good call
    response = run(firehose_event([cloudwatch_payload([good_message(), json.dumps(blocked)])]))
    # Then it is one more call for alice, of 0 tokens and 0 USD, and not a bad event
    assert results(response) == ["Ok"]
    assert rollup_calls("user:alice") == 2
    assert rollup_cost("user:alice") == GOOD_COST
    assert TotalItem.get("user:alice|daily", window_id("daily")).spent_usd == GOOD_COST
    [rollup] = scope_rollups("user:alice")
    assert (rollup.input_tokens, rollup.output_tokens) == (GOOD_IN, GOOD_OUT)
    assert archived_lines(response["records"][0])[1]["tokens"]["input"] == 0
    metrics = emf(capsys)
    assert count(metrics, "RecordsMetered") == 2 and count(metrics, "BadEvents") == 0
