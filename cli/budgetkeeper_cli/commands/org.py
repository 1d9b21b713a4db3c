"""`budgetkeeper org enable|status`: organization mode (docs/organization.md).

`org enable` runs in the organization's management account or a StackSets delegated
administrator, where the central stack is deployed with OrganizationId: it checks that this
account may deploy StackSets to the organization (trusted access), that the stack's log destination
admits the organization, and prints the StackSet commands that deploy templates/member-account.yaml
to every member account with this stack's values. `org status` shows each account: when its calls
were last metered (the destination delivering), and whether the central DenyFunction reaches its
enforcement role (what the deny records say after the last reconcile).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any

from botocore.exceptions import ClientError

from budgetkeeper.domain.scopes import split_account
from budgetkeeper.enforcement.denies import DenyEntry
from budgetkeeper.enforcement.iam_denies import EntryKind
from budgetkeeper.storage.tables import DenyItem, RollupItem
from budgetkeeper.storage.usage_journal import RowRange, usage_rows
from budgetkeeper_cli.errors import CommandFailed
from budgetkeeper_cli.parsers import add_action, add_actions, add_command, docstring_body
from budgetkeeper_cli.rendering import FORMATS, Column, render
from budgetkeeper_cli.stack_config import Stack, add_stack_options, connect, translating_aws_errors

STACKSETS_PRINCIPAL = "member.org.stacksets.cloudformation.amazonaws.com"
MEMBER_TEMPLATE = "templates/member-account.yaml"
STACK_SET_NAME = "budgetkeeper-member"
NEEDS = ("denies_table", "rollups_table")
STATUS_COLUMNS = (
    Column("account"),
    Column("name"),
    Column("last_metered"),
    Column("denies", numeric=True),
    Column("enforcement_role"),
)

EPILOG = """\
examples:
  budgetkeeper org enable                         # in the management account or a delegated admin
  budgetkeeper org enable --regions us-east-1 eu-west-1
  budgetkeeper org status
  budgetkeeper org status --format json
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "org",
        "organization mode: check the setup and print the StackSet commands, each account's status",
        docstring_body(__doc__),
        EPILOG,
    )
    actions = add_actions(parser, "org_action")
    enable = add_action(
        actions, "enable", "check trusted access and the destination; print the StackSet commands", EPILOG
    )
    enable.add_argument(
        "--regions",
        nargs="+",
        metavar="REGION",
        help="the Regions to deploy the member stack to (default: the stack's)",
    )
    enable.set_defaults(func=run_enable)
    status = add_action(actions, "status", "every account: last metered, denies, enforcement role", EPILOG)
    status.add_argument("--format", choices=FORMATS, default="table", help="output format")
    status.set_defaults(func=run_status)
    for action_parser in (enable, status):
        add_stack_options(action_parser)


