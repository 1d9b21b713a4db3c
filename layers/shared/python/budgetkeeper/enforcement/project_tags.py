"""Suspending a bedrock-mantle project: a tag on the project, and a deny conditioned on it.

`bedrock-mantle:CreateInference` is authorized on a `project` resource with `aws:ResourceTag`
condition keys. A suspended project carries `budgetkeeper:suspended=true`; the stack's
MantleProjectGuardPolicy (template.yaml) denies CreateInference on projects carrying it. The guard
must reach whoever calls the project: attach it to the roles, users and groups that call
bedrock-mantle, or set the same statement as a service control policy for principals the stack does
not manage (README, "bedrock-mantle projects"). The DenyFunction tags and untags through the deny
records (budgetkeeper.enforcement.denies), as it attaches the deny policy to a principal.

The botocore this stack ships may have no `bedrock-mantle` client: a tag that cannot be written is a
CannotDeny (alerted, never retried), not a suspension that looks done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError, UnknownServiceError

from budgetkeeper.domain.scopes import project_arn

SUSPENDED_TAG = "budgetkeeper:suspended"
SUSPENDED_VALUE = "true"


class TagsUnavailable(Exception):
    """The project's tags cannot be written: no client for the service, or AWS refused for good."""


@dataclass
class ProjectTags:
    """The suspension tag of the projects of one Region and account."""

    client: Callable[[], Any]  # the bedrock-mantle client, made when a project is first met
    region: str
    account_id: str
    partition: str = "aws"

    def _mantle(self) -> Any:
        try:
            return self.client()
        except UnknownServiceError as error:
            raise TagsUnavailable(f"this boto3 has no bedrock-mantle client: {error}") from error

    def _arn(self, project: str) -> str:
        return project_arn(self.region, self.account_id, project, self.partition)

    def suspended(self, project: str) -> bool:
        """Whether the project carries the suspension tag (False when it is gone)."""
        try:
            response = self._mantle().list_tags_for_resource(resourceARN=self._arn(project))
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                return False
            raise
        return any(
            tag.get("key") == SUSPENDED_TAG and tag.get("value") == SUSPENDED_VALUE
            for tag in response.get("tags", ())
        )

    def suspend(self, project: str) -> None:
        try:
            self._mantle().tag_resource(
                resourceARN=self._arn(project), tags=[{"key": SUSPENDED_TAG, "value": SUSPENDED_VALUE}]
            )
        except ClientError as error:
            if _code(error) in ("ResourceNotFoundException", "ValidationException", "AccessDeniedException"):
                raise TagsUnavailable(f"cannot tag bedrock-mantle project {project}: {error}") from error
            raise

    def lift(self, project: str) -> None:
        try:
            self._mantle().untag_resource(resourceARN=self._arn(project), tagKeys=[SUSPENDED_TAG])
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":  # gone: nothing left to lift
                raise


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))
