"""`budgetkeeper team ...` and `user ...` on moto: IAM users, groups and tags, the teams table, budgets.

moto has no service-specific credentials: those three IAM calls go to a client stubbed with
botocore's Stubber, answering as the IAM API reference documents; every other call is moto's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from budgetkeeper.core import clock
from budgetkeeper.core.tags import EMAIL_TAG, LANGUAGE_TAG, PERSON_TAG, TEAM_TAG, TOOL_TAG, tags_of
from budgetkeeper.storage.tables import BudgetItem, TeamItem
from budgetkeeper_cli.stack_config import Stack
from devkit.harness.workflow import real_handlers
from tests.integration.cli_runner import OperatorCli

CREDENTIAL_CALLS = frozenset(
    {
        "create_service_specific_credential",
        "list_service_specific_credentials",
        "delete_service_specific_credential",
    }
)


class IamWithStubbedKeys:
    """moto's IAM client, but service-specific credentials answered by a Stubber."""

    def __init__(self, moto_iam: Any, keys: Any) -> None:
        self._moto, self._keys = moto_iam, keys

    def __getattr__(self, name: str) -> Any:
        return getattr(self._keys if name in CREDENTIAL_CALLS else self._moto, name)


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    stubbed = boto3.client("iam", region_name="us-east-1")
    stubber = Stubber(stubbed)
    original = Stack.client

    def client(self: Stack, service: str) -> Any:
        real = original(self, service)
        return IamWithStubbedKeys(real, stubbed) if service == "iam" else real

    monkeypatch.setattr(Stack, "client", client)
    with stubber:
        yield stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def cli(stack, settings, capsys, keys) -> OperatorCli:
    return OperatorCli(stack, capsys)


def credential(user: str, key_id: str, *, secret: str | None = None) -> dict[str, Any]:
    created = clock.now() - timedelta(days=3)
    body: dict[str, Any] = {
        "CreateDate": created,
        "ServiceName": "bedrock.amazonaws.com",
        "ServiceUserName": f"{user}-at-123456789012",
        "ServiceSpecificCredentialId": key_id,
        "UserName": user,
        "Status": "Active",
    }
    if secret is not None:
        body |= {"ServiceCredentialAlias": f"{user}-at-123456789012", "ServiceCredentialSecret": secret}
    return body


def expect_keys(keys: Stubber, user: str, *found: dict[str, Any]) -> None:
    keys.add_response(
        "list_service_specific_credentials",
        {"ServiceSpecificCredentials": list(found)},
        {"UserName": user, "ServiceName": "bedrock.amazonaws.com"},
    )


def user_tags(stack, name: str) -> dict[str, str]:
    return tags_of(stack.client("iam").list_user_tags(UserName=name)["Tags"])


def groups_of(stack, name: str) -> list[str]:
    return [g["GroupName"] for g in stack.client("iam").list_groups_for_user(UserName=name)["Groups"]]


def test_team_create_makes_the_group_with_an_invoke_policy_and_maps_its_first_members(
    cli: OperatorCli, stack
) -> None:
    out = cli.ok("team", "create", "data", "--member", "role:Etl-BedrockRole", "--member", "app:Etl")
    assert out.splitlines() == [
        "team data: IAM group data created with a Bedrock invoke policy",
        "role:Etl-BedrockRole is in team data",
        "app:Etl is in team data",
    ]
    iam = stack.client("iam")
    assert iam.get_group(GroupName="data")["Group"]["Path"] == "/budgetkeeper/teams/"
    policy = iam.get_group_policy(GroupName="data", PolicyName="BudgetkeeperBedrockInvoke")["PolicyDocument"]
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert {"bedrock:InvokeModel", "bedrock:CallWithBearerToken"} <= set(statement["Action"])
    assert TeamItem.get("role:Etl-BedrockRole").team == "data"
    # A second create leaves the group as it is
    assert "exists; left as it is" in cli.ok("team", "create", "data")