def _organization(stack: Stack) -> dict[str, Any]:
    """The organization this account is in, and the stack is set up for."""
    in_use = stack.settings.organization_id
    try:
        organization: dict[str, Any] = stack.client("organizations").describe_organization()["Organization"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "AWSOrganizationsNotInUseException":
            raise
        raise CommandFailed("this account is in no AWS Organization: organization mode needs one") from None
    if in_use is None:
        raise CommandFailed(
            f"{stack.origin} is not in organization mode: deploy it with "
            f"`sam deploy --parameter-overrides OrganizationId={organization['Id']}`, then run this again"
        )
    if in_use != organization["Id"]:
        raise CommandFailed(
            f"{stack.origin} is set up for organization {in_use}, but this account is in {organization['Id']}"
        )
    return organization


@translating_aws_errors
def run_enable(args: argparse.Namespace) -> int:
    stack = connect(args)
    organization = _organization(stack)
    account = stack.client("sts").get_caller_identity()["Account"]
    organizations = stack.client("organizations")
    management = organization["MasterAccountId"] == account
    if not management and not _is_delegated_admin(organizations, account):
        raise CommandFailed(
            f"account {account} is neither the management account ({organization['MasterAccountId']}) nor a "
            "StackSets delegated administrator: run this there, or register this account from the "
            "management account: aws organizations register-delegated-administrator "
            f"--service-principal {STACKSETS_PRINCIPAL} --account-id {account}"
        )
    services = organizations.list_aws_service_access_for_organization()["EnabledServicePrincipals"]
    if STACKSETS_PRINCIPAL not in {service["ServicePrincipal"] for service in services}:
        raise CommandFailed(
            "trusted access for CloudFormation StackSets is off in the organization: turn it on from the "
            "management account with `aws cloudformation activate-organizations-access`, then run this again"
        )
    destination = _check_destination(stack, organization["Id"])
    call_as = "" if management else " --call-as DELEGATED_ADMIN"
    regions = " ".join(args.regions or [stack.settings.region])
    lines = [
        f"organization {organization['Id']}: this account is the "
        f"{'management account' if management else 'StackSets delegated administrator'}",
        "trusted access for StackSets: on",
        f"log destination {destination}: admits the organization's accounts",
        "",
        "Deploy the member stack to every account (new accounts get it as they join):",
        f"aws cloudformation create-stack-set --stack-set-name {STACK_SET_NAME}{call_as} \\",
        f"  --template-body file://{MEMBER_TEMPLATE} --capabilities CAPABILITY_NAMED_IAM \\",
        "  --permission-model SERVICE_MANAGED \\",
        "  --auto-deployment Enabled=true,RetainStacksOnAccountRemoval=false \\",
        "  --parameters ParameterKey=CentralDenyFunctionRoleArn,"
        f"ParameterValue={stack.outputs['DenyFunctionRoleArn']} \\",
        f"               ParameterKey=OrganizationId,ParameterValue={organization['Id']} \\",
        f"               ParameterKey=LogDestinationArn,ParameterValue={destination} \\",
        f"               ParameterKey=EnforcementRegion,ParameterValue={stack.settings.region}",
        f"aws cloudformation create-stack-instances --stack-set-name {STACK_SET_NAME}{call_as} \\",
        f"  --deployment-targets OrganizationalUnitIds={_root_id(organizations)} --regions {regions}",
        "",
        "Then `budgetkeeper org status` shows each account's calls metered and its enforcement role.",
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


def _is_delegated_admin(organizations: Any, account: str) -> bool:
    try:
        pages = organizations.get_paginator("list_delegated_administrators").paginate(
            ServicePrincipal=STACKSETS_PRINCIPAL
        )
        return any(admin["Id"] == account for page in pages for admin in page["DelegatedAdministrators"])
    except ClientError as error:
        if error.response["Error"]["Code"] in ("AccessDeniedException", "AccessDenied"):
            return False
        raise


def _check_destination(stack: Stack, organization_id: str) -> str:
    """The stack's log destination, checked to admit the organization's accounts."""
    arn = stack.outputs.get("OrganizationLogDestinationArn")
    if not arn:
        raise CommandFailed(f"{stack.origin} has no output OrganizationLogDestinationArn: redeploy it")
    name = arn.rsplit(":", 1)[-1]
    found = [
        destination
        for destination in stack.client("logs").describe_destinations(DestinationNamePrefix=name)[
            "destinations"
        ]
        if destination["arn"] == arn
    ]
    policy = json.loads((found[0].get("accessPolicy") if found else None) or '{"Statement": []}')
    admitted = {
        statement.get("Condition", {}).get("StringEquals", {}).get("aws:PrincipalOrgID")
        for statement in policy.get("Statement", [])
        if statement.get("Effect") == "Allow"
    }
    if organization_id not in admitted:
        raise CommandFailed(
            f"the log destination {arn} does not admit organization {organization_id}: redeploy the stack "
            f"with OrganizationId={organization_id} (its template writes the destination policy)"
        )
    return arn


def _root_id(organizations: Any) -> str:
    return str(organizations.list_roots()["Roots"][0]["Id"])


@translating_aws_errors
def run_status(args: argparse.Namespace) -> int:
    stack = connect(args, needs=NEEDS)
    _organization(stack)
    home = stack.client("sts").get_caller_identity()["Account"]
    accounts = _accounts(stack, home)
    held, unreachable = _denies_by_account()
    rows = []
    for account, name in accounts.items():
        told = unreachable.get(account)
        if account == home:
            role = "this account"
        elif told:
            role = f"NOT ASSUMABLE (operators told {told})"
        elif held[account]:
            role = "reached (its denies are in place)"
        else:
            role = "not needed yet (no deny there)"
        rows.append(
            {
                "account": account,
                "name": name,
                "last_metered": _last_metered(account) or "never",
                "denies": held[account],
                "enforcement_role": role,
            }
        )
    sys.stdout.write(render(STATUS_COLUMNS, rows, args.format))
    return 0


def _accounts(stack: Stack, home: str) -> dict[str, str]:
    """Every active account Organizations lists (this one, `home`, first), by id, with its name."""
    try:
        pages = stack.client("organizations").get_paginator("list_accounts").paginate()
        listed = {
            account["Id"]: account["Name"]
            for page in pages
            for account in page["Accounts"]
            if account["Status"] == "ACTIVE"
        }
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("AccessDeniedException", "AccessDenied"):
            raise
        raise CommandFailed(
            "Organizations does not list the accounts to this account: run `org status` in the management "
            "account or a delegated administrator, with the stack's tables readable"
        ) from None
    return {home: listed.get(home, ""), **{k: v for k, v in sorted(listed.items()) if k != home}}


def _last_metered(account: str) -> str | None:
    """The latest UTC hour in which calls of the account were metered (its account scope's rollups,
    with the usage journal's entries not folded yet: they hold the last minutes)."""
    scope = f"account:{account}"
    latest_stored = next(iter(RollupItem.query(scope, scan_index_forward=False, limit=1)), None)
    rows = usage_rows([RowRange(scope, low=latest_stored.bucket if latest_stored else None)])
    if not rows:
        return None
    return f"{max(row.bucket for row in rows).split('#', 1)[0]}:00Z"


def _denies_by_account() -> tuple[Counter[str], dict[str, str]]:
    """Deny records held per member account, and when operators were last told each unreachable one."""
    held: Counter[str] = Counter()
    unreachable: dict[str, str] = {}
    for item in DenyItem.scan():
        entry = DenyEntry.from_key(item.entry)
        account = split_account(entry.name, session=entry.kind is EntryKind.SESSION)[0]
        if account is None:
            continue
        held[account] += 1
        if item.unreachable_told_at:
            unreachable[account] = max(unreachable.get(account, ""), item.unreachable_told_at)
    return held, unreachable
