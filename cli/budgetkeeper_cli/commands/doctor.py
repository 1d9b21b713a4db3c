"""`budgetkeeper doctor`: the whole installation checked, with what to fix; exit 1 if anything is wrong.

Checks: model invocation logging in each Region in use (and that the metering reads it), the
stack's tables, state machine, deny policy, how many calls of the last days were priced at a
fallback rate or an estimate (pricing.PriceBasis), the tunables in SSM, the notification topic and who is
subscribed to it, SES sending and its sender, the Slack webhook's parameter (its value is never read
or printed), and the IAM Identity Center role. A `fail` is something that stops metering or
enforcement, or a secret stored in the clear (exit 1); a `warn` is something an operator should know
(exit 0).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core import clock, money
from budgetkeeper.metering.usage_lines import HOUR, usage_lines
from budgetkeeper.pricing.table import PriceBasis
from budgetkeeper_cli.commands.invocation_logging import check_regions, regions_in_use, regions_option
from budgetkeeper_cli.parsers import add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, Column, render
from budgetkeeper_cli.stack_config import (
    TABLE_FIELDS,
    Stack,
    add_stack_options,
    connect,
    describe_aws_error,
    translating_aws_errors,
    tunable_fix,
)
from budgetkeeper_cli.usage_report import Totals

OK, WARN, FAIL = "ok", "warn", "fail"
COLUMNS = (Column("check"), Column("result"), Column("detail"), Column("fix"))
NO_ROLE = "none"  # the IdentityCenterAdminRoleInUse output of a stack deployed without the role
NO_SENDER = "none"  # the NotificationSenderInUse output of a stack deployed without a sender

EPILOG = """\
examples:
  budgetkeeper doctor
  budgetkeeper doctor --regions us-east-1,eu-west-1
  budgetkeeper doctor --format json
