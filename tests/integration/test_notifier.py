"""The notifier on moto: SES e-mail read back from moto's SES, the operators' topic read back from
moto's SNS, and a local HTTP server on 127.0.0.1 standing in for Slack's incoming webhook."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws
from moto.ses.models import ses_backends
from moto.sns.models import sns_backends

from budgetkeeper.core import clock
from budgetkeeper.core.observability import logger
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify import notifier as notifier_module
from budgetkeeper.storage.tables import SWEEP_DUE, BudgetItem, TeamItem
from devkit.harness.lambdas import invoke
from devkit.harness.slack import LocalSlack
from devkit.harness.stack import ACCOUNT_ID, REGION, LocalStack
from devkit.harness.workflow import real_handlers, wait_for_execution, wait_for_state
from tests.integration.conftest import MOTO_CONFIG
from tests.integration.test_enforcement_workflow import attached, executions, spend
from tests.timeline import now_iso

SENDER = "budgets@example.com"
SCRIPT = "<script>alert(1)</script>"


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    fake = LocalSlack()
    yield fake
    fake.close()


@pytest.fixture
def stack(aws_env: None, slack: LocalSlack, monkeypatch) -> Iterator[LocalStack]:
    # Retries pause briefly here; the schedule itself is the product's (four attempts)
    monkeypatch.setattr(notifier_module, "RETRY_DELAYS", (0.01, 0.01, 0.01))
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        local = LocalStack(parameters={"NotificationSender": SENDER}).create()
        with local.activated() as settings:
            local.client("ssm").put_parameter(
                Name=settings.slack_webhook_parameter, Value=slack.url, Type="SecureString"
            )
            yield local
        parameters.clear_caches()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line the functions write, as Lambda would ship them (Powertools' JSON)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logger.registered_formatter)
    service_logger = logging.getLogger(logger.service)
    service_logger.addHandler(handler)
    yield stream
    service_logger.removeHandler(handler)


def emails() -> list:
    return ses_backends[ACCOUNT_ID][REGION].sent_messages


def operator_notices(stack: LocalStack) -> list[dict]:
    topic = sns_backends[ACCOUNT_ID][REGION].topics[stack.physical_ids["OperatorAlertsTopic"]]
    return [
        {
            **json.loads(message),
            "subject": subject,
            "notice": attributes["notice"]["Value"],
            "urgency": attributes["urgency"]["Value"],
        }
        for _, message, subject, attributes, _ in topic.sent_notifications
    ]


def budget_event(kind: str = "suspended", scope: str = "user:alice", **fields) -> NotificationEvent:
    values = {
        "type": kind,
        "scope": scope,
        "window": "daily",
        "window_id": "w1",
        "spent_usd": "1.02",
        "limit_usd": "1",
        "percent": "102.0",
        "refresh_at": now_iso(),
        "actor": "budgetkeeper",
        "reason": 'spend is "over" & climbing',
        "execution": "arn:aws:states:us-east-1:123456789012:execution:sm:run-1",
        "at": now_iso(),
    }
    return NotificationEvent(**{**values, **fields})


def deliver(event: NotificationEvent) -> dict:
    """SNS invoking the notifier with one event, as the subscription does."""
    record = {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(event.to_dict())}}
    return invoke("NotifierFunction", {"Records": [record]})


def test_one_event_reaches_the_owner_operators_and_slack(stack, slack):
    # Given alice's budget names her address and Spanish
    BudgetItem(
        "user:alice", "daily", limit_usd=Decimal(1), owner_email="alice@example.com", language="es"
    ).save()
    # When her suspension is published
    deliver(budget_event())
    # Then she gets one HTML e-mail in Spanish from the verified sender
    [mail] = emails()
    assert mail.source == SENDER and mail.destinations["ToAddresses"] == ["alice@example.com"]
    assert mail.subject == "Acceso a Bedrock suspendido: user:alice"
    assert "<!DOCTYPE html>" in mail.body and "budgetkeeper me" in mail.body
    assert "climbing" not in mail.body  # a run's own reason: its fields say it, in her words
    # and operators one notice on their topic (English text for e-mail, one SMS segment), urgent
    [notice] = operator_notices(stack)
    assert notice["notice"] == "suspended" and notice["subject"] == "Bedrock access suspended: user:alice"
    assert notice["urgency"] == "urgent"  # the SMS subscription takes these only
    assert "Who to contact: alice@example.com" in notice["email"]
    assert notice["sms"].startswith("SUSPENDED: user:alice") and len(notice["sms"]) <= 160
    assert "budgetkeeper restore user:alice --window daily" in notice["email"]  # instead of owner advice
    # and one Slack message
    [payload] = slack.payloads
    assert payload["text"] == "Bedrock access suspended: user:alice"
    assert "climbing" not in json.dumps(payload) and "arn:aws:states" not in json.dumps(payload)


def test_times_are_shown_in_the_budget_s_time_zone(stack, slack):
    # Given alice's Spanish budget, and a suspension of it that ends at 22:00 UTC
    BudgetItem(
        "user:alice", "daily", limit_usd=Decimal(1), owner_email="alice@example.com", language="es"
    ).save()
    end = (clock.now().replace(hour=22, minute=0, second=0, microsecond=0)).strftime("%Y-%m-%dT%H:%M:%SZ")
    deliver(budget_event(refresh_at=end, time_zone="Asia/Tokyo"))
    # Then she and the operators read 07:00 the next day, Tokyo time
    [mail] = emails()
    assert "07:00 JST" in mail.body and "22:00" not in mail.body
    [notice] = operator_notices(stack)
    assert "07:00 JST" in notice["sms"]


def test_an_event_delivered_twice_sends_one_message_per_channel(stack, slack):
    BudgetItem("user:alice", "daily", limit_usd=Decimal(1), owner_email="alice@example.com").save()
    # When SNS delivers the event twice, and the workflow's retried task publishes it again later
    deliver(budget_event())
    deliver(budget_event())
    deliver(budget_event(at=now_iso(timedelta(minutes=3))))
    # Then each channel carried it once
    assert len(emails()) == 1 and len(operator_notices(stack)) == 1 and len(slack.payloads) == 1
    # while the next transition is a new message
    deliver(budget_event(kind="restored", spent_usd=None, percent=None))
    assert len(emails()) == 2 and len(operator_notices(stack)) == 2 and len(slack.payloads) == 2


def test_slack_answering_500_once_is_retried_and_delivered_once(stack, slack):
    slack.statuses = [500]
    deliver(budget_event(kind="warning", percent="75.0", spent_usd="0.75"))
    assert slack.attempts == 2 and len(slack.payloads) == 1
    assert [n["notice"] for n in operator_notices(stack)] == ["warning"]  # no failure alert


def test_slack_failing_for_good_is_alerted_on_sns_and_its_url_never_logged(stack, slack, logs):
    slack.always = 500
    deliver(budget_event())
    # Then Slack was tried four times, and operators were told on their topic that it failed
    assert slack.attempts == 4 and slack.payloads == []
    notices = operator_notices(stack)
    assert [n["notice"] for n in notices] == ["suspended", "notification_failed"]
    assert "could not be delivered by slack" in notices[1]["email"]
    # and the webhook's URL, a secret, is in no log line
    written = logs.getvalue()
    assert "notice not delivered" in written and "Slack answered HTTP 500" in written
    assert "secret-token-xyz" not in written and f"127.0.0.1:{slack.port}" not in written
    # Delivered again later (Lambda's retry): neither the notice nor the alert is repeated
    deliver(budget_event())
    assert len(operator_notices(stack)) == 2


def test_ses_refusing_the_mail_is_alerted_on_sns(stack, slack):
    # Given the sender is no longer a verified identity
    stack.client("ses").delete_identity(Identity=SENDER)
    BudgetItem("user:alice", "daily", limit_usd=Decimal(1), owner_email="alice@example.com").save()
    deliver(budget_event(kind="warning", percent="75.0"))
    # Then no mail, and operators were told on their topic (Slack still got the notice)
    assert emails() == []
    notices = operator_notices(stack)
    assert [n["notice"] for n in notices] == ["warning", "notification_failed"]
    assert "could not be delivered by email" in notices[1]["email"] and notices[1]["urgency"] == "urgent"
    assert len(slack.payloads) == 1


def test_the_operators_topic_failing_is_alerted_on_slack(stack, slack):
    # Given the operators' topic is gone
    stack.client("sns").delete_topic(TopicArn=stack.physical_ids["OperatorAlertsTopic"])
    deliver(budget_event())
    # Then Slack got the notice and the alert that SNS failed
    assert [p["text"] for p in slack.payloads] == [
        "Bedrock access suspended: user:alice",
        "Notice not delivered: sns",
    ]


@pytest.mark.parametrize(
    ("scope", "setup", "expected"),
    [
        ("user:bob", "user-tag", "bob@example.com"),
        ("session:AWSReservedSSO_Dev_0123456789abcdef/carol@example.com", None, "carol@example.com"),
        ("role:Etl-BedrockRole", "team-contact", "data-leads@example.com"),
        ("role:Orphan-BedrockRole", None, None),
    ],
)
def test_the_owner_is_found_in_order(stack, scope, setup, expected):
    iam = stack.client("iam")
    if setup == "user-tag":
        iam.create_user(
            UserName="bob",
            Tags=[{"Key": "email", "Value": "bob@example.com"}, {"Key": "language", "Value": "es"}],
        )
    if setup == "team-contact":
        TeamItem("role:Etl-BedrockRole", team="data").save()
        TeamItem("team:data", team="data", contact="data-leads@example.com").save()
    deliver(budget_event(kind="warning", scope=scope))
    sent = emails()
    if expected is None:
        assert sent == [] and len(operator_notices(stack)) == 1  # operators only
    else:
        [mail] = sent
        assert mail.destinations["ToAddresses"] == [expected]
        if setup == "user-tag":
            assert mail.subject.startswith("Aviso de presupuesto")  # the language tag


def test_a_message_that_is_no_event_is_counted_and_the_rest_delivered(stack, slack):
    good = {"EventSource": "aws:sns", "Sns": {"Message": json.dumps(budget_event().to_dict())}}
    bad = {"EventSource": "aws:sns", "Sns": {"Message": "{not json"}}
    assert invoke("NotifierFunction", {"Records": [bad, good]}) == {"events": 1, "bad_events": 1}
    assert len(slack.payloads) == 1


def test_slack_down_for_good_never_holds_up_a_suspension(stack, slack):
    # Given Slack fails every request
    slack.always = 503
    stack.client("iam").create_user(UserName="dave", Tags=[{"Key": "email", "Value": "dave@example.com"}])
    BudgetItem("user:dave", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
    with real_handlers(stack) as workflow:
        workflow.max_wait_seconds = 2
        # When dave overspends
        spend("arn:aws:iam::111122223333:user/dave", "1.10")
        run = executions(stack)[0]
        wait_for_state(stack, run["executionArn"], "WaitForRefresh")
        # Then he is suspended with the deny attached, whatever Slack does
        assert attached(stack, "dave") == [stack.physical_ids["BedrockDenyPolicy"]]
        assert wait_for_execution(stack, run["executionArn"])["status"] == "SUCCEEDED"
        workflow.deliveries.drain()
        assert workflow.deliveries.errors == []
    # and each transition reached dave and the topic once, with one alert per transition for Slack
    kinds = [n["notice"] for n in operator_notices(stack)]
    assert kinds == [
        "grace",
        "notification_failed",
        "suspended",
        "notification_failed",
        "restored",
        "notification_failed",
    ]
    assert [m.subject.split(":")[0] for m in emails()] == [
        "Budget exceeded",
        "Bedrock access suspended",
        "Bedrock access restored",
    ]
    assert slack.payloads == []


def test_the_workflow_sends_one_message_per_channel_per_transition(stack, slack):
    stack.client("iam").create_user(UserName="erin", Tags=[{"Key": "email", "Value": "erin@example.com"}])
    BudgetItem("user:erin", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
    with real_handlers(stack) as workflow:
        workflow.max_wait_seconds = 1
        erin = "arn:aws:iam::111122223333:user/erin"
        for usd in ("0.75", "0.20", "0.20"):  # warning, critical, over the limit
            spend(erin, usd)
            for run in executions(stack):
                wait_for_execution(stack, run["executionArn"])
        workflow.deliveries.drain()
    events = (
        sns_backends[ACCOUNT_ID][REGION].topics[stack.physical_ids["BudgetEventsTopic"]].sent_notifications
    )
    transitions = [json.loads(message)["type"] for _, message, *_ in events]
    assert transitions == ["warning", "critical", "grace", "suspended", "restored"]
    assert [n["notice"] for n in operator_notices(stack)] == transitions
    assert [p["text"].split(":")[0] for p in slack.payloads] == [
        "Budget warning",
        "Budget critical",
        "Budget exceeded",
        "Bedrock access suspended",
        "Bedrock access restored",
    ]
    assert len(emails()) == len(transitions)


def test_the_daily_summary_tells_operators_once_a_day(stack, slack):
    from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event

    # Given alice (team research) spent today, partly on a model with no price
    TeamItem("user:alice", team="research").save()
    alice = "arn:aws:iam::111122223333:user/alice"
    spend(alice, "2.40")
    unknown_call = converse_message(
        alice, "acme.mystery-v1:0", 1000, account="111122223333", timestamp=now_iso()
    )
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([unknown_call])]))
    # and budgets suspended, in grace and near their limit (so watched by the monitor, as the
    # workflow leaves them)
    for scope, window, status in (
        ("user:bob", "daily", "suspended"),
        ("user:carol", "monthly", "grace"),
        (f"user:{SCRIPT}", "daily", "critical"),
    ):
        BudgetItem(
            scope, window, limit_usd=Decimal(9), status=status, sweep=SWEEP_DUE, sweep_key=f"{scope}|{window}"
        ).save()
    # When the schedule fires (twice: EventBridge delivers at least once)
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    invoke("NotifierFunction", scheduled)
    invoke("NotifierFunction", scheduled)
    # Then operators got one summary on their topic and one on Slack
    [summary] = operator_notices(stack)
    assert summary["notice"] == "daily_summary"
    text = summary["email"]
    # (2.40, and the unknown model's 1000 input tokens at the highest rate known, 27.5 per 1M: 0.0275)
    assert "team:research: $2.43 / $2.43" in text, text
    assert "1. user:alice: $2.43" in text
    assert "user:bob (daily, suspended)" in text and "user:carol (monthly, grace)" in text
    assert f"user:{SCRIPT} (daily, critical)" in text
    assert "acme.mystery-v1:0 (1 call)" in text
    [payload] = slack.payloads
    assert "&lt;script&gt;" in json.dumps(payload) and "<script>" not in json.dumps(payload)
    assert emails() == []  # owners get no summary


def test_a_summary_with_3000_unknown_models_is_delivered_on_every_channel(stack, slack):
    from budgetkeeper.storage.keys import line_partition
    from budgetkeeper.storage.tables import RollupItem

    # Given a caller who spent today, and today's usage lines naming 3,000 made-up models of 90
    # characters (as the calculator writes them when limits/unknown_models_per_batch allows it)
    mallory = "arn:aws:iam::111122223333:user/mallory"
    spend(mallory, "0.50")
    hour = now_iso()[:13]
    models = [f"acme.{index:04d}-" + "x" * 80 + ":0" for index in range(3000)]
    with RollupItem.batch_write() as batch:
        for index, model in enumerate(models):
            calls = 2 if index < 10 else 1
            counts = {"model": model, "calls": calls, "unpriced_calls": calls}
            batch.save(RollupItem("user:mallory", f"{hour}#{model}#us-east-1", **counts))
            batch.save(
                RollupItem(line_partition(hour[:10]), f"{hour}#{index}", principal="user:mallory", **counts)
            )
    # When the schedule fires
    invoke("NotifierFunction", {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})
    # Then operators got it on their topic (under SNS's 256 KB), the 10 most called and a count
    [summary] = operator_notices(stack)
    assert summary["notice"] == "daily_summary"
    assert f"{models[0]} (2 calls)" in summary["email"] and "… (+2990)" in summary["email"]
    assert models[10] not in summary["email"]
    # and on Slack, every section within Slack's 3,000 characters
    [payload] = slack.payloads
    sections = [block["text"]["text"] for block in payload["blocks"] if block["type"] == "section"]
    assert max(len(text) for text in sections) <= 3000
    assert any("+2990" in text for text in sections)
