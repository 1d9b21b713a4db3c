"""The operators' CLI end to end: moto, the stack found through its CloudFormation outputs, the real
enforcement workflow (Lambda tasks run the real handlers), spend metered by the usage calculator.

Every command is called as `budgetkeeper_cli.main.main([...])`; what it prints is read with capsys.
IAM policies are read back from moto; the actor is moto's STS caller identity.
"""

from __future__ import annotations

import csv
import io
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import NoCredentialsError
from botocore.stub import Stubber

from budgetkeeper.core import clock
from budgetkeeper.storage.tables import BudgetItem
from budgetkeeper_cli import stack_config
from budgetkeeper_cli.main import build_parser, main
from budgetkeeper_cli.operator_runs import ActionRequest
from devkit.demo import live_clock
from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, firehose_event, log_message
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import WaitControl, real_handlers, wait_for_execution, wait_for_state
from tests.integration.test_notifier import operator_notices
from tests.timeline import now_iso

ACCOUNT = "111122223333"
NOVA_PRO = "amazon.nova-pro-v1:0"  # USD 0.80 per 1M input tokens
# Long enough that a run waiting for a refresh or a suspension's end is still waiting when the
# test looks; every run still going at the end of a test is stopped.
LONG_WAIT_SECONDS = 60


@dataclass
class Cli:
    stack: LocalStack
    stack_name: str
    waits: WaitControl
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *argv: str) -> tuple[int, str, str]:
        """Run `budgetkeeper ARGV --stack-name NAME`: (exit code, stdout, stderr)."""
        self.waits.deliveries.drain()  # what SNS set off earlier has finished, as it has for a person
        self.capsys.readouterr()
        code = main([*argv, "--stack-name", self.stack_name])
        out, err = self.capsys.readouterr()
        # The workflow's handlers and the notifier run in this process: their EMF lines (CloudWatch
        # Logs in Lambda) may land amid the command's output, and are not what the operator sees.
        out = "".join(line for line in out.splitlines(keepends=True) if not line.startswith('{"_aws"'))
        return code, out, err

    def ok(self, *argv: str) -> str:
        code, out, err = self(*argv)
        assert code == 0, err
        return out

    @property
    def caller(self) -> str:
        return str(self.stack.client("sts").get_caller_identity()["Arn"])

    @property
    def deny(self) -> str:
        return self.stack.physical_ids["BedrockDenyPolicy"]

    def attached(self, user: str) -> list[str]:
        policies = self.stack.client("iam").list_attached_user_policies(UserName=user)["AttachedPolicies"]
        return [policy["PolicyArn"] for policy in policies]

    def executions(self, status: str | None = None) -> list[dict]:
        return self.stack.executions(status)

    def spend(self, user: str, usd: str) -> None:
        """Meter calls of IAM user `user`, now, worth exactly `usd`, through the usage calculator."""
        tokens = int(Decimal(usd) / Decimal("0.0000008"))
        record = {
            "schemaType": "ModelInvocationLog",
            "schemaVersion": "1.0",
            "timestamp": now_iso(),
            "accountId": ACCOUNT,
            "identity": {"arn": f"arn:aws:iam::{ACCOUNT}:user/{user}"},
            "region": "us-east-1",
            "requestId": str(uuid.uuid4()),
            "operation": "Converse",
            "modelId": NOVA_PRO,
            "input": {"inputContentType": "application/json", "inputTokenCount": tokens},
            "output": {"outputContentType": "application/json", "outputTokenCount": 0},
        }
        invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([log_message(record)])]))

    def finish_runs(self) -> list[dict]:
        return [wait_for_execution(self.stack, run["executionArn"]) for run in self.executions()]

    def wait_until_suspended(self, name_prefix: str) -> dict:
        run = next(run for run in self.executions() if run["name"].startswith(name_prefix))
        wait_for_state(self.stack, run["executionArn"], "WaitForRefresh")
        return run


@pytest.fixture
def cli(stack: LocalStack, settings, capsys) -> Iterator[Cli]:
    with real_handlers(stack) as waits:
        waits.max_wait_seconds = LONG_WAIT_SECONDS
        helper = Cli(stack, stack.publish_outputs(), waits, capsys)
        for user in ("alice", "bob", "carol", "dave"):
            stack.client("iam").create_user(UserName=user)
        yield helper
        sfn = stack.client("stepfunctions")
        for run in helper.executions("RUNNING"):
            sfn.stop_execution(executionArn=run["executionArn"])


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --------------------------------------------------------------------------- budgets and spend


