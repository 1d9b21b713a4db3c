"""A day of calls metered by the real usage calculator, for the tests that read it back (report, console)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from devkit.harness.clock import ManualClock
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event

ACCOUNT = "111122223333"


def quiet_default_budgets(stack, settings) -> None:
    """Default budgets no one comes near: no enforcement runs."""
    for window in ("daily", "monthly"):
        stack.client("ssm").put_parameter(
            Name=f"{settings.parameter_prefix}default_budget/{window}_usd", Value="1000000", Type="String"
        )


def meter_calls(clock: ManualClock, calls: Iterable[tuple]) -> None:
    """Meter (hours after midnight, IAM user, model, input tokens, output tokens[, app]) in one batch."""
    midnight = clock().replace(hour=0, minute=0, second=0, microsecond=0)
    messages = [
        converse_message(
            f"arn:aws:iam::{ACCOUNT}:user/{user}",
            model,
            input_tokens,
            output_tokens,
            account=ACCOUNT,
            timestamp=(midnight + timedelta(hours=hours, minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            request_metadata={"app": app[0]} if app and app[0] else None,
        )
        for hours, user, model, input_tokens, output_tokens, *app in calls
    ]
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload(messages)]))
