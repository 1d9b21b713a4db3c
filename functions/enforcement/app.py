"""The budget enforcement workflow's Lambda tasks: `{"task": ..., "state": ..., "execution": ...}`."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.enforcement.workflow_entry import run_task_once


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = event.get("state", {})
    logger.append_keys(task=event.get("task"), scope=state.get("scope"), execution=event.get("execution"))
    settings = get_settings()
    tunables = tune_invocation(settings)
    return run_task_once(settings, tunables, event, context)