def test_a_budget_crossed_by_metered_spend_suspends_and_status_shows_it(cli: Cli) -> None:
    # Given a daily budget of 1 USD with no grace
    out = cli.ok("budget", "set", "user:alice", "--window", "daily", "--limit", "1", "--grace", "0")
    assert out == "user:alice daily: budget created (limit 1 USD, grace 0s), revision 1\n"
    # When alice spends 0.75 (a warning) and then 0.30 more (over the limit)
    cli.spend("alice", "0.75")
    cli.finish_runs()
    cli.spend("alice", "0.30")
    cli.wait_until_suspended("exceeded")
    # Then the deny is attached and status tells the spend, the level and the suspension
    assert cli.attached("alice") == [cli.deny]
    document = json.loads(cli.ok("status", "user:alice", "--format", "json"))
    [daily] = document["budgets"]
    assert daily["spent_usd"] == "1.05"
    assert daily["limit_usd"] == "1"
    assert daily["percent"] == "105"
    assert (daily["level"], daily["status"], daily["execution_status"]) == (
        "exceeded",
        "suspended",
        "RUNNING",
    )
    assert daily["next_refresh"].endswith("T00:00:00Z")
    assert [line["to_status"] for line in document["audit"]] == ["ok", "warning", "grace", "suspended"]
    table = cli.ok("status", "user:alice")
    assert table.splitlines()[0] == "user:alice"
    row = next(line for line in table.splitlines() if line.startswith("daily"))
    assert row.split()[2:8] == ["$1.05", "$1.00", "105.0%", "exceeded", "suspended", "no"]
    assert "last 4 audit lines" in table
    [csv_row] = csv_rows(cli.ok("status", "user:alice", "--format", "csv"))
    assert (csv_row["scope"], csv_row["spent_usd"], csv_row["status"]) == ("user:alice", "1.05", "suspended")
    # And the status of every scope lists alice
    [listed] = json.loads(cli.ok("status", "--format", "json"))
    assert (listed["scope"], listed["status"]) == ("user:alice", "suspended")


def test_status_without_a_scope_lists_budgets_at_or_over_their_warning_threshold(cli: Cli) -> None:
    # Given bob at 80% of his budget and carol at 10% of hers
    cli.ok("budget", "set", "user:bob", "--window", "daily", "--limit", "1")
    cli.ok("budget", "set", "user:carol", "--window", "daily", "--limit", "10")
    cli.spend("bob", "0.80")
    cli.spend("carol", "1")
    cli.finish_runs()
    # When status is asked for every scope, then only bob is listed, in each format
    [row] = json.loads(cli.ok("status", "--format", "json"))
    assert (row["scope"], row["percent"], row["level"], row["status"]) == (
        "user:bob",
        "80",
        "warning",
        "warning",
    )
    assert [r["scope"] for r in csv_rows(cli.ok("status", "--format", "csv"))] == ["user:bob"]
    lines = cli.ok("status").splitlines()
    assert lines[0].split()[:4] == ["scope", "window", "spent", "limit"]
    assert lines[2].split()[:6] == ["user:bob", "daily", "$0.80", "$1.00", "80.0%", "warning"]
    assert len(lines) == 3


def test_a_changed_limit_starts_a_new_revision_so_a_second_overspend_suspends_again(cli: Cli) -> None:
    # Given alice suspended for exceeding 1 USD, then restored by an operator
    cli.ok("budget", "set", "user:alice", "--window", "daily", "--limit", "1", "--grace", "0")
    cli.spend("alice", "1.10")
    cli.wait_until_suspended("exceeded")
    cli.ok("restore", "user:alice", "--reason", "approved")
    assert cli.attached("alice") == []
    revision = BudgetItem.get("user:alice", "daily").revision
    # When only her owner changes, nothing else does
    cli.ok("budget", "set", "user:alice", "--owner", "alice@example.com")
    item = BudgetItem.get("user:alice", "daily")
    assert (item.limit_usd, item.grace_seconds, item.revision) == (Decimal(1), 0, revision)
    # When the limit is raised to 2 USD, a new revision starts
    out = cli.ok("budget", "set", "user:alice", "--limit", "2")
    assert out == f"user:alice daily: limit 1 USD -> 2 USD, revision {revision} -> {revision + 1}\n"
    assert BudgetItem.get("user:alice", "daily").revision == revision + 1
    # Then spending past the new limit suspends her again
    cli.spend("alice", "1.00")
    cli.wait_until_suspended("exceeded")
    assert cli.attached("alice") == [cli.deny]


