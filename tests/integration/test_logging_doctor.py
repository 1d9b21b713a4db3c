"""`budgetkeeper logging check|enable` and `doctor` on moto (whose Bedrock keeps the logging
configuration), and the regional collector's forwarder run on a real CloudWatch Logs payload."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from devkit.harness.template import REPO_ROOT, load_template
from tests.integration.cli_runner import OperatorCli

HOME = "us-east-1"
GROUP = "/aws/bedrock/modelinvocations"


@pytest.fixture
def cli(stack, settings, capsys) -> OperatorCli:
    return OperatorCli(stack, capsys)


def subscribe(stack, region: str) -> None:
    """What a regional collector does: the Region's group subscribed (to a Firehose stream here:
    moto would invoke a Lambda destination when the filter is put)."""
    import boto3

    bucket = stack.physical_ids["ArchiveBucket"]
    firehose = boto3.client("firehose", region_name=region)
    firehose.create_delivery_stream(
        DeliveryStreamName="metering",
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
        },
    )
    stream = firehose.describe_delivery_stream(DeliveryStreamName="metering")["DeliveryStreamDescription"]
    logs = boto3.client("logs", region_name=region)
    logs.create_log_group(logGroupName=GROUP)
    logs.put_subscription_filter(
        logGroupName=GROUP,
        filterName="metering",
        filterPattern="",
        destinationArn=stream["DeliveryStreamARN"],
        roleArn="arn:aws:iam::123456789012:role/logs",
    )


def logging_config(stack, region: str) -> dict[str, Any]:
    import boto3

    bedrock = boto3.client("bedrock", region_name=region)
    return bedrock.get_model_invocation_logging_configuration().get("loggingConfig", {})


def test_a_fresh_account_has_logging_off_and_check_says_what_to_do(cli: OperatorCli) -> None:
    # Given the stack deployed (its subscription on the group) and logging never turned on
    code, out, _ = cli("logging", "check", "--format", "json")
    assert code == 1
    [home] = json.loads(out)
    assert (home["region"], home["enabled"], home["subscribed"]) == (HOME, False, True)
    assert (home["problem"], home["fix"]) == (
        "model invocation logging is off",
        "budgetkeeper logging enable --regions us-east-1",
    )


def test_a_home_group_without_the_stacks_subscription_is_reported(cli: OperatorCli, stack) -> None:
    logs = stack.client("logs")
    for found in logs.describe_subscription_filters(logGroupName=GROUP)["subscriptionFilters"]:
        logs.delete_subscription_filter(logGroupName=GROUP, filterName=found["filterName"])
    code, out, _ = cli("logging", "check", "--format", "json")
    assert code == 1
    [home] = json.loads(out)
    assert (
        home["problem"]
        == f"model invocation logging is off; and log group {GROUP} has no subscription to the metering"
    )
    assert home["fix"].startswith(
        "redeploy the stack (its InvocationLogSubscription subscribes the group); then"
    )


def test_enable_turns_logging_on_to_the_metered_group_with_a_role_bedrock_can_assume(
    cli: OperatorCli, stack
) -> None:
    # Given the stack's group subscribed to the metering, and logging off
    # When logging is enabled
    out = cli.ok("logging", "enable")
    # Then Bedrock logs to that group, without bodies, through a role only Bedrock of this account assumes
    assert out.startswith(f"us-east-1: logging on to {GROUP} (role arn:aws:iam::123456789012:role/")
    config = logging_config(stack, HOME)
    assert config["cloudWatchConfig"]["logGroupName"] == GROUP
    assert config["textDataDeliveryEnabled"] is False
    role = stack.client("iam").get_role(RoleName="BudgetkeeperBedrockInvocationLogging")["Role"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "bedrock.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": "123456789012"}
    policy = stack.client("iam").get_role_policy(
        RoleName="BudgetkeeperBedrockInvocationLogging", PolicyName="invocation-logs-us-east-1"
    )["PolicyDocument"]
    assert policy["Statement"][0]["Resource"] == (
        f"arn:aws:logs:us-east-1:123456789012:log-group:{GROUP}:log-stream:*"
    )
    # And the check passes; a second enable has nothing to do
    assert json.loads(cli.ok("logging", "check", "--format", "json"))[0]["problem"] is None
    assert "nothing to do" in cli.ok("logging", "enable")


def test_a_region_without_a_collector_is_reported_and_not_enabled(cli: OperatorCli, stack) -> None:
    # Given eu-west-1 in use (the `regions` tunable) and no collector there
    cli.ok("logging", "enable")
    cli.ok("config", "set", "regions", "eu-west-1")
    # When logging is checked and enabled
    code, out, _ = cli("logging", "check", "--format", "json")
    # Then eu-west-1 is reported with the collector to deploy, and enable leaves it off (exit 1)
    assert code == 1
    home, europe = json.loads(out)
    assert (home["region"], home["problem"]) == (HOME, None)
    assert europe["region"] == "eu-west-1"
    assert "sam deploy --template-file templates/regional-collector.yaml --region eu-west-1" in europe["fix"]
    code, out, err = cli("logging", "enable")
    assert code == 1
    assert "eu-west-1: not enabled: model invocation logging is off" in out
    assert "not metered yet in eu-west-1" in err
    assert logging_config(stack, "eu-west-1") == {}


def test_a_region_with_a_collector_is_enabled_to_the_collectors_group(cli: OperatorCli, stack) -> None:
    # Given the collector's group and subscription in eu-west-1
    subscribe(stack, "eu-west-1")
    out = cli.ok("logging", "enable", "--regions", "eu-west-1")
    assert out.startswith(f"eu-west-1: logging on to {GROUP}")
    assert logging_config(stack, "eu-west-1")["cloudWatchConfig"]["logGroupName"] == GROUP
    assert "is not an AWS Region name" in cli.fails(2, "logging", "check", "--regions", "mars-1")


def test_doctor_on_a_fresh_stack_finds_logging_off_says_what_to_fix_and_exits_1(
    cli: OperatorCli, stack
) -> None:
    stack.client("ssm").put_parameter(Name="/budgetkeeper/local/grace_seconds", Value="soon", Type="String")
    code, out, _ = cli("doctor", "--format", "json")
    assert code == 1
    found = {(row["check"], row["result"]) for row in json.loads(out)}
    assert ("logging us-east-1", "fail") in found
    assert ("table budgets", "ok") in found and ("table denies", "ok") in found
    assert ("evaluation state machine", "ok") in found and ("operators' state machine", "ok") in found
    assert ("deny policy", "ok") in found
    assert ("parameters", "fail") in found  # grace_seconds 'soon'
    assert ("operator alerts", "warn") in found
    assert ("Slack", "warn") in found and ("SES sender", "warn") in found
    assert ("Identity Center", "warn") in found
    assert ("owners' contact", "warn") in found  # owners would be told to ask "your platform team"
    fixes = " ".join(row["fix"] or "" for row in json.loads(out))
    assert "budgetkeeper logging enable" in fixes and "budgetkeeper config set contact " in fixes
    table = cli("doctor")[1]
    assert max(len(line) for line in table.splitlines()) <= 120  # details and fixes wrap
    assert max(len(line) for line in cli("--wide", "doctor")[1].splitlines()) > 120
    assert table.endswith("6 to know about\n")  # prices: ok, nothing metered yet


def test_doctor_passes_once_logging_is_on_and_parameters_are_good(cli: OperatorCli, stack) -> None:
    cli.ok("logging", "enable")
    out = cli.ok("doctor")  # exit 0: warnings only
    assert "fail" not in out
    assert out.endswith("0 to fix, 6 to know about\n")
    cli.ok("config", "set", "contact", "platform@example.com")
    assert cli.ok("doctor").endswith("5 to know about\n")
    found = {row["check"]: row for row in json.loads(cli.ok("doctor", "--format", "json"))}
    assert found["owners' contact"]["detail"] == "notices tell owners to ask platform@example.com"


def test_the_regional_collector_forwards_each_payload_unchanged_to_the_home_stream() -> None:
    # Given the forwarder's code from templates/regional-collector.yaml and a CloudWatch Logs payload
    template = load_template(REPO_ROOT / "templates" / "regional-collector.yaml")
    code = template["Resources"]["ForwarderFunction"]["Properties"]["Code"]["ZipFile"]
    payload = gzip.compress(json.dumps({"messageType": "DATA_MESSAGE", "logEvents": []}).encode())
    sent: list[dict[str, Any]] = []

    class Firehose:
        def put_record_batch(self, **arguments: Any) -> dict[str, Any]:
            sent.append(arguments)
            return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "1"}]}

    class Boto3:
        @staticmethod
        def client(service: str, region_name: str) -> Firehose:
            assert (service, region_name) == ("firehose", "us-east-1")
            return Firehose()

    namespace: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME_REGION", "us-east-1")
        patch.setenv("DELIVERY_STREAM", "budgetkeeper-UsageDeliveryStream")
        patch.setitem(__import__("sys").modules, "boto3", Boto3)
        exec(compile(code, "regional-collector.py", "exec"), namespace)
        result = namespace["handler"]({"awslogs": {"data": base64.b64encode(payload).decode()}}, None)
    # Then the gzip bytes went to the home stream as one record, as a subscription to Firehose sends them
    assert sent == [
        {"DeliveryStreamName": "budgetkeeper-UsageDeliveryStream", "Records": [{"Data": payload}]}
    ]
    assert result == {"forwarded": len(payload)}


@pytest.mark.parametrize(
    ("kind", "result", "detail"),
    [
        ("SecureString", "ok", "/budgetkeeper-secrets/local/slack_webhook_url is a SecureString"),
        ("String", "fail", "is a String: the webhook secret is stored in the clear"),
    ],
)
def test_doctor_checks_the_slack_webhook_parameter_and_never_prints_the_url(
    cli: OperatorCli, stack, settings, kind: str, result: str, detail: str
) -> None:
    # Given the Slack webhook stored as a SecureString, or in the clear
    url = "https://hooks.slack.com/services/T000/B000/very-secret-token"
    stack.client("ssm").put_parameter(Name=settings.slack_webhook_parameter, Value=url, Type=kind)
    # When an operator runs the doctor, in each format
    _, out, err = cli("doctor", "--format", "json")
    # Then the Slack check says what it found, and the URL is in no output
    (slack,) = [row for row in json.loads(out) if row["check"] == "Slack"]
    assert slack["result"] == result and detail in slack["detail"]
    for text in (out, err, *cli("doctor")[1:]):
        assert "very-secret-token" not in text and "hooks.slack.com" not in text


def test_doctor_says_whether_the_notification_sender_is_verified_in_ses(stack, settings, capsys) -> None:
    # Given a stack deployed with a sender that is not (yet) verified in SES
    stack.parameters["NotificationSender"] = "budgets@example.com"
    cli = OperatorCli(stack, capsys)

    def sender_row() -> dict[str, Any]:
        (row,) = [
            row for row in json.loads(cli("doctor", "--format", "json")[1]) if row["check"] == "SES sender"
        ]
        return row

    # Then the doctor warns that owners get no e-mail, and says how to verify it
    row = sender_row()
    assert row["result"] == "warn" and "budgets@example.com is not verified in SES" in row["detail"]
    assert "aws ses verify-email-identity --email-address budgets@example.com" in row["fix"]
    # When its domain is verified, it is well
    stack.client("ses").verify_domain_identity(Domain="example.com")
    assert sender_row() == {
        "check": "SES sender",
        "result": "ok",
        "detail": "budgets@example.com, verified",
        "fix": None,
    }


def test_doctor_counts_the_calls_priced_at_a_fallback_rate_or_an_estimate(cli: OperatorCli, stack) -> None:
    from devkit.harness.lambdas import invoke
    from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
    from tests.timeline import now_iso

    # Given three calls metered: Nova Pro in us-east-1 (exact), in Mumbai (no row: the us-east-1
    # rate) and a model without a price (an estimate)
    alice = "arn:aws:iam::123456789012:user/alice"
    calls = [
        converse_message(alice, "amazon.nova-pro-v1:0", 1000, timestamp=now_iso(), region="us-east-1"),
        converse_message(alice, "amazon.nova-pro-v1:0", 1000, timestamp=now_iso(), region="ap-south-1"),
        converse_message(alice, "acme.brand-new-v1:0", 1000, timestamp=now_iso()),
    ]
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload(calls)]))
    # When doctor runs
    _, out, _ = cli("doctor", "--format", "json")
    # Then the prices check warns with both counts
    [prices] = [row for row in json.loads(out) if row["check"] == "prices"]
    assert prices["result"] == "warn"
    assert (
        "of 3 calls in the last 7 days: 1 priced at a fallback rate (region_fallback x1)" in prices["detail"]
    )
    assert "1 of models without a price at an estimate" in prices["detail"]