"""


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    result: str  # ok | warn | fail
    detail: str
    fix: str | None = None

    def row(self) -> dict[str, Any]:
        return {"check": self.check, "result": self.result, "detail": self.detail, "fix": self.fix}


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "doctor",
        "check the whole installation and say what to fix (exit 1 if anything is wrong)",
        docstring_body(__doc__),
        EPILOG,
    )
    parser.add_argument(
        "--regions", metavar="LIST", help="Regions to check (default: the stack's and `regions`)"
    )
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format")
    add_stack_options(parser)
    parser.set_defaults(func=run)


@translating_aws_errors
def run(args: argparse.Namespace) -> int:
    given = regions_option(args.regions)
    stack = connect(args, needs=("budgets_table",))
    findings = list(diagnose(stack, given))
    sys.stdout.write(render(COLUMNS, [finding.row() for finding in findings], args.format))
    failed = [finding for finding in findings if finding.result == FAIL]
    if args.format == "table":
        warned = sum(finding.result == WARN for finding in findings)
        sys.stdout.write(
            f"\n{len(failed)} to fix, {warned} to know about\n" if failed or warned else "\nall well\n"
        )
    return 1 if failed else 0


def diagnose(stack: Stack, regions: tuple[str, ...] | None) -> Iterator[Finding]:
    checks: tuple[tuple[str, Callable[[], Iterator[Finding]]], ...] = (
        ("logging", lambda: _logging(stack, regions)),
        ("tables", lambda: _tables(stack)),
        ("state machines", lambda: _state_machines(stack)),
        ("deny policy", lambda: _deny_policy(stack)),
        ("prices", _prices),
        ("parameters", lambda: _tunables(stack)),
        ("notifications", lambda: _notifications(stack)),
        ("Slack", lambda: _slack(stack)),
        ("Identity Center", lambda: _identity_center(stack)),
    )
    for name, check in checks:
        try:
            yield from check()
        except (BotoCoreError, ClientError) as error:  # one check that cannot run must not hide the others
            yield Finding(name, FAIL, f"could not check: {describe_aws_error(error)}")


def _logging(stack: Stack, regions: tuple[str, ...] | None) -> Iterator[Finding]:
    for state in check_regions(stack, regions_in_use(stack, regions)):
        if state.ok:
            yield Finding(f"logging {state.region}", OK, f"on, to {state.log_group}, metered")
        else:
            yield Finding(f"logging {state.region}", FAIL, str(state.problem), state.fix)


def _tables(stack: Stack) -> Iterator[Finding]:
    dynamodb = stack.client("dynamodb")
    for field in TABLE_FIELDS:
        name = getattr(stack.settings, field)
        label = f"table {field.removesuffix('_table')}"
        if not name:
            yield Finding(label, FAIL, "the stack names no such table", "redeploy the stack (sam deploy)")
            continue
        try:
            status = dynamodb.describe_table(TableName=name)["Table"]["TableStatus"]
        except dynamodb.exceptions.ResourceNotFoundException:
            yield Finding(label, FAIL, f"{name} does not exist", "redeploy the stack (sam deploy)")
            continue
        yield Finding(label, OK if status == "ACTIVE" else WARN, f"{name} {status}")


PRICES_LOOKBACK = timedelta(days=7)


def _prices() -> Iterator[Finding]:
    """How many metered calls of the last PRICES_LOOKBACK were not priced exactly, from the usage lines."""
    until = clock.now().replace(minute=0, second=0, microsecond=0) + HOUR
    totals = Totals()
    for line in usage_lines(until - PRICES_LOOKBACK, until):
        totals.add_line(line)
    flagged = +totals.flagged
    if not flagged:
        yield Finding(
            "prices", OK, f"all {totals.calls:,} calls of the last 7 days priced at their exact rate"
        )
        return
    estimated = flagged.pop(str(PriceBasis.ESTIMATE), 0)
    parts = []
    if flagged:
        by_basis = ", ".join(f"{basis} x{count:,}" for basis, count in sorted(flagged.items()))
        parts.append(f"{sum(flagged.values()):,} priced at a fallback rate ({by_basis})")
    if estimated:
        parts.append(
            f"{estimated:,} of models without a price at an estimate ({money.dollars(totals.estimated_usd)})"
        )
    yield Finding(
        "prices",
        WARN,
        f"of {totals.calls:,} calls in the last 7 days: {'; '.join(parts)}",
        "the daily price refresh supplies the rows it finds; for the others, "
        "budgetkeeper prices override MODEL --region REGION --input N --output N --reason WHY",
    )


def _state_machines(stack: Stack) -> Iterator[Finding]:
    """The evaluation machine (the meter and the sweep start it) and the operators' machine."""
    sfn = stack.client("stepfunctions")
    for label, arn in (
        ("evaluation state machine", stack.settings.evaluation_machine_arn_value),
        ("operators' state machine", stack.settings.operator_machine_arn_value),
    ):
        if not arn:
            yield Finding(label, FAIL, "the stack names none", "redeploy the stack (sam deploy)")
            continue
        try:
            status = sfn.describe_state_machine(stateMachineArn=arn).get("status", "ACTIVE")
        except sfn.exceptions.StateMachineDoesNotExist:
            yield Finding(label, FAIL, f"{arn} does not exist", "redeploy the stack (sam deploy)")
            continue
        yield Finding(label, OK if status == "ACTIVE" else FAIL, f"{arn.rsplit(':', 1)[-1]} {status}")


def _deny_policy(stack: Stack) -> Iterator[Finding]:
    arn = stack.settings.deny_policy_arn_value
    if not arn:
        yield Finding("deny policy", FAIL, "the stack names none", "redeploy the stack (sam deploy)")
        return
    iam = stack.client("iam")
    try:
        policy = iam.get_policy(PolicyArn=arn)["Policy"]
    except iam.exceptions.NoSuchEntityException:
        yield Finding("deny policy", FAIL, f"{arn} does not exist", "redeploy the stack (sam deploy)")
        return
    document = iam.get_policy_version(PolicyArn=arn, VersionId=policy["DefaultVersionId"])["PolicyVersion"]
    statements = document["Document"]["Statement"]
    effects = {statement["Effect"] for statement in statements}
    if effects != {"Deny"}:
        yield Finding("deny policy", FAIL, f"{arn} has {sorted(effects)} statements", "redeploy the stack")
        return
    yield Finding(
        "deny policy", OK, f"{policy['PolicyName']}, attached {policy.get('AttachmentCount', 0)} times"
    )


