"""Daily: Bedrock prices from the AWS Price List become a price version, activated only when safe;
then usage charged at an estimate is re-priced where the prices now know its model."""

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.metering.estimates import reprice_estimates
from budgetkeeper.notify import SnsPublisher
from budgetkeeper.pricing.price_list import PRICING_API_REGION
from budgetkeeper.pricing.versions import current_table, refresh_from_price_list
from budgetkeeper.storage.tables import bind_tables, transaction_connection


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    bind_tables(settings)
    tunables = tune_invocation(settings)
    publisher = SnsPublisher.for_stack(settings)
    outcome = refresh_from_price_list(
        boto3.client("pricing", region_name=PRICING_API_REGION),
        max_factor=settings.price_move_max_factor,
        notify=publisher.publish,
    )
    metrics.add_metric(
        name="PriceVersionsRefused", unit=MetricUnit.Count, value=0 if outcome.activated else 1
    )
    logger.info("price refresh", version=outcome.version, activated=outcome.activated)
    retention_seconds = tunables.usage_retention_days * 86_400
    repriced = reprice_estimates(current_table(), transaction_connection(settings), retention_seconds)
    metrics.add_metric(
        name="EstimatesRepriced", unit=MetricUnit.Count, value=sum(repriced.corrected.values())
    )
    if repriced.still_estimated:
        logger.warning("models still charged at an estimate", models=dict(repriced.still_estimated))
    return {**outcome.to_dict(), "repriced": repriced.to_dict()}
