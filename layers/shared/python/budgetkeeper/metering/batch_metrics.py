"""What one batch tells CloudWatch and the log: EMF counts, the cost per model and per team, and
the warnings that name who hit a cap or called an unpriced model (the usage calculator's and the
unlogged-spend function's handlers call these after each batch)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from decimal import Decimal

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from budgetkeeper.core.observability import logger, metrics
from budgetkeeper.metering.calculator import BatchReport, describe_error
from budgetkeeper.metering.deltas import UsageDeltas

# A caller can name any number of models: every unpriced one is this one dimension value.
UNKNOWN_MODEL_DIMENSION = "unknown"
LOGGED_UNKNOWN_MODELS = 20


def cost_by_model_and_team(
    applied: UsageDeltas, named_models: Collection[str]
) -> dict[str, dict[str, Decimal]]:
    """The cost this batch added (never a redelivery's), by model and by team (calls with a team).

    A model not in `named_models` (the priced ones) is the one dimension value UNKNOWN_MODEL_DIMENSION:
    a caller can name any number of models, and each dimension value is a custom metric."""
    costs: dict[str, dict[str, Decimal]] = {"Model": defaultdict(Decimal), "Team": defaultdict(Decimal)}
    for (_, model, _, _, _, _, _, team, _), line in applied.lines.items():
        costs["Model"][model if model in named_models else UNKNOWN_MODEL_DIMENSION] += line.cost_usd
        if team:
            costs["Team"][team.removeprefix("team:")] += line.cost_usd
    return costs


def record_metrics(report: BatchReport) -> None:
    """EMF metrics of one batch; the unknown models are logged by id so operators can add prices."""
    counts = {
        "RecordsMetered": report.metered_events,
        "BadEvents": report.bad_events,
        "FailedRecords": report.failed_records,
        "DedupeHits": report.commit.duplicate_payloads,
        "UnknownModelCalls": sum(report.unknown_models.values()),
        "EstimatedCalls": sum(report.estimated_models.values()),
        "FallbackPricedCalls": sum(report.fallback_calls.values()),
        "ProvisionedModelCalls": sum(report.provisioned_models.values()),
        "ArchiveOverflowRecords": report.overflow_records,
        "DynamoDBTransactions": report.commit.transactions,
        "ProfileLookupsDeferred": report.profile_lookups_deferred,
    }
    for name, value in counts.items():
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.add_metric(name="CostMeteredUSD", unit=MetricUnit.NoUnit, value=float(report.cost_usd))
    # One EMF line per model and per team (a dimension value per line), flushed here; unlike
    # single_metric, a flush honours POWERTOOLS_METRICS_DISABLED.
    for dimension, costs in cost_by_model_and_team(report.commit.applied, report.named_models).items():
        for dimension_value, cost in sorted(costs.items()):
            line = EphemeralMetrics(namespace=metrics.provider.namespace)
            line.add_dimension(name=dimension, value=dimension_value)
            line.add_metric(name="CostMeteredUSD", unit=MetricUnit.NoUnit, value=float(cost))
            line.flush_metrics()
    if report.unknown_models:
        # The most called ones by id, so operators can add their prices; a count of the rest.
        named = dict(report.unknown_models.most_common(LOGGED_UNKNOWN_MODELS))
        others = len(report.unknown_models) - len(named)
        logger.warning("unknown models priced at zero", models=named, other_models=others)
    folded = report.folded
    metrics.add_metric(name="AppClaimsFolded", unit=MetricUnit.Count, value=folded.app_claims.total())
    metrics.add_metric(name="UnknownModelsFolded", unit=MetricUnit.Count, value=folded.unknown_model_calls)
    if folded.app_claims:
        logger.warning(
            "app claims over the per-principal cap charged to app:(other)",
            principals=dict(folded.app_claims.most_common(LOGGED_UNKNOWN_MODELS)),
            principal_count=len(folded.app_claims),
        )
    for model in report.new_estimated_models:  # once per model, ever (usage_writer.first_estimate_of)
        logger.warning(
            "new model without a price: charged at a conservative estimate until its price arrives",
            model=model,
            calls=report.estimated_models[model],
        )
    if report.fallback_calls:
        logger.warning("calls priced at a fallback rate", calls=dict(report.fallback_calls))
    if report.bad_events:
        logger.warning("bad events quarantined", count=report.bad_events, location=report.quarantine_uri)


def record_failure(batch_id: str, error: Exception) -> None:
    """A batch that raised: Firehose invokes the function again with the same records (then writes
    them under `processing-failed/`), and the payload markers make that retry finish what this one
    began without counting anything twice."""
    logger.exception(
        "batch not metered: Firehose delivers it again", batch=batch_id, error=describe_error(error)
    )
    metrics.add_metric(name="BatchesFailed", unit=MetricUnit.Count, value=1)