def test_user_create_tags_the_user_puts_it_in_its_team_and_gives_it_its_budget(
    cli: OperatorCli, stack
) -> None:
    cli.ok("team", "create", "data")
    out = cli.ok(
        "user", "create", "alice", "--person", "Alice Martin", "--team", "data",
        "--email", "alice@example.com", "--language", "es", "--budget", "50", "--window", "weekly",
    )  # fmt: skip
    assert "user:alice: IAM user arn:aws:iam::123456789012:user/budgetkeeper/users/alice created" in out
    assert "user:alice weekly: budget created (limit 50 USD)" in out
    assert user_tags(stack, "alice") == {
        PERSON_TAG: "Alice Martin",
        TEAM_TAG: "data",
        EMAIL_TAG: "alice@example.com",
        LANGUAGE_TAG: "es",
    }
    assert groups_of(stack, "alice") == ["data"]
    assert TeamItem.get("user:alice").team == "data"
    budget = BudgetItem.get("user:alice", "weekly")
    assert (str(budget.limit_usd), budget.owner_email, budget.language) == ("50", "alice@example.com", "es")


def test_user_create_refuses_an_unknown_team_and_a_duplicate_user(cli: OperatorCli, stack) -> None:
    err = cli.fails(1, "user", "create", "bob", "--person", "Bob", "--team", "nowhere")
    assert "unknown team 'nowhere': create it with budgetkeeper team create nowhere" in err
    assert stack.client("iam").list_users()["Users"] == []
    cli.ok("team", "create", "data")
    cli.ok("user", "create", "bob", "--person", "Bob", "--team", "data")
    err = cli.fails(1, "user", "create", "bob", "--person", "Bob", "--team", "data", "--budget", "5")
    assert "IAM user bob already exists" in err
    assert list(BudgetItem.query("user:bob")) == []


def test_create_key_makes_one_iam_user_per_tool_tagged_like_its_person_and_prints_the_key_once(
    cli: OperatorCli, stack, keys: Stubber
) -> None:
    # Given alice in team data
    cli.ok("team", "create", "data")
    cli.ok(
        "user", "create", "alice", "--person", "Alice Martin", "--team", "data", "--email", "a@example.com"
    )
    # When a key is made for her cline
    keys.add_response(
        "create_service_specific_credential",
        {
            "ServiceSpecificCredential": credential(
                "BedrockAPIKey-alice-cline", "ACCAQAAAAAAAAAKEY0001", secret="ABSK-secret-1"
            )
        },
        {
            "UserName": "BedrockAPIKey-alice-cline",
            "ServiceName": "bedrock.amazonaws.com",
            "CredentialAgeDays": 90,
        },
    )
    out = cli.ok("user", "create-key", "alice", "--tool", "cline", "--days", "90")
    # Then the key user is the apikey scope, tagged, in the team's group and team, and the key is printed
    assert out.startswith("apikey:BedrockAPIKey-alice-cline: IAM user created for alice's cline key\n")
    assert out.endswith("(AWS_BEARER_TOKEN_BEDROCK):\nABSK-secret-1\n")
    tags = user_tags(stack, "BedrockAPIKey-alice-cline")
    assert (tags[PERSON_TAG], tags[TEAM_TAG], tags[TOOL_TAG], tags[EMAIL_TAG]) == (
        "Alice Martin", "data", "cline", "a@example.com",
    )  # fmt: skip
    assert groups_of(stack, "BedrockAPIKey-alice-cline") == ["data"]
    assert TeamItem.get("apikey:BedrockAPIKey-alice-cline").team == "data"
    # And user info rolls the key user up to alice, listing its key (not its secret)
    expect_keys(
        keys, "BedrockAPIKey-alice-cline", credential("BedrockAPIKey-alice-cline", "ACCAQAAAAAAAAAKEY0001")
    )
    info = json.loads(cli.ok("user", "info", "alice", "--format", "json"))
    assert info["scopes"] == ["user:alice", "apikey:BedrockAPIKey-alice-cline"]
    assert [(k["tool"], k["key_id"], k["status"]) for k in info["keys"]] == [
        ("cline", "ACCAQAAAAAAAAAKEY0001", "Active")
    ]
    assert "ABSK" not in json.dumps(info)


