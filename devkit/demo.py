"""`make demo`: a realistic day of Bedrock traffic through the whole stack, on a local AWS.

Runs moto as a server on 127.0.0.1, creates the stack from template.yaml, and then:
0. day one: `budgetkeeper doctor` finds invocation logging off, `logging enable` turns it on, and
   the teams and users are created with `team create` and `user create`;
1. meters the day's invocation logs offline from S3 (`budgetkeeper meter`), then one batch job
   and one bedrock-mantle project, which no invocation log records (devkit.demo_unlogged);
2. streams the same day through the usage calculator in Firehose-shaped batches, hour by hour,
   with budgets set by the `budgetkeeper` CLI, and tells the life of each budget from the
   notifications the workflow publishes: warning, critical, grace, suspension (the deny policy
   read back from IAM), an operator's emergency restore, and the refresh at midnight; under each
   event, what people received: the operators' text notice (SMS), owners' e-mails (HTML written to
   a folder), and at the end one e-mail's text and one Slack message as Slack got it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from budgetkeeper.core import clock, money
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper_cli.main import main as budgetkeeper
from budgetkeeper_cli.rendering import counted
from devkit import demo_data
from devkit.demo_unlogged import part_unlogged
from devkit.harness.clock import LiveClock, ManualClock
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, firehose_event, log_message
from devkit.harness.server import local_aws
from devkit.harness.slack import LocalSlack
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import WaitControl, real_handlers

EVENTS_PER_PAYLOAD = 25  # CloudWatch Logs batches events into one subscription payload
PAYLOADS_PER_BATCH = 20  # a Firehose processor batch (1 MB buffer) holds about this many
GRACE = "4s"
SENDER = "budgets@example.com"  # the verified SES identity owners' e-mail comes from


# What the console says on every page of `make console`: whose clock it shows.
LIVE_CLOCK = (
    "Demo on moto: the clock runs live from {moment:%Y-%m-%d %H:%M} UTC, where the demo's day ended, "
    "and the workflow's waits follow it: a suspension for 15 minutes lasts 15 minutes."
)


@contextlib.contextmanager
def live_clock(waits: WaitControl, start: datetime) -> Iterator[LiveClock]:
    """From `start` on, time runs at real speed and the workflow's waits last what they say, on
    that clock: the day's fast-forward (waits released at once) ends."""
    live = LiveClock(start)
    with clock.use(live):
        waits.released.clear()
        waits.follow_clock = True
        yield live


