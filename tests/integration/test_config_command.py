"""`budgetkeeper config show|set|reset`: the tunables in SSM, read back as the functions read them."""

from __future__ import annotations

import json

import pytest

from budgetkeeper.core.tunables import TUNABLES, load_tunables
from tests.integration.cli_runner import OperatorCli


@pytest.fixture
def cli(stack, settings, capsys) -> OperatorCli:
    return OperatorCli(stack, capsys)


def parameter(stack, name: str) -> str | None:
    ssm = stack.client("ssm")
    try:
        return ssm.get_parameter(Name=f"/budgetkeeper/local/{name}")["Parameter"]["Value"]
    except ssm.exceptions.ParameterNotFound:
        return None


def test_show_lists_every_tunable_with_its_default_and_meaning(cli: OperatorCli) -> None:
    rows = json.loads(cli.ok("config", "show", "--format", "json"))
    assert [row["key"] for row in rows] == [tunable.parameter for tunable in TUNABLES]
    zone = next(row for row in rows if row["key"] == "time_zone")
    assert zone == {
        "key": "time_zone",
        "value": "UTC",
        "source": "default",
        "default": "UTC",
        "meaning": "time zone of budget windows that name none",
    }
    assert cli.ok("config", "show").startswith("/budgetkeeper/local/\nkey")


def test_set_writes_a_checked_value_the_functions_then_read_and_reset_brings_the_default_back(
    cli: OperatorCli, stack, settings
) -> None:
    # When an operator sets the time zone and the warning threshold (by its field name)
    out = cli.ok("config", "set", "time_zone", "Europe/Paris")
    assert out.startswith("/budgetkeeper/local/time_zone = Europe/Paris (was the default UTC)")
    cli.ok("config", "set", "warning_percent", "60")
    # Then SSM holds them, show says they are set, and the functions read them
    assert parameter(stack, "thresholds/warning_percent") == "60"
    [row] = json.loads(cli.ok("config", "show", "time_zone", "--format", "json"))
    assert (row["value"], row["source"]) == ("Europe/Paris", "set")
    from aws_lambda_powertools.utilities import parameters

    parameters.clear_caches()
    tunables = load_tunables(settings)
    assert (tunables.time_zone, str(tunables.warning_percent)) == ("Europe/Paris", "60")
    # When it is reset, the parameter is gone and the default applies
    assert "deleted (was Europe/Paris): the default UTC applies" in cli.ok("config", "reset", "time_zone")
    assert parameter(stack, "time_zone") is None
    assert "is not set" in cli.ok("config", "reset", "time_zone")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "time_zone",
            "Mars/Olympus",
            "unknown time zone 'Mars/Olympus': use an IANA name such as Europe/Paris or UTC: nothing "
            "written; type e.g. budgetkeeper config set time_zone UTC",
        ),
        (
            "thresholds/critical_percent",
            "65",
            "thresholds/warning_percent (70) must be below thresholds/critical_percent (65): nothing written",
        ),
        ("grace_seconds", "-5", "expected a non-negative whole number, got '-5'"),
        ("dry_run", "perhaps", "expected true or false, got 'perhaps'"),
        ("nonsense", "1", "no setting named 'nonsense': use one of default_budget/daily_usd"),
    ],
)
def test_a_bad_value_is_refused_with_what_to_type_and_nothing_is_written(
    cli: OperatorCli, stack, key: str, value: str, message: str
) -> None:
    err = cli.fails(2, "config", "set", key, value)
    assert message in err
    assert parameter(stack, key) is None


def test_thresholds_are_checked_against_the_value_in_force_and_a_reset_that_would_cross_them_is_refused(
    cli: OperatorCli, stack
) -> None:
    # Given warning 95 under a critical of 99
    cli.ok("config", "set", "thresholds/critical_percent", "99")
    cli.ok("config", "set", "thresholds/warning_percent", "95")
    # When the critical threshold is reset to its default (90), warning would be above it: refused
    err = cli.fails(1, "config", "reset", "thresholds/critical_percent")
    assert "thresholds/warning_percent (95) must be below thresholds/critical_percent (90)" in err
    assert parameter(stack, "thresholds/critical_percent") == "99"


def test_config_needs_only_the_environment(cli: OperatorCli, stack) -> None:
    out = cli.ok("config", "set", "dry_run", "true", "--environment", "prod", stack=False)
    assert out.startswith("/budgetkeeper/prod/dry_run = true")
    assert parameter(stack, "dry_run") is None


def test_a_bad_value_in_ssm_stops_no_command_it_takes_its_default_and_says_what_to_type(
    cli: OperatorCli, stack
) -> None:
    # Given a budget on a user, and a tunable mistyped in SSM behind the CLI's back (the console, the
    # AWS CLI)
    stack.client("iam").create_user(UserName="alice")
    cli.ok("budget", "set", "user:alice", "--window", "daily", "--limit", "5")
    stack.client("ssm").put_parameter(Name="/budgetkeeper/local/grace_seconds", Value="soon", Type="String")
    for command in (("status", "user:alice"), ("budget", "show", "user:alice"), ("budget", "list")):
        # When an operator runs a command that reads the tunables
        code, out, err = cli(*command)
        # Then it works, with the default in force (as in the functions), and warns naming key and value
        assert code == 0, (command, err)
        assert "user:alice" in out
        assert "grace_seconds: expected a whole number, got 'soon'; the default '900' applies" in err
        assert "type `budgetkeeper config set grace_seconds VALUE`" in err
        assert "or `budgetkeeper config reset grace_seconds` for the default" in err
    assert "grace          15m  (default)" in cli.ok("budget", "show", "user:alice")
