"""Daily: metered Bedrock spend against the bill (Cost Explorer per service, the CUR per principal)."""

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.billing.cur import CurSource
from budgetkeeper.billing.reconcile import daily
from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.notify import SnsPublisher
from budgetkeeper.storage.tables import bind_tables


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    bind_tables(settings)
    publisher = SnsPublisher.for_stack(settings)
    outcome = daily(
        tunables=tune_invocation(settings),
        ce=boto3.client("ce", region_name="us-east-1"),  # Cost Explorer's one endpoint
        athena=boto3.client("athena", region_name=settings.region),
        cur=CurSource.from_settings(settings),
        notify=publisher.publish,
    )
    metrics.add_metric(name="BillingDriftAlerts", unit=MetricUnit.Count, value=outcome["alerted"])
    logger.info("reconciled", **{key: outcome[key] for key in ("since", "until", "alerted", "counts")})
    return outcome
