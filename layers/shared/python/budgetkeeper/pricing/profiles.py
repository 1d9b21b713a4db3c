"""Application inference profiles: the model an application profile ARN runs and its tags, asked of
Bedrock's control plane (GetInferenceProfile, ListTagsForResource), cached, and asked again a minute
after a failed lookup. The only AWS call of the pricing package's lookups."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core import clock
from budgetkeeper.pricing.table import resolve_model_id

_log = logging.getLogger(__name__)


class BedrockControlPlane(Protocol):
    """The two calls of boto3's `bedrock` client that InferenceProfiles makes."""

    def get_inference_profile(self, *, inferenceProfileIdentifier: str) -> Mapping[str, Any]: ...

    def list_tags_for_resource(self, *, resourceARN: str) -> Mapping[str, Any]: ...


# A failed look-up is asked again after this long, never remembered for the container's life: one
# throttled call must not price every later call through that profile at zero.
RETRY_FAILED_LOOKUP_AFTER = timedelta(minutes=1)
# How long a profile's tags are trusted to be current: a re-tag is seen within this time.
PROFILE_TAGS_TTL = timedelta(minutes=5)


# Profiles remembered per container (each of the three caches): the oldest is forgotten beyond it.
PROFILE_CACHE_ENTRIES = 1024


class InferenceProfiles:
    """The model of application inference profiles, asked of Bedrock once per ARN, and their tags,
    asked again once they are PROFILE_TAGS_TTL old (tags change: a re-tag is seen within that time).

    Failures (throttling, access denied, not found, no network) are not fatal: meanwhile an
    unresolved model is priced by the unknown-model rule (counted and alerted) and unreadable tags
    are `{}`, and the look-up is tried again RETRY_FAILED_LOOKUP_AFTER later.
    Limitation: a profile copied from a cross-region profile lists one foundation model per region
    and does not say which system profile it came from, so it is priced at the base model's price.
    """

    def __init__(self, client: BedrockControlPlane | None = None, *, region_name: str | None = None) -> None:
        self._client = client
        self._region_name = region_name
        self._model_ids: dict[str, str | None] = {}
        self._tags: dict[str, tuple[dict[str, str], datetime]] = {}  # tags, when read
        self._failed_at: dict[tuple[str, str], datetime] = {}
        self._lookups_left: int | None = None  # None: no batch bound
        self.deferred = 0  # look-ups this batch left for a later one

    def begin_batch(self, lookups: int) -> None:
        """Allow `lookups` Bedrock calls until the next batch: a caller can name any number of
        profile ARNs, and each unknown one costs sequential calls. Beyond it, a profile is priced
        as unresolved (counted) and looked up by a later batch."""
        self._lookups_left = lookups
        self.deferred = 0

    def _bedrock(self) -> BedrockControlPlane:
        if self._client is None:
            import boto3  # here: only callers that meet an application profile need boto3

            self._client = boto3.client("bedrock", region_name=self._region_name)
        return self._client

    def model_id_for(self, arn: str) -> str | None:
        """The model id of the profile's first model, or None when Bedrock does not say (now)."""
        if arn not in self._model_ids and self._may_ask("model", arn):
            try:
                models = (
                    self._bedrock().get_inference_profile(inferenceProfileIdentifier=arn).get("models", [])
                )
                self._model_ids[arn] = resolve_model_id(models[0]["modelArn"]).key if models else None
            except (ClientError, BotoCoreError) as error:
                self._failed("model", arn, error)
        return self._model_ids.get(arn)

    def tags_for(self, arn: str) -> dict[str, str]:
        """The profile's tags, or {} when they cannot be read (now); the last tags read stand
        while a fresh read fails."""
        cached = self._tags.get(arn)
        stale = cached is None or clock.now() - cached[1] >= PROFILE_TAGS_TTL
        if stale and self._may_ask("tags", arn):
            try:
                response = self._bedrock().list_tags_for_resource(resourceARN=arn)
                tags = {tag["key"]: tag["value"] for tag in response.get("tags", [])}
                self._tags[arn] = cached = (tags, clock.now())
            except (ClientError, BotoCoreError) as error:
                self._failed("tags", arn, error)
        return dict(cached[0]) if cached else {}

    def _may_ask(self, what: str, arn: str) -> bool:
        failed_at = self._failed_at.get((what, arn))
        if failed_at is not None and clock.now() - failed_at < RETRY_FAILED_LOOKUP_AFTER:
            return False
        if self._lookups_left is not None:
            if self._lookups_left <= 0:
                self.deferred += 1
                return False
            self._lookups_left -= 1
        caches: tuple[dict[Any, Any], ...] = (self._model_ids, self._tags, self._failed_at)
        for cache in caches:
            if len(cache) >= PROFILE_CACHE_ENTRIES:
                del cache[next(iter(cache))]  # the oldest entry
        return True

    def _failed(self, what: str, arn: str, error: Exception) -> None:
        _log.warning("cannot read the %s of application inference profile %s: %s", what, arn, error)
        self._failed_at[(what, arn)] = clock.now()