def _tunables(stack: Stack) -> Iterator[Finding]:
    _, rejected = stack.tunables_and_problems()
    for problem in rejected:
        yield Finding("parameters", FAIL, str(problem), tunable_fix(problem))
    if not rejected:
        count = len(stack.parameter_values())
        yield Finding(
            "parameters", OK, f"{count} set under {stack.settings.parameter_prefix}, the rest default"
        )


def _notifications(stack: Stack) -> Iterator[Finding]:
    # Operators hear through the alerts topic; the events topic only feeds the notifier.
    topic = stack.outputs.get("OperatorAlertsTopicArn")
    if not topic:
        yield Finding("operator alerts", FAIL, "the stack names no topic", "redeploy the stack (sam deploy)")
        return
    sns = stack.client("sns")
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    if subscriptions:
        protocols = sorted({subscription["Protocol"] for subscription in subscriptions})
        yield Finding("operator alerts", OK, f"{len(subscriptions)} subscribed ({', '.join(protocols)})")
    else:
        yield Finding(
            "operator alerts",
            WARN,
            "nobody is subscribed: operators hear of no warning or suspension by e-mail or SMS",
            f"aws sns subscribe --topic-arn {topic} --protocol email --notification-endpoint ops@example.com",
        )
    ses = stack.client("ses")
    quota = ses.get_send_quota()
    if float(quota.get("Max24HourSend", 0)) <= 200:
        yield Finding(
            "SES",
            WARN,
            "in the SES sandbox (200 messages a day, to verified addresses only): "
            "budget owners may not be told",
            "request production access in the SES console, or verify each owner's address",
        )
    else:
        yield Finding("SES", OK, f"{quota['Max24HourSend']:.0f} messages a day")
    yield _sender(stack)


def _sender(stack: Stack) -> Finding:
    sender = stack.outputs.get("NotificationSenderInUse", NO_SENDER)
    if sender == NO_SENDER:
        return Finding(
            "SES sender",
            WARN,
            "no NotificationSender: budget owners get no e-mail",
            "deploy with NotificationSender=<an address or domain verified in SES>",
        )
    identities = [sender, sender.rpartition("@")[2]]
    attributes = stack.client("ses").get_identity_verification_attributes(Identities=identities)
    statuses = attributes["VerificationAttributes"]
    if any(statuses.get(identity, {}).get("VerificationStatus") == "Success" for identity in identities):
        return Finding("SES sender", OK, f"{sender}, verified")
    return Finding(
        "SES sender",
        WARN,
        f"{sender} is not verified in SES: budget owners get no e-mail",
        f"aws ses verify-email-identity --email-address {sender} (or verify its domain)",
    )


def _slack(stack: Stack) -> Iterator[Finding]:
    """The webhook's parameter described, never read: its value is a secret and is not printed."""
    name = stack.settings.slack_webhook_parameter
    described = stack.client("ssm").describe_parameters(
        ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [name]}]
    )["Parameters"]
    put = f"aws ssm put-parameter --name {name} --type SecureString --overwrite --value <the webhook URL>"
    if not described:
        yield Finding("Slack", WARN, f"no {name}: operators get no Slack", put)
    elif described[0]["Type"] != "SecureString":
        yield Finding(
            "Slack",
            FAIL,
            f"{name} is a {described[0]['Type']}: the webhook secret is stored in the clear",
            put,
        )
    else:
        yield Finding("Slack", OK, f"{name} is a SecureString")


def _identity_center(stack: Stack) -> Iterator[Finding]:
    role = stack.outputs.get("IdentityCenterAdminRoleInUse", NO_ROLE)
    if role == NO_ROLE:
        yield Finding(
            "Identity Center",
            WARN,
            "no IdentityCenterAdminRoleArn: SSO sessions (AWSReservedSSO_*) get alerts only, never a deny",
            "deploy with IdentityCenterAdminRoleArn=<a role in the management or delegated-admin account>",
        )
    else:
        yield Finding("Identity Center", OK, f"SSO sessions are denied through {role}")
