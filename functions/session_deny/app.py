"""The workflow's session steps: deny or restore single sessions on shared roles and SSO sets."""

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.observability import logger, tracer
from budgetkeeper.session_tasks import build_session_tasks, run_session_task
from budgetkeeper.settings import get_settings


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(task=event.get("task"), scope=event.get("state", {}).get("scope"))
    return run_session_task(build_session_tasks(get_settings()), event)
