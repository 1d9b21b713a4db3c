"""`budgetkeeper me`: a caller's own budgets, and the stack's SelfServiceReadPolicy that lets it
read them and nothing else (moto stores policies without evaluating them: the policy is evaluated
by the IAM evaluator of tests/iam_eval.py, as the SAM-expanded template deploys it)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
from pynamodb.connection.base import Connection

from devkit.harness.lambdas import invoke
from devkit.harness.logs import cloudwatch_payload, firehose_event, log_message
from devkit.harness.template import load_template
from tests.deployed_template import KMS_KEY_ARN, concrete_template, managed_policy
from tests.iam_eval import Principal, Request, iam_user, role_session, sso_session
from tests.integration.cli_runner import OperatorCli
from tests.timeline import now_iso

ACCOUNT = "123456789012"
NOVA_PRO_INPUT_USD = Decimal("0.0000008")  # amazon.nova-pro-v1:0, per input token


@pytest.fixture
def cli(stack, settings, capsys) -> OperatorCli:
    return OperatorCli(stack, capsys)


def spend(arn: str, usd: str) -> None:
    """Calls of `arn`, now, worth exactly `usd`, metered by the usage calculator."""
    record = {
        "schemaType": "ModelInvocationLog",
        "schemaVersion": "1.0",
        "timestamp": now_iso(),
        "accountId": ACCOUNT,
        "identity": {"arn": arn},
        "region": "us-east-1",
        "requestId": str(uuid.uuid4()),
        "operation": "Converse",
        "modelId": "amazon.nova-pro-v1:0",
        "input": {
            "inputContentType": "application/json",
            "inputTokenCount": int(Decimal(usd) / NOVA_PRO_INPUT_USD),
        },
        "output": {"outputContentType": "application/json", "outputTokenCount": 0},
    }
    invoke("UsageCalculatorFunction", firehose_event([cloudwatch_payload([log_message(record)])]))


def act_as(stack, monkeypatch: pytest.MonkeyPatch, user: str) -> None:
    """Run the next commands with `user`'s own access key (moto's STS answers with its ARN)."""
    key = stack.client("iam").create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def test_me_shows_the_callers_own_budgets_with_spend_limit_status_and_refresh(
    cli: OperatorCli, stack, settings, monkeypatch, iam_evaluator
) -> None:
    # Given alice (team data, a daily budget of 5) and bob (team data), a team budget, and spend
    cli.ok("team", "create", "data")
    cli.ok(
        "user", "create", "alice", "--person", "Alice", "--team", "data", "--budget", "5", "--window", "daily"
    )
    cli.ok("user", "create", "bob", "--person", "Bob", "--team", "data", "--budget", "7", "--window", "daily")
    cli.ok("budget", "set", "team:data", "--window", "monthly", "--limit", "100")
    alice = f"arn:aws:iam::{ACCOUNT}:user/budgetkeeper/users/alice"
    spend(alice, "1.25")
    spend(f"arn:aws:iam::{ACCOUNT}:user/budgetkeeper/users/bob", "2")
    # When alice runs `me` with her own credentials
    act_as(stack, monkeypatch, "alice")
    batches = batch_reads(monkeypatch, settings)
    document = json.loads(cli.ok("me", "--format", "json"))
    # Then she sees her scopes and budgets, and none of bob's
    assert document["caller"] == alice
    assert document["scopes"] == {"principal": "user:alice", "role": None, "app": None, "team": "team:data"}
    budgets = {(row["scope"], row["window"]): row for row in document["budgets"]}
    assert set(budgets) == {("user:alice", "daily"), ("team:data", "monthly")}
    mine = budgets[("user:alice", "daily")]
    assert (mine["spent_usd"], mine["limit_usd"], mine["status"]) == ("1.25", "5", "ok")
    assert mine["next_refresh"].endswith("T00:00:00Z")
    assert budgets[("team:data", "monthly")]["spent_usd"] == "3.25"  # alice's and bob's calls
    assert "user:bob" not in json.dumps(document)
    assert cli.ok("me").startswith(f"you are {alice}\n  principal user:alice\n  team      team:data\n")
    # And IAM allows every batch read it made under the self-service policy alone (one statement
    # per scope kind: a batch that mixed alice's and her team's keys would be denied)
    assert batches, "me read no totals in a batch"
    for table, keys in batches:
        assert iam_evaluator.decide(reads(ALICE, keys, "dynamodb:BatchGetItem", table)).allowed, keys


def batch_reads(monkeypatch: pytest.MonkeyPatch, settings) -> list[tuple[str, list[str]]]:
    """Every BatchGetItem sent from now on: (the table's logical id, the partition keys it reads)."""
    sent: list[tuple[str, list[str]]] = []
    dispatch = Connection.dispatch
    logical_ids = {
        settings.budgets_table: "BudgetsTable",
        settings.totals_table: "TotalsTable",
        settings.teams_table: "TeamsTable",
    }

    def recording(self: Connection, operation_name: str, operation_kwargs: dict) -> dict:
        if operation_name == "BatchGetItem":
            for table, request in operation_kwargs["RequestItems"].items():
                logical = logical_ids[table]
                keys = sorted({next(iter(key.values()))["S"] for key in request["Keys"]})
                sent.append((logical, keys))
        return dispatch(self, operation_name, operation_kwargs)

    monkeypatch.setattr(Connection, "dispatch", recording)
    return sent


# ----------------------------------------------------------------------------- the policy


def reads(principal: Principal, key: str, action: str = "dynamodb:GetItem", table: str = "BudgetsTable"):
    """A read of the item(s) with partition key(s) `key` by `principal`, holding only the policy."""
    template = concrete_template("everything-set")
    policies = {"SelfServiceReadPolicy": managed_policy(template, "SelfServiceReadPolicy")}
    keys = {"dynamodb:LeadingKeys": [key] if isinstance(key, str) else key}
    return Request(principal, action, template["resolve"]({"Fn::GetAtt": [table, "Arn"]}), policies, keys)


ALICE = iam_user("alice", tags={"team": "data"})
SSO_BOB = sso_session(
    "AWSReservedSSO_Dev_1a2b", "bob@example.com", role_id="AROABOBBOBBOBBOBBOBBO",
    tags={"budgetkeeper-user": "bob@example.com"},
)  # fmt: skip
CHATBOT_ROLE = role_session(
    "ChatbotApp-BedrockRole", "i-0abc", role_id="AROACHATCHATCHATCHATC",
    tags={"budgetkeeper-role": "ChatbotApp-BedrockRole"},
)  # fmt: skip
UNTAGGED_ROLE = role_session("Etl-BedrockRole", "run-1", role_id="AROAETLETLETLETLETLET")


@pytest.mark.parametrize(
    ("who", "principal", "key", "allowed"),
    [
        ("alice", ALICE, "user:alice", True),
        ("alice", ALICE, "user:alice|daily", True),
        ("alice", ALICE, "team:data|monthly", True),
        ("alice reading bob's budget", ALICE, "user:bob", False),
        ("alice reading bob's spend", ALICE, "user:bob|daily", False),
        ("alice reading another team", ALICE, "team:web", False),
        ("alice reading a look-alike", ALICE, "user:alicex", False),
        ("alice reading a session", ALICE, "session:AWSReservedSSO_Dev_1a2b/alice", False),
        ("SSO bob", SSO_BOB, "session:AWSReservedSSO_Dev_1a2b/bob@example.com", True),
        ("SSO bob, spend", SSO_BOB, "session:AWSReservedSSO_Dev_1a2b/bob@example.com|daily", True),
        ("SSO bob reading carol", SSO_BOB, "session:AWSReservedSSO_Dev_1a2b/carol@example.com", False),
        ("SSO bob reading a plain role's session", SSO_BOB, "session:Etl/bob@example.com", False),
        ("a role session", CHATBOT_ROLE, "role:ChatbotApp-BedrockRole|monthly", True),
        ("a role session reading another role", CHATBOT_ROLE, "role:Etl-BedrockRole", False),
        ("no tags at all", UNTAGGED_ROLE, "team:", False),
        ("no tags at all, its own role", UNTAGGED_ROLE, "role:Etl-BedrockRole", False),
    ],
    ids=lambda value: value if isinstance(value, str) and " " in value else None,
)
def test_the_self_service_policy_lets_a_caller_read_only_its_own_keys(
    iam_evaluator, who, principal, key, allowed
) -> None:
    decision = iam_evaluator.decide(reads(principal, key))
    assert decision.allowed is allowed, f"{who}: {decision}"


def test_alice_reads_her_rows_in_every_table_and_no_batch_that_holds_anyone_elses(iam_evaluator) -> None:
    actions = ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem")
    tables = ("BudgetsTable", "TotalsTable", "TeamsTable")
    own = [reads(ALICE, "user:alice|daily", action, table) for action in actions for table in tables]
    assert all(decision.allowed for decision in iam_evaluator.evaluate(own))
    with_bobs = reads(ALICE, ["user:alice|daily", "user:bob|daily"], "dynamodb:BatchGetItem")
    assert not iam_evaluator.decide(with_bobs).allowed


def test_with_a_customer_key_alice_decrypts_through_dynamodb(iam_evaluator) -> None:
    policy = managed_policy(concrete_template("everything-set"), "SelfServiceReadPolicy")
    through_dynamodb = {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}
    request = Request(ALICE, "kms:Decrypt", KMS_KEY_ARN, {"SelfServiceReadPolicy": policy}, through_dynamodb)
    assert iam_evaluator.decide(request).allowed


def test_the_self_service_policy_grants_reads_only_and_is_an_output(stack) -> None:
    document = load_template()["Resources"]["SelfServiceReadPolicy"]["Properties"]["PolicyDocument"]
    # A statement present with KmsKeyArn only (Fn::If) is taken in both cases.
    statements = [
        branch
        for s in document["Statement"]
        for branch in (s["Fn::If"][1:] if "Fn::If" in s else [s])
        if branch != {"Ref": "AWS::NoValue"}
    ]
    actions = {
        action
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    }
    assert actions == {
        "cloudformation:DescribeStacks",
        "ssm:GetParametersByPath",
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "kms:Decrypt",  # the tables' key, through DynamoDB only
    }
    assert "SelfServiceReadPolicyArn" in load_template()["Outputs"]