def test_budget_show_resolves_defaults_from_the_deployments_tunables(cli: Cli) -> None:
    # Given an operator's default warning threshold of 60% in SSM, and a budget with only a limit
    cli.stack.client("ssm").put_parameter(
        Name="/budgetkeeper/local/thresholds/warning_percent", Value="60", Type="String"
    )
    cli.ok(
        "budget", "set", "team:data", "--window", "monthly", "--limit", "2000", "--time-zone", "Europe/Paris"
    )
    # When it is shown
    [budget] = json.loads(cli.ok("budget", "show", "team:data", "--format", "json"))
    # Then unset values are resolved, and say they are defaults
    assert budget["warning_percent"] == "60"
    assert budget["grace_seconds"] == 900
    assert budget["time_zone"] == "Europe/Paris"
    assert budget["defaults"] == ["warning_percent", "critical_percent", "grace_seconds", "dry_run"]
    table = cli.ok("budget", "show", "team:data")
    assert "60%  (default)" in table and "Europe/Paris\n" in table and "$2,000.00" in table
    [row] = csv_rows(cli.ok("budget", "show", "team:data", "--format", "csv"))
    assert (row["limit_usd"], row["defaults"]) == (
        "2000",
        "warning_percent,critical_percent,grace_seconds,dry_run",
    )


def test_budget_set_takes_every_option_and_list_shows_them_in_each_format(cli: Cli) -> None:
    # Given two budgets, one with every option
    cli.ok(
        "budget", "set", "apikey:BedrockAPIKey-x7k2", "--window", "days:7@2026-01-05", "--limit", "30",
        "--time-zone", "America/New_York", "--warning-percent", "50", "--critical-percent", "80",
        "--grace", "1h30m", "--owner", "ops@example.com", "--language", "fr", "--dry-run", "--allow-missing",
    )  # fmt: skip
    cli.ok("budget", "set", "user:bob", "--window", "daily", "--limit", "5")
    # When they are listed
    rows = json.loads(cli.ok("budget", "list", "--format", "json"))
    # Then every value is there, exact
    assert [(r["scope"], r["window"]) for r in rows] == [
        ("apikey:BedrockAPIKey-x7k2", "days:7@2026-01-05"),
        ("user:bob", "daily"),
    ]
    assert {k: rows[0][k] for k in ("limit_usd", "warning_percent", "critical_percent", "grace_seconds")} == {
        "limit_usd": "30",
        "warning_percent": "50",
        "critical_percent": "80",
        "grace_seconds": 5400,
    }
    assert (rows[0]["owner_email"], rows[0]["language"], rows[0]["dry_run"], rows[0]["defaults"]) == (
        "ops@example.com",
        "fr",
        True,
        [],
    )
    assert [
        r["scope"] for r in json.loads(cli.ok("budget", "list", "--kind", "user", "--format", "json"))
    ] == ["user:bob"]
    assert csv_rows(cli.ok("budget", "list", "--format", "csv"))[0]["grace_seconds"] == "5400"
    table = cli.ok("budget", "list").splitlines()
    assert table[2].split()[:8] == [
        "apikey:BedrockAPIKey-x7k2", "days:7@2026-01-05", "$30.00", "50%", "80%", "1h30m",
        "America/New_York", "yes",
    ]  # fmt: skip


