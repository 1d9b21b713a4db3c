"""Firehose data-transformation handler: meters a batch of Bedrock invocation logs."""

from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    raise NotImplementedError("the usage calculator lands with the metering pipeline")
