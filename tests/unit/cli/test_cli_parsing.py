"""What operators type, read without AWS (durations, money, percents, windows, zones, scopes), and
how a workflow run is reported while it runs and when it fails.

Sockets are blocked here, so the command-level tests also show that every argument is checked
before the first AWS request (one would fail with exit 1, not 2).
"""

from __future__ import annotations

import io
import re
from decimal import Decimal

import pytest

from budgetkeeper_cli import options
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.main import main
from budgetkeeper_cli.operator_runs import RunHistory, RunProgress


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86_400), ("900", 900), ("1h30m", 5400), (" 2H ", 7200)],
)
def test_durations_take_units_or_bare_seconds(text: str, seconds: int) -> None:
    assert options.duration_seconds(text, "--grace") == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "--grace 'soon' is not a duration: type e.g. --grace 90s, 15m, 2h, 1d or 1h30m"),
        ("1.5h", "--grace '1.5h' is not a duration"),
        ("15 minutes", "--grace '15 minutes' is not a duration"),
        ("", "--grace '' is not a duration"),
        ("-5m", "--grace -5m is negative"),
        ("-90", "--grace -90 is negative"),
        ("400d", "--grace 400d is longer than a year"),
    ],
)
def test_bad_durations_say_what_to_type(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        options.duration_seconds(text, "--grace")
    assert message in str(raised.value)
    assert "(a bare number is seconds)" in str(raised.value)


def test_a_zero_duration_is_refused_where_it_would_mean_nothing() -> None:
    assert options.duration_seconds("0", "--grace") == 0
    with pytest.raises(UsageError, match="--for 0s is no time at all"):
        options.duration_seconds("0s", "--for", allow_zero=False)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (90, "1m30s"), (900, "15m"), (5400, "1h30m"), (86_400, "1d")]
)
def test_durations_are_shown_back_in_units(seconds: int, text: str) -> None:
    assert options.duration_text(seconds) == text
    assert options.duration_seconds(text, "--grace") == seconds


@pytest.mark.parametrize(
    ("text", "value"),
    [("25", Decimal(25)), ("12.50", Decimal("12.50")), ("$1,000", Decimal(1000)), ("0", Decimal(0))],
)
def test_limits_are_exact_dollars(text: str, value: Decimal) -> None:
    assert options.limit_usd(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-5", "--limit -5 is negative: a limit is 0 or more US dollars; type e.g. --limit 25"),
        ("ten", "--limit 'ten' is not an amount: type e.g. --limit 25 or --limit 12.50 (US dollars)"),
        ("NaN", "--limit 'NaN' is not an amount"),
        ("Infinity", "--limit 'Infinity' is not an amount"),
        ("0.0000000001", "more than 9 decimal places (money is kept to the nano-dollar)"),
    ],
)
def test_bad_limits_say_what_to_type(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        options.limit_usd(text)
    assert message in str(raised.value)


def test_percents_lie_strictly_between_0_and_100() -> None:
    assert options.percent("80", "--warning-percent") == Decimal(80)
    assert options.percent("72.5%", "--warning-percent") == Decimal("72.5")
    for text in ("0", "100", "150", "-1"):
        with pytest.raises(UsageError, match=f"--warning-percent {text} is out of range"):
            options.percent(text, "--warning-percent")
    with pytest.raises(UsageError, match=re.escape("--critical-percent 'high' is not a number: type e.g.")):
        options.percent("high", "--critical-percent")


def test_warning_must_come_before_critical() -> None:
    options.thresholds(Decimal(70), Decimal(90))
    for warning, critical in ((90, 80), (85, 85)):
        with pytest.raises(UsageError) as raised:
            options.thresholds(Decimal(warning), Decimal(critical))
        assert f"the warning threshold ({warning}%) must be below the critical one ({critical}%)" in str(
            raised.value
        )
        assert "type e.g. --warning-percent 70 --critical-percent 90" in str(raised.value)


def test_windows_are_read_in_their_canonical_spelling() -> None:
    assert options.window("Daily") == "daily"
    assert options.window("monthly") == "monthly"
    assert options.window(" Weekly ") == "weekly"
    assert options.window("days:7@2026-01-05") == "days:7@2026-01-05"
    assert options.operator_window("manual") == "manual"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "fortnightly",
            "--window: unknown window 'fortnightly': use 'daily', 'weekly', 'monthly' or 'days:N@YYYY-MM-DD'",
        ),
        ("days:0@2026-01-05", "unknown window 'days:0@2026-01-05'"),
        ("days:7@2026-02-30", "bad anchor date in window 'days:7@2026-02-30'"),
        ("manual", "--window manual is an operator's suspension, not a budget window"),
    ],
)
def test_bad_windows_say_what_to_type(text: str, message: str) -> None:
    with pytest.raises(UsageError) as raised:
        options.window(text)
    assert message in str(raised.value)


def test_time_zones_are_iana_names() -> None:
    assert options.time_zone("Europe/Paris") == "Europe/Paris"
    with pytest.raises(UsageError, match="--time-zone: unknown time zone 'CEST': use an IANA name such as"):
        options.time_zone("CEST")


def test_scopes_owners_and_languages_are_checked() -> None:
    assert options.scope(" team:data ") == "team:data"
    with pytest.raises(
        UsageError, match="unknown scope kind 'group' in 'group:ops': use one of user, apikey"
    ):
        options.scope("group:ops")
    with pytest.raises(UsageError, match="scope 'alice' has no kind: type kind:name"):
        options.scope("alice")
    assert [options.scope_kind(kind) for kind in ("apikey", "session:", "Team")] == [
        "apikey",
        "session",
        "team",
    ]
    with pytest.raises(UsageError, match="unknown scope kind 'group': use --kind with one of user, apikey"):
        options.scope_kind("group")
    assert options.email("ops@example.com") == "ops@example.com"
    with pytest.raises(
        UsageError, match=re.escape("--owner 'ops' is not an email address: type e.g. --owner alice@")
    ):
        options.email("ops")
    assert options.language("pt-BR") == "pt-BR"
    with pytest.raises(
        UsageError, match=re.escape("--language 'french!' is not a language tag: type e.g. --language en")
    ):
        options.language("french!")


