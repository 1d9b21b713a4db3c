"""Every 5 minutes: folds the usage journal into the rollups and usage lines once its oldest entry has
waited `usage_fold_minutes` (budgetkeeper.metering.compactor)."""

from datetime import timedelta
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core import clock
from budgetkeeper.core.observability import logger, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.metering.compactor import fold_usage_journal
from budgetkeeper.storage.tables import bind_tables, transaction_connection


@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    settings = get_settings()
    bind_tables(settings)
    tunables = tune_invocation(settings)
    wait = timedelta(minutes=tunables.usage_fold_minutes)
    report = fold_usage_journal(transaction_connection(settings), clock.now(), wait)
    outcome = {name: getattr(report, name) for name in report.__slots__}
    if report.transactions or report.cancelled:
        logger.info("usage journal folded", **outcome)
    return outcome