def test_team_add_and_remove_member_move_users_between_groups(cli: OperatorCli, stack) -> None:
    cli.ok("team", "create", "data")
    cli.ok("team", "create", "web")
    cli.ok("user", "create", "carol", "--person", "Carol", "--team", "data")
    assert (
        cli.ok("team", "add-member", "web", "user:carol")
        == "user:carol is in team web (moved from team data)\n"
    )
    assert groups_of(stack, "carol") == ["web"]
    shown = json.loads(cli.ok("team", "show", "web", "--format", "json"))
    assert (shown["members"], shown["group_users"]) == (["user:carol"], ["carol"])
    assert cli.ok("team", "remove-member", "web", "user:carol") == "user:carol left team web\n"
    assert groups_of(stack, "carol") == []
    listed = json.loads(cli.ok("team", "list", "--format", "json"))
    assert [(t["team"], t["members"]) for t in listed] == [("data", 0), ("web", 0)]
    assert "unknown team 'ops'" in cli.fails(1, "team", "add-member", "ops", "user:carol")
    assert "is in no team" in cli.fails(1, "team", "remove-member", "web", "user:carol")
    assert "cannot be a team member" in cli.fails(2, "team", "add-member", "web", "team:data")


def test_deleting_a_suspended_user_is_refused_unless_forced_which_restores_then_removes_everything(
    cli: OperatorCli, stack, keys: Stubber
) -> None:
    # Given dave with a cline key user, and an operator's suspension of dave with no end
    cli.ok("team", "create", "data")
    cli.ok("user", "create", "dave", "--person", "Dave", "--team", "data", "--budget", "5")
    keys.add_response(
        "create_service_specific_credential",
        {
            "ServiceSpecificCredential": credential(
                "BedrockAPIKey-dave-cline", "ACCAQAAAAAAAAAKEY0002", secret="s"
            )
        },
        {"UserName": "BedrockAPIKey-dave-cline", "ServiceName": "bedrock.amazonaws.com"},
    )
    cli.ok("user", "create-key", "dave", "--tool", "cline")
    deny = stack.physical_ids["BedrockDenyPolicy"]
    iam = stack.client("iam")
    with real_handlers(stack):
        cli.ok("suspend", "user:dave", "--reason", "incident")
        assert [
            p["PolicyArn"] for p in iam.list_attached_user_policies(UserName="dave")["AttachedPolicies"]
        ] == [deny]
        # When the user is deleted without --force: refused, nothing changed
        err = cli.fails(1, "user", "delete", "dave")
        assert "dave is being suspended or is suspended: user:dave manual (suspended)" in err
        assert iam.get_user(UserName="dave")
        # When it is forced: restored through the workflow, then everything of dave's removed
        expect_keys(keys, "dave")
        expect_keys(
            keys, "BedrockAPIKey-dave-cline", credential("BedrockAPIKey-dave-cline", "ACCAQAAAAAAAAAKEY0002")
        )
        keys.add_response(
            "delete_service_specific_credential",
            {},
            {"UserName": "BedrockAPIKey-dave-cline", "ServiceSpecificCredentialId": "ACCAQAAAAAAAAAKEY0002"},
        )
        out = cli.ok("user", "delete", "dave", "--force", "--reason", "left")
    assert "apikey:BedrockAPIKey-dave-cline: API key ACCAQAAAAAAAAAKEY0002 deleted" in out
    assert "user:dave: left group data" in out
    assert [u["UserName"] for u in iam.list_users()["Users"]] == []
    assert list(BudgetItem.query("user:dave")) == []
    assert [item.principal for item in TeamItem.scan()] == []


def test_user_info_and_delete_of_an_unknown_user_say_how_to_create_one(cli: OperatorCli) -> None:
    assert "no IAM user zed: budgetkeeper user create zed" in cli.fails(1, "user", "info", "zed")
    assert "no IAM user zed" in cli.fails(1, "user", "delete", "zed")
    assert "--window goes with --budget" in cli.fails(
        2, "user", "create", "zed", "--person", "Z", "--team", "data", "--window", "daily"
    )