def test_budget_delete_refuses_a_suspended_budget_unless_forced_which_restores_it_first(cli: Cli) -> None:
    # Given bob suspended by his daily budget
    cli.ok("budget", "set", "user:bob", "--window", "daily", "--limit", "1", "--grace", "0")
    cli.spend("bob", "1.50")
    cli.wait_until_suspended("exceeded")
    # When the budget is deleted without --force, then it is refused and nothing changes
    code, _, err = cli("budget", "delete", "user:bob", "--window", "daily")
    assert code == 1
    assert "user:bob daily is suspended" in err and "--force" in err
    assert cli.attached("bob") == [cli.deny]
    # When it is deleted with --force, then it is restored through the workflow, then deleted
    out = cli.ok(
        "budget", "delete", "user:bob", "--window", "daily", "--force", "--reason", "left the company"
    )
    assert "deny lifted from IAM user bob" in out
    assert out.endswith(
        "user:bob daily: budget deleted; it gets the default budgets again at its next call\n"
    )
    assert cli.attached("bob") == []
    assert list(BudgetItem.query("user:bob")) == []
    last = json.loads(cli.ok("audit", "user:bob", "--format", "json"))[-1]
    assert (last["to_status"], last["reason"], last["actor"]) == (
        "deleted",
        "budget deleted; left the company",
        cli.caller,
    )


# --------------------------------------------------------------------------- operator actions


def test_suspend_then_restore_by_the_cli_attaches_then_detaches_the_deny_and_audits_the_caller(
    cli: Cli,
) -> None:
    # When an operator suspends alice for two hours
    code, out, err = cli("suspend", "user:alice", "--reason", "runaway notebook", "--for", "2h")
    # Then the deny is attached, and the outcome says until when and to what
    assert code == 0, err
    assert out.startswith("user:alice suspended until 20")
    assert ": deny policy attached to IAM user alice (execution arn:aws:states:" in out
    assert "suspend user:alice: ApplyDenies\n" in err  # one progress line per state off a terminal
    assert cli.attached("alice") == [cli.deny]
    manual = BudgetItem.get("user:alice", "manual")
    assert (manual.status, manual.suspended_by) == ("suspended", cli.caller)
    # When she is restored
    code, out, err = cli("restore", "user:alice", "--reason", "notebook fixed")
    # Then the deny is detached, the waiting run is stopped, and the audit names the caller both times
    assert code == 0, err
    assert out.startswith("user:alice restored (manual): deny lifted from IAM user alice (execution ")
    assert cli.attached("alice") == []
    assert cli.executions("RUNNING") == []
    lines = json.loads(cli.ok("audit", "user:alice", "--format", "json"))
    assert [(a["from_status"], a["to_status"], a["actor"], a["reason"]) for a in lines] == [
        ("ok", "suspended", cli.caller, "runaway notebook"),
        ("suspended", "ok", cli.caller, "notebook fixed"),
    ]


def test_on_the_demo_consoles_live_clock_a_suspension_lasts_its_time(cli: Cli) -> None:
    # Given the demo's day fast-forwarded (every wait released), then its console's live clock
    cli.waits.release()
    with live_clock(cli.waits, clock.now()) as live:
        # When an operator suspends alice for fifteen seconds
        out = cli.ok("suspend", "user:alice", "--reason", "cool-off", "--for", "15s")
        shown = out.removeprefix("user:alice suspended until ")[:20]  # 2026-06-10T10:00:15Z
        until = datetime.fromisoformat(shown.replace("Z", "+00:00"))
        # Then she stays suspended while that clock is before the end the CLI (and console) show
        assert cli.attached("alice") == [cli.deny] and live() < until
        deadline = time.monotonic() + 40
        while cli.attached("alice") and time.monotonic() < deadline:
            assert live() < until + timedelta(seconds=5)
            time.sleep(0.2)
        # and is restored once it has passed, not before
        assert cli.attached("alice") == [] and live() >= until


def test_a_suspension_without_an_end_lasts_until_a_restore(cli: Cli) -> None:
    out = cli.ok("suspend", "user:dave", "--reason", "incident 4711")
    assert out.startswith("user:dave suspended with no end (only `budgetkeeper restore` ends it): ")
    assert cli.attached("dave") == [cli.deny]
    assert cli.executions("RUNNING") == []  # no run waits: nothing but a restore ends it
    cli.ok("restore", "user:dave", "--reason", "incident closed", "--window", "manual")
    assert cli.attached("dave") == []


def test_suspend_no_wait_prints_the_execution_and_returns(cli: Cli) -> None:
    out = cli.ok("suspend", "user:carol", "--reason", "audit", "--no-wait")
    assert out.startswith("suspend user:carol: started, execution arn:aws:states:")
    run = wait_for_execution(cli.stack, out.rsplit(" ", 1)[-1].strip())
    assert run["status"] == "SUCCEEDED"
    assert cli.attached("carol") == [cli.deny]


