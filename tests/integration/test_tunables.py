"""Operators tune the system in SSM Parameter Store; a change applies within a minute, no redeploy."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from aws_lambda_powertools.utilities.parameters import base

from budgetkeeper.settings import TUNABLES_MAX_AGE_SECONDS, InvalidTunable, load_tunables


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
    assert tunables.critical_percent == Decimal(90)  # not set: the default from settings.py
    put(stack, settings, "thresholds/warning_percent", "60")
    assert load_tunables(settings).warning_percent == Decimal(50)  # cached for max_age
    assert TUNABLES_MAX_AGE_SECONDS <= 60

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(seconds=TUNABLES_MAX_AGE_SECONDS + 1)

    monkeypatch.setattr(base, "datetime", Later)
    assert load_tunables(settings).warning_percent == Decimal(60)


def test_a_bad_parameter_names_itself(stack, settings):
    put(stack, settings, "dry_run", "perhaps")
    with pytest.raises(InvalidTunable, match="dry_run"):
        load_tunables(settings)


def test_the_template_does_not_own_the_tunable_parameters():
    # A redeploy must never reset an operator's change, so no AWS::SSM::Parameter in the stack.
    from budgetkeeper_cli.harness.template import load_template, resources_of_type

    assert resources_of_type(load_template(), "AWS::SSM::Parameter") == {}
