"""Operators tune the system in SSM Parameter Store; a change applies within a minute, no redeploy."""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters import base
from aws_lambda_powertools.utilities.parameters.ssm import SSMProvider
from botocore.exceptions import EndpointConnectionError

from budgetkeeper.core.observability import logger
from budgetkeeper.core.tunables import TUNABLES_MAX_AGE_SECONDS, load_tunables
from budgetkeeper.storage.tables import TotalItem
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event
from devkit.harness.template import load_template, resources_of_type
from tests.timeline import now_iso, window_id


def put(stack, settings, name: str, value: str) -> None:
    stack.client("ssm").put_parameter(
        Name=settings.parameter_prefix + name, Value=value, Type="String", Overwrite=True
    )


def test_parameters_override_defaults_and_a_change_applies_once_the_cache_expires(
    stack, settings, monkeypatch
):
    put(stack, settings, "thresholds/warning_percent", "50")
    put(stack, settings, "grace_seconds", "60")
    tunables = load_tunables(settings)
    assert (tunables.warning_percent, tunables.grace_seconds) == (Decimal(50), 60)
    assert tunables.critical_percent == Decimal(90)  # not set: the default from core/tunables.py
    put(stack, settings, "thresholds/warning_percent", "60")
    assert load_tunables(settings).warning_percent == Decimal(50)  # cached for max_age
    assert TUNABLES_MAX_AGE_SECONDS <= 60

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=TUNABLES_MAX_AGE_SECONDS + 1)

    monkeypatch.setattr(base, "datetime", Later)
    assert load_tunables(settings).warning_percent == Decimal(60)


def test_a_bad_parameter_takes_its_default_is_logged_and_the_rest_applies(stack, settings, caplog):
    put(stack, settings, "dry_run", "perhaps")
    put(stack, settings, "grace_seconds", "60")
    tunables = load_tunables(settings)
    assert (tunables.dry_run, tunables.grace_seconds) == (False, 60)
    rejected = [record for record in caplog.records if record.getMessage() == "tunable rejected"]
    assert len(rejected) == 1 and "got 'perhaps'" in str(rejected[0].__dict__.get("problem"))


def test_a_mistyped_time_zone_never_stops_metering(stack, settings):
    # Given an operator's typo in the time zone (an unknown zone used to fail every batch)
    put(stack, settings, "time_zone", "Europe/Pariss")
    # When a batch is metered
    message = converse_message(
        "arn:aws:iam::111122223333:user/alice", "amazon.nova-pro-v1:0", 1000, timestamp=now_iso()
    )
    response = invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([message])]))
    # Then it is metered, in UTC windows
    assert [record["result"] for record in response["records"]] == ["Ok"]
    assert TotalItem.get("user:alice|daily", window_id("daily", "UTC")).calls == 1


def test_ssm_out_of_reach_keeps_the_last_values_read(stack, settings, monkeypatch):
    put(stack, settings, "grace_seconds", "60")
    assert load_tunables(settings).grace_seconds == 60
    parameters.clear_caches()

    def unreachable(self, path, **options):
        raise EndpointConnectionError(endpoint_url="https://ssm.us-east-1.amazonaws.com")

    monkeypatch.setattr(SSMProvider, "_get_multiple", unreachable)
    assert load_tunables(settings).grace_seconds == 60


def test_the_template_does_not_own_the_tunable_parameters():
    # A redeploy must never reset an operator's change, so no AWS::SSM::Parameter in the stack.
    from devkit.harness.template import load_template, resources_of_type

    assert resources_of_type(load_template(), "AWS::SSM::Parameter") == {}


@pytest.mark.parametrize("function", sorted(resources_of_type(load_template(), "AWS::Serverless::Function")))
def test_every_function_logs_at_the_level_the_tunable_sets(stack, settings, function):
    # Given the log level tuned to DEBUG in SSM (the logger's own level left at INFO)
    put(stack, settings, "log_level", "DEBUG")
    logger.setLevel(logging.INFO)
    # When the function runs (whatever it then makes of an empty event)
    with contextlib.suppress(Exception):
        invoke(function, {})
    # Then it ran at the level the tunable says
    assert logger.log_level == logging.DEBUG
    logger.setLevel(logging.INFO)
