"""Firehose data-transformation handler: meters a batch of Bedrock invocation logs."""

from aws_lambda_powertools.utilities.data_classes import KinesisFirehoseEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.calculator import build_usage_calculator, record_failure, record_metrics
from budgetkeeper.observability import logger, metrics, tracer
from budgetkeeper.settings import get_settings, load_tunables


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_source(data_class=KinesisFirehoseEvent)
def lambda_handler(event: KinesisFirehoseEvent, context: LambdaContext) -> dict:
    settings = get_settings()
    tunables = load_tunables(settings)
    logger.setLevel(tunables.log_level)
    calculator = build_usage_calculator(settings, tunables)
    # Base64 as received: the calculator decodes each record, so bad base64 fails that record only.
    records = [(record.record_id, record.data) for record in event.records]
    try:
        report = calculator.process(event.invocation_id, records)
    except Exception as error:  # logged and counted, then raised: Firehose delivers the batch again
        record_failure(event.invocation_id, error)
        raise
    record_metrics(report)
    return report.to_response()
