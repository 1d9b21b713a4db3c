"""Organization mode on moto: member accounts as templates/member-account.yaml leaves them, and
CloudWatch Logs' cross-account delivery from their invocation log to the central stack.

moto serves every account (STS AssumeRole into an account gives credentials there), but its
CloudWatch Logs neither accepts a subscription to a destination nor delivers across accounts. So
a member's subscription is what AWS checks and does, played here from what moto stores: the
destination (created from template.yaml) must exist in the central account and its access policy
must admit the member's organization; each log event the filter matches is then delivered as AWS
does it, a gzipped DATA_MESSAGE owned by the member account, into the destination's Firehose
stream, whose transform (the usage calculator) the harness invokes as Firehose would.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import boto3

from budgetkeeper.core import clock
from devkit.harness.lambdas import invoke
from devkit.harness.logs import DEFAULT_LOG_GROUP, cloudwatch_payload, firehose_event
from devkit.harness.stack import ACCOUNT_ID, REGION, LocalStack
from devkit.harness.template import TEMPLATE_PATH, load_template

ORGANIZATION_ID = "o-a1b2c3d4e5"
MEMBER_TEMPLATE_PATH = Path(TEMPLATE_PATH).parent / "templates" / "member-account.yaml"
# The role AWS Organizations creates in an account it creates: the administrator's way in.
ADMIN_ROLE = "OrganizationAccountAccessRole"


def join_organization(account_id: str, name: str) -> None:
    """Make `account_id` an account of the organization moto holds (the caller's, its management
    account). moto gives the accounts it creates ids of its own; the members here have theirs."""
    organizations = boto3.client("organizations", region_name=REGION)
    with mock.patch("moto.organizations.models.utils.make_random_account_id", return_value=account_id):
        organizations.create_account(AccountName=name, Email=f"aws+{name}@example.com")


class SubscriptionRefused(RuntimeError):
    """What PutSubscriptionFilter answers when the destination does not admit the account."""


@dataclass
class MemberAccount:
    """One member account on moto, with the member stack's deny policy, enforcement role and
    invocation log subscription."""

    account_id: str
    organization_id: str = ORGANIZATION_ID
    log_group: str = DEFAULT_LOG_GROUP
    destination_arn: str | None = None
    filter_pattern: str | None = None
    _credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def client(self, service: str) -> Any:
        """A client of this account, with an administrator's credentials."""
        if not self._credentials:
            sts = boto3.client("sts", region_name=REGION)
            assumed = sts.assume_role(
                RoleArn=f"arn:aws:iam::{self.account_id}:role/{ADMIN_ROLE}", RoleSessionName="admin"
            )["Credentials"]
            self._credentials = {
                "aws_access_key_id": assumed["AccessKeyId"],
                "aws_secret_access_key": assumed["SecretAccessKey"],
                "aws_session_token": assumed["SessionToken"],
            }
        return boto3.client(service, region_name=REGION, **self._credentials)

    def deploy(self, stack: LocalStack) -> MemberAccount:
        """What the member stack creates here, from templates/member-account.yaml's own properties.

        moto does not evaluate trust policies, so the enforcement role's trust is written as the
        template's, resolved; the IAM evaluator proves it (tests/unit/template/test_member_template.py).
        """
        resources = load_template(MEMBER_TEMPLATE_PATH)["Resources"]
        iam = self.client("iam")
        policy = resources["BedrockDenyPolicy"]["Properties"]
        iam.create_policy(
            PolicyName=policy["ManagedPolicyName"],
            Path=policy["Path"],
            PolicyDocument=json.dumps(policy["PolicyDocument"]),
        )
        role = resources["EnforcementRole"]["Properties"]
        central_role = f"arn:aws:iam::{ACCOUNT_ID}:role/{stack.physical_name('DenyFunctionRole')}"
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"},
                    "Action": "sts:AssumeRole",
                    "Condition": {
                        "ArnEquals": {"aws:PrincipalArn": central_role},
                        "StringEquals": {"aws:PrincipalOrgID": self.organization_id},
                    },
                }
            ],
        }
        iam.create_role(RoleName=role["RoleName"], AssumeRolePolicyDocument=json.dumps(trust))
        self.client("logs").create_log_group(logGroupName=self.log_group)
        destination = stack.destination_arns.get("OrganizationLogDestination")
        if destination is not None:  # a stack without OrganizationId has none: no subscription then
            subscription = resources["InvocationLogSubscription"]["Properties"]
            self.subscribe(destination, subscription["FilterPattern"])
        return self

    def subscribe(self, destination_arn: str, filter_pattern: str) -> None:
        """PutSubscriptionFilter to the central destination, refused as AWS refuses it when the
        destination's access policy does not admit this account."""
        central_logs = boto3.client("logs", region_name=destination_arn.split(":")[3])
        name = destination_arn.rsplit(":", 1)[-1]
        found = [
            destination
            for destination in central_logs.describe_destinations(DestinationNamePrefix=name)["destinations"]
            if destination["arn"] == destination_arn
        ]
        if not found:
            raise SubscriptionRefused(f"ResourceNotFoundException: no destination {destination_arn}")
        policy = json.loads(found[0].get("accessPolicy") or '{"Statement": []}')
        if not _admits(policy, self.organization_id):
            raise SubscriptionRefused(
                f"AccessDeniedException: account {self.account_id} may not subscribe to {destination_arn}"
            )
        self.destination_arn, self.filter_pattern = destination_arn, filter_pattern

    def log_invocations(self, messages: list[str]) -> Any:
        """Bedrock writes `messages` to this account's invocation log; CloudWatch Logs delivers the
        matching ones through the destination. The usage calculator's Firehose response, or None
        when the log group has no subscription (nothing is delivered then)."""
        logs = self.client("logs")
        stream = "aws/bedrock/modelinvocations"
        timestamp_ms = int(clock.now().timestamp() * 1000)
        if not logs.describe_log_streams(logGroupName=self.log_group, logStreamNamePrefix=stream)[
            "logStreams"
        ]:
            logs.create_log_stream(logGroupName=self.log_group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=self.log_group,
            logStreamName=stream,
            logEvents=[{"timestamp": timestamp_ms, "message": message} for message in messages],
        )
        if self.destination_arn is None:
            return None
        matching = [
            message for message in messages if _matches_invocation_filter(message, self.filter_pattern)
        ]
        payload = cloudwatch_payload(
            matching,
            log_group=self.log_group,
            log_stream=stream,
            owner=self.account_id,
            timestamp_ms=timestamp_ms,
        )
        central_logs = boto3.client("logs", region_name=self.destination_arn.split(":")[3])
        name = self.destination_arn.rsplit(":", 1)[-1]
        (destination,) = central_logs.describe_destinations(DestinationNamePrefix=name)["destinations"]
        target = destination["targetArn"]
        firehose = boto3.client("firehose", region_name=target.split(":")[3])
        firehose.put_record_batch(DeliveryStreamName=target.rsplit("/", 1)[-1], Records=[{"Data": payload}])
        return invoke("UsageCalculatorFunction", firehose_event([payload], stream_arn=target))


def _admits(policy: dict[str, Any], organization_id: str) -> bool:
    """Whether a destination's access policy lets an account of the organization subscribe."""
    for statement in policy.get("Statement", []):
        actions = statement.get("Action")
        actions = [actions] if isinstance(actions, str) else actions or []
        condition = statement.get("Condition", {}).get("StringEquals", {})
        if (
            statement.get("Effect") == "Allow"
            and "logs:PutSubscriptionFilter" in actions
            and condition.get("aws:PrincipalOrgID") == organization_id
        ):
            return True
    return False


def _matches_invocation_filter(message: str, filter_pattern: str | None) -> bool:
    """The member stack's filter, `{ $.schemaType = "ModelInvocationLog" }`, as CloudWatch applies it."""
    if filter_pattern != '{ $.schemaType = "ModelInvocationLog" }':
        raise ValueError(f"the harness knows the member stack's filter only, not {filter_pattern!r}")
    try:
        record = json.loads(message)
    except ValueError:
        return False
    return isinstance(record, dict) and record.get("schemaType") == "ModelInvocationLog"