def test_protect_prevents_a_suspension_and_unprotect_lifts_the_protection(cli: Cli) -> None:
    # Given carol's budget, protected by an operator
    cli.ok("budget", "set", "user:carol", "--window", "daily", "--limit", "1", "--grace", "0")
    out = cli.ok("protect", "user:carol", "--reason", "customer demo")
    assert out.startswith("user:carol protected: alerts only, never suspended, until `budgetkeeper unprotect")
    # When she spends past her limit
    cli.spend("carol", "1.20")
    # Then the run ends with an alert, and nothing is denied
    assert {run["status"] for run in cli.finish_runs()} == {"SUCCEEDED"}
    assert cli.attached("carol") == []
    [row] = json.loads(cli.ok("status", "user:carol", "--format", "json"))["budgets"]
    assert (row["level"], row["protected"]) == ("exceeded", True)
    assert row["status"] not in ("grace", "suspended")
    # When the protection is lifted, the budget says so
    out = cli.ok("unprotect", "user:carol")
    assert out.startswith("user:carol unprotected")
    assert BudgetItem.get("user:carol", "daily").protected is False


def test_an_operators_mistake_is_answered_with_exit_2_and_no_run_and_no_page(cli: Cli) -> None:
    # Each request the run would only fail on is answered before anything starts: a restore of a
    # scope that is not suspended, a typo in a user's name, an account, a role or team with nothing
    # in IAM, protection of a scope with no budget.
    mistakes = [
        (("restore", "user:dave"), "user:dave is not suspended: nothing to restore, nothing was started"),
        (("restore", "user:dave", "--window", "manual"), "the manual budget of user:dave is not suspended"),
        (
            ("suspend", "user:alcie"),
            "cannot suspend user:alcie: there is no IAM user alcie; nothing was started",
        ),
        (("suspend", "role:NoSuchRole"), "cannot suspend role:NoSuchRole: there is no IAM role NoSuchRole"),
        (("suspend", "team:ghosts"), "cannot suspend team:ghosts: team ghosts has no IAM group named ghosts"),
        (
            ("suspend", "account:111122223333"),
            "cannot suspend account:111122223333: an account is never suspended as a whole",
        ),
        (("protect", "user:nobody"), "user:nobody has no budget to protect: nothing was started"),
    ]
    for argv, message in mistakes:
        code, out, err = cli(*argv, "--reason", "ticket OPS-7")
        assert (code, out) == (2, ""), (argv, err)
        assert message in err, (argv, err)
    assert cli.executions() == []
    cli.waits.deliveries.drain()
    assert operator_notices(cli.stack) == []


