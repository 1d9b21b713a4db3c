"""The pure parts of batch-job metering: reading CloudTrail's record of a job, and splitting a
job's tokens where long-context rates apply."""

from __future__ import annotations

import pytest

from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.metering.batch_jobs import BadJobEvent, JobCreator, JobNotMetered, Manifest, job_parts
from devkit.harness.bedrock_events import batch_job_created
from tests.timeline import now_iso

JOB = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/j1"
ALICE = "arn:aws:iam::123456789012:user/alice"


def test_a_jobs_creator_is_the_signed_caller_and_its_tags_are_kept():
    event = batch_job_created(
        ALICE, JOB, "m", "s3://b/p/", now_iso(), account="123456789012", tags={"app": "X"}
    )
    creator = JobCreator.from_cloudtrail(event)
    assert (creator.creator_arn, creator.job_arn, creator.tags) == (ALICE, JOB, {"app": "X"})


def test_a_failed_create_call_or_one_without_a_job_is_no_job():
    event = batch_job_created(ALICE, JOB, "m", "s3://b/p/", now_iso(), account="123456789012")
    event["detail"]["errorCode"] = "ValidationException"
    with pytest.raises(BadJobEvent, match="failed"):
        JobCreator.from_cloudtrail(event)
    del event["detail"]["errorCode"]
    event["detail"]["responseElements"] = None
    with pytest.raises(BadJobEvent, match="job ARN"):
        JobCreator.from_cloudtrail(event)


def test_requests_over_the_long_context_threshold_are_priced_apart():
    # Given a manifest of 3 requests, one of them with a 250K-token prompt
    manifest = Manifest(input_tokens=270_000, output_tokens=3_000, processed_records=3)
    records = [TokenCounts(input=10_000, output=1_000, cache_read=500)] * 2 + [
        TokenCounts(input=250_000, output=1_000)
    ]
    # Then the long request is a part of its own, and the parts add up to the manifest
    short, long = job_parts(JOB, manifest, records)
    assert long.tokens == TokenCounts(input=250_000, output=1_000) and long.request_prompt_tokens == 250_000
    assert short.tokens == TokenCounts(input=20_000, output=2_000, cache_read=1_000)
    assert short.request_prompt_tokens == 10_500
    assert short.tokens.input + long.tokens.input == manifest.input_tokens


def test_records_that_count_more_than_the_manifest_are_not_guessed():
    manifest = Manifest(input_tokens=100, output_tokens=0, processed_records=1)
    with pytest.raises(JobNotMetered, match="more tokens than manifest"):
        job_parts(JOB, manifest, [TokenCounts(input=300_000)])


def test_a_manifest_without_its_counts_is_unreadable():
    with pytest.raises(JobNotMetered, match="unreadable"):
        Manifest.from_bytes(JOB, b'{"inputTokenCount": 5}')
    with pytest.raises(JobNotMetered, match="whole numbers"):
        Manifest.from_bytes(JOB, b'{"inputTokenCount": -1, "outputTokenCount": 0, "processedRecordCount": 1}')
