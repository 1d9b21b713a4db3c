"""Who spent a bedrock-mantle project's metered spend: an estimate, labelled so, never a reason to deny.

A project's spend is exact (metering.mantle charges `project:<id>` from AWS's token metrics); who
in the project spent it is in no metric. CloudTrail names each caller, but bedrock-mantle logs
inference (`CreateInference`) as a *data event*: not in the Event history, so `LookupEvents` never
returns one (AWS, "Monitor bedrock-mantle API calls using CloudTrail"). A trail that logs the
`AWS::BedrockMantle::Project` data events delivers each call to EventBridge as "AWS API Call via
CloudTrail"; the UnloggedSpendFunction's `MantleCalls` rule receives them and `record_call` counts
each caller's calls per project, hour and model (storage.mantle_calls: one UpdateItem per call).

`project_callers` splits each hour's metered tokens and cost of a project and model among the
callers by their share of its calls (`caller_estimate`; callers are assumed to send calls of one
size). The shares add up to what the project was charged. Nothing here writes spend: the estimate
is shown (`budgetkeeper estimate --project`), never added to a caller's budget, never a deny.
Without such a trail there are no counts, and the estimate says the callers are unknown.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from budgetkeeper.domain.scopes import parse_identity_arn
from budgetkeeper.domain.usage import TokenCounts, split_tokens
from budgetkeeper.storage.mantle_calls import MAX_COUNTS_READ, call_counts, count_call, project_rollups

CREATE_INFERENCE = "CreateInference"
MANTLE_EVENT_SOURCE = "bedrock-mantle.amazonaws.com"
PROJECT_RESOURCE_TYPE = "AWS::BedrockMantle::Project"
METHOD = (
    "the project's metered tokens and cost of each hour and model, split by each caller's share of "
    "its CreateInference calls (CloudTrail data events); callers are assumed to send calls of one size"
)


class BadMantleEvent(ValueError):
    """An event that is not a successful CreateInference call on a project: logged, nothing counted."""


@dataclass(frozen=True, slots=True)
class MantleCall:
    """One CreateInference call: who (the ARN CloudTrail signs), on which project and model, when."""

    caller_arn: str
    project: str
    model: str
    region: str
    at: datetime

    @classmethod
    def from_cloudtrail(cls, event: Mapping[str, Any]) -> MantleCall:
        detail = event.get("detail") or {}
        if detail.get("eventSource") != MANTLE_EVENT_SOURCE or detail.get("eventName") != CREATE_INFERENCE:
            raise BadMantleEvent(f"not a bedrock-mantle {CREATE_INFERENCE} call: {detail.get('eventName')!r}")
        if detail.get("errorCode"):
            raise BadMantleEvent(f"{CREATE_INFERENCE} failed ({detail['errorCode']}): nothing was spent")
        projects = [
            str(resource.get("ARN") or resource.get("arn") or "")
            for resource in detail.get("resources") or ()
            if isinstance(resource, dict) and resource.get("type") == PROJECT_RESOURCE_TYPE
        ]
        fields = {
            "caller ARN": (detail.get("userIdentity") or {}).get("arn"),
            "project": projects[0].rpartition(":project/")[2] if projects else None,
            "model": (detail.get("requestParameters") or {}).get("model"),
            "Region": detail.get("awsRegion"),
        }
        missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
        if missing:
            raise BadMantleEvent(f"{CREATE_INFERENCE} event without {', '.join(missing)}")
        try:
            at = datetime.fromisoformat(str(detail.get("eventTime")).replace("Z", "+00:00"))
        except ValueError as error:
            raise BadMantleEvent(f"{CREATE_INFERENCE} event without a valid eventTime: {error}") from error
        return cls(fields["caller ARN"], fields["project"], fields["model"], fields["Region"], at)  # type: ignore[arg-type]


def record_call(event: Mapping[str, Any], retention_seconds: int) -> MantleCall:
    """Count a CreateInference call to its caller, project, hour and model; kept `retention_seconds`."""
    call = MantleCall.from_cloudtrail(event)
    principal = parse_identity_arn(call.caller_arn).principal_scope
    hour = call.at.strftime("%Y-%m-%dT%H")
    count_call(
        call.project, hour, call.model, call.region, principal, int(call.at.timestamp()) + retention_seconds
    )
    return call


@dataclass(frozen=True, slots=True)
class CallerShare:
    """A caller's share of a project's metered spend on one model: an estimate, never a reason to deny."""

    caller: str | None  # principal scope; None: no call of the project was counted that hour
    project: str
    model: str
    region: str
    calls: int
    tokens: TokenCounts
    cost_usd: Decimal
    estimate: bool = True


def caller_estimate(
    project: str, model: str, region: str, tokens: TokenCounts, cost_usd: Decimal, calls: Mapping[str, int]
) -> list[CallerShare]:
    """The project's metered `tokens` and `cost_usd` of one model split among its callers (principal
    scopes) by their share of `calls`: whole tokens by largest remainder, the cost in proportion,
    the last caller's part taking what is left so the parts add up to `cost_usd` exactly."""
    counted = {caller: count for caller, count in calls.items() if count > 0}
    if not counted:
        return [CallerShare(None, project, model, region, 0, tokens, cost_usd)]
    whole = sum(counted.values())
    callers = sorted(counted)
    costs = {caller: cost_usd * counted[caller] / whole for caller in callers[:-1]}
    costs[callers[-1]] = cost_usd - sum(costs.values(), Decimal(0))
    parts = split_tokens(tokens, counted)
    return [
        CallerShare(caller, project, model, region, counted[caller], parts[caller], costs[caller])
        for caller in callers
    ]


@dataclass(slots=True)
class ProjectCallers:
    """A project's estimated spend per caller and model over some hours."""

    project: str
    shares: list[CallerShare] = field(default_factory=list)
    counts_truncated: bool = False  # more than MAX_COUNTS_READ counts: the split used the first ones
    estimate: bool = True

    @property
    def cost_usd(self) -> Decimal:
        return sum((share.cost_usd for share in self.shares), Decimal(0))


def project_callers(project: str, first_hour: str, last_hour: str) -> ProjectCallers:
    """The project's metered spend from `first_hour` to `last_hour` (UTC, `YYYY-MM-DDTHH`, both
    included) split among its callers hour by hour, then summed per caller and model."""
    counts = list(call_counts(project, first_hour, last_hour, MAX_COUNTS_READ))
    by_hour_model: dict[tuple[str, str, str], dict[str, int]] = defaultdict(dict)
    for count in counts:
        by_hour_model[(count.hour, count.model, count.region)][count.principal] = count.calls
    summed: dict[tuple[str | None, str, str], CallerShare] = {}
    for rollup in project_rollups(project, first_hour, last_hour):
        key = (str(rollup.hour), str(rollup.model), str(rollup.region))
        for share in caller_estimate(
            project, key[1], key[2], rollup.token_counts(), rollup.cost_usd, by_hour_model.get(key, {})
        ):
            before = summed.get((share.caller, share.model, share.region))
            summed[(share.caller, share.model, share.region)] = (
                share
                if before is None
                else replace(
                    before,
                    calls=before.calls + share.calls,
                    tokens=before.tokens + share.tokens,
                    cost_usd=before.cost_usd + share.cost_usd,
                )
            )
    shares = sorted(summed.values(), key=lambda s: (s.caller is None, s.caller or "", s.model, s.region))
    return ProjectCallers(project, shares, counts_truncated=len(counts) >= MAX_COUNTS_READ)
