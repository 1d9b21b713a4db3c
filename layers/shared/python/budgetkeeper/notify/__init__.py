"""Notification events: one structured event per budget transition, to one publisher. The workflow
publishes every event to the budget-events SNS topic as JSON; renderers and channels (e-mail, SMS,
Slack) subscribe to it: the event is the contract between them. Imports storage, budgets, domain
and core; never enforcement.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core.observability import logger, metrics
from budgetkeeper.notify.causes import causes_text

if TYPE_CHECKING:
    from budgetkeeper.core.settings import Settings

# Event types, in the words a person reads first.
TITLES = {
    "warning": "Budget warning",
    "critical": "Budget critical",
    "forecast": "Budget forecast over the limit",
    "grace": "Budget exceeded: suspension follows the grace period",
    "suspended": "Bedrock access suspended",
    "restored": "Bedrock access restored",
    "stood_down": "Suspension called off",
    "protected_alert": "Protected scope over its budget",
    "cannot_suspend": "Over budget, but nothing to suspend",
    "late_spend": "Spend landed in a closed window",
    "protected": "Scope protected",
    "unprotected": "Scope no longer protected",
    "workflow_failed": "Budget workflow failed",
    "deny_reconciled": "IAM deny corrected to match the records",
    "session_policy_rejected": "Session policy in IAM was not Budgetkeeper's Deny: removed",
    "member_account_unreachable": "Member account unreachable: its denies are not applied yet",
    "prices_refused": "Price List refresh stored but not activated",
    "billing_drift": "Metered Bedrock spend and the bill disagree",
    "batch_job_unmetered": "Batch inference job not metered",
}


@dataclass(frozen=True, slots=True)
class NotificationEvent:
    type: str
    scope: str
    window: str | None
    window_id: str | None
    spent_usd: str | None
    limit_usd: str | None
    percent: str | None
    refresh_at: str | None
    actor: str
    reason: str | None
    execution: str | None
    at: str
    dry_run: bool = False
    note: str | None = None
    billed_usd: str | None = None  # what AWS bills, beside spent_usd (what was metered): reconciliation
    # Urgent notice types (notices.URGENT_NOTICES) page operators by SMS, unless the run says this
    # one pages no one: an operator's own action that failed (the operator sees it end), or a
    # suspension whose principals no longer exist in IAM.
    routine: bool = False
    # What the notice says beyond the budget's numbers, in fields (never in words): each reader's
    # language words them (budgetkeeper.notify.locale).
    projected_usd: str | None = None  # forecast: the spend projected to the window's end
    crosses_at: str | None = None  # forecast: when the projection reaches the limit
    suspend_at: str | None = None  # grace: when the suspension follows, unless the limit is raised
    top_model: str | None = None  # what drove the window's spend, from the scope's rollups
    top_model_usd: str | None = None
    top_app: str | None = None  # the app whose calls cost the scope most, from the usage lines
    top_app_usd: str | None = None
    top_app_hours: int | None = None  # top_app over the window's last hours only; None: the whole window
    time_zone: str | None = None  # the budget's: its readers' times are shown in it
    # An operator alert's causes, in fields (budgetkeeper.notify.causes words them per reader);
    # `reason` holds them in English, for the logs.
    causes: list[dict[str, str]] | None = None

    @classmethod
    def operator_alert(
        cls,
        type: str,
        scope: str,
        actor: str,
        causes: list[dict[str, str]],
        at: str,
        note: str,
        execution: str | None = None,
    ) -> NotificationEvent:
        """An alert about no budget window (a price refresh refused, a job not metered, a deny the
        reconciler fixed)."""
        return cls(
            type=type,
            scope=scope,
            window=None,
            window_id=None,
            spent_usd=None,
            limit_usd=None,
            percent=None,
            refresh_at=None,
            actor=actor,
            reason=causes_text(causes, "en"),
            execution=execution,
            at=at,
            note=note,
            causes=causes,
        )

    @property
    def title(self) -> str:
        prefix = "[dry run] " if self.dry_run else ""
        return prefix + TITLES.get(self.type, self.type)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, **asdict(self)}


class SnsPublisher:
    """Publishes events to the budget-events topic; a message attribute carries the type for filters."""

    def __init__(self, sns_client: Any, topic_arn: str) -> None:
        self._sns = sns_client
        self._topic_arn = topic_arn

    @classmethod
    def for_stack(cls, settings: Settings) -> SnsPublisher:
        """The publisher to this stack's budget-events topic."""
        return cls(boto3.client("sns", region_name=settings.region), settings.notifications_topic)

    def publish(self, event: NotificationEvent) -> None:
        """Publish, or log and count the failure: a notice never stops enforcement.

        SNS down (after botocore's retries) must not fail the step that publishes: the step would be
        retried, then caught, and a suspension undone for want of an e-mail. The event is logged in
        full (`notification not sent`) and counted (`NotificationsFailed`, in the `<stack>-faults` alarm).
        """
        logger.info("notification", **event.to_dict())
        try:
            self._sns.publish(
                TopicArn=self._topic_arn,
                Subject=event.title[:100],
                Message=json.dumps(event.to_dict()),
                MessageAttributes={
                    "type": {"DataType": "String", "StringValue": event.type},
                    "scope": {"DataType": "String", "StringValue": event.scope},
                },
            )
        except (ClientError, BotoCoreError) as error:
            logger.error("notification not sent", error=str(error), topic=self._topic_arn, **event.to_dict())
            metrics.add_metric(name="NotificationsFailed", unit=MetricUnit.Count, value=1)
