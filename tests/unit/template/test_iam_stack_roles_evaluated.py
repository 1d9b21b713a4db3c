"""What the stack's own roles and policies allow, as IAM evaluates them (tests/iam_eval.py).

Every policy document comes from the SAM-expanded template, resolved as CloudFormation would
(tests/deployed_template.py): the history reader's and the reconciler's Athena, Glue and S3 calls,
the DenyFunction's IAM writes, and who may start the enforcement workflow.
"""

from __future__ import annotations

import pytest

from budgetkeeper.enforcement.role_sessions import OPT_IN_TAG_KEY, OPT_IN_TAG_VALUE
from tests.deployed_template import (
    EVERYTHING_SET,
    KMS_KEY_ARN,
    concrete_template,
    managed_policy,
    may_start_execution,
    stack_role_request,
    stack_roles,
)
from tests.iam_eval import ACCOUNT, REGION, Request, role_session

STACK_ROLE_TAG = "aws:ResourceTag/budgetkeeper:stack-role"


def resolve(node: object, deployment: str = "everything-set") -> str:
    return concrete_template(deployment)["resolve"](node)


# --- budgetkeeper meter --engine athena: the HistoryReaderPolicy on an operator's role -------------

LOGS = f"arn:aws:s3:::{EVERYTHING_SET['InvocationLogBucketName']}"
LOGS_ROOT = f"{EVERYTHING_SET['InvocationLogPrefix']}AWSLogs/"
HOUR = f"{LOGS_ROOT}{ACCOUNT}/BedrockModelInvocationLogs/{REGION}/2026/06/10/10/"
GLUE = f"arn:aws:glue:{REGION}:{ACCOUNT}"


def archive(key: str = "") -> str:
    bucket = resolve({"Fn::GetAtt": ["ArchiveBucket", "Arn"]})
    return f"{bucket}/{key}" if key else bucket


# (action, resource, request keys): the CLI's own calls, then those Athena makes with the caller's
# credentials (reading the table and its objects, writing the results).
HISTORY_CALLS = [
    ("glue:GetDatabase", f"{GLUE}:database/budgetkeeper_history", {}),
    ("glue:CreateDatabase", f"{GLUE}:database/budgetkeeper_history", {}),
    ("glue:GetTable", f"{GLUE}:table/budgetkeeper_history/invocation_logs_0123456789ab", {}),
    ("glue:CreateTable", f"{GLUE}:table/budgetkeeper_history/invocation_logs_0123456789ab", {}),
    ("glue:UpdateTable", f"{GLUE}:table/budgetkeeper_history/invocation_logs_0123456789ab", {}),
    ("glue:GetPartitions", f"{GLUE}:table/budgetkeeper_history/invocation_logs_0123456789ab", {}),
    ("athena:StartQueryExecution", "WORKGROUP", {}),
    ("athena:GetQueryExecution", "WORKGROUP", {}),
    ("athena:GetQueryResults", "WORKGROUP", {}),
    ("athena:StopQueryExecution", "WORKGROUP", {}),
    ("s3:ListBucket", LOGS, {"s3:prefix": LOGS_ROOT}),  # the accounts under the root
    ("s3:ListBucket", LOGS, {"s3:prefix": f"{LOGS_ROOT}{ACCOUNT}/BedrockModelInvocationLogs/"}),
    ("s3:ListBucket", LOGS, {"s3:prefix": HOUR}),  # Athena, one partition
    ("s3:GetObject", f"{LOGS}/{HOUR}{ACCOUNT}_BedrockModelInvocationLogs_0001.json.gz", {}),
    ("s3:PutObject", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:GetObject", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:AbortMultipartUpload", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:ListMultipartUploadParts", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:ListBucket", "ARCHIVE", {"s3:prefix": "athena-results/"}),
    ("kms:GenerateDataKey", KMS_KEY_ARN, {}),  # the results, under the stack's key
    ("kms:Decrypt", KMS_KEY_ARN, {}),
    ("s3:GetBucketLocation", LOGS, {}),
    ("s3:GetBucketLocation", "ARCHIVE", {}),
]


