"""The demo's spend no invocation log records: one batch inference job and one bedrock-mantle project.

What AWS would send and write is played here: the job's two EventBridge events and its outputs in
S3 (devkit.harness.bedrock_events), the project's token metrics in CloudWatch. The real
UnloggedSpendFunction meters them.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from budgetkeeper.core import money
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.usage import TokenCounts
from budgetkeeper.metering.mantle import MODEL_DIMENSION, NAMESPACE, PROJECT_DIMENSION
from budgetkeeper.metering.mantle_callers import project_callers
from budgetkeeper.pricing.rates import price_invocation
from budgetkeeper.pricing.table import PriceTable
from budgetkeeper.storage.readers import scope_rollups
from devkit import demo_data
from devkit.harness.bedrock_events import (
    batch_job_created,
    batch_job_ended,
    batch_manifest,
    mantle_inference,
    scheduled_event,
    write_batch_outputs,
)
from devkit.harness.clock import ManualClock
from devkit.harness.lambdas import invoke
from devkit.harness.stack import LocalStack

ACCOUNT = demo_data.DEMO_ACCOUNT
DAVE = f"arn:aws:iam::{ACCOUNT}:user/dave"
JOB = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:model-invocation-job/nightly-digest-7f3a"
NOVA_MICRO = "amazon.nova-micro-v1:0"
OUTPUT = "s3://demo-batch-output/digests/"
JOB_RECORDS, JOB_INPUT, JOB_OUTPUT = 20_000, 40_000_000, 8_000_000
PROJECT, MANTLE_MODEL = "proj_research", "openai.gpt-oss-120b-1:0"
PROJECT_INPUT, PROJECT_OUTPUT = 6_000_000, 1_500_000
# The project's callers' CreateInference calls, as a trail logging bedrock-mantle data events sends them.
PROJECT_CALLS = {f"arn:aws:iam::{ACCOUNT}:user/bob": 30, f"arn:aws:iam::{ACCOUNT}:user/carol": 20}


def part_unlogged(stack: LocalStack, stack_name: str, day: ManualClock) -> None:
    from devkit.demo import cli, heading, say  # the demo's narration (it imports this module)

    heading("1b. Spend no invocation log records: a batch job and a bedrock-mantle project")
    midnight = day()
    options = ["--stack-name", stack_name]
    cli("budget", "set", f"project:{PROJECT}", "--window", "daily", "--limit", "20", *options)

    day.set(midnight + timedelta(hours=2))
    invoke(
        "UnloggedSpendFunction",
        batch_job_created(DAVE, JOB, NOVA_MICRO, OUTPUT, iso_utc(day()), account=ACCOUNT),
    )
    say(f"  [02:00] dave creates a batch inference job of {JOB_RECORDS:,} records on {NOVA_MICRO};")
    say("          CloudTrail's record of the call names him: Budgetkeeper notes him as the job's creator.")
    day.set(midnight + timedelta(hours=6, minutes=30))
    usage = [
        {"inputTokens": JOB_INPUT // JOB_RECORDS, "outputTokens": JOB_OUTPUT // JOB_RECORDS}
    ] * JOB_RECORDS
    write_batch_outputs(
        stack.client("s3"), OUTPUT, JOB, batch_manifest(JOB_INPUT, JOB_OUTPUT, JOB_RECORDS), usage
    )
    ended = batch_job_ended(JOB, "Completed", iso_utc(day()), account=ACCOUNT)
    first, again = invoke("UnloggedSpendFunction", ended), invoke("UnloggedSpendFunction", ended)
    tokens = TokenCounts(input=JOB_INPUT, output=JOB_OUTPUT)
    on_demand = price_invocation(PriceTable.bundled(), NOVA_MICRO, "us-east-1", tokens).cost_usd
    say(
        f"  [06:30] the job completed: its manifest counts {JOB_INPUT:,} input "
        f"and {JOB_OUTPUT:,} output tokens."
    )
    say(
        f"          dave is charged {money.dollars(Decimal(first['cost_usd']))} at the batch rate "
        f"(on demand the same tokens cost {money.dollars(on_demand)}); his budgets count it like his calls."
    )
    say(
        f"          The same event delivered again charged {'nothing' if not again['charged'] else 'twice!'}."
    )

    day.set(midnight + timedelta(hours=6, minutes=45))
    period = day() - timedelta(minutes=25)  # a metric period that has settled by now
    cloudwatch = stack.client("cloudwatch")
    dimensions = [
        {"Name": PROJECT_DIMENSION, "Value": PROJECT},
        {"Name": MODEL_DIMENSION, "Value": MANTLE_MODEL},
    ]
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": name,
                "Dimensions": dimensions,
                "Timestamp": period,
                "Value": value,
                "Unit": "Count",
            }
            for name, value in (("InputTokens", PROJECT_INPUT), ("OutputTokens", PROJECT_OUTPUT))
        ],
    )
    invoke("UnloggedSpendFunction", scheduled_event(ACCOUNT, iso_utc(day())))
    charged = sum((item.cost_usd for item in scope_rollups(f"project:{PROJECT}")), Decimal(0))
    say(
        "  [06:45] bedrock-mantle (the OpenAI-compatible endpoint) writes no invocation logs; "
        f"its CloudWatch metrics say project {PROJECT}"
    )
    say(
        f"          used {PROJECT_INPUT:,} input and {PROJECT_OUTPUT:,} output tokens of {MANTLE_MODEL}: "
        f"project:{PROJECT} is charged {money.dollars(charged)} of its 20 USD daily budget."
    )
    say(
        "          Over its budget, the project would be tagged suspended, "
        "and MantleProjectGuardPolicy denies it."
    )
    called = iso_utc(period + timedelta(minutes=1))
    for caller, calls in PROJECT_CALLS.items():
        for _ in range(calls):
            invoke(
                "UnloggedSpendFunction",
                mantle_inference(caller, PROJECT, MANTLE_MODEL, called, account=ACCOUNT),
            )
    hour = period.strftime("%Y-%m-%dT%H")
    shares = project_callers(PROJECT, hour, hour).shares
    told = ", ".join(f"{share.caller} about {money.dollars(share.cost_usd)}" for share in shares)
    say(
        "          Who spent it, an ESTIMATE from their CreateInference calls in CloudTrail "
        f"(never used to deny): {told}."
    )
    day.set(midnight)
