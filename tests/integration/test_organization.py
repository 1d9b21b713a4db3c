"""Organization mode end to end: two member accounts and the central stack (moto's 123456789012,
created with OrganizationId). Members' calls reach the central calculator through the CloudWatch
Logs destination (devkit/harness/organization.py plays AWS's delivery), are charged to
account-qualified scopes, and budgets of people, teams and accounts spanning the accounts are
enforced in each account through its BudgetkeeperEnforcement role.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from decimal import Decimal
from unittest import mock

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters
from botocore.stub import Stubber
from moto import mock_aws

from budgetkeeper.enforcement import deny_tasks
from budgetkeeper.metering import calculator
from budgetkeeper.metering.org_units import OrganizationUnits
from budgetkeeper.storage.tables import BudgetItem, TeamItem, TotalItem
from budgetkeeper_cli.console.app import create_app
from budgetkeeper_cli.main import build_parser
from budgetkeeper_cli.stack_config import Stack, connect
from devkit.harness.logs import converse_message
from devkit.harness.organization import MemberAccount, SubscriptionRefused, join_organization
from devkit.harness.stack import ACCOUNT_ID, LocalStack
from devkit.harness.workflow import wait_for_state
from tests.integration.cli_runner import OperatorCli
from tests.integration.conftest import MOTO_CONFIG
from tests.integration.test_enforcement_workflow import executions, finish_all, notifications
from tests.integration.test_member_accounts import RefusedAssumeRole, apply_denies
from tests.timeline import now_iso, window_id

MEMBER_A, MEMBER_B = "111122223333", "444455556666"
NOVA_PRO = "amazon.nova-pro-v1:0"
TOKEN = "test-token-" + "o" * 20
MEMBER_DENY = "policy/budgetkeeper/BudgetkeeperBedrockDeny"


@pytest.fixture
def stack(aws_env: None) -> Iterator[LocalStack]:
    """The central stack in organization mode (overrides conftest's one-account stack)."""
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()
        # The central account is the organization's management account (moto names the organization)
        organizations = boto3.client("organizations", region_name="us-east-1")
        organization = organizations.create_organization(FeatureSet="ALL")["Organization"]
        yield LocalStack(parameters={"OrganizationId": organization["Id"]}).create()
        parameters.clear_caches()


@pytest.fixture
def members(stack: LocalStack, settings) -> dict[str, MemberAccount]:
    organization = stack.parameters["OrganizationId"]
    for account, name in ((MEMBER_B, "research"), (MEMBER_A, "product")):
        join_organization(account, name)
    return {account: MemberAccount(account, organization).deploy(stack) for account in (MEMBER_A, MEMBER_B)}


def call(account: str, who: str, usd: str) -> str:
    """A Converse call by IAM user `who` of `account` worth exactly `usd` (Nova Pro input, 0.80 per 1M)."""
    tokens = int(Decimal(usd) / Decimal("0.0000008"))
    arn = f"arn:aws:iam::{account}:user/{who}"
    return converse_message(arn, NOVA_PRO, tokens, account=account, timestamp=now_iso())


def spent(scope: str) -> Decimal | None:
    try:
        return TotalItem.get(f"{scope}|daily", window_id("daily")).spent_usd
    except TotalItem.DoesNotExist:
        return None


def denied_users(member: MemberAccount) -> set[str]:
    arn = f"arn:aws:iam::{member.account_id}:{MEMBER_DENY}"
    entities = member.client("iam").list_entities_for_policy(PolicyArn=arn)
    return {user["UserName"] for user in entities["PolicyUsers"]}


def test_a_member_accounts_calls_reach_the_calculator_through_the_destination(stack, members):
    for scope in (f"user:{MEMBER_A}/alice", f"account:{MEMBER_A}", "user:alice"):
        BudgetItem(scope, "daily", limit_usd=Decimal(100)).save()  # totals are kept for budgets
    destination = stack.destination_arns["OrganizationLogDestination"]
    assert (
        destination == f"arn:aws:logs:us-east-1:{ACCOUNT_ID}:destination:{stack.stack_name}-invocation-logs"
    )
    # When alice of member account A calls Bedrock (and a line that is not an invocation record
    # lands in the same log group, which the subscription's filter keeps back)
    response = members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.25"), "START RequestId: x"])
    # Then the calculator metered it, once, as delivered: a payload owned by the member account
    assert [record["result"] for record in response["records"]] == ["Ok"]
    (archived,) = stack.client("s3").list_objects_v2(Bucket=stack.physical_ids["ArchiveBucket"])["Contents"]
    body = stack.client("s3").get_object(Bucket=stack.physical_ids["ArchiveBucket"], Key=archived["Key"])
    payload = json.loads(gzip.decompress(body["Body"].read()))
    assert (payload["owner"], len(payload["logEvents"])) == (MEMBER_A, 1)
    # And charged to her account-qualified scope and her account, not to the central account's alice
    assert spent(f"user:{MEMBER_A}/alice") == Decimal("0.25")
    assert spent(f"account:{MEMBER_A}") == Decimal("0.25")
    assert spent("user:alice") is None


def test_a_member_log_naming_a_caller_of_another_account_charges_no_one(stack, members):
    # Whoever may write to a member's log group may write any caller into it: CloudWatch Logs
    # names the account whose log it is, and only that account's callers are charged
    for scope in ("user:alice", f"user:{MEMBER_B}/bob", f"user:{MEMBER_A}/carol"):
        BudgetItem(scope, "daily", limit_usd=Decimal(100)).save()
    claims = [call(ACCOUNT_ID, "alice", "0.50"), call(MEMBER_B, "bob", "0.50")]
    members[MEMBER_A].log_invocations([*claims, call(MEMBER_A, "carol", "0.25")])
    assert spent("user:alice") is None and spent(f"user:{MEMBER_B}/bob") is None
    assert spent(f"user:{MEMBER_A}/carol") == Decimal("0.25")
    (quarantined,) = stack.client("s3").list_objects_v2(
        Bucket=stack.physical_ids["ArchiveBucket"], Prefix="quarantine/"
    )["Contents"]
    body = stack.client("s3").get_object(Bucket=stack.physical_ids["ArchiveBucket"], Key=quarantined["Key"])
    text = body["Body"].read().decode()
    assert f"caller of account {ACCOUNT_ID} in the log of account {MEMBER_A}: not charged" in text
    assert f"caller of account {MEMBER_B} in the log of account {MEMBER_A}: not charged" in text


def test_a_redrive_of_the_quarantine_still_charges_no_caller_of_another_account(stack, members, capsys):
    # Given a member log naming callers of other accounts, quarantined for it
    for scope in ("user:alice", f"user:{MEMBER_B}/bob"):
        BudgetItem(scope, "daily", limit_usd=Decimal(100)).save()
    members[MEMBER_A].log_invocations([call(ACCOUNT_ID, "alice", "0.50"), call(MEMBER_B, "bob", "0.50")])
    # When an operator redrives the quarantine (after a fix, say)
    out = OperatorCli(stack, capsys).ok("redrive", "--prefix", "quarantine/")
    # Then the events are judged by the log's owner again, still bad, and no one is charged
    assert "2 still bad" in out and f"in the log of account {MEMBER_A}: not charged" in out
    assert spent("user:alice") is None and spent(f"user:{MEMBER_B}/bob") is None


def test_the_central_accounts_own_calls_keep_their_unqualified_scopes(stack, members):
    for scope in ("user:alice", f"user:{ACCOUNT_ID}/alice"):
        BudgetItem(scope, "daily", limit_usd=Decimal(100)).save()
    from devkit.harness.lambdas import invoke
    from devkit.harness.logs import cloudwatch_payload, firehose_event

    invoke(
        "UsageCalculatorFunction",
        firehose_event([cloudwatch_payload([call(ACCOUNT_ID, "alice", "0.5")], owner=ACCOUNT_ID)]),
    )
    assert spent("user:alice") == Decimal("0.5")
    assert spent(f"user:{ACCOUNT_ID}/alice") is None


def test_an_account_outside_the_organization_cannot_subscribe(stack, settings):
    stranger = MemberAccount("777788889999", organization_id="o-zzzzzzzzzz")  # another organization
    with pytest.raises(SubscriptionRefused, match="AccessDeniedException"):
        stranger.deploy(stack)


def over_budget_across_accounts(
    stack, workflow, members, scope: str, spends: dict[str, tuple[str, str]]
) -> None:
    """A daily budget of 1 USD on `scope`; each account's (user, USD) metered in turn, each under
    the limit alone; then the exceeded run, waiting for the refresh with its denies in place."""
    BudgetItem(scope, "daily", limit_usd=Decimal(1), grace_seconds=0).save()
    workflow.max_wait_seconds = 3
    for account, (user, usd) in spends.items():
        finish_all(stack)
        members[account].log_invocations([call(account, user, usd)])
    run = next(e for e in executions(stack) if e["name"].startswith("exceeded"))
    wait_for_state(stack, run["executionArn"], "WaitForRefresh")


def test_a_person_over_budget_across_two_accounts_is_denied_in_both(stack, members, workflow):
    # Given alice has an IAM user in each member account, both mapped by operators to one person
    for account, member in members.items():
        member.client("iam").create_user(UserName="alice")
        TeamItem(f"user:{account}/alice", person="alice.martin").save()
    # When she spends 0.60 in each account: under the limit in each, over it as one person
    spends = {MEMBER_A: ("alice", "0.60"), MEMBER_B: ("alice", "0.60")}
    over_budget_across_accounts(stack, workflow, members, "person:alice.martin", spends)
    assert spent("person:alice.martin") == Decimal("1.20")
    # Then she is denied in both accounts, each through its own enforcement role, and not centrally
    assert denied_users(members[MEMBER_A]) == {"alice"} and denied_users(members[MEMBER_B]) == {"alice"}
    central = stack.client("iam").list_entities_for_policy(PolicyArn=stack.physical_ids["BedrockDenyPolicy"])
    assert central["PolicyUsers"] == []
    suspended = [n for n in notifications(stack) if n["type"] == "suspended"]
    assert [n["scope"] for n in suspended] == ["person:alice.martin"]
    # And the window's refresh lifts both
    finish_all(stack)
    assert denied_users(members[MEMBER_A]) == set() and denied_users(members[MEMBER_B]) == set()


def test_a_team_spanning_two_accounts_is_denied_in_each(stack, members, workflow):
    members[MEMBER_A].client("iam").create_user(UserName="carol")
    members[MEMBER_B].client("iam").create_user(UserName="dan")
    TeamItem(f"user:{MEMBER_A}/carol", team="data").save()
    TeamItem(f"user:{MEMBER_B}/dan", team="data").save()
    spends = {MEMBER_A: ("carol", "0.55"), MEMBER_B: ("dan", "0.55")}
    over_budget_across_accounts(stack, workflow, members, "team:data", spends)
    assert spent("team:data") == Decimal("1.10")
    assert denied_users(members[MEMBER_A]) == {"carol"} and denied_users(members[MEMBER_B]) == {"dan"}


def test_an_account_budget_counts_that_accounts_calls_and_warns(stack, members, workflow):
    BudgetItem(f"account:{MEMBER_B}", "daily", limit_usd=Decimal(1), grace_seconds=0).save()
    members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.90")])
    members[MEMBER_B].log_invocations([call(MEMBER_B, "bob", "0.75")])
    finish_all(stack)
    assert spent(f"account:{MEMBER_B}") == Decimal("0.75")
    assert [(n["type"], n["scope"]) for n in notifications(stack)] == [("warning", f"account:{MEMBER_B}")]


PRODUCT_OU, PLATFORM_OU = "ou-ab12-11111111", "ou-ab12-22222222"  # product sits in platform


def organizations_answering(stubbed) -> OrganizationUnits:
    """AWS Organizations as the management account reads it (moto knows no accounts it did not
    create), played by botocore's Stubber: each (child, parent) pair, asked in order."""
    client = boto3.client("organizations", region_name="us-east-1")
    stubber = Stubber(client)
    for child, parent in stubbed:
        kind = "ROOT" if parent.startswith("r-") else "ORGANIZATIONAL_UNIT"
        stubber.add_response("list_parents", {"Parents": [{"Id": parent, "Type": kind}]}, {"ChildId": child})
    stubber.activate()
    return OrganizationUnits(client)


def test_an_ou_budget_counts_the_accounts_under_it_nested_or_not(stack, members, monkeypatch):
    units = organizations_answering(
        [
            (MEMBER_A, PRODUCT_OU),
            (PRODUCT_OU, PLATFORM_OU),
            (PLATFORM_OU, "r-ab12"),
            (MEMBER_B, PLATFORM_OU),
            (PLATFORM_OU, "r-ab12"),
        ]
    )
    monkeypatch.setattr(calculator, "_organization_units", lambda: units)
    for scope in (f"ou:{PRODUCT_OU}", f"ou:{PLATFORM_OU}"):
        BudgetItem(scope, "daily", limit_usd=Decimal(100)).save()
    members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.25")])
    members[MEMBER_B].log_invocations([call(MEMBER_B, "bob", "0.50")])
    members[MEMBER_A].log_invocations([call(MEMBER_A, "carol", "0.125")])  # A's OUs from the cache
    assert spent(f"ou:{PRODUCT_OU}") == Decimal("0.375")
    assert spent(f"ou:{PLATFORM_OU}") == Decimal("0.875")


def test_an_organization_it_cannot_read_charges_no_ou_and_meters_on(stack, members, monkeypatch):
    client = boto3.client("organizations", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("list_parents", "AccessDeniedException", "not the management account", 400)
    stubber.activate()
    monkeypatch.setattr(calculator, "_organization_units", lambda: OrganizationUnits(client))
    BudgetItem(f"user:{MEMBER_A}/alice", "daily", limit_usd=Decimal(100)).save()
    response = members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.25")])
    assert [record["result"] for record in response["records"]] == ["Ok"]
    assert spent(f"user:{MEMBER_A}/alice") == Decimal("0.25")


def test_reports_group_spend_by_the_callers_account_and_its_nearest_ou(stack, members, capsys):
    # Given member account A in OU product, B in the organization's root
    organizations = boto3.client("organizations", region_name="us-east-1")
    root = organizations.list_roots()["Roots"][0]["Id"]
    product = organizations.create_organizational_unit(ParentId=root, Name="product")["OrganizationalUnit"]
    organizations.move_account(AccountId=MEMBER_A, SourceParentId=root, DestinationParentId=product["Id"])
    # and calls in both (a claim of another account in A's log is charged to no one)
    members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.25"), call(MEMBER_A, "carol", "0.125")])
    members[MEMBER_B].log_invocations([call(MEMBER_B, "bob", "0.50"), call(MEMBER_A, "mallory", "9")])
    cli = OperatorCli(stack, capsys)

    def costs(group_by: str) -> dict[str, Decimal]:
        rows = csv.DictReader(io.StringIO(cli.ok("report", "--group-by", group_by, "--format", "csv")))
        return {row[group_by]: Decimal(row["cost_usd"]) for row in rows if row[group_by] != "TOTAL"}

    # When operators report by account, and by OU: then each call is in its caller's account's
    assert costs("account") == {MEMBER_A: Decimal("0.375"), MEMBER_B: Decimal("0.5")}
    assert costs("ou") == {product["Id"]: Decimal("0.375"), "-": Decimal("0.5")}  # B: in the root


def test_the_console_shows_spend_per_account_and_keeps_one_account_when_asked(stack, members):
    # Given calls in both member accounts
    members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.25"), call(MEMBER_A, "carol", "0.125")])
    members[MEMBER_B].log_invocations([call(MEMBER_B, "bob", "0.50")])
    name = stack.publish_outputs()
    app = create_app(connect(build_parser().parse_args(["console", "--stack-name", name])), token=TOKEN)
    client = app.test_client()
    client.get(f"/costs?token={TOKEN}")

    def costs(query: str, section: str, field: str) -> dict[str, Decimal]:
        rows = csv.DictReader(io.StringIO(client.get(f"/costs?csv={section}{query}").get_data(as_text=True)))
        return {row[field]: Decimal(row["cost_usd"]) for row in rows if row[field] != "TOTAL"}

    # When an operator opens the costs tab: in organization mode it has spend per account
    assert costs("", "account", "account") == {MEMBER_A: Decimal("0.375"), MEMBER_B: Decimal("0.5")}
    # and the account field keeps one account's calls on every chart and table
    assert costs(f"&account={MEMBER_A}", "account", "account") == {MEMBER_A: Decimal("0.375")}
    assert sum(costs(f"&account={MEMBER_B}", "app-compare", "app").values()) == Decimal("0.5")


def test_a_report_by_ou_where_organizations_refuses_says_what_to_run_instead(stack, members, capsys):
    members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.25")])
    client = boto3.client("organizations", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("list_parents", "AccessDeniedException", "not the management account", 400)
    stubber.activate()
    cli = OperatorCli(stack, capsys)
    with mock.patch.object(Stack, "client", lambda self, service: client):
        err = cli.fails(1, "report", "--group-by", "ou")
    assert "refused (AccessDeniedException) for account 111122223333" in err
    assert "management account or a delegated administrator, or group by account" in err


# --- budgetkeeper person, org ----------------------------------------------------------------------


def test_operators_map_a_persons_identities_across_accounts_with_the_cli(stack, members, capsys):
    cli = OperatorCli(stack, capsys)
    cli.ok("team", "create", "data", "--member", f"user:{MEMBER_A}/alice")
    assert cli.ok("person", "add", "alice.martin", f"user:{MEMBER_A}/alice") == (
        f"user:{MEMBER_A}/alice is person alice.martin\n"
    )
    cli.ok("person", "add", "alice.martin", "user:alice")
    assert "alice.martin" in cli.ok("person", "list") and f"user:{MEMBER_A}/alice" in cli.ok("person", "list")
    # One item holds both mappings: the team stays when the person is added, and the other way round
    item = TeamItem.get(f"user:{MEMBER_A}/alice")
    assert (item.team, item.person) == ("data", "alice.martin")
    cli.ok("person", "remove", "alice.martin", f"user:{MEMBER_A}/alice")
    assert TeamItem.get(f"user:{MEMBER_A}/alice").team == "data"
    # What cannot be one person's says what to type instead
    err = cli.fails(2, "person", "add", "alice.martin", f"role:{MEMBER_A}/App-BedrockRole")
    assert "type one of user:..., apikey:..., session:..." in err
    err = cli.fails(1, "person", "remove", "bob", "user:alice")
    assert "user:alice is mapped to person alice.martin, not bob" in err


def test_org_enable_checks_trusted_access_and_prints_the_stack_set_commands(stack, settings, capsys):
    cli = OperatorCli(stack, capsys)
    # Without trusted access for StackSets: told how to turn it on
    err = cli.fails(1, "org", "enable")
    assert "aws cloudformation activate-organizations-access" in err
    organizations = boto3.client("organizations", region_name="us-east-1")
    organizations.enable_aws_service_access(
        ServicePrincipal="member.org.stacksets.cloudformation.amazonaws.com"
    )
    out = cli.ok("org", "enable", "--regions", "us-east-1", "eu-west-1")
    destination = stack.destination_arns["OrganizationLogDestination"]
    organization = stack.parameters["OrganizationId"]
    assert "this account is the management account" in out
    assert f"ParameterKey=LogDestinationArn,ParameterValue={destination}" in out
    assert f"ParameterKey=OrganizationId,ParameterValue={organization}" in out
    assert f"ParameterValue=arn:aws:iam::{ACCOUNT_ID}:role/" in out
    root = organizations.list_roots()["Roots"][0]["Id"]
    assert f"--deployment-targets OrganizationalUnitIds={root} --regions us-east-1 eu-west-1" in out


def test_org_enable_on_a_stack_without_organization_mode_says_how_to_deploy_it(aws_env, capsys):
    with mock_aws(config=MOTO_CONFIG):
        organization = boto3.client("organizations", region_name="us-east-1").create_organization(
            FeatureSet="ALL"
        )["Organization"]
        cli = OperatorCli(LocalStack().create(), capsys)
        err = cli.fails(1, "org", "enable")
    assert f"sam deploy --parameter-overrides OrganizationId={organization['Id']}" in err


def test_org_status_shows_each_accounts_metering_and_enforcement_role(stack, members, capsys, monkeypatch):
    monkeypatch.setattr(deny_tasks.boto3, "client", RefusedAssumeRole().client)
    for account in (MEMBER_A, MEMBER_B):
        BudgetItem(f"account:{account}", "daily", limit_usd=Decimal(100)).save()
    members[MEMBER_A].log_invocations([call(MEMBER_A, "alice", "0.25")])
    members[MEMBER_B].client("iam").create_user(UserName="bob")
    BudgetItem(f"user:{MEMBER_B}/bob", "daily", limit_usd=Decimal(1), status="suspended").save()
    apply_denies(stack, f"user:{MEMBER_B}/bob")  # B's enforcement role refuses the DenyFunction
    cli = OperatorCli(stack, capsys)
    rows = {row["account"]: row for row in json.loads(cli.ok("org", "status", "--format", "json"))}
    assert list(rows) == [ACCOUNT_ID, MEMBER_A, MEMBER_B]
    assert rows[MEMBER_A]["last_metered"] == f"{now_iso()[:13]}:00Z"
    assert rows[MEMBER_A]["enforcement_role"] == "not needed yet (no deny there)"
    assert rows[MEMBER_B]["last_metered"] == "never" and rows[MEMBER_B]["denies"] == 1
    assert rows[MEMBER_B]["enforcement_role"].startswith("NOT ASSUMABLE (operators told ")


def test_doctor_names_budgets_written_for_a_member_principal_without_its_account(stack, settings, capsys):
    stack.client("iam").create_user(UserName="bob")
    for scope in ("user:alice", "user:bob", f"user:{MEMBER_A}/alice", "team:data"):
        BudgetItem(scope, "daily", limit_usd=Decimal(10)).save()
    cli = OperatorCli(stack, capsys)
    _, out, _ = cli("doctor", "--format", "json")
    findings = [row for row in json.loads(out) if row["check"] == "organization"]
    assert [(row["result"], row["detail"]) for row in findings] == [
        ("warn", "budget user:alice receives no spend: there is no IAM user alice in this account"),
        ("ok", f"organization {stack.parameters['OrganizationId']}: `budgetkeeper org status` per account"),
    ]
    assert findings[0]["fix"] == (
        "a member account's is user:<account>/alice: budgetkeeper budget set it there"
    )
