"""Bedrock spend no invocation log records: batch inference jobs (EventBridge: the job's creation
through CloudTrail, its end) and bedrock-mantle projects (a schedule reading CloudWatch; each
CreateInference call CloudTrail delivers counted to its caller, for the per-caller estimate)."""

from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from budgetkeeper.core import clock
from budgetkeeper.core.observability import logger, metrics, tracer
from budgetkeeper.core.settings import get_settings
from budgetkeeper.core.tunables import tune_invocation
from budgetkeeper.metering.batch_jobs import (
    CREATE_JOB,
    STATE_CHANGE,
    BadJobEvent,
    BatchJobs,
    JobNotMetered,
    job_created,
    unmetered_event,
)
from budgetkeeper.metering.batch_metrics import record_metrics
from budgetkeeper.metering.calculator import build_usage_calculator
from budgetkeeper.metering.mantle import MantleMeter
from budgetkeeper.metering.mantle_callers import CREATE_INFERENCE, BadMantleEvent, record_call
from budgetkeeper.notify import SnsPublisher
from budgetkeeper.storage.tables import bind_tables

CLOUDTRAIL_CALL = "AWS API Call via CloudTrail"
SCHEDULED = "Scheduled Event"


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = get_settings()
    tunables = tune_invocation(settings)
    kind = event.get("detail-type")
    if kind == SCHEDULED:
        account = event.get("account") or context.invoked_function_arn.split(":")[4]
        calculator = build_usage_calculator(settings, tunables)
        reports = []
        # The stack's Region and the others in use (their collectors forward events, not metrics).
        for region in dict.fromkeys((settings.region, *tunables.regions)):
            cloudwatch = boto3.client("cloudwatch", region_name=region)
            reports += MantleMeter(calculator, cloudwatch, account, region).sweep(clock.now())
        for report in reports:
            record_metrics(report)
        return {"mantle_periods": len(reports), "charged": sum(r.commit.metered_payloads for r in reports)}
    try:
        if kind == CLOUDTRAIL_CALL and (event.get("detail") or {}).get("eventName") == CREATE_INFERENCE:
            bind_tables(settings)
            call = record_call(event, tunables.usage_retention_days * 86_400)
            metrics.add_metric(name="MantleCallsCounted", unit=MetricUnit.Count, value=1)
            return {"counted": call.project}
        if kind == CLOUDTRAIL_CALL:
            bind_tables(settings)
            creator = job_created(event, tunables.usage_retention_days * 86_400)
            metrics.add_metric(name="BatchJobsRecorded", unit=MetricUnit.Count, value=1)
            logger.info(f"{CREATE_JOB} recorded", job=creator.job_arn, creator=creator.creator_arn)
            return {"recorded": creator.job_arn}
        if kind == STATE_CHANGE:
            s3 = boto3.client("s3", region_name=settings.region)
            charged = BatchJobs(build_usage_calculator(settings, tunables), s3).ended(event)
            if charged is None:
                return {"charged": False}
            record_metrics(charged)
            return {"charged": charged.commit.metered_payloads > 0, "cost_usd": str(charged.cost_usd)}
        raise BadJobEvent(f"no rule sends {kind!r} here")
    except (BadJobEvent, BadMantleEvent) as error:
        logger.warning("event not metered", reason=str(error))
        name = "BadMantleCallEvents" if isinstance(error, BadMantleEvent) else "BadBatchJobEvents"
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
        return {"error": str(error)}
    except JobNotMetered as error:
        logger.error("batch job not metered", job=error.job_arn, reason=error.reason)
        metrics.add_metric(name="BatchJobsNotMetered", unit=MetricUnit.Count, value=1)
        SnsPublisher.for_stack(settings).publish(unmetered_event(error, clock.now()))
        return {"not_metered": error.job_arn, "reason": error.reason}
