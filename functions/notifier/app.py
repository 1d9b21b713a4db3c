"""Budget events from SNS to people (owners' e-mail, operators' SNS and Slack); the daily summary."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core import clock
from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.notify.notifier import build_notifier, notify_records, send_daily_summary


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    tunables = tune_invocation(settings)
    notifier = build_notifier(settings, tunables, context)
    if "Records" in event:  # SNS: budget events
        return notify_records(notifier, event["Records"])
    # EventBridge schedule: the daily summary
    deliveries = send_daily_summary(notifier, clock.now(), tunables.summary_rows)
    return {"summary": {delivery.channel: delivery.outcome for delivery in deliveries}}