def say(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def heading(text: str) -> None:
    say()
    say(text)
    say("=" * len(text))


def cli(*args: str, shown_args: Sequence[str] | None = None, expect: int = 0) -> str:
    """Run a `budgetkeeper` command as an operator would; show what it printed; return stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = budgetkeeper(list(args))
    say(f"$ budgetkeeper {' '.join(_quoted(a) for a in (shown_args or args))}")
    for line in out.getvalue().rstrip("\n").splitlines():
        say(f"  {line}")
    if code != 0:
        say(f"  (exit {code})")
    if code != expect:
        raise SystemExit(f"budgetkeeper {' '.join(args)} failed ({code}): {err.getvalue()}")
    return err.getvalue()


def _quoted(arg: str) -> str:
    return f'"{arg}"' if " " in arg else arg


class Narrator:
    """Reads the workflow's notifications from an SQS queue subscribed to the events topic."""

    def __init__(self, stack: LocalStack) -> None:
        self._sqs = stack.client("sqs")
        self._queue = self._sqs.create_queue(QueueName="demo-budget-events")["QueueUrl"]
        queue_arn = self._sqs.get_queue_attributes(QueueUrl=self._queue, AttributeNames=["QueueArn"])
        stack.client("sns").subscribe(
            TopicArn=stack.physical_ids["BudgetEventsTopic"],
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            Attributes={"RawMessageDelivery": "true"},
        )

    def events(self) -> Iterator[dict[str, Any]]:
        while True:
            messages = self._sqs.receive_message(QueueUrl=self._queue, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not messages:
                return
            for message in messages:
                self._sqs.delete_message(QueueUrl=self._queue, ReceiptHandle=message["ReceiptHandle"])
                yield json.loads(message["Body"])

    def tell(self, clock: str) -> list[dict[str, Any]]:
        told = sorted(self.events(), key=lambda event: event["at"])
        for event in told:
            say(f"  [{clock}] {describe(event)}")
        return told


class Mailroom:
    """What people received, read back from the local AWS: the operators' topic (SNS), owners'
    e-mail (SES, each HTML body written to `folder`) and Slack (a local incoming webhook)."""

    def __init__(self, stack: LocalStack, waits: WaitControl, slack: LocalSlack, folder: str) -> None:
        self._topic = stack.physical_ids["OperatorAlertsTopic"]
        self._waits = waits
        self.slack = slack
        self.folder = folder
        self._notices_seen = 0
        self.mails: list[Any] = []

    def tell(self) -> None:
        from moto.ses.models import ses_backends
        from moto.sns.models import sns_backends

        from devkit.harness.stack import ACCOUNT_ID, REGION

        self._waits.deliveries.drain()  # SNS invokes the notifier asynchronously
        notices = sns_backends[ACCOUNT_ID][REGION].topics[self._topic].sent_notifications
        for _, message, *_ in notices[self._notices_seen :]:
            say(f"      operators (SMS): {json.loads(message)['sms']}")
        self._notices_seen = len(notices)
        for mail in ses_backends[ACCOUNT_ID][REGION].sent_messages[len(self.mails) :]:
            self.mails.append(mail)
            [to] = mail.destinations["ToAddresses"]
            path = os.path.join(self.folder, f"{len(self.mails):02d}-{to}.html")
            with open(path, "w", encoding="utf-8") as html:
                html.write(mail.body)
            say(f"      {to} (e-mail): {mail.subject}  -> {os.path.basename(path)}")

    def show(self) -> None:
        say(f"  {len(self.mails)} e-mails to owners, as HTML, in {self.folder}")
        suspended = [p for p in self.slack.payloads if p["text"].startswith("Bedrock access suspended")]
        if suspended:
            say("  One Slack message, as the incoming webhook got it (Block Kit):")
            for line in json.dumps(suspended[0], indent=2, ensure_ascii=False).splitlines():
                say(f"    {line}")


def describe(event: dict[str, Any]) -> str:
    where = f"{event['scope']} ({event['window']})" if event.get("window") else event["scope"]
    spend = ""
    if event.get("spent_usd") and event.get("limit_usd"):
        spent, limit = Decimal(event["spent_usd"]), Decimal(event["limit_usd"])
        spend = f": {money.cents(spent)} of {money.cents(limit)}"
        spend += f" ({event['percent']}%)"
    extra = f" - {event['note']}" if event.get("note") else ""
    by = f" by {event['actor']}" if event["actor"] not in ("budgetkeeper", "budgetkeeper-monitor") else ""
    return f"{event['title'].upper()}: {where}{spend}{by}{extra}"


def settle(stack: LocalStack, timeout: float = 90, *, until_idle: bool = False) -> None:
    """Wait until every run has finished or (unless `until_idle`) waits for its window's refresh."""
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = stack.executions("RUNNING")
        if not running or (
            not until_idle and all(_waiting_for_refresh(sfn, r["executionArn"]) for r in running)
        ):
            return
        time.sleep(0.2)


def _waiting_for_refresh(sfn: Any, execution_arn: str) -> bool:
    events = sfn.get_execution_history(executionArn=execution_arn)["events"]
    return bool(events) and events[-1].get("stateEnteredEventDetails", {}).get("name") == "WaitForRefresh"


def denied_principals(stack: LocalStack) -> set[str]:
    """Principals that hold the deny policy now: their calls fail and never reach the log."""
    iam = stack.client("iam")
    deny = stack.physical_ids["BedrockDenyPolicy"]
    entities = iam.list_entities_for_policy(PolicyArn=deny)
    users = {f"user/{u['UserName']}" for u in entities["PolicyUsers"]}
    roles = {f"assumed-role/{r['RoleName']}/" for r in entities["PolicyRoles"]}
    return users | roles


def is_denied(record: dict[str, Any], denied: set[str]) -> bool:
    arn = record["identity"]["arn"]
    return any(arn.endswith(entry) if entry.startswith("user/") else entry in arn for entry in denied)


def create_identities(stack: LocalStack) -> None:
    """What the account had before Budgetkeeper: the roles, the API-key users and heidi."""
    iam = stack.client("iam")
    users, roles = set(), set()
    for arn in demo_data.principal_arns(demo_data.DEMO_ACCOUNT):
        resource = arn.split(":", 5)[5]
        if resource.startswith("user/"):
            users.add(resource.split("/")[-1])
        elif resource.startswith("assumed-role/"):
            roles.add(resource.split("/")[1])
    onboarded = {scope.partition(":")[2] for scope in demo_data.teams() if scope.startswith("user:")}
    for user in sorted(users - onboarded):
        iam.create_user(UserName=user)
    for role in sorted(roles):
        iam.create_role(
            RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )


def day_one(stack: LocalStack, stack_name: str) -> None:
    """What an operator does first: check, turn logging on, create the teams and the users."""
    heading("0. Day one: the doctor, invocation logging, teams and users")
    options = ["--stack-name", stack_name]
    create_identities(stack)
    say("A fresh account: the doctor finds what is missing (and exits 1).")
    cli("doctor", *options, expect=1)
    cli("logging", "enable", *options)
    members: dict[str, list[str]] = defaultdict(list)
    for scope, team in demo_data.teams().items():
        members[team].append(scope)
    say("The teams (their IAM groups) with the roles, apps and API keys that belong to them:")
    for team, scopes in sorted(members.items()):
        first = [part for scope in scopes if not scope.startswith("user:") for part in ("--member", scope)]
        cli("team", "create", team, *first, *options)
    say("The people, each an IAM user in a team:")
    for team, scopes in sorted(members.items()):
        for scope in scopes:
            if scope.startswith("user:"):
                name = scope.partition(":")[2]
                cli(
                    "user", "create", name, "--person", name.title(), "--team", team,
                    "--email", f"{name}@example.com", "--language", "es" if name == "grace" else "en",
                    *options,
                )  # fmt: skip
    cli("team", "show", "research", *options)


@contextlib.contextmanager
def signed_in_as(stack: LocalStack, user: str) -> Iterator[None]:
    """The next commands run with `user`'s own access key (STS then says who they are)."""
    key = stack.client("iam").create_access_key(UserName=user)["AccessKey"]
    saved = {name: os.environ.get(name) for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID=key["AccessKeyId"], AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"])
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def batches(records: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    messages = [log_message(record) for record in records]
    payloads = [
        cloudwatch_payload(messages[start : start + EVENTS_PER_PAYLOAD])
        for start in range(0, len(messages), EVENTS_PER_PAYLOAD)
    ]
    for start in range(0, len(payloads), PAYLOADS_PER_BATCH):
        yield firehose_event(payloads[start : start + PAYLOADS_PER_BATCH])


def spend_table(scopes: dict[str, Decimal], title: str, top: int = 8) -> None:
    say(f"  {title}")
    for scope, cost in sorted(scopes.items(), key=lambda item: -item[1])[:top]:
        say(f"    {scope:<62} {money.cents(cost):>10}")


def spend_from_tables(scopes: set[str]) -> dict[str, Decimal]:
    return {scope: sum((item.cost_usd for item in scope_rollups(scope)), Decimal(0)) for scope in scopes}


def part_one(stack: LocalStack, records: list[dict[str, Any]]) -> None:
    heading("1. The day's invocation logs, metered offline from S3")
    s3 = stack.client("s3")
    bucket = demo_data.DEMO_BUCKET
    s3.create_bucket(Bucket=bucket)
    demo_data.write_s3_layout(records, s3, bucket, demo_data.DEMO_ACCOUNT)
    bad = "\n".join(demo_data.malformed_lines()) + "\n"
    prefix = f"AWSLogs/{demo_data.DEMO_ACCOUNT}/BedrockModelInvocationLogs/us-east-1/"
    s3.put_object(Bucket=bucket, Key=f"{prefix}broken-export.json", Body=bad.encode())
    say(
        f"{len(records)} invocation records and {len(demo_data.malformed_lines())} malformed lines written to s3://{bucket}/"
    )
    uri = f"s3://{bucket}/AWSLogs/"
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as teams_file:
        json.dump(demo_data.teams(), teams_file)
    teams_path = Path(teams_file.name)
    err = cli("meter", uri, "--group-by", "principal")
    say("  and on stderr (malformed lines are counted and located, never fatal):")
    for line in err.splitlines():
        say(f"    {line}")
    cli(
        "meter",
        uri,
        "--group-by",
        "app,team",
        "--teams",
        teams_file.name,
        shown_args=["meter", uri, "--group-by", "app,team", "--teams", "teams.json"],
    )
    teams_path.unlink()


def part_two(
    stack: LocalStack,
    stack_name: str,
    waits: WaitControl,
    day: ManualClock,
    records: list[dict[str, Any]],
    mailroom: Mailroom,
) -> None:
    heading("2. The same day, live: Firehose -> usage calculator -> budgets -> Step Functions")
    narrator = Narrator(stack)

    def tell(clock: str) -> list[dict[str, Any]]:
        told = narrator.tell(clock)
        mailroom.tell()
        return told

    options = ["--stack-name", stack_name]
    say("Budgets, set by an operator:")
    alice_day = sum_for(records, "user/alice")
    supportbot_day = sum_for(records, "SupportBot-BedrockRole")
    cli(
        "budget",
        "set",
        "user:alice",
        "--window",
        "daily",
        "--limit",
        _round(alice_day * Decimal("0.6")),
        "--grace",
        GRACE,
        "--reason",
        "research quota",
        "--owner",
        "alice@example.com",
        *options,
    )
    cli(
        "budget",
        "set",
        "app:SupportBot",
        "--window",
        "daily",
        "--limit",
        _round(supportbot_day * Decimal("0.5")),
        "--grace",
        GRACE,
        "--reason",
        "support bot quota",
        "--owner",
        "soporte@example.com",
        "--language",
        "es",
        *options,
    )
    cli("budget", "set", "team:platform", "--window", "monthly", "--limit", "500", *options)

    say()
    say("The day, hour by hour (each hour's logs arrive in Firehose batches of about 500 calls):")
    by_hour: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        by_hour[int(record["timestamp"][11:13])].append(record)
    restored_supportbot = False
    midnight = day()
    for hour in range(24):
        day.set(midnight + timedelta(hours=hour, minutes=59, seconds=59))
        denied = denied_principals(stack)
        arriving = [record for record in by_hour.get(hour, []) if not is_denied(record, denied)]
        blocked = len(by_hour.get(hour, [])) - len(arriving)
        for event in batches(arriving):
            invoke("UsageCalculatorFunction", event)
        invoke("UsageCompactorFunction", {})  # (every 5 minutes live): folds the usage journal
        settle(stack)
        if blocked:
            say(
                f"  [{hour:02d}:00] {counted(blocked, 'call')} by suspended principals were denied by IAM "
                "(never logged)"
            )
        told = tell(f"{hour:02d}:59")
        if any(event["type"] == "suspended" and event["scope"] == "user:alice" for event in told):
            show_deny(stack, "alice")
            say("  alice asks where she stands, with her own credentials and only the self-service rights:")
            with signed_in_as(stack, "alice"):
                cli("me", *options)
        if not restored_supportbot and any(
            event["type"] == "suspended" and event["scope"] == "app:SupportBot" for event in told
        ):
            say("  The support queue is backing up: an operator raises SupportBot's limit and restores it.")
            limit = _round(supportbot_day * Decimal("1.2"))
            cli(
                "budget",
                "set",
                "app:SupportBot",
                "--window",
                "daily",
                "--limit",
                limit,
                "--reason",
                "support backlog",
                *options,
            )
            cli("restore", "app:SupportBot", "--reason", "support backlog, approved by the CFO", *options)
            tell(f"{hour:02d}:59")
            restored_supportbot = True

    heading("3. Midnight: the daily windows refresh")
    say("  (The demo's clock moves to midnight, and the runs waiting for the refresh go on at once.)")
    day.set(midnight + timedelta(days=1))
    waits.release()
    settle(stack, until_idle=True)
    tell("00:00")
    attached = stack.client("iam").list_attached_user_policies(UserName="alice")["AttachedPolicies"]
    if attached:
        say(f"  IAM user alice still has {len(attached)} policy attached.")
    else:
        say("  IAM user alice has no deny policy attached any more: Bedrock access is back.")

    heading("4. Spend per principal, app and team, from the DynamoDB rollups")
    scopes = {scope for record in records for scope in scopes_of(record)}
    spent = spend_from_tables(scopes)
    for kind, title in (
        ("user:", "principals (users)"),
        ("session:", "principals (sessions)"),
        ("apikey:", "API keys"),
        ("app:", "apps"),
        ("team:", "teams"),
    ):
        spend_table({s: c for s, c in spent.items() if s.startswith(kind)}, title)

    heading("5. Where every budget stands, and alice's audit trail")
    cli("status", "user:alice", *options)
    cli("audit", "user:alice", *options)

    heading("6. What people received")
    mailroom.show()


def part_seven(stack_name: str, day: date, report: Path) -> None:
    heading("7. The day's report from the rollups, with the window before, and as HTML")
    window = ["--since", day.isoformat(), "--until", day.isoformat()]
    cli("report", "--group-by", "team", "--compare", "previous", *window, "--stack-name", stack_name)
    say("Batch jobs and bedrock-mantle projects are operations of their own beside the runtime calls:")
    cli("report", "--group-by", "operation", *window, "--stack-name", stack_name)
    report.parent.mkdir(parents=True, exist_ok=True)
    cli(
        "report",
        "--group-by",
        "principal",
        "--top",
        "5",
        *window,
        "--html",
        str(report),
        "--stack-name",
        stack_name,
    )
    say(f"HTML report written to {report.resolve()} (open it in a browser; it needs no network)")


def part_eight(records: Sequence[dict[str, Any]], day: date) -> None:
    """What the suspensions saved: the whole day metered offline, against what was metered live
    (the calls of suspended principals IAM denied never ran, so never reached the logs)."""
    from budgetkeeper.metering.usage_lines import usage_lines

    heading("8. What the suspensions saved")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    offline = sum_for(records, "")
    # Runtime calls only: the batch job and the mantle project of 1b are not in the offline logs.
    lines = usage_lines(start, start + timedelta(days=1))
    live = sum((line.cost_usd for line in lines if not line.operation), Decimal(0))
    say(f"  The day's traffic, metered offline as if nothing had stopped it: {money.cents(offline)}")
    say(f"  Metered live, with the suspensions enforced by IAM:              {money.cents(live)}")
    say(f"  About {money.cents(offline - live)} was stopped by the suspensions.")


def export_lines(endpoint: str, stack_name: str) -> list[str]:
    """The shell lines that point the `budgetkeeper` CLI at the demo's stack on the local AWS."""
    from devkit.harness.stack import FAKE_CREDENTIALS

    settings = {
        "AWS_ENDPOINT_URL": endpoint,
        **{name: FAKE_CREDENTIALS[name] for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
        "AWS_DEFAULT_REGION": FAKE_CREDENTIALS["AWS_DEFAULT_REGION"],
        "BUDGETKEEPER_STACK": stack_name,
    }
    return [f"export {name}={value}" for name, value in settings.items()]


def scopes_of(record: dict[str, Any]) -> list[str]:
    from budgetkeeper.domain.log_records import parse_invocation
    from budgetkeeper.domain.scopes import attribute

    invocation = parse_invocation(json.dumps(record))
    return list(attribute(invocation, teams=demo_data.teams()).scopes)


def sum_for(records: Sequence[dict[str, Any]], identity_part: str) -> Decimal:
    from budgetkeeper.metering.meter import Meter
    from budgetkeeper.pricing.table import PriceTable

    meter = Meter(prices=PriceTable.bundled(), teams={})
    return sum(
        (
            meter.meter(json.dumps(r)).priced.cost_usd
            for r in records
            if identity_part in r["identity"]["arn"]
        ),
        Decimal(0),
    )


def _round(value: Decimal) -> str:
    return str(max(value, Decimal("0.01")).quantize(Decimal("0.01")))


def show_deny(stack: LocalStack, user: str) -> None:
    iam = stack.client("iam")
    attached = iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]
    for policy in attached:
        version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
        document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"]
        text = document["Document"]
        text = json.loads(text) if isinstance(text, str) else text
        say(f"  IAM user {user} now has {policy['PolicyArn']} attached:")
        for line in json.dumps(text, indent=2).splitlines():
            say(f"    {line}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--records", type=int, default=1500, help="invocations in the day (default 1500)")
    parser.add_argument(
        "--report",
        type=Path,
        default=Path("out/budgetkeeper-report.html"),
        help="where the HTML report is written (default: out/budgetkeeper-report.html)",
    )
    parser.add_argument(
        "--day",
        type=date.fromisoformat,
        default=None,
        help="the UTC day to replay, YYYY-MM-DD (default: today); the traffic is generated from it",
    )
    parser.add_argument(
        "--console",
        metavar="PORT",
        type=int,
        help="at the end, serve `budgetkeeper console` on this port (0: a free one) on the day's data, "
        "with the workflow running, until Ctrl-C (`make console`)",
    )
    args = parser.parse_args(argv)
    day = args.day or clock.now().date()
    say("Bedrock Budgetkeeper demo: one day of Bedrock traffic, metered and enforced on a local AWS (moto).")
    records = demo_data.generate_day(day, records=args.records)
    started = time.monotonic()
    # The narrative is the notifications: keep the functions' JSON logs, EMF metrics and the local
    # AWS's own logs out of it.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    logging.getLogger("moto").setLevel(logging.CRITICAL)
    os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
    # Owners' e-mails go next to the report, replaced at each run: nothing is left behind in /tmp.
    mail_folder = args.report.parent / "demo-mail"
    shutil.rmtree(mail_folder, ignore_errors=True)
    mail_folder.mkdir(parents=True)
    with local_aws() as endpoint:
        stack = LocalStack(
            stack_name="budgetkeeper-demo",
            environment_name="demo",
            endpoint_url=endpoint,
            parameters={"NotificationSender": SENDER},
        )
        stack.create()
        stack_name = stack.publish_outputs()
        # Tuned as an operator would, in SSM: the functions' own logs stay out of the narrative.
        stack.client("ssm").put_parameter(Name="/budgetkeeper/demo/log_level", Value="ERROR", Type="String")
        say(f"Local AWS at {endpoint}; stack {stack_name} created from template.yaml.")
        say("To use the CLI against it from another shell while the demo runs (`make console` keeps it up):")
        for line in export_lines(endpoint, stack_name):
            say(f"  {line}")
        # The demo's own clock: it stands at the hour whose logs are arriving, and moves on by hours.
        day_clock = ManualClock(datetime(day.year, day.month, day.day, tzinfo=UTC))
        slack = LocalSlack()
        with (
            clock.use(day_clock),
            stack.activated() as settings,
            real_handlers(stack, WaitControl(max_wait_seconds=3600)) as waits,
        ):
            # The operators' Slack webhook, kept as the secret it is (an SSM SecureString)
            stack.client("ssm").put_parameter(
                Name=settings.slack_webhook_parameter, Value=slack.url, Type="SecureString"
            )
            day_one(stack, stack_name)
            part_one(stack, records)
            part_unlogged(stack, stack_name, day_clock)
            part_two(
                stack,
                stack_name,
                waits,
                day_clock,
                records,
                Mailroom(stack, waits, slack, str(mail_folder.resolve())),
            )
            part_seven(stack_name, day, args.report)
            part_eight(records, day)
            if args.console is not None:
                heading("9. The operators' web console on the day's data (Ctrl-C ends the demo)")
                say("  The CLI against the same stack, from another shell:")
                for line in export_lines(endpoint, stack_name):
                    say(f"    {line}")
                console = ["console", "--stack-name", stack_name, "--port", str(args.console), "--open"]
                with live_clock(waits, day_clock()) as live:
                    console += ["--banner", LIVE_CLOCK.format(moment=live())]
                    budgetkeeper([*console, "--since", day.isoformat(), "--until", day.isoformat()])
        slack.close()
    say()
    say(f"Done in {time.monotonic() - started:.0f} s. `make test` proves it; `make bench` measures it.")
    if args.console is None:
        say("`make console` runs this day again and opens it in the operators' web console.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
