"""What AWS sends and writes for Bedrock spend no invocation log records, as its references show it:
the EventBridge events of a batch inference job (its CreateModelInvocationJob call through
CloudTrail, its state change), the outputs the job writes to S3, a bedrock-mantle CreateInference
call (a CloudTrail data event, as AWS's "Monitor bedrock-mantle API calls using CloudTrail" shows
it) and the schedule's event."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

REGION = "us-east-1"


def batch_job_created(
    caller: str,
    job: str,
    model: str,
    output_uri: str,
    at: str,
    *,
    account: str,
    tags: Mapping[str, str] | None = None,
    region: str = REGION,
) -> dict[str, Any]:
    """The "AWS API Call via CloudTrail" event of a successful CreateModelInvocationJob."""
    return {
        "version": "0",
        "id": f"created-{job.rsplit('/', 1)[-1]}",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.bedrock",
        "account": account,
        "time": at,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.09",
            "userIdentity": {"type": "IAMUser", "arn": caller, "accountId": account},
            "eventTime": at,
            "eventSource": "bedrock.amazonaws.com",
            "eventName": "CreateModelInvocationJob",
            "awsRegion": region,
            "requestParameters": {
                "jobName": job.rsplit("/", 1)[-1],
                "roleArn": f"arn:aws:iam::{account}:role/BedrockBatchRole",
                "modelId": model,
                "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://batch-in/records.jsonl"}},
                "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": output_uri}},
                "tags": [{"key": key, "value": value} for key, value in (tags or {}).items()],
            },
            "responseElements": {"jobArn": job},
            "recipientAccountId": account,
        },
    }


def batch_job_ended(job: str, status: str, at: str, *, account: str, region: str = REGION) -> dict[str, Any]:
    """Bedrock's "Batch Inference Job State Change" event."""
    return {
        "version": "0",
        "id": f"ended-{job.rsplit('/', 1)[-1]}-{status}",
        "detail-type": "Batch Inference Job State Change",
        "source": "aws.bedrock",
        "account": account,
        "time": at,
        "region": region,
        "resources": [job],
        "detail": {"batchJobArn": job, "batchJobName": job.rsplit("/", 1)[-1], "status": status},
    }


def batch_manifest(
    input_tokens: int, output_tokens: int, processed: int, total: int | None = None
) -> dict[str, int]:
    """A job's `manifest.json.out`."""
    return {
        "totalRecordCount": total or processed,
        "processedRecordCount": processed,
        "successRecordCount": processed,
        "errorRecordCount": 0,
        "inputTokenCount": input_tokens,
        "outputTokenCount": output_tokens,
    }


def write_batch_outputs(
    s3: Any,
    output_uri: str,
    job: str,
    manifest: Mapping[str, int] | None,
    usages: Sequence[Mapping[str, int]],
) -> None:
    """A job's output folder, `<output uri>/<job id>/`: its manifest (None: missing) and one output
    file whose records carry each call's `modelOutput.usage`."""
    bucket, _, prefix = output_uri.removeprefix("s3://").partition("/")
    s3.create_bucket(Bucket=bucket)
    folder = f"{prefix.rstrip('/')}/{job.rsplit('/', 1)[-1]}/".lstrip("/")
    if manifest is not None:
        s3.put_object(Bucket=bucket, Key=folder + "manifest.json.out", Body=json.dumps(manifest).encode())
    lines = "\n".join(
        json.dumps({"recordId": f"r{index}", "modelInput": {}, "modelOutput": {"usage": dict(usage)}})
        for index, usage in enumerate(usages)
    )
    s3.put_object(Bucket=bucket, Key=folder + "records.jsonl.out", Body=lines.encode())


def scheduled_event(account: str, at: str, region: str = REGION) -> dict[str, Any]:
    """What an EventBridge schedule sends a function."""
    return {
        "version": "0",
        "id": "schedule",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": at,
        "region": region,
        "resources": [],
        "detail": {},
    }


def mantle_inference(
    caller: str,
    project: str,
    model: str,
    at: str,
    *,
    account: str,
    region: str = REGION,
    error_code: str | None = None,
) -> dict[str, Any]:
    """The "AWS API Call via CloudTrail" event of a bedrock-mantle CreateInference call (a data event
    a trail logs for AWS::BedrockMantle::Project)."""
    return {
        "version": "0",
        "id": f"mantle-{project}-{at}",
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.bedrock-mantle",
        "account": account,
        "time": at,
        "region": region,
        "resources": [],
        "detail": {
            "eventVersion": "1.08",
            "userIdentity": {"type": "IAMUser", "arn": caller, "accountId": account},
            "eventTime": at,
            "eventSource": "bedrock-mantle.amazonaws.com",
            "eventName": "CreateInference",
            "awsRegion": region,
            "requestParameters": {
                "model": model,
                "stream": False,
                "service_tier": "default",
                "callWithBearerToken": False,
            },
            "responseElements": None,
            **({"errorCode": error_code} if error_code else {}),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": False,
            "recipientAccountId": account,
            "eventCategory": "Data",
            "resources": [
                {
                    "accountId": account,
                    "type": "AWS::BedrockMantle::Project",
                    "ARN": f"arn:aws:bedrock-mantle:{region}:{account}:project/{project}",
                }
            ],
        },
    }
