"""bedrock-mantle (the OpenAI-compatible endpoint) metered per project, from CloudWatch.

bedrock-mantle writes no invocation logs. It publishes token metrics in the `AWS/BedrockMantle`
namespace at the Project+Model level (`InputTokens`, `OutputTokens`: one datum per inference, so
their Sum over a period is the period's billable tokens). Each run of UnloggedSpendFunction's
schedule reads the metric periods that have settled (`settled_periods`), prices each project's
tokens per model at the standard tier (pricing.price_invocation) and charges the `project:<id>`
scope (and its team, when operators mapped the project to one, and the account) through the
calculator's exactly-once writer, one charge per Region and metric period: a period read twice
is charged once. Budgets on `project:<id>` work as on any scope; a project's suspension tags the
project (budgetkeeper.enforcement.project_tags).

What a project's tokens cost is exact (AWS's own metrics); who in a project spent them is not in
the metrics: metering.mantle_callers estimates it from CloudTrail, labelled so, never a reason to
deny anyone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from budgetkeeper.domain.scopes import project_arn, project_attribution
from budgetkeeper.domain.usage import MANTLE_OPERATION, Invocation, TokenCounts
from budgetkeeper.metering.calculator import BatchReport, UsageCalculator
from budgetkeeper.metering.meter import Metered

NAMESPACE = "AWS/BedrockMantle"
# The Project+Model level's dimensions, as the bedrock-mantle metrics page names the levels.
PROJECT_DIMENSION, MODEL_DIMENSION = "Project", "Model"
TOKEN_METRICS: Mapping[str, str] = {"input": "InputTokens", "output": "OutputTokens"}
PERIOD = timedelta(minutes=5)
# A period is read once its data has arrived (CloudWatch publishes a few minutes late), and
# periods this far back are read again, so a missed run loses nothing (the marker skips the rest).
SETTLE = timedelta(minutes=10)
LOOKBACK = timedelta(hours=2)
QUERIES_PER_CALL = 500  # GetMetricData's limit


@dataclass(frozen=True, slots=True)
class ProjectUsage:
    project: str
    model: str
    start: datetime  # the metric period's start
    tokens: TokenCounts


def settled_periods(now: datetime) -> list[datetime]:
    """The starts of the periods to read: ended at least SETTLE ago, within LOOKBACK."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    last_end = now - SETTLE
    last_start = epoch + ((last_end - epoch) // PERIOD) * PERIOD - PERIOD
    count = LOOKBACK // PERIOD
    return [last_start - index * PERIOD for index in reversed(range(count))]


def project_models(cloudwatch: Any) -> list[tuple[str, str]]:
    """The (project, model) pairs with token metrics in the last hours (ListMetrics)."""
    pairs: set[tuple[str, str]] = set()
    pages = cloudwatch.get_paginator("list_metrics").paginate(
        Namespace=NAMESPACE, MetricName=TOKEN_METRICS["input"], RecentlyActive="PT3H"
    )
    for page in pages:
        for metric in page.get("Metrics", ()):
            dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", ())}
            if set(dimensions) == {PROJECT_DIMENSION, MODEL_DIMENSION}:
                pairs.add((dimensions[PROJECT_DIMENSION], dimensions[MODEL_DIMENSION]))
    return sorted(pairs)


def read_usage(
    cloudwatch: Any, pairs: Sequence[tuple[str, str]], start: datetime, end: datetime
) -> list[ProjectUsage]:
    """Each pair's tokens per period from `start` to `end` (GetMetricData, Sum per PERIOD)."""
    queries = [(pair, kind, metric) for pair in pairs for kind, metric in TOKEN_METRICS.items()]
    found: dict[tuple[str, str, datetime], dict[str, int]] = defaultdict(dict)
    for offset in range(0, len(queries), QUERIES_PER_CALL):
        chunk = queries[offset : offset + QUERIES_PER_CALL]
        by_id = {f"q{offset + index}": query for index, query in enumerate(chunk)}
        request = {
            "MetricDataQueries": [
                {
                    "Id": query_id,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": metric,
                            "Dimensions": [
                                {"Name": PROJECT_DIMENSION, "Value": project},
                                {"Name": MODEL_DIMENSION, "Value": model},
                            ],
                        },
                        "Period": int(PERIOD.total_seconds()),
                        "Stat": "Sum",
                    },
                }
                for query_id, ((project, model), _, metric) in by_id.items()
            ],
            "StartTime": start,
            "EndTime": end,
        }
        for page in cloudwatch.get_paginator("get_metric_data").paginate(**request):
            for result in page.get("MetricDataResults", ()):
                (project, model), kind, _ = by_id[result["Id"]]
                for at, value in zip(result.get("Timestamps", ()), result.get("Values", ()), strict=True):
                    counts = found[(project, model, at.astimezone(UTC))]
                    counts[kind] = counts.get(kind, 0) + int(value)
    return [
        ProjectUsage(project, model, at, TokenCounts(**counts))
        for (project, model, at), counts in sorted(found.items())
        if any(counts.values())
    ]


@dataclass
class MantleMeter:
    """Charges project tokens per settled metric period, exactly once."""

    calculator: UsageCalculator
    cloudwatch: Any
    account_id: str
    region: str

    def sweep(self, now: datetime) -> list[BatchReport]:
        periods = settled_periods(now)
        pairs = project_models(self.cloudwatch)
        if not pairs:
            return []
        usage = read_usage(self.cloudwatch, pairs, periods[0], periods[-1] + PERIOD)
        by_period: dict[datetime, list[ProjectUsage]] = defaultdict(list)
        for item in usage:
            by_period[item.start].append(item)
        return [
            self.calculator.charge(usage_id(self.region, start), list(self.metered(items)))
            for start, items in sorted(by_period.items())
        ]

    def metered(self, usage: Iterable[ProjectUsage]) -> Iterator[Metered]:
        meter = self.calculator.meter
        for item in usage:
            invocation = Invocation(
                request_id=usage_id(self.region, item.start),
                timestamp=item.start,
                account_id=self.account_id,
                identity_arn=project_arn(self.region, self.account_id, item.project),
                region=self.region,
                operation=MANTLE_OPERATION,
                model_id=item.model,
                tokens=item.tokens,
            )
            # Per-inference prompts are not in the sums: no long-context tier.
            priced = meter.price(invocation, request_prompt_tokens=0)
            attribution = project_attribution(item.project, self.account_id, meter.teams)
            yield Metered(invocation, attribution, priced)


def usage_id(region: str, period_start: datetime) -> str:
    """The id the writer marks one Region's metric period under."""
    return f"mantle#{region}#{period_start.strftime('%Y-%m-%dT%H:%M')}"