# Commands: every one of these is refused before any AWS request (sockets are blocked here).
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["budget", "set", "group:ops", "--window", "daily", "--limit", "1"], "unknown scope kind 'group'"),
        (["budget", "set", "user:alice", "--window", "daily", "--limit", "-5"], "--limit -5 is negative"),
        (["budget", "set", "user:alice", "--window", "daily", "--grace", "soon"], "'soon' is not a duration"),
        (
            ["budget", "set", "user:alice", "--window", "daily", "--time-zone", "Mars/Olympus"],
            "unknown time zone",
        ),
        (["budget", "set", "user:alice", "--window", "hourly", "--limit", "1"], "unknown window 'hourly'"),
        (
            [
                "budget",
                "set",
                "user:a",
                "--window",
                "daily",
                "--warning-percent",
                "90",
                "--critical-percent",
                "80",
            ],
            "the warning threshold (90%) must be below the critical one (80%)",
        ),
        (["budget", "show", "user:alice", "--window", "hourly"], "unknown window 'hourly'"),
        (["budget", "delete", "app:", "--window", "daily"], "scope 'app:' has no name"),
        (["budget", "list", "--kind", "group"], "unknown scope kind 'group'"),
        (["suspend", "user:alice", "--reason", "x", "--for", "0"], "--for 0 is no time at all"),
        (["suspend", "user:alice", "--reason", "x", "--for", "forever"], "--for 'forever' is not a duration"),
        (["restore", "user:alice", "--reason", "  "], "restore needs a reason"),
        (["restore", "user:alice", "--reason", "x", "--window", "hourly"], "unknown window 'hourly'"),
        (["protect", "team:", "--reason", "x"], "scope 'team:' has no name"),
        (["unprotect", "user:alice", "--window", "manual"], "--window manual is an operator's suspension"),
        (["status", "bob"], "scope 'bob' has no kind"),
        (["audit", "--since", "yesterday"], "--since 'yesterday' is not a date"),
        (["audit", "--last", "0"], "--last 0 shows nothing"),
        (["report", "--group-by", "user"], "--group-by field 'user' (did you mean principal?): use a"),
        (
            ["report", "--group-by", "teams,modle"],
            "fields 'teams' (did you mean team?), 'modle' (did you mean model or role?): "
            "use a comma-separated list of principal, role, app, team, model, region, operation, day, hour",
        ),
        (["report", "--group-by", "application"], "'application' (did you mean app?)"),
        (["report", "--group-by", "xyz"], "unknown --group-by field 'xyz': use a comma-separated list"),
    ],
)
def test_command_usage_errors_exit_2_before_any_aws_request(argv: list[str], message: str, capsys) -> None:
    code = main([*argv, "--stack-name", "budgetkeeper-dev", "--region", "us-east-1"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"budgetkeeper {argv[0]}: ")
    assert message in err


def test_meter_names_the_group_field_meant_before_reading_a_file(capsys) -> None:
    # A file that is not there: the group field is checked first
    code = main(["meter", "no-such-day.json", "--group-by", "users,model"])
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith("budgetkeeper meter: unknown --group-by field 'users' (did you mean principal?)")


# Progress of a workflow run: a terminal gets one updating line, anything else a line per state.
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_one_updating_progress_line_that_is_cleared_at_the_end() -> None:
    stream = _Terminal()
    progress = RunProgress(stream, "suspend user:alice")
    progress.update(RunHistory(entered=["Route"]))
    progress.update(RunHistory(entered=["Route", "ApplyDenies"]))
    progress.close()
    text = stream.getvalue()
    assert "\n" not in text
    assert text.startswith("\rsuspend user:alice: Route (0s)\x1b[K")
    assert "\rsuspend user:alice: ApplyDenies (0s)\x1b[K" in text
    assert text.endswith("\r\x1b[K")


def test_a_pipe_gets_one_line_per_state_entered() -> None:
    stream = io.StringIO()
    progress = RunProgress(stream, "restore user:alice")
    progress.update(RunHistory(entered=["Route"]))
    progress.update(RunHistory(entered=["Route", "PrepareEmergencyRestore", "ReleaseDenies"]))
    progress.close()
    assert stream.getvalue() == (
        "restore user:alice: Route\n"
        "restore user:alice: PrepareEmergencyRestore\n"
        "restore user:alice: ReleaseDenies\n"
    )


def test_a_failed_run_is_told_by_the_error_of_the_step_that_failed() -> None:
    cause = '{"errorType": "InvalidRequest", "errorMessage": "user:bob is not suspended", "stackTrace": []}'
    history = RunHistory(
        entered=["Route", "PrepareEmergencyRestore", "ReportFailure", "Failed"],
        inputs={"ReportFailure": {"failure": {"Error": "InvalidRequest", "Cause": cause}}},
        status="FAILED",
        error="WorkflowFailed",
        cause="see the workflow_failed notification and the execution history",
    )
    assert history.failure() == "InvalidRequest: user:bob is not suspended"
    plain = RunHistory(status="FAILED", error="NothingToDeny", cause="the scope has no IAM principal to deny")
    assert plain.failure() == "NothingToDeny: the scope has no IAM principal to deny"
