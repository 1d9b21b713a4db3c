"""The notifier: renders each budget event and delivers it, once per channel, retried, alerted.

It is a Lambda subscribed to the budget-events topic, not a step of the workflow: SNS invokes it
asynchronously, so a slow or failing channel (Slack down, SES throttling) never delays or fails a
suspension or a restore. Per event:
- the owner (budgetkeeper.notify.owners) gets HTML and text e-mail through SES, in their language;
- operators get the notice on their SNS topic (e-mail, and SMS for urgent notices) and on Slack;
- each delivery runs at most once per transition and channel (Powertools idempotency on the
  IdempotencyTable, keyed on the transition and the channel), so an event published twice, or a
  notifier invocation retried after one channel failed, never sends a second message;
- a failing channel is retried with backoff, then the failure is alerted on another channel (SNS
  for e-mail and Slack, Slack for SNS). Only when that alert fails too does the invocation fail, so
  that Lambda retries it (what was delivered is not delivered again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from budgetkeeper.core.observability import logger, metrics
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.channels import DeliveryFailed, EmailChannel, OperatorTopic, SlackChannel
from budgetkeeper.notify.notices import OWNER_NOTICES, Notice, notice_for, template_for
from budgetkeeper.notify.owners import Owner, OwnerDirectory
from budgetkeeper.notify.render import Renderer, default_renderer

# Seconds between attempts of one channel: four attempts in about 13 seconds.
RETRY_DELAYS = (1.0, 3.0, 9.0)


class BadEvent(ValueError):
    """An SNS message that is not a budget event."""


class Once(Protocol):
    def __call__(self, key: str, channel: str, send: Callable[[], None]) -> bool:
        """Run `send` unless it already ran for (key, channel); True when it ran now."""
        ...


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    outcome: str  # sent | duplicate | failed | alerted


@dataclass
class Notifier:
    operators: OperatorTopic
    owners: OwnerDirectory
    once: Once
    email: EmailChannel | None = None
    slack: SlackChannel | None = None
    renderer: Renderer = field(default_factory=default_renderer)
    operator_language: str = "en"
    contact: str | None = None
    time_zone: str = "UTC"  # times in notices are shown in the budget's zone, else in this one
    console_url: str | None = None
    sleep: Callable[[float], None] = time.sleep
    retry_delays: tuple[float, ...] = RETRY_DELAYS

    def notify(self, event: NotificationEvent, summary: dict[str, Any] | None = None) -> list[Delivery]:
        owner = (
            self.owners.resolve(event.scope, event.window)
            if template_for(event) in OWNER_NOTICES
            else Owner(None, None, "none")
        )
        # Operators see who owns the budget; owners see whom to ask.
        operator_notice = notice_for(
            event, contact=owner.email, summary=summary, operator=True, console_url=self.console_url
        )
        zone = event.time_zone or self.time_zone
        operator_message = self.renderer.render(
            operator_notice.template, self.operator_language, operator_notice.context, zone
        )
        sends: list[tuple[str, Callable[[], None]]] = [
            (
                "sns",
                lambda: self.operators.send(
                    operator_message, notice=operator_notice.template, urgent=operator_notice.urgent
                ),
            )
        ]
        if self.slack is not None:
            slack = self.slack
            sends.append(("slack", lambda: slack.send(operator_message)))
        if self.email is not None and owner.email is not None:
            email, address = self.email, owner.email
            owner_notice = notice_for(event, contact=self.contact, console_url=self.console_url)
            owner_message = self.renderer.render(
                owner_notice.template, owner.language or "en", owner_notice.context, zone
            )
            sends.append(("email", lambda: email.send(address, owner_message)))
        logger.info(
            "notifying",
            notice=operator_notice.template,
            scope=event.scope,
            owner_source=owner.source,
            channels=[name for name, _ in sends],
        )
        deliveries = [self._deliver(operator_notice.key, name, send) for name, send in sends]
        failed = [delivery.channel for delivery in deliveries if delivery.outcome == "failed"]
        return [
            Delivery(d.channel, "alerted")
            if d.channel in failed and self._alert(event, operator_notice, d.channel)
            else d
            for d in deliveries
        ]

    def _deliver(self, key: str, channel: str, send: Callable[[], None]) -> Delivery:
        try:
            sent = self.once(key, channel, lambda: self._with_retries(channel, send))
        except DeliveryFailed as error:
            logger.error("notice not delivered", channel=channel, error=str(error))
            metrics.add_metric(name="NotificationFailures", unit=MetricUnit.Count, value=1)
            return Delivery(channel, "failed")
        if sent:
            metrics.add_metric(name="NotificationsSent", unit=MetricUnit.Count, value=1)
        return Delivery(channel, "sent" if sent else "duplicate")

    def _with_retries(self, channel: str, send: Callable[[], None]) -> None:
        for attempt, delay in enumerate((*self.retry_delays, None), start=1):
            try:
                send()
                return
            except DeliveryFailed as error:
                if delay is None:
                    raise
                logger.warning(
                    "delivery failed, retrying", channel=channel, attempt=attempt, error=str(error)
                )
                self.sleep(delay)

    def _alert(self, event: NotificationEvent, failed: Notice, channel: str) -> bool:
        """Tell operators on another channel that `channel` failed; raise if no channel is left."""
        alert = notice_for(
            NotificationEvent(**{**_fields(event), "type": "notification_failed"}), failed_channel=channel
        )
        zone = event.time_zone or self.time_zone
        message = self.renderer.render(alert.template, self.operator_language, alert.context, zone)
        if channel != "sns":
            target, send = "sns", lambda: self.operators.send(message, notice=alert.template, urgent=True)
        elif self.slack is not None:
            slack = self.slack
            target, send = "slack", lambda: slack.send(message)
        else:
            raise DeliveryFailed(f"{channel} failed and no other channel is configured to tell operators")
        if self._deliver(failed.key, f"{target}:alert:{channel}", send).outcome == "failed":
            raise DeliveryFailed(f"{channel} failed and the alert on {target} failed too")
        return True


def _fields(event: NotificationEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}


def parse_event(message: str) -> NotificationEvent:
    """The event in an SNS message (`title` is derived, not a field)."""
    try:
        data = json.loads(message)
        data.pop("title", None)
        return NotificationEvent(**data)
    except (ValueError, TypeError, AttributeError) as error:
        raise BadEvent(f"not a budget event: {error}") from None


# A delivery is remembered this long: SNS and Lambda retry within hours, never days.
DELIVERY_MEMORY_SECONDS = 3 * 24 * 3600
SLACK_URL_MAX_AGE_SECONDS = 300


class PowertoolsOnce:
    """Once per (transition, channel), remembered in the IdempotencyTable by Powertools.

    A delivery that raised leaves no record (the next attempt sends); one in progress elsewhere
    (the same event in two invocations at once) is left to that invocation.
    """

    def __init__(self, table_name: str, context: Any) -> None:
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

        self._persistence = DynamoDBPersistenceLayer(table_name=table_name)
        self._config = IdempotencyConfig(
            event_key_jmespath="[key, channel]",
            expires_after_seconds=DELIVERY_MEMORY_SECONDS,
            raise_on_no_idempotency_key=True,
        )
        self._config.register_lambda_context(context)

    def __call__(self, key: str, channel: str, send: Callable[[], None]) -> bool:
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        ran = []

        @idempotent_function(
            data_keyword_argument="delivery", persistence_store=self._persistence, config=self._config
        )
        def deliver_once(delivery: dict[str, str]) -> dict[str, str]:
            send()
            ran.append(True)
            return {"delivered": delivery["channel"]}

        try:
            deliver_once(delivery={"key": key, "channel": channel})
        except IdempotencyAlreadyInProgressError:
            logger.info("delivery in progress elsewhere", channel=channel)
            return False
        return bool(ran)


def slack_webhook_reader(parameter_name: str) -> Callable[[], str | None]:
    """The webhook URL from its SecureString (None: no such parameter, Slack is off)."""
    from aws_lambda_powertools.utilities import parameters

    def read() -> str | None:
        try:
            return str(
                parameters.get_parameter(parameter_name, decrypt=True, max_age=SLACK_URL_MAX_AGE_SECONDS)
            )
        except parameters.exceptions.GetParameterError as error:
            if "ParameterNotFound" in str(error):
                return None
            raise DeliveryFailed(f"cannot read the Slack webhook parameter {parameter_name}") from None

    return read


def build_notifier(settings: Any, tunables: Any, context: Any) -> Notifier:
    """Wire the notifier to SES, SNS, SSM, IAM (tags, read-only) and DynamoDB."""
    import boto3

    from budgetkeeper.storage.readers import team_contact
    from budgetkeeper.storage.tables import BudgetItem, bind_tables

    bind_tables(settings)
    iam = boto3.client("iam")

    def budget_owner(scope: str, window: str | None) -> tuple[str | None, str | None]:
        if not window:
            return None, None
        try:
            item = BudgetItem.get(scope, window)
        except BudgetItem.DoesNotExist:
            return None, None
        return item.owner_email, item.language

    def iam_tags(kind: str, name: str) -> dict[str, str]:
        try:
            if kind == "user":
                tags = iam.list_user_tags(UserName=name)["Tags"]
            else:
                tags = iam.list_role_tags(RoleName=name)["Tags"]
        except iam.exceptions.NoSuchEntityException:
            return {}
        return {tag["Key"].lower(): tag["Value"] for tag in tags}

    read_webhook = slack_webhook_reader(settings.slack_webhook_parameter)
    webhook = _first_read(read_webhook)
    return Notifier(
        operators=OperatorTopic(
            boto3.client("sns", region_name=settings.region), settings.operator_alerts_topic
        ),
        owners=OwnerDirectory(budget_owner, iam_tags, team_contact),
        once=PowertoolsOnce(settings.idempotency_table, context),
        email=EmailChannel(boto3.client("ses", region_name=settings.region), settings.notification_sender)
        if settings.notification_sender
        else None,
        slack=SlackChannel(webhook) if webhook is not None else None,
        operator_language=tunables.operator_language,
        contact=tunables.notify_contact or None,
        time_zone=tunables.time_zone,
        console_url=tunables.console_url or None,
        retry_delays=RETRY_DELAYS,
    )


def _first_read(read: Callable[[], str | None]) -> Callable[[], str] | None:
    """Slack is on when its parameter exists; a parameter that cannot be read counts as a failure."""
    try:
        if read() is None:
            return None
    except DeliveryFailed:
        pass  # Slack stays on: each send reads again, fails, and is alerted on SNS

    def url() -> str:
        value = read()
        if value is None:
            raise DeliveryFailed("the Slack webhook parameter was deleted")
        return value

    return url


def notify_records(notifier: Notifier, records: list[dict[str, Any]]) -> dict[str, int]:
    """An SNS invocation: each record one event. A message that is no event is logged whole and counted."""
    counts = {"events": 0, "bad_events": 0}
    for record in records:
        message = record.get("Sns", {}).get("Message", "")
        try:
            event = parse_event(message)
        except BadEvent as error:
            logger.error("bad notification event", error=str(error), sns_message=message[:10_000])
            metrics.add_metric(name="BadNotificationEvents", unit=MetricUnit.Count, value=1)
            counts["bad_events"] += 1
            continue
        notifier.notify(event)
        counts["events"] += 1
    return counts


def send_daily_summary(notifier: Notifier, now: Any, rows: int = 10) -> list[Delivery]:
    """The scheduled summary, to operators (once per UTC day, however often the schedule fires)."""
    from budgetkeeper.notify.summary import gather_summary, summary_event

    return notifier.notify(summary_event(now), summary=gather_summary(now, rows))
