"""Scheduled sweep of budgets near or over a threshold, overdue restores and rolled-over windows."""

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core import clock
from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.enforcement.monitor import build_sweep


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    tunables = tune_invocation(settings)
    report = build_sweep(settings, tunables)(clock.now())
    metrics.add_metric(name="BudgetsSwept", unit=MetricUnit.Count, value=report.budgets)
    metrics.add_metric(
        name="SweepRunsStarted",
        unit=MetricUnit.Count,
        value=len(report.evaluations) + len(report.restores) + len(report.forecasts),
    )
    metrics.add_metric(name="BudgetsRecovered", unit=MetricUnit.Count, value=len(report.recovered))
    logger.info("swept", **{name: getattr(report, name) for name in report.__slots__})
    return {name: getattr(report, name) for name in report.__slots__}
