"""Daily: Bedrock prices from the AWS Price List become a price version, activated only when safe."""

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.notify import SnsPublisher
from budgetkeeper.observability import logger, metrics, tracer
from budgetkeeper.price_list import PRICING_API_REGION
from budgetkeeper.price_versions import refresh_from_price_list
from budgetkeeper.settings import get_settings
from budgetkeeper.store import bind_tables


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    bind_tables(settings)
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
    return outcome.to_dict()
