"""The workflow's Lambda entry: a task event `{"task", "state", "execution"}` with its state checked
(enforcement.state), run once per identical event (Powertools idempotency), on WorkflowTasks wired
to DynamoDB, SNS, IAM (read-only) and Step Functions."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from budgetkeeper.budgets.targets import system_role_prefixes
from budgetkeeper.core.observability import logger
from budgetkeeper.core.settings import Settings
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.enforcement.principals import iam_directory
from budgetkeeper.enforcement.state import WorkflowState, workflow_state
from budgetkeeper.enforcement.workflow import TASKS, InvalidRequest, WorkflowTasks
from budgetkeeper.notify import SnsPublisher
from budgetkeeper.storage.tables import bind_tables

# A task's result is kept this long: Step Functions retries a failed Lambda task within minutes.
IDEMPOTENCY_SECONDS = 24 * 3600


@functools.cache
def _idempotency(table_name: str) -> tuple[DynamoDBPersistenceLayer, IdempotencyConfig]:
    return DynamoDBPersistenceLayer(table_name=table_name), IdempotencyConfig(
        expires_after_seconds=IDEMPOTENCY_SECONDS, raise_on_no_idempotency_key=True
    )


def run_task_once(
    settings: Settings, tunables: Tunables, event: dict[str, Any], context: Any
) -> dict[str, Any]:
    """run_task, once per identical task event (execution, task and state).

    Step Functions retries a task whose Lambda call failed in transit; the retry returns the first
    run's result instead of notifying and auditing a second time.
    """
    persistence, config = _idempotency(settings.idempotency_table)
    config.register_lambda_context(context)

    @idempotent_function(data_keyword_argument="event", persistence_store=persistence, config=config)
    def run_once(event: dict[str, Any]) -> dict[str, Any]:
        return dict(run_task(build_workflow_tasks(settings, tunables), event))

    return run_once(event=event)


def run_task(tasks: WorkflowTasks, event: dict[str, Any]) -> WorkflowState:
    """The Lambda task entry: `{"task": name, "state": {...}, "execution": arn}`, its state checked."""
    task = TASKS.get(event.get("task", ""))
    if task is None:
        raise InvalidRequest(f"unknown task {event.get('task')!r}")
    return task(tasks, workflow_state(event))


def build_workflow_tasks(settings: Settings, tunables: Tunables) -> WorkflowTasks:
    """Wire the workflow's tasks to DynamoDB, SNS, IAM (read-only) and Step Functions."""
    bind_tables(settings)
    sfn = boto3.client("stepfunctions", region_name=settings.region)

    def stop_execution(execution_arn: str, cause: str) -> None:
        try:
            sfn.stop_execution(executionArn=execution_arn, error="Restored", cause=cause[:32_000])
        except sfn.exceptions.ExecutionDoesNotExist:
            logger.warning("no such execution to stop", execution_arn=execution_arn)

    return WorkflowTasks(
        tunables=tunables,
        publisher=SnsPublisher.for_stack(settings),
        directory=iam_directory(boto3.client("iam")),
        stop_execution=stop_execution,
        system_roles=system_role_prefixes(settings.stack_name),
    )
