"""Firehose data-transformation handler: meters a batch of Bedrock invocation logs."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.metering.batch_metrics import record_failure, record_metrics
from budgetkeeper.metering.calculator import build_usage_calculator


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # The event as a dict: Powertools' data_classes package imports every event class it has
    # (about 120 ms of a cold start) for the two fields read here.
    settings = get_settings()
    tunables = tune_invocation(settings)
    calculator = build_usage_calculator(settings, tunables)
    # Base64 as received: the calculator decodes each record, so bad base64 fails that record only.
    records = [(record["recordId"], record["data"]) for record in event["records"]]
    invocation_id = event["invocationId"]
    try:
        report = calculator.process(invocation_id, records)
    except Exception as error:  # logged and counted, then raised: Firehose delivers the batch again
        record_failure(invocation_id, error)
        raise
    record_metrics(report)
    return report.to_response()
