"""Batch inference jobs, metered exactly once: Bedrock logs no invocation of them.

Two EventBridge events drive it (template.yaml, UnloggedSpendFunction):
- "AWS API Call via CloudTrail" for `CreateModelInvocationJob`: the job's creator is recorded, by
  the caller ARN CloudTrail signs (`userIdentity.arn`), with the job's ARN, model, Region, output
  location and tags (a `creator record`, in the rollups table's `batch-jobs` partition);
- "Batch Inference Job State Change" (source `aws.bedrock`): when a job ends Completed,
  PartiallyCompleted or Stopped, its output location's `manifest.json.out` (input and output tokens,
  record counts) and the per-record outputs' usage (cache tokens, prompts over the long-context
  threshold) are priced at the batch tier (pricing.price_invocation, ServiceTier.BATCH) and charged
  to the creator's scopes through the calculator's exactly-once writer, under the job's ARN: a
  redelivered event or a retried function charges once.

A job whose manifest is missing or unreadable, or that has no creator record, is alerted
(`JobNotMetered`), never guessed. The job's tags are claims, like `requestMetadata`: an `app` tag
charges the app as a claim (budgetkeeper.domain.scopes), never a reason to deny the app's own role.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core.actors import BATCH_JOBS_ACTOR
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.scopes import parse_identity_arn
from budgetkeeper.domain.usage import BATCH_OPERATION, Invocation, ServiceTier, TokenCounts
from budgetkeeper.metering.calculator import BatchReport, UsageCalculator
from budgetkeeper.metering.meter import Meter, Metered
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.causes import cause, cause_text
from budgetkeeper.pricing.table import LONG_CONTEXT_THRESHOLD_TOKENS
from budgetkeeper.storage.tables import RollupItem

CREATE_JOB = "CreateModelInvocationJob"
STATE_CHANGE = "Batch Inference Job State Change"
# The statuses a job bills in: it ran to the end, or part way (AWS bills the records it processed).
BILLED_STATUSES = frozenset({"Completed", "PartiallyCompleted", "Stopped"})
JOBS_PARTITION = "batch-jobs"
MANIFEST = "manifest.json.out"
OUTPUT_SUFFIX = ".jsonl.out"


class BadJobEvent(ValueError):
    """An event that is not what its rule matches: logged and counted, nothing charged."""


class JobNotMetered(Exception):
    """A job that ended and billed, but cannot be charged exactly: operators are alerted."""

    def __init__(self, job_arn: str, why: dict[str, str], creator_arn: str | None = None) -> None:
        super().__init__(f"batch job {job_arn} not metered: {cause_text(why, 'en')}")
        self.job_arn, self.why, self.creator_arn = job_arn, why, creator_arn

    @property
    def reason(self) -> str:
        """Why, in English (the logs'); the alert carries `why` for each reader's words."""
        return cause_text(self.why, "en")


@dataclass(frozen=True, slots=True)
class JobCreator:
    """Who created a batch job (the signed caller ARN) and what the job runs."""

    job_arn: str
    creator_arn: str
    model_id: str
    region: str
    account_id: str
    output_uri: str  # s3://bucket/prefix/ the job writes under (`<jobId>/` below it)
    created_at: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_cloudtrail(cls, event: Mapping[str, Any]) -> JobCreator:
        """Read an "AWS API Call via CloudTrail" event of a successful CreateModelInvocationJob."""
        detail = event.get("detail") or {}
        if detail.get("eventName") != CREATE_JOB:
            raise BadJobEvent(f"not a {CREATE_JOB} call: {detail.get('eventName')!r}")
        if detail.get("errorCode"):
            raise BadJobEvent(f"{CREATE_JOB} failed ({detail['errorCode']}): no job to meter")
        request = detail.get("requestParameters") or {}
        response = detail.get("responseElements") or {}
        identity = detail.get("userIdentity") or {}
        output = ((request.get("outputDataConfig") or {}).get("s3OutputDataConfig") or {}).get("s3Uri")
        fields = {
            "job ARN": response.get("jobArn"),
            "caller ARN": identity.get("arn"),
            "model": request.get("modelId"),
            "output location": output,
        }
        missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
        if missing:
            raise BadJobEvent(f"{CREATE_JOB} event without {', '.join(missing)}")
        tags = {
            str(tag.get("key")): str(tag.get("value"))
            for tag in request.get("tags") or ()
            if isinstance(tag, dict) and tag.get("key")
        }
        return cls(
            job_arn=response["jobArn"],
            creator_arn=identity["arn"],
            model_id=request["modelId"],
            region=str(detail.get("awsRegion") or event.get("region")),
            account_id=str(detail.get("recipientAccountId") or event.get("account")),
            output_uri=output,  # type: ignore[arg-type]
            created_at=str(detail.get("eventTime") or event.get("time")),
            tags=tags,
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "model_id": self.model_id,
                "account_id": self.account_id,
                "output_uri": self.output_uri,
                "created_at": self.created_at,
                "tags": dict(self.tags),
            },
            sort_keys=True,
        )

    @classmethod
    def from_item(cls, item: RollupItem) -> JobCreator:
        job = json.loads(str(item.batch_job))
        return cls(
            job_arn=item.bucket,
            creator_arn=str(item.identity_arn),
            model_id=job["model_id"],
            region=str(item.region),
            account_id=job["account_id"],
            output_uri=job["output_uri"],
            created_at=job["created_at"],
            tags=job["tags"],
        )


def record_creator(creator: JobCreator, expires_at: int) -> None:
    """Write the creator record (the same event twice writes the same item)."""
    RollupItem(
        JOBS_PARTITION,
        creator.job_arn,
        identity_arn=creator.creator_arn,
        model=creator.model_id,
        region=creator.region,
        hour=creator.created_at[:13],
        batch_job=creator.to_json(),
        expires_at=expires_at,
    ).save()


def creator_of(job_arn: str) -> JobCreator | None:
    try:
        return JobCreator.from_item(RollupItem.get(JOBS_PARTITION, job_arn, consistent_read=True))
    except RollupItem.DoesNotExist:
        return None


@dataclass(frozen=True, slots=True)
class JobEnded:
    """A "Batch Inference Job State Change" event."""

    job_arn: str
    status: str
    at: datetime  # the event's time: the job is charged to the windows of this moment

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> JobEnded:
        if event.get("detail-type") != STATE_CHANGE:
            raise BadJobEvent(f"not a {STATE_CHANGE} event: {event.get('detail-type')!r}")
        detail = event.get("detail") or {}
        resources = event.get("resources") or [None]
        job_arn = detail.get("batchJobArn") or detail.get("jobArn") or resources[0]
        if not isinstance(job_arn, str) or not job_arn:
            raise BadJobEvent(f"{STATE_CHANGE} event without the job's ARN")
        try:
            at = datetime.fromisoformat(str(event["time"]).replace("Z", "+00:00"))
        except (KeyError, ValueError) as error:
            raise BadJobEvent(f"{STATE_CHANGE} event without a valid time: {error}") from error
        return cls(job_arn=job_arn, status=str(detail.get("status", "")), at=at)

    @property
    def billed(self) -> bool:
        return self.status in BILLED_STATUSES


@dataclass(frozen=True, slots=True)
class Manifest:
    """`manifest.json.out`: what the job processed and the tokens AWS bills for it."""

    input_tokens: int
    output_tokens: int
    processed_records: int
    total_records: int | None = None
    error_records: int | None = None

    @classmethod
    def from_bytes(cls, job_arn: str, data: bytes) -> Manifest:
        try:
            document = json.loads(data)
            names = ("inputTokenCount", "outputTokenCount", "processedRecordCount")
            counts = {name: document[name] for name in names}
        except (ValueError, KeyError, TypeError) as error:
            why = cause("manifest_unreadable", manifest=MANIFEST, error=repr(error))
            raise JobNotMetered(job_arn, why) from error
        if not all(type(value) is int and value >= 0 for value in counts.values()):
            raise JobNotMetered(job_arn, cause("manifest_not_whole", manifest=MANIFEST, counts=counts))
        return cls(
            input_tokens=counts["inputTokenCount"],
            output_tokens=counts["outputTokenCount"],
            processed_records=counts["processedRecordCount"],
            total_records=document.get("totalRecordCount"),
            error_records=document.get("errorRecordCount"),
        )


def job_folder(creator: JobCreator) -> tuple[str, str]:
    """The bucket and key prefix the job writes its outputs under: `<output uri>/<job id>/`."""
    bucket, _, prefix = creator.output_uri.removeprefix("s3://").partition("/")
    job_id = creator.job_arn.rsplit("/", 1)[-1]
    return bucket, f"{prefix.rstrip('/')}/{job_id}/".lstrip("/")


def read_outputs(s3: Any, creator: JobCreator) -> tuple[Manifest, list[TokenCounts]]:
    """The job's manifest and each output record's usage (JobNotMetered when the manifest is
    missing or unreadable; a record without usage counts for the manifest's totals only)."""
    bucket, prefix = job_folder(creator)
    try:
        manifest = Manifest.from_bytes(
            creator.job_arn, s3.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read()
        )
        records: list[TokenCounts] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for entry in page.get("Contents", ()):
                if entry["Key"].endswith(OUTPUT_SUFFIX):
                    body = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"]
                    records += record_usages(body.iter_lines())
    except (ClientError, BotoCoreError) as error:
        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None
        where = f"s3://{bucket}/{prefix}"
        why = cause("outputs_unreadable", where=where, error=code or error)
        raise JobNotMetered(creator.job_arn, why, creator.creator_arn) from error
    return manifest, records


def record_usages(lines: Iterable[bytes]) -> Iterator[TokenCounts]:
    """Each output record's usage, as the model reports it in `modelOutput.usage`: Anthropic's
    `input_tokens` / `cache_read_input_tokens` / `cache_creation_input_tokens`, Amazon's
    `inputTokens` / `cacheReadInputTokenCount` / `cacheWriteInputTokenCount`."""
    for line in lines:
        try:
            usage = json.loads(line).get("modelOutput", {}).get("usage")
        except (ValueError, AttributeError):
            continue
        if not isinstance(usage, dict):
            continue
        yield TokenCounts(
            input=_count(usage, "input_tokens", "inputTokens", "prompt_tokens"),
            output=_count(usage, "output_tokens", "outputTokens", "completion_tokens"),
            cache_read=_count(usage, "cache_read_input_tokens", "cacheReadInputTokenCount"),
            cache_write_5m=_count(usage, "cache_creation_input_tokens", "cacheWriteInputTokenCount"),
        )


def _count(usage: Mapping[str, Any], *names: str) -> int:
    """The first of `names` the usage has, when it is a whole number of tokens (else 0)."""
    value = next((usage[name] for name in names if name in usage), 0)
    return value if type(value) is int and value > 0 else 0


@dataclass(frozen=True, slots=True)
class JobPart:
    """Tokens of a job priced together, and one request's prompt (what decides long-context rates)."""

    tokens: TokenCounts
    request_prompt_tokens: int


def job_parts(job_arn: str, manifest: Manifest, records: list[TokenCounts]) -> list[JobPart]:
    """The manifest's tokens, split into requests over the long-context threshold and the rest.

    The manifest's input and output counts are what AWS bills; the records add the cache tokens
    (which the manifest does not count) and say which requests are long. Without readable records
    a request's prompt is the manifest's average.
    """
    long = [record for record in records if record.prompt_total > LONG_CONTEXT_THRESHOLD_TOKENS]
    short = [record for record in records if record.prompt_total <= LONG_CONTEXT_THRESHOLD_TOKENS]
    long_total = sum(long, TokenCounts())
    rest_input = manifest.input_tokens - long_total.input
    rest_output = manifest.output_tokens - long_total.output
    if rest_input < 0 or rest_output < 0:
        raise JobNotMetered(job_arn, cause("more_tokens_than_manifest", manifest=MANIFEST))
    cache = sum(short, TokenCounts())
    rest = TokenCounts(
        input=rest_input, output=rest_output, cache_read=cache.cache_read, cache_write_5m=cache.cache_write_5m
    )
    prompt = (
        max((record.prompt_total for record in short), default=0)
        if records
        else rest_input // max(manifest.processed_records, 1)
    )
    parts = [JobPart(rest, prompt)]
    if long:
        parts.append(JobPart(long_total, min(record.prompt_total for record in long)))
    return [part for part in parts if part.tokens != TokenCounts()] or [JobPart(TokenCounts(), 0)]


def meter_job(meter: Meter, creator: JobCreator, ended: JobEnded, parts: list[JobPart]) -> list[Metered]:
    """The job's usage, attributed to its creator and priced at the batch tier."""
    return [
        meter.meter_invocation(
            Invocation(
                request_id=creator.job_arn,
                timestamp=ended.at,
                account_id=creator.account_id,
                identity_arn=creator.creator_arn,
                region=creator.region,
                operation=BATCH_OPERATION,
                model_id=creator.model_id,
                tokens=part.tokens,
                request_metadata=creator.tags,  # claims, as requestMetadata is
                service_tier=ServiceTier.BATCH,
            ),
            request_prompt_tokens=part.request_prompt_tokens,
        )
        for part in parts
    ]


def usage_id(job_arn: str) -> str:
    """The id the writer marks a job's charge under: one per job, whatever delivers its end."""
    return f"batch-job#{job_arn}"


def job_created(event: Mapping[str, Any], retention_seconds: int) -> JobCreator:
    """Record the creator of the job a CloudTrail event created; kept `retention_seconds` (a creator
    record outlives the longest job by far)."""
    creator = JobCreator.from_cloudtrail(event)
    created = datetime.fromisoformat(creator.created_at.replace("Z", "+00:00"))
    record_creator(creator, int(created.timestamp()) + retention_seconds)
    return creator


@dataclass
class BatchJobs:
    """A job's end, as UnloggedSpendFunction receives it."""

    calculator: UsageCalculator
    s3: Any

    def ended(self, event: Mapping[str, Any]) -> BatchReport | None:
        """Charge a job that ended and billed (None: it bills nothing, e.g. Failed or InProgress)."""
        ended = JobEnded.from_event(event)
        if not ended.billed:
            return None
        creator = creator_of(ended.job_arn)
        if creator is None:
            raise JobNotMetered(ended.job_arn, cause("no_creator", call=CREATE_JOB))
        try:
            manifest, records = read_outputs(self.s3, creator)
            parts = job_parts(ended.job_arn, manifest, records)
        except JobNotMetered as error:  # named with its creator, whom the alert concerns
            raise JobNotMetered(error.job_arn, error.why, creator.creator_arn) from error
        metered = meter_job(self.calculator.meter, creator, ended, parts)
        return self.calculator.charge(usage_id(ended.job_arn), metered)


def unmetered_event(error: JobNotMetered, at: datetime) -> NotificationEvent:
    """The operators' alert for a job that bills but cannot be charged exactly."""
    scope = parse_identity_arn(error.creator_arn).principal_scope if error.creator_arn else "batch-jobs"
    note = json.dumps({"job": error.job_arn, "creator": error.creator_arn})
    return NotificationEvent.operator_alert(
        "batch_job_unmetered", scope, BATCH_JOBS_ACTOR, [error.why], iso_utc(at), note
    )
