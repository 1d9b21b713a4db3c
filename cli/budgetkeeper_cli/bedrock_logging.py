"""Bedrock model invocation logging in each Region: is it on, and does it reach the metering?

Bedrock logs only to a CloudWatch Logs group in its own Region. So:
- in the stack's Region, logging must deliver to the stack's `InvocationLogGroupName`, which the
  stack subscribes to its Firehose stream (`InvocationLogSubscription`);
- in any other Region, to the group of a regional collector (`templates/regional-collector.yaml`,
  deployed once per Region): a log group whose subscription forwards each payload to the home
  Region's Firehose stream.

`check_region` says where a Region stands; `enable_region` turns logging on where the group is
ready, with the role Bedrock needs to write to it (one role, one inline policy per Region).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from budgetkeeper_cli.stack_config import Stack

DEFAULT_LOG_GROUP = "/aws/bedrock/modelinvocations"
LOGGING_ROLE_NAME = "BudgetkeeperBedrockInvocationLogging"
COLLECTOR_TEMPLATE = "templates/regional-collector.yaml"


@dataclass(frozen=True, slots=True)
class RegionLogging:
    region: str
    enabled: bool
    log_group: str | None  # where Bedrock delivers, when on
    expected_group: str  # where the metering reads in this Region
    subscribed: bool  # the expected group has a subscription filter to the metering
    problem: str | None  # None: all well
    fix: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def collector_command(region: str, home_region: str, stream: str) -> str:
    return (
        f"sam deploy --template-file {COLLECTOR_TEMPLATE} --region {region} "
        f"--stack-name budgetkeeper-collector-{region} --capabilities CAPABILITY_IAM "
        f"--parameter-overrides HomeRegion={home_region} DeliveryStreamName={stream}"
    )


def _subscribed(logs: Any, group: str, stream: str | None) -> bool:
    try:
        filters = logs.describe_subscription_filters(logGroupName=group)["subscriptionFilters"]
    except logs.exceptions.ResourceNotFoundException:
        return False
    if stream is None:
        return bool(filters)
    # Home: the stack's stream. Elsewhere: the collector's forwarder (a Lambda function).
    return any(
        f":deliverystream/{stream}" in f["destinationArn"] or ":function:" in f["destinationArn"]
        for f in filters
    )


def check_region(
    client: Callable[[str, str], Any], region: str, *, home_region: str, home_group: str, stream: str | None
) -> RegionLogging:
    """Where `region` stands; `client(service, region)` gives a boto3 client."""
    config = client("bedrock", region).get_model_invocation_logging_configuration().get("loggingConfig", {})
    cloudwatch = config.get("cloudWatchConfig") or {}
    group = cloudwatch.get("logGroupName")
    home = region == home_region
    expected = home_group if home else (group or DEFAULT_LOG_GROUP)
    subscribed = _subscribed(client("logs", region), expected, stream if home else None)
    enable = f"budgetkeeper logging enable --regions {region}"
    problem: str | None = None
    fix: str | None = None
    if not subscribed:
        problem = f"log group {expected} has no subscription to the metering"
        fix = (
            "redeploy the stack (its InvocationLogSubscription subscribes the group)"
            if home
            else "deploy the regional collector: "
            + collector_command(region, home_region, stream or "STREAM")
        )
    if not group:
        problem = "model invocation logging is off" + (f"; and {problem}" if problem else "")
        fix = enable if subscribed else f"{fix}; then {enable}"
    elif home and group != home_group:
        problem = f"logging goes to {group}, but the stack meters {home_group}"
        fix = enable
    return RegionLogging(region, bool(group), group, expected, subscribed, problem, fix)


def logging_role_trust(account: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "bedrock.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": account},
                    "ArnLike": {"aws:SourceArn": f"arn:aws:bedrock:*:{account}:*"},
                },
            }
        ],
    }


def logging_role_policy(account: str, region: str, group: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:*",
            }
        ],
    }


def ensure_logging_role(iam: Any, account: str, region: str, group: str) -> str:
    """The role Bedrock assumes to write to `group` in `region` (created once, a policy per Region)."""
    try:
        arn = str(iam.get_role(RoleName=LOGGING_ROLE_NAME)["Role"]["Arn"])
    except iam.exceptions.NoSuchEntityException:
        arn = str(
            iam.create_role(
                RoleName=LOGGING_ROLE_NAME,
                AssumeRolePolicyDocument=json.dumps(logging_role_trust(account)),
                Description="Bedrock model invocation logging to the Budgetkeeper log groups",
            )["Role"]["Arn"]
        )
    iam.put_role_policy(
        RoleName=LOGGING_ROLE_NAME,
        PolicyName=f"invocation-logs-{region}",
        PolicyDocument=json.dumps(logging_role_policy(account, region, group)),
    )
    return arn


def enable_region(client: Callable[[str, str], Any], state: RegionLogging, account: str) -> str:
    """Turn logging on in a Region whose group is subscribed; what was done."""
    role = ensure_logging_role(client("iam", state.region), account, state.region, state.expected_group)
    client("bedrock", state.region).put_model_invocation_logging_configuration(
        loggingConfig={
            "cloudWatchConfig": {"logGroupName": state.expected_group, "roleArn": role},
            # The metering needs the records, not the bodies.
            "textDataDeliveryEnabled": False,
            "imageDataDeliveryEnabled": False,
            "embeddingDataDeliveryEnabled": False,
        }
    )
    return f"logging on to {state.expected_group} (role {role}; prompt and completion bodies not delivered)"


def regions_in_use(stack: Stack, given: tuple[str, ...] | None) -> tuple[str, ...]:
    if given is not None:
        return given
    home = stack.settings.region
    return (home, *(region for region in stack.tunables().regions if region != home))


def check_regions(stack: Stack, regions: tuple[str, ...]) -> list[RegionLogging]:
    return [
        check_region(
            lambda service, region: stack.regional_client(service, region),
            region,
            home_region=stack.settings.region,
            home_group=stack.outputs.get("MeteredLogGroupName", DEFAULT_LOG_GROUP),
            stream=stack.outputs.get("UsageDeliveryStreamName"),
        )
        for region in regions
    ]