def test_an_operators_action_that_still_fails_exits_1_and_is_a_routine_notice(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given requests that pass the CLI's checks and then fail in the run (the user was deleted, the
    # suspension lifted, in between): simulated by letting every request through unchecked
    monkeypatch.setattr(ActionRequest, "check", lambda self, stack: None)
    code, out, err = cli("suspend", "user:alcie", "--reason", "key leaked")
    assert (code, out) == (1, "")
    assert "user:alcie was not suspended: the run ended at Done without recording a suspension" in err
    code, _, err = cli("restore", "user:dave", "--reason", "nothing to restore")
    assert code == 1
    assert "restore user:dave failed: InvalidRequest: user:dave is not suspended (execution arn:" in err
    # Then operators are told, as routine notices: no SMS for an operator's own mistake
    cli.waits.deliveries.drain()
    notices = {notice["notice"]: notice["urgency"] for notice in operator_notices(cli.stack)}
    assert notices == {"cannot_suspend": "routine", "workflow_failed": "routine"}


# --------------------------------------------------------------------------- audit


def test_audit_shows_lines_oldest_first_in_each_format_and_since_filters_them(cli: Cli) -> None:
    # Given two budgets changed by an operator
    cli.ok("budget", "set", "user:alice", "--window", "daily", "--limit", "1")
    cli.ok("budget", "set", "user:bob", "--window", "monthly", "--limit", "20", "--reason", "new hire")
    cutoff = clock.now()
    cli.ok("budget", "set", "user:alice", "--limit", "3")
    # When the audit of every scope is read
    rows = json.loads(cli.ok("audit", "--format", "json"))
    # Then every line is there, newest last, with its actor
    assert [(r["scope"], r["reason"]) for r in rows] == [
        ("user:alice", "budget created: limit 1 USD"),
        ("user:bob", "budget created: limit 20 USD; new hire"),
        ("user:alice", "budget changed: limit 1 USD -> 3 USD, revision 1 -> 2"),
    ]
    assert {r["actor"] for r in rows} == {cli.caller}
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    since = cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert len(json.loads(cli.ok("audit", "--since", since, "--format", "json"))) == 1
    assert [r["window"] for r in csv_rows(cli.ok("audit", "user:alice", "--format", "csv"))] == [
        "daily",
        "daily",
    ]
    table = cli.ok("audit", "user:bob").splitlines()
    assert table[0].split() == ["time", "scope", "window", "from", "to", "actor", "reason", "execution"]
    # (a row's reason wraps within 120 columns: the row's first line has its time and actor)
    assert cli.caller in table[2] and "new hire" in " ".join(" ".join(table[2:]).split())
    assert len(json.loads(cli.ok("audit", "--last", "2", "--format", "json"))) == 2
    assert cli.ok("audit", "user:zed") == "no audit lines for user:zed\n"


# --------------------------------------------------------------------------- finding the stack


def test_the_stack_can_be_named_by_the_environment_or_by_explicit_options(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.ok("budget", "set", "user:alice", "--window", "daily", "--limit", "1")
    monkeypatch.setenv(stack_config.STACK_VARIABLE, cli.stack_name)
    assert main(["budget", "list", "--format", "json"]) == 0
    assert json.loads(cli.capsys.readouterr().out)[0]["scope"] == "user:alice"
    monkeypatch.delenv(stack_config.STACK_VARIABLE)
    ids = cli.stack.physical_ids
    explicit = ["--budgets-table", ids["BudgetsTable"], "--audit-table", ids["AuditTable"]]
    assert main(["audit", "user:alice", "--format", "json", *explicit]) == 0
    assert json.loads(cli.capsys.readouterr().out)[0]["scope"] == "user:alice"


def test_a_missing_stack_exits_1_naming_it_and_how_to_pass_it(cli: Cli, capsys) -> None:
    assert main(["status", "--stack-name", "budgetkeeper-nope"]) == 1
    err = capsys.readouterr().err
    assert "no stack named 'budgetkeeper-nope' in us-east-1" in err
    assert "--stack-name" in err and "BUDGETKEEPER_STACK" in err


def test_no_stack_at_all_is_a_usage_error(cli: Cli, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(stack_config.STACK_VARIABLE, raising=False)
    assert main(["status"]) == 2
    assert "no stack: pass --stack-name NAME or set BUDGETKEEPER_STACK=NAME" in capsys.readouterr().err
    assert main(["status", "--budgets-table", "t"]) == 2
    assert "(missing here: --totals-table, --audit-table)" in capsys.readouterr().err


def test_missing_credentials_exit_1_with_what_to_do(
    stack: LocalStack, capsys, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    name = stack.publish_outputs()
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    assert main(["status", "--stack-name", name]) == 1
    err = capsys.readouterr().err
    assert "budgetkeeper status: no usable AWS credentials (Unable to locate credentials)" in err
    assert "AWS_PROFILE" in err


@pytest.mark.parametrize("code", ["ExpiredToken", "InvalidClientTokenId", "UnrecognizedClientException"])
def test_rejected_credentials_exit_1_with_what_to_do(
    stack: LocalStack, capsys, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    cloudformation = boto3.client("cloudformation", region_name="us-east-1")
    stubber = Stubber(cloudformation)
    stubber.add_client_error("describe_stacks", service_error_code=code, service_message="The token is bad")
    stubber.activate()
    real_client = boto3.session.Session.client

    def client(self, service, *args, **kwargs):
        return cloudformation if service == "cloudformation" else real_client(self, service, *args, **kwargs)

    monkeypatch.setattr(boto3.session.Session, "client", client)
    assert main(["budget", "list", "--stack-name", "budgetkeeper-local"]) == 1
    err = capsys.readouterr().err
    assert f"AWS rejected the credentials ({code}: The token is bad)" in err
    assert "aws sts get-caller-identity" in err


def test_credentials_failing_in_pynamodb_are_reported_the_same_way(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pynamodb wraps botocore's errors: the wrapped NoCredentialsError is still told as such
    def no_credentials(*args, **kwargs):
        raise NoCredentialsError()

    monkeypatch.setattr("pynamodb.connection.base.Connection._make_api_call", no_credentials)
    code, _, err = cli("budget", "list")
    assert code == 1
    assert "no usable AWS credentials" in err


# --------------------------------------------------------------------------- usage errors
# Errors found in the arguments alone are tested without AWS in tests/unit/cli/test_cli_parsing.py.


def test_an_unknown_scope_kind_exits_2_says_what_to_type_and_changes_nothing(cli: Cli) -> None:
    code, out, err = cli("suspend", "group:ops", "--reason", "x")
    assert (code, out) == (2, "")
    assert "budgetkeeper suspend: unknown scope kind 'group' in 'group:ops': use one of user, apikey" in err
    assert cli.executions() == [] and list(BudgetItem.scan()) == []


def test_thresholds_are_checked_against_the_stored_and_default_values(cli: Cli) -> None:
    # the default critical threshold is 90%: a warning at 95% alone cannot be set
    code, _, err = cli(
        "budget", "set", "user:alice", "--window", "daily", "--limit", "1", "--warning-percent", "95"
    )
    assert code == 2
    assert "the warning threshold (95%) must be below the critical one (90%)" in err


def test_a_new_budget_needs_a_limit_and_an_ambiguous_window_must_be_named(cli: Cli) -> None:
    code, _, err = cli("budget", "set", "user:alice", "--window", "daily", "--owner", "a@example.com")
    assert code == 2 and "a new budget needs --limit" in err
    cli.ok("budget", "set", "user:alice", "--window", "daily", "--limit", "1")
    cli.ok("budget", "set", "user:alice", "--window", "monthly", "--limit", "10")
    code, _, err = cli("budget", "set", "user:alice", "--limit", "2")
    assert code == 2 and "user:alice has budgets for daily, monthly: say which one" in err


def test_a_missing_reason_is_refused_by_the_parser_with_exit_2(cli: Cli, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["suspend", "user:alice", "--stack-name", cli.stack_name])
    assert exited.value.code == 2
    assert "the following arguments are required: --reason" in capsys.readouterr().err


def _leaf_parsers(parser, path=()):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, child in action.choices.items():
                yield from _leaf_parsers(child, (*path, name))
            return
    yield path, parser


@pytest.mark.parametrize(
    "path",
    [path for path, _ in _leaf_parsers(build_parser()) if path[0] not in ("price", "meter", "notices")],
    ids=" ".join,
)
def test_every_command_has_help_with_examples(path: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*path, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text
    assert "--stack-name" in text


def test_a_budget_on_a_principal_iam_does_not_have_is_refused_unless_allowed(cli: Cli) -> None:
    # Given no IAM user ghost (the fixture creates alice, bob, carol and dave)
    code, out, err = cli("budget", "set", "user:ghost", "--window", "daily", "--limit", "5")
    # Then the budget is refused, with what to type to set it anyway, and nothing is written
    assert (code, out) == (2, "")
    assert "there is no IAM user ghost: a budget on it would see no spend and deny no one" in err
    assert "type e.g. budgetkeeper budget set user:ghost --window daily --limit 5 --allow-missing" in err
    assert list(BudgetItem.query("user:ghost")) == []
    # When the operator allows it (a budget set before the user is created)
    code, out, err = cli(
        "budget", "set", "user:ghost", "--window", "daily", "--limit", "5", "--allow-missing"
    )
    # Then it is set, and the operator is told it can neither see spend nor deny anyone
    assert code == 0 and "user:ghost daily: budget created" in out
    assert "warning: there is no IAM user ghost: this budget sees no spend and denies no one" in err
    # and a language with no notices is said, not silently replaced by English
    code, _, err = cli("budget", "set", "user:alice", "--window", "daily", "--limit", "5", "--language", "fr")
    assert code == 0 and "no IAM user" not in err
    assert "warning: no notices in 'fr' yet: the owner reads them in English (notices exist in en, es" in err
    # A later change to the ghost's budget says nothing more
    assert cli("budget", "set", "user:ghost", "--limit", "6")[2] == ""
