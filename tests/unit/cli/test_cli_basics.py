"""The CLI's own surface: its version, the Region it talks to, and the notice preview."""

from __future__ import annotations

import pytest

from budgetkeeper.notify.render import default_renderer
from budgetkeeper_cli.errors import CommandFailed
from budgetkeeper_cli.main import main
from budgetkeeper_cli.stack_config import aws_session


def test_version_is_the_installed_package_s(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"budgetkeeper {version('bedrock-budgetkeeper')}"


def test_aws_region_is_honoured_and_wins_over_aws_default_region(monkeypatch) -> None:
    # Given only AWS_REGION, as the AWS CLI's users set it
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    assert aws_session(None).region_name == "eu-west-3"
    # and with both, AWS_REGION first (the AWS CLI's order); --region above both
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert aws_session(None).region_name == "eu-west-3"
    assert aws_session("ap-south-1").region_name == "ap-south-1"


def test_no_region_says_every_way_to_give_one(monkeypatch, tmp_path) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(CommandFailed, match="pass --region, or set AWS_REGION or AWS_DEFAULT_REGION"):
        aws_session(None)


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_notice_previews_in_both_languages(language, capsys) -> None:
    assert main(["notices", "preview", "all", "--language", language]) == 0
    out = capsys.readouterr().out
    assert (
        out.count("== ") == len(default_renderer().notices())
        and "one segment]" in out
        and "MORE THAN ONE" not in out
    )


def test_the_preview_of_one_notice_in_spanish(capsys) -> None:
    assert main(["notices", "preview", "suspended", "--language", "es", "--time-zone", "Europe/Madrid"]) == 0
    out = capsys.readouterr().out
    assert "Subject: Acceso a Bedrock suspendido: user:alice" in out
    assert "Gastado: 1.250,75 US$" in out and "Periodo del presupuesto: diario" in out
    assert "CET" in out or "CEST" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--language", "fr"], "no notices in 'fr': use one of en, es"),
        (["--time-zone", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
    ],
)
def test_an_unknown_language_or_zone_is_refused_not_replaced(argv, message, capsys) -> None:
    assert main(["notices", "preview", "warning", *argv]) == 2
    assert message in capsys.readouterr().err


def test_an_unknown_notice_lists_the_known_ones(capsys) -> None:
    assert main(["notices", "preview", "warnings"]) == 2
    assert (
        "no notice 'warnings': use all or one of batch_job_unmetered, billing_drift, cannot_suspend"
        in capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("name", "parameter"),
    [
        ("notify/contact", "notify/contact"),
        ("notify_contact", "notify/contact"),
        ("contact", "notify/contact"),
        ("warning-percent", "thresholds/warning_percent"),
        ("thresholds/warning_percent", "thresholds/warning_percent"),
        ("drift_percent", "reconcile/drift_percent"),
        ("/time_zone/", "time_zone"),
    ],
)
def test_config_takes_every_name_of_a_setting(name, parameter) -> None:
    from budgetkeeper.core.tunables import tunable_named

    assert tunable_named(name).parameter == parameter


def test_config_suggests_the_setting_meant(capsys) -> None:
    assert main(["config", "show", "timezone", "--environment", "dev"]) == 2
    assert "no setting named 'timezone': did you mean time_zone?" in capsys.readouterr().err


def test_tables_fit_120_columns_and_wrap_text_unless_wide(monkeypatch) -> None:
    from budgetkeeper_cli import rendering
    from budgetkeeper_cli.rendering import Column, render_table

    columns = (Column("check"), Column("detail"), Column("fix"), Column("calls", numeric=True))
    detail = "model invocation logging is off: calls in us-east-1 are neither metered nor enforced " * 2
    fix = "budgetkeeper logging enable --regions us-east-1 (or turn it on in the Bedrock console)"
    rows = [{"check": "logging us-east-1", "detail": detail, "fix": fix, "calls": 123456789}]
    table = render_table(columns, rows)
    assert max(len(line) for line in table.splitlines()) <= 120
    # every word is still there, and the number whole on the first line
    assert table.split() == render_table(columns, rows).split()
    assert " ".join(table.split()).count("neither metered nor enforced") >= 1
    assert "123456789" in table.splitlines()[2]
    monkeypatch.setattr(rendering, "table_width", None)
    assert max(len(line) for line in render_table(columns, rows).splitlines()) > 200


def test_wide_is_a_flag_of_the_command(capsys) -> None:
    from budgetkeeper_cli import rendering

    assert main(["--wide", "notices", "preview", "warning", "--part", "sms"]) == 0
    assert rendering.table_width is None
    assert main(["notices", "preview", "warning", "--part", "sms"]) == 0
    assert rendering.table_width == rendering.TABLE_WIDTH


def test_audit_times_are_shown_to_the_second_and_kept_exact_for_machines() -> None:
    from budgetkeeper_cli.rendering import render
    from budgetkeeper_cli.views import AUDIT_COLUMNS

    row = {"time": "2026-11-23T09:00:05.123456Z", "scope": "user:alice", "to_status": "suspended"}
    table = render(AUDIT_COLUMNS, [row], "table")
    assert "2026-11-23T09:00:05Z" in table and ".123456" not in table
    assert "2026-11-23T09:00:05.123456Z" in render(AUDIT_COLUMNS, [row], "json")


def test_an_unpriced_model_id_gets_the_ids_meant(capsys) -> None:
    argv = ["price", "--region", "us-east-1", "--input", "1000", "--output", "10"]
    assert main([*argv, "--model", "amazon.nova-pro"]) == 0  # an estimate is an answer, not a failure
    captured = capsys.readouterr()
    assert "status     estimated" in captured.out
    assert "no price for amazon.nova-pro: did you mean amazon.nova-pro-v1:0?" in captured.err
    assert main([*argv, "--model", "amazon.nova-pro-v1:0"]) == 0
    assert capsys.readouterr().err == ""


def test_money_for_people_in_cents_and_for_machines_exact() -> None:
    from decimal import Decimal

    from budgetkeeper.core.money import cents, exact

    assert [cents(Decimal(v)) for v in ("13.9249", "0.0100", "0.0049", "0", "1234.5")] == [
        "$13.92",
        "$0.01",
        "<$0.01",
        "$0.00",
        "$1,234.50",
    ]
    assert exact(Decimal("0.00252000")) == "0.00252"
