"""The checks of `budgetkeeper doctor` and of the console's Health tab: the whole installation,
with what to fix. A `fail` stops metering or enforcement (or is a secret stored in the clear); a `warn`
is something an operator should know."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core import clock, money
from budgetkeeper.domain.scopes import ScopeKind, split_account
from budgetkeeper.domain.usage import MANTLE_OPERATION
from budgetkeeper.enforcement.principals import why_not_suspendable
from budgetkeeper.metering.usage_lines import HOUR, HOUR_FORMAT, usage_lines
from budgetkeeper.pricing.table import PriceBasis
from budgetkeeper.storage.mantle_calls import call_counts
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper_cli.bedrock_logging import check_regions, regions_in_use
from budgetkeeper_cli.rendering import Column, counted
from budgetkeeper_cli.reports.aggregation import Totals
from budgetkeeper_cli.stack_config import (
    TABLE_FIELDS,
    Stack,
    describe_aws_error,
    tunable_fix,
)
from budgetkeeper_cli.views import budget_items

OK, WARN, FAIL = "ok", "warn", "fail"
COLUMNS = (Column("check"), Column("result"), Column("detail"), Column("fix"))
NO_ROLE = "none"  # the IdentityCenterAdminRoleInUse output of a stack deployed without the role
NO_SENDER = "none"  # the NotificationSenderInUse output of a stack deployed without a sender


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    result: str  # ok | warn | fail
    detail: str
    fix: str | None = None

    def row(self) -> dict[str, Any]:
        return {"check": self.check, "result": self.result, "detail": self.detail, "fix": self.fix}


def diagnose(stack: Stack, regions: tuple[str, ...] | None) -> Iterator[Finding]:
    week = _LastWeek()
    checks: tuple[tuple[str, Callable[[], Iterator[Finding]]], ...] = (
        ("logging", lambda: _logging(stack, regions)),
        ("tables", lambda: _tables(stack)),
        ("state machines", lambda: _state_machines(stack)),
        ("deny policy", lambda: _deny_policy(stack)),
        ("prices", lambda: _prices(week)),
        ("mantle callers", lambda: _mantle_callers(week)),
        ("parameters", lambda: _tunables(stack)),
        ("notifications", lambda: _notifications(stack)),
        ("Slack", lambda: _slack(stack)),
        ("Identity Center", lambda: _identity_center(stack)),
        ("organization", lambda: _organization(stack)),
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


class _LastWeek:
    """The usage lines of the last PRICES_LOOKBACK, read once for the checks that need them."""

    def __init__(self) -> None:
        self.until = clock.now().replace(minute=0, second=0, microsecond=0) + HOUR
        self.since = self.until - PRICES_LOOKBACK
        self._lines: list[RollupItem] | None = None

    @property
    def lines(self) -> list[RollupItem]:
        if self._lines is None:
            self._lines = list(usage_lines(self.since, self.until))
        return self._lines


def _prices(week: _LastWeek) -> Iterator[Finding]:
    """How many metered calls of the last PRICES_LOOKBACK were not priced exactly, from the usage lines."""
    totals = Totals()
    for line in week.lines:
        totals.add_line(line)
    flagged = +totals.flagged
    if not flagged:
        yield Finding(
            "prices", OK, f"all {counted(totals.calls, 'call')} of the last 7 days priced at their exact rate"
        )
        return
    estimated = flagged.pop(str(PriceBasis.ESTIMATE), 0)
    parts = []
    if flagged:
        by_basis = ", ".join(f"{basis} x{count:,}" for basis, count in sorted(flagged.items()))
        parts.append(f"{sum(flagged.values()):,} priced at a fallback rate ({by_basis})")
    if estimated:
        parts.append(
            f"{estimated:,} of models without a price at an estimate ({money.cents(totals.estimated_usd)})"
        )
    yield Finding(
        "prices",
        WARN,
        f"of {counted(totals.calls, 'call')} in the last 7 days: {'; '.join(parts)}",
        "the daily price refresh supplies the rows it finds; for the others, "
        "budgetkeeper prices override MODEL --region REGION --input N --output N --reason WHY",
    )


def _mantle_callers(week: _LastWeek) -> Iterator[Finding]:
    """Whether the bedrock-mantle projects metered lately have callers counted (CloudTrail data
    events): without them `estimate --project` cannot say who spent a project's spend."""
    projects = sorted(
        {
            str(line.principal).removeprefix("project:")
            for line in week.lines
            if line.operation == MANTLE_OPERATION
        }
    )
    if not projects:
        return
    first, last = week.since.strftime(HOUR_FORMAT), (week.until - HOUR).strftime(HOUR_FORMAT)
    uncounted = [project for project in projects if not any(call_counts(project, first, last, limit=1))]
    if not uncounted:
        detail = (
            f"callers counted for the {len(projects):,} bedrock-mantle project(s) metered in the last 7 days"
        )
        yield Finding("mantle callers", OK, detail)
        return
    yield Finding(
        "mantle callers",
        WARN,
        f"{len(uncounted):,} of {len(projects):,} bedrock-mantle project(s) metered in the last 7 days "
        f"have no caller counted ({', '.join(uncounted[:5])}{', ...' if len(uncounted) > 5 else ''}): "
        "`budgetkeeper estimate --project` cannot say who spent them (their spend is metered all the same)",
        "log bedrock-mantle data events with a trail: an advanced event selector for "
        "AWS::BedrockMantle::Project (README, 'Who in a project spent it')",
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
    yield _contact(stack)


def _contact(stack: Stack) -> Finding:
    """Whom owners' notices tell them to ask: `notify/contact`, else a vague "platform team"."""
    tunables, _ = stack.tunables_and_problems()
    if tunables.notify_contact:
        return Finding("owners' contact", OK, f"notices tell owners to ask {tunables.notify_contact}")
    return Finding(
        "owners' contact",
        WARN,
        "no contact set: notices tell owners only to ask 'your Bedrock platform team'",
        "budgetkeeper config set contact platform-team@example.com",
    )


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


def _organization(stack: Stack) -> Iterator[Finding]:
    """Organization mode: budgets written for a member account's principal without its account,
    which receive no spend now that a member's calls are charged to `user:<account>/<name>`."""
    if stack.settings.organization_id is None:
        return
    iam = stack.client("iam")
    unqualified = (ScopeKind.USER, ScopeKind.APIKEY, ScopeKind.ROLE, ScopeKind.SESSION)
    for scope in sorted({item.scope for item in budget_items()}):
        kind, _, name = scope.partition(":")
        if kind not in unqualified or split_account(name, session=kind == ScopeKind.SESSION)[0]:
            continue
        missing = why_not_suspendable(iam, scope)
        if missing and "there is no IAM" in missing:
            yield Finding(
                "organization",
                WARN,
                f"budget {scope} receives no spend: {missing.split(': ', 1)[1]} in this account",
                f"a member account's is {kind}:<account>/{name}: budgetkeeper budget set it there",
            )
    organization = stack.settings.organization_id
    yield Finding("organization", OK, f"organization {organization}: `budgetkeeper org status` per account")
