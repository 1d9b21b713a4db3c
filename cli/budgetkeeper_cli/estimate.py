"""Spend before invocation logging was on: an estimate from CloudTrail and CloudWatch.

CloudTrail records each Bedrock runtime call (a management event: who, which model, when) but no
tokens; CloudWatch's `AWS/Bedrock` metrics count tokens per model but not per caller. So: calls per
(principal, model, Region) from `LookupEvents`, tokens per (model, Region) from the metrics, and
each model's tokens split among its callers by their share of its calls (largest remainder, so the
parts add up to the metric). Each part is priced with the rates `price_invocation` charges for the
model's average call (so a long-context tier applies when the average call is long). It is an
estimate: callers of one model are assumed to send calls of the same size.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from budgetkeeper.domain.scopes import parse_identity_arn
from budgetkeeper.domain.usage import TokenCounts, split_tokens
from budgetkeeper.pricing.rates import PriceStatus, price_invocation
from budgetkeeper.pricing.table import TOKENS_PER_PRICE_UNIT, PriceTable

RUNTIME_CALLS = frozenset({"InvokeModel", "InvokeModelWithResponseStream", "Converse", "ConverseStream"})
BEDROCK_SOURCE = "bedrock.amazonaws.com"
# AWS/Bedrock metric per TokenCounts field (dimension ModelId).
TOKEN_METRICS: Mapping[str, str] = {
    "input": "InputTokenCount",
    "output": "OutputTokenCount",
    "cache_read": "CacheReadInputTokenCount",
    "cache_write_5m": "CacheWriteInputTokenCount",
}
METRIC_PERIOD_SECONDS = 3600
METRIC_QUERIES_PER_CALL = 500  # GetMetricData's limit

Key = tuple[str, str, str]  # principal scope, model id, Region


@dataclass(frozen=True, slots=True)
class EstimateRow:
    principal: str
    team: str | None
    model: str
    region: str
    calls: int
    tokens: TokenCounts
    cost_usd: Decimal
    note: str | None = None


def model_of(model_id: str) -> str:
    """A foundation-model ARN as the id CloudWatch names it (`.../foundation-model/X` -> X)."""
    if model_id.startswith("arn:") and ":foundation-model/" in model_id:
        return model_id.split(":foundation-model/", 1)[1]
    return model_id


def count_calls(events: Iterable[Mapping[str, Any]]) -> Counter[Key]:
    """Bedrock runtime calls per (principal scope, model, Region) in CloudTrail events."""
    calls: Counter[Key] = Counter()
    for event in events:
        if event.get("EventName") not in RUNTIME_CALLS:
            continue
        detail = json.loads(event["CloudTrailEvent"])
        if detail.get("errorCode"):
            continue  # a refused call costs nothing
        model = (detail.get("requestParameters") or {}).get("modelId")
        arn = (detail.get("userIdentity") or {}).get("arn")
        if not model or not arn:
            continue
        calls[(parse_identity_arn(arn).principal_scope, model_of(model), detail["awsRegion"])] += 1
    return calls


def estimate(
    calls: Mapping[Key, int],
    tokens: Mapping[tuple[str, str], TokenCounts],
    table: PriceTable,
    teams: Mapping[str, str],
) -> list[EstimateRow]:
    """Each caller's estimated tokens and cost per model and Region."""
    by_model: dict[tuple[str, str], dict[Key, int]] = defaultdict(dict)
    for key, count in calls.items():
        by_model[(key[1], key[2])][key] = count
    rows: list[EstimateRow] = []
    for (model, region), shares in sorted(by_model.items()):
        total = tokens.get((model, region), TokenCounts())
        all_calls = sum(shares.values())
        average = TokenCounts(
            **{kind: round(getattr(total, kind) / all_calls) for kind in TokenCounts.__struct_fields__}
        )
        priced = price_invocation(table, model, region, average)
        rates = priced.rates
        note = None if priced.status is PriceStatus.PRICED else priced.note
        for key, part in sorted(split_tokens(total, shares).items()):
            cost = (
                sum((count * rate for _, count, rate, _ in rates.billed(part)), Decimal(0))
                / TOKENS_PER_PRICE_UNIT
                if rates is not None
                else Decimal(0)
            )
            principal = key[0]
            rows.append(
                EstimateRow(principal, teams.get(principal), model, region, shares[key], part, cost, note)
            )
    return rows


# ----------------------------------------------------------------------------- reading AWS


def lookup_events(cloudtrail: Any, since: datetime, until: datetime) -> Iterator[Mapping[str, Any]]:
    """Bedrock's CloudTrail management events between `since` and `until` (90 days at most)."""
    paginator = cloudtrail.get_paginator("lookup_events")
    pages = paginator.paginate(
        LookupAttributes=[{"AttributeKey": "EventSource", "AttributeValue": BEDROCK_SOURCE}],
        StartTime=since,
        EndTime=until,
    )
    for page in pages:
        yield from page.get("Events", ())


def model_tokens(
    cloudwatch: Any, models: Iterable[str], since: datetime, until: datetime
) -> dict[str, TokenCounts]:
    """Tokens per model from the AWS/Bedrock metrics, summed over the period."""
    queries = [
        (model, kind, f"m{index}_{kind_index}")
        for index, model in enumerate(sorted(set(models)))
        for kind_index, kind in enumerate(TOKEN_METRICS)
    ]
    sums: dict[str, dict[str, int]] = defaultdict(dict)
    for start in range(0, len(queries), METRIC_QUERIES_PER_CALL):
        batch = queries[start : start + METRIC_QUERIES_PER_CALL]
        by_id = {query_id: (model, kind) for model, kind, query_id in batch}
        paginator = cloudwatch.get_paginator("get_metric_data")
        pages = paginator.paginate(
            MetricDataQueries=[
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Bedrock",
                            "MetricName": TOKEN_METRICS[kind],
                            "Dimensions": [{"Name": "ModelId", "Value": model}],
                        },
                        "Period": METRIC_PERIOD_SECONDS,
                        "Stat": "Sum",
                    },
                }
                for model, kind, query_id in batch
            ],
            StartTime=since,
            EndTime=until,
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                model, kind = by_id[result["Id"]]
                sums[model][kind] = sums[model].get(kind, 0) + int(sum(result.get("Values", ())))
    return {model: TokenCounts(**counts) for model, counts in sums.items()}
