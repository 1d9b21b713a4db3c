"""`make demo-org`: organization mode on a local AWS. One central stack meters and enforces for two
member accounts; alice has an IAM user in each; her person budget adds up both, and when she is
over it she is denied in both accounts, each through its own enforcement role.

Runs moto as a server (it serves every account through STS), creates the central stack from
template.yaml with OrganizationId, runs `budgetkeeper org enable`, deploys what
templates/member-account.yaml creates to the two member accounts, and sends their calls through
the CloudWatch Logs destination to the central calculator (devkit.harness.organization).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import boto3

from budgetkeeper.core import clock
from devkit.demo import GRACE, Narrator, cli, heading, say, settle
from devkit.harness.clock import ManualClock
from devkit.harness.logs import converse_message
from devkit.harness.organization import MemberAccount, join_organization
from devkit.harness.server import local_aws
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import WaitControl, real_handlers

ACCOUNTS = {"111122223333": "product", "444455556666": "research"}
NOVA_PRO = "amazon.nova-pro-v1:0"  # 0.80 USD per 1M input tokens
PERSON = "alice.martin"
LIMIT = "5"
MEMBER_DENY = "policy/budgetkeeper/BudgetkeeperBedrockDeny"


def calls(account: str, user: str, usd: str, at: datetime) -> list[str]:
    """Converse calls of `user` in `account` worth `usd` in all, one per 0.50 USD."""
    each = Decimal("0.50")
    count = int(Decimal(usd) / each)
    tokens = int(each / Decimal("0.0000008"))
    arn = f"arn:aws:iam::{account}:user/{user}"
    return [
        converse_message(
            arn, NOVA_PRO, tokens, account=account, timestamp=(at + timedelta(seconds=n)).isoformat()
        )
        for n in range(count)
    ]


def denied_in(member: MemberAccount) -> str:
    """Who holds the deny policy in the member account, read from its own IAM."""
    arn = f"arn:aws:iam::{member.account_id}:{MEMBER_DENY}"
    users = member.client("iam").list_entities_for_policy(PolicyArn=arn)["PolicyUsers"]
    return ", ".join(sorted(user["UserName"] for user in users)) or "nobody"


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    say("Bedrock Budgetkeeper, organization mode: one person, two AWS accounts, one budget (moto).")
    started = time.monotonic()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    with local_aws() as endpoint:
        organizations = boto3.client("organizations")
        organization = organizations.create_organization(FeatureSet="ALL")["Organization"]
        stack = LocalStack(
            stack_name="budgetkeeper-org",
            environment_name="org",
            endpoint_url=endpoint,
            parameters={"OrganizationId": organization["Id"]},
        ).create()
        stack_name = stack.publish_outputs()
        stack.client("ssm").put_parameter(Name="/budgetkeeper/org/log_level", Value="ERROR", Type="String")
        options = ["--stack-name", stack_name]
        say(f"Local AWS at {endpoint}. The central account {organization['MasterAccountId']} is the")
        say(f"management account of organization {organization['Id']}; the stack {stack_name} runs there.")
        now = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
        day_clock = ManualClock(now)
        with clock.use(day_clock), stack.activated(), real_handlers(stack, WaitControl(max_wait_seconds=3)):
            heading("1. Set up: trusted access, the destination, the member stacks")
            say("StackSets may not deploy to the organization yet: the command says what to run.")
            say("  " + cli("org", "enable", *options, expect=1).strip())
            organizations.enable_aws_service_access(
                ServicePrincipal="member.org.stacksets.cloudformation.amazonaws.com"
            )
            say("After `aws cloudformation activate-organizations-access`:")
            cli("org", "enable", "--regions", "us-east-1", *options)
            say("StackSets deploys templates/member-account.yaml to both accounts: the invocation log's")
            say("subscription to the central destination, the deny policy, the BudgetkeeperEnforcement role.")
            for account, name in ACCOUNTS.items():
                join_organization(account, name)
            members = {
                account: MemberAccount(account, organization["Id"]).deploy(stack) for account in ACCOUNTS
            }
            for member in members.values():
                member.client("iam").create_user(UserName="alice")

            heading("2. Alice is one person with an IAM user in each account")
            for account in ACCOUNTS:
                cli("person", "add", PERSON, f"user:{account}/alice", *options)
            cli("budget", "set", f"person:{PERSON}", "--window", "daily", "--limit", LIMIT, "--grace", GRACE,
                "--reason", "one budget for alice, wherever she works", *options)  # fmt: skip

            heading("3. Her calls in both accounts reach the central calculator through the destination")
            narrator = Narrator(stack)
            for hour, (account, usd) in enumerate((("111122223333", "3.00"), ("444455556666", "2.50"))):
                day_clock.set(now + timedelta(hours=hour))
                at = day_clock().strftime("%H:%M")
                say(f"{at} alice calls Bedrock in {ACCOUNTS[account]} ({account}): {usd} USD")
                members[account].log_invocations(calls(account, "alice", usd, day_clock()))
                settle(stack)
                narrator.tell(at)
            say()
            say("Each account's calls alone are under 5 USD; as one person she is over it. Denied where:")
            for account, member in members.items():
                say(f"  {ACCOUNTS[account]} ({account}): BudgetkeeperBedrockDeny on {denied_in(member)}")
            say("Her next call in either account is refused by IAM; the central account's IAM is untouched.")
            cli("org", "status", *options)

            heading("4. Midnight: her window refreshes, and both denies are lifted")
            day_clock.set(now.replace(hour=0) + timedelta(days=1))
            settle(stack, until_idle=True)
            narrator.tell("00:00")
            for account, member in members.items():
                say(f"  {ACCOUNTS[account]} ({account}): denied now: {denied_in(member)}")
    say()
    say(f"Done in {time.monotonic() - started:.0f} s. docs/organization.md and the README tell the rest.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
