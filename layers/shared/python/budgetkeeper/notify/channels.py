"""Where notices go: SES e-mail to owners, the operators' SNS topic, a Slack incoming webhook.

Each channel's `send` either delivers or raises DeliveryFailed with a message safe to log: the
Slack webhook URL is a secret and never appears in one.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.notify.render import Rendered, ascii_line

SLACK_TIMEOUT_SECONDS = 5
SNS_SUBJECT_LIMIT = 100


class DeliveryFailed(Exception):
    """A channel did not take a notice; the message never holds a secret."""


class EmailChannel:
    """HTML and plain-text e-mail through SES, from a verified sender."""

    name = "email"

    def __init__(self, ses_client: Any, sender: str) -> None:
        self._ses = ses_client
        self._sender = sender

    def send(self, to: str, rendered: Rendered) -> None:
        try:
            self._ses.send_email(
                Source=self._sender,
                Destination={"ToAddresses": [to]},
                Message={
                    "Subject": {"Data": rendered.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": rendered.text, "Charset": "UTF-8"},
                        "Html": {"Data": rendered.html, "Charset": "UTF-8"},
                    },
                },
            )
        except (ClientError, BotoCoreError) as error:
            raise DeliveryFailed(f"SES did not take the e-mail: {error}") from None


class OperatorTopic:
    """The operators' SNS topic: e-mail subscribers get the text, SMS subscribers one segment.

    The `urgency` attribute lets a subscription (the SMS one) take only the notices that page.
    """

    name = "sns"

    def __init__(self, sns_client: Any, topic_arn: str) -> None:
        self._sns = sns_client
        self._topic_arn = topic_arn

    def send(self, rendered: Rendered, *, notice: str, urgent: bool) -> None:
        try:
            self._sns.publish(
                TopicArn=self._topic_arn,
                Subject=ascii_line(rendered.subject, SNS_SUBJECT_LIMIT) or notice,
                MessageStructure="json",
                Message=json.dumps({"default": rendered.text, "email": rendered.text, "sms": rendered.sms}),
                MessageAttributes={
                    "notice": {"DataType": "String", "StringValue": notice},
                    "urgency": {"DataType": "String", "StringValue": "urgent" if urgent else "routine"},
                },
            )
        except (ClientError, BotoCoreError) as error:
            raise DeliveryFailed(f"SNS did not take the notice: {error}") from None


class SlackChannel:
    """A Slack incoming webhook; its URL is read when needed and kept out of every message."""

    name = "slack"

    def __init__(self, webhook_url: Callable[[], str]) -> None:
        self._webhook_url = webhook_url

    def send(self, rendered: Rendered) -> None:
        request = urllib.request.Request(
            self._webhook_url(),
            data=json.dumps(rendered.slack).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=SLACK_TIMEOUT_SECONDS) as response:
                response.read()
        except urllib.error.HTTPError as error:
            raise DeliveryFailed(f"Slack answered HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DeliveryFailed(f"Slack could not be reached: {type(reason).__name__}") from None
