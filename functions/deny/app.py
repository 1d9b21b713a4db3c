"""The only function that changes IAM: the workflow's deny steps and the monitor's reconcile."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.enforcement.deny_tasks import build_deny_tasks, run_deny_task


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    tune_invocation(settings)
    logger.append_keys(task=event.get("task"), scope=event.get("state", {}).get("scope"))
    return run_deny_task(build_deny_tasks(settings), event)