def _placed(resource: str, workgroup: str, results: str) -> str:
    return (
        resource.replace("WORKGROUP", f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/{workgroup}")
        .replace("RESULTS/", archive(results))
        .replace("ARCHIVE", archive())
    )


@pytest.mark.parametrize(("action", "resource", "keys"), HISTORY_CALLS)
def test_the_history_reader_may_make_every_call_of_meter_engine_athena(iam_evaluator, action, resource, keys):
    policy = managed_policy(concrete_template("everything-set"), "HistoryReaderPolicy")
    operator = role_session("OperatorRole", "ops@example.com", role_id="AROAOPERATOROPERATOR1")
    workgroup = resolve({"Ref": "HistoryWorkGroup"})
    resource = _placed(resource, workgroup, "athena-results/")
    request = Request(operator, action, resource, {"HistoryReaderPolicy": policy}, keys)
    assert iam_evaluator.decide(request).allowed, iam_evaluator.decide(request)


def test_the_history_reader_reads_no_other_logs_and_writes_nowhere_else(iam_evaluator):
    policy = managed_policy(concrete_template("everything-set"), "HistoryReaderPolicy")
    operator = role_session("OperatorRole", "ops@example.com", role_id="AROAOPERATOROPERATOR1")
    refused = [
        ("s3:ListBucket", LOGS, {"s3:prefix": "other/"}),
        ("s3:GetObject", f"{LOGS}/other/secret.json", {}),
        ("s3:PutObject", f"{LOGS}/{HOUR}x.json.gz", {}),
        ("s3:PutObject", archive("invocations/2026/06/10/x.json.gz"), {}),
        ("glue:CreateTable", f"{GLUE}:table/other_database/t", {}),
        ("athena:StartQueryExecution", f"arn:aws:athena:{REGION}:{ACCOUNT}:workgroup/primary", {}),
    ]
    decisions = iam_evaluator.evaluate(
        Request(operator, action, resource, {"HistoryReaderPolicy": policy}, keys)
        for action, resource, keys in refused
    )
    assert [d.allowed for d in decisions] == [False] * len(refused), decisions


# --- the reconciler: Cost Explorer and the CUR 2.0 export on Athena --------------------------------

CUR = f"arn:aws:s3:::{EVERYTHING_SET['CurBucket']}"
CUR_TABLE = f"{GLUE}:table/{EVERYTHING_SET['CurDatabase']}/{EVERYTHING_SET['CurTable']}"
RECONCILER_CALLS = [
    ("ce:GetCostAndUsage", "*", {}),
    ("athena:StartQueryExecution", "WORKGROUP", {}),
    ("athena:GetQueryExecution", "WORKGROUP", {}),
    ("athena:GetQueryResults", "WORKGROUP", {}),
    ("athena:StopQueryExecution", "WORKGROUP", {}),
    ("glue:GetDatabase", f"{GLUE}:database/{EVERYTHING_SET['CurDatabase']}", {}),
    ("glue:GetTable", CUR_TABLE, {}),
    ("glue:GetPartition", CUR_TABLE, {}),
    ("glue:GetPartitions", CUR_TABLE, {}),
    ("s3:GetBucketLocation", CUR, {}),
    ("s3:ListBucket", CUR, {"s3:prefix": "cur2/data/BILLING_PERIOD=2026-06/"}),
    ("s3:GetObject", f"{CUR}/cur2/data/BILLING_PERIOD=2026-06/cur2-00001.snappy.parquet", {}),
    ("s3:PutObject", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:GetObject", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:AbortMultipartUpload", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:ListMultipartUploadParts", "RESULTS/0f3c8a4e.csv", {}),
    ("s3:ListBucket", "ARCHIVE", {"s3:prefix": "athena-results/reconcile/"}),
    ("kms:GenerateDataKey", KMS_KEY_ARN, {}),
    ("kms:Decrypt", KMS_KEY_ARN, {}),
    ("s3:GetBucketLocation", "ARCHIVE", {}),
]


@pytest.mark.parametrize(("action", "resource", "keys"), RECONCILER_CALLS)
def test_the_reconciler_may_make_every_call_of_its_cur_query(iam_evaluator, action, resource, keys):
    resource = _placed(resource, EVERYTHING_SET["CurWorkGroup"], "athena-results/reconcile/")
    request = stack_role_request("everything-set", "ReconcilerFunctionRole", action, resource, keys)
    assert iam_evaluator.decide(request).allowed, iam_evaluator.decide(request)


# --- the DenyFunction's role: what it may attach, and to whom ---------------------------------------


def deny_function_may(iam_evaluator, action: str, target: str, policy_arn: str, tags: dict[str, str]) -> str:
    keys = {"iam:PolicyARN": policy_arn, **{f"aws:ResourceTag/{k}": v for k, v in tags.items()}}
    return iam_evaluator.decide(
        stack_role_request("defaults", "DenyFunctionRole", action, target, keys)
    ).result


SESSION_POLICY = f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/budgetkeeper-sessions-ChatbotApp-BedrockRole"
OPTED_IN = {OPT_IN_TAG_KEY: OPT_IN_TAG_VALUE}
CUSTOMER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ChatbotApp-BedrockRole"


def test_the_deny_function_attaches_the_deny_policy_to_users_roles_and_groups(iam_evaluator):
    deny = resolve({"Ref": "BedrockDenyPolicy"}, "defaults")
    for action, target in [
        ("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice"),
        ("iam:DetachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice"),
        ("iam:AttachRolePolicy", CUSTOMER_ROLE),
        ("iam:AttachGroupPolicy", f"arn:aws:iam::{ACCOUNT}:group/budgetkeeper/teams/data"),
    ]:
        assert deny_function_may(iam_evaluator, action, target, deny, {}) == "Allowed", (action, target)


def test_the_deny_function_cannot_attach_to_a_stack_role(iam_evaluator):
    deny = resolve({"Ref": "BedrockDenyPolicy"}, "defaults")
    tagged = {"budgetkeeper:stack-role": "budgetkeeper", **OPTED_IN}
    own_role = resolve({"Ref": "DenyFunctionRole"}, "defaults")
    for policy in (deny, SESSION_POLICY):
        for action in ("iam:AttachRolePolicy", "iam:DetachRolePolicy"):
            # By the tag, whatever the role's name, and by the name for a role created before the tag
            renamed = f"arn:aws:iam::{ACCOUNT}:role/SomethingElse"
            assert deny_function_may(iam_evaluator, action, renamed, policy, tagged) == "ExplicitlyDenied"
            own = f"arn:aws:iam::{ACCOUNT}:role/{own_role}"
            assert deny_function_may(iam_evaluator, action, own, policy, OPTED_IN) == "ExplicitlyDenied"


def test_the_deny_function_cannot_attach_any_other_policy(iam_evaluator):
    others = [
        "arn:aws:iam::aws:policy/AdministratorAccess",
        f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/budgetkeeper-SelfServiceReadPolicy-1A2B3C4D5E6F",
        f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/other-policy",
        f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper-sessions-outside-the-path",
    ]
    targets = [
        ("iam:AttachUserPolicy", f"arn:aws:iam::{ACCOUNT}:user/alice"),
        ("iam:AttachRolePolicy", CUSTOMER_ROLE),
        ("iam:AttachGroupPolicy", f"arn:aws:iam::{ACCOUNT}:group/data"),
    ]
    for policy in others:
        for action, target in targets:
            assert deny_function_may(iam_evaluator, action, target, policy, OPTED_IN) != "Allowed", (
                policy,
                action,
            )
    # ... nor a session policy to a user or a group: those go to roles only
    for action, target in targets[::2]:
        assert deny_function_may(iam_evaluator, action, target, SESSION_POLICY, {}) != "Allowed", action


def test_the_deny_function_attaches_a_session_policy_only_to_a_role_that_opted_in(iam_evaluator):
    attach = "iam:AttachRolePolicy"
    assert deny_function_may(iam_evaluator, attach, CUSTOMER_ROLE, SESSION_POLICY, OPTED_IN) == "Allowed"
    not_opted_in = [{}, {OPT_IN_TAG_KEY: "disabled"}, {OPT_IN_TAG_KEY: "Enabled"}]
    for tags in not_opted_in:
        result = deny_function_may(iam_evaluator, attach, CUSTOMER_ROLE, SESSION_POLICY, tags)
        assert result == "ImplicitlyDenied", tags
    # Detaching one only takes a deny away: from any customer role, so a role that left can be restored
    assert (
        deny_function_may(iam_evaluator, "iam:DetachRolePolicy", CUSTOMER_ROLE, SESSION_POLICY, {})
        == "Allowed"
    )


def test_the_deny_function_writes_policies_only_under_its_own_prefix(iam_evaluator):
    def write(action: str, policy_arn: str) -> bool:
        return iam_evaluator.decide(
            stack_role_request("defaults", "DenyFunctionRole", action, policy_arn)
        ).allowed

    assert write("iam:CreatePolicy", SESSION_POLICY)
    assert write("iam:CreatePolicyVersion", SESSION_POLICY)
    for elsewhere in (
        f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/budgetkeeper-BedrockDenyPolicy-1A2B3C4D5E6F",
        f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper/admin",
        f"arn:aws:iam::{ACCOUNT}:policy/budgetkeeper-sessions-x",
    ):
        assert not write("iam:CreatePolicyVersion", elsewhere), elsewhere
        assert not write("iam:CreatePolicy", elsewhere), elsewhere
    for action in ("iam:TagRole", "iam:UntagRole", "iam:PutRolePolicy", "iam:UpdateAssumeRolePolicy"):
        assert not iam_evaluator.decide(
            stack_role_request("defaults", "DenyFunctionRole", action, CUSTOMER_ROLE)
        ).allowed


# --- who may start the enforcement workflow ---------------------------------------------------------


def test_machine_roles_start_evaluations_only_and_operators_start_actions(iam_evaluator):
    # Two machines from one definition: evaluations, which the meter and the sweep start, and
    # operator actions (suspend, restore, protect, unprotect), which only OperatorActionsPolicy allows.
    evaluations = resolve({"Ref": "BudgetEvaluationStateMachine"}, "defaults")
    operator_actions = resolve({"Ref": "BudgetEnforcementStateMachine"}, "defaults")
    starters = {role for role in stack_roles() if may_start_execution(iam_evaluator, role, evaluations)}
    assert starters == {
        "UsageCalculatorFunctionRole",
        "UnloggedSpendFunctionRole",
        "BudgetMonitorFunctionRole",
    }
    assert not [role for role in stack_roles() if may_start_execution(iam_evaluator, role, operator_actions)]
    other_machine = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:budgetkeeper-another"
    assert not any(may_start_execution(iam_evaluator, role, other_machine) for role in stack_roles())

    policy = managed_policy(concrete_template("defaults"), "OperatorActionsPolicy")
    operator = role_session("OperatorRole", "ops@example.com", role_id="AROAOPERATOROPERATOR1")

    def operator_may_start(machine: str) -> bool:
        request = Request(operator, "states:StartExecution", machine, {"OperatorActionsPolicy": policy})
        return iam_evaluator.decide(request).allowed

    assert operator_may_start(operator_actions)
    assert not operator_may_start(other_machine)


def test_the_monitor_adds_audit_lines_and_removes_none(iam_evaluator):
    # recover_from_grace and the other moves of the sweep write an audit line (audit_rows.write_audit)
    audit = resolve({"Fn::GetAtt": ["AuditTable", "Arn"]}, "defaults")

    def may(action: str) -> bool:
        return iam_evaluator.decide(
            stack_role_request("defaults", "BudgetMonitorFunctionRole", action, audit)
        ).allowed

    assert may("dynamodb:PutItem")
    assert not may("dynamodb:DeleteItem") and not may("dynamodb:UpdateItem")
