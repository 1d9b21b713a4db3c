"""The template as CloudFormation receives it (SAM-expanded): least privilege and encryption at rest.

The SAM translator expands policy templates (`DynamoDBCrudPolicy`, ...) and the roles SAM makes for
functions and the state machine, so the checks see every statement that gets deployed. Conditions
are evaluated for two deployments: the defaults, and one with every optional parameter set.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from budgetkeeper.enforcement.role_sessions import OPT_IN_TAG_KEY, OPT_IN_TAG_VALUE
from devkit.harness.template import TEMPLATE_PATH
from tests.deployed_template import DEPLOYMENTS, KMS_KEY_ARN, MANAGED_POLICIES
from tests.deployed_template import as_list as _as_list
from tests.deployed_template import deployed_template as _deployed
from tests.deployed_template import of_type as _of_type

# Actions an Allow statement may grant on Resource "*", each with the reason.
WILDCARD_RESOURCE_ALLOWED = {
    # AWSLambdaBasicExecutionRole, which SAM attaches to every function role.
    "logs:CreateLogGroup": "AWSLambdaBasicExecutionRole (SAM, every function): AWS's document says *",
    "logs:CreateLogStream": "AWSLambdaBasicExecutionRole (SAM, every function): AWS's document says *",
    "logs:PutLogEvents": "AWSLambdaBasicExecutionRole (SAM, every function): AWS's document says *",
    # AWSXrayWriteOnlyAccess, which SAM attaches for `Tracing: Active` / `Tracing: Enabled`.
    "xray:PutTraceSegments": "X-Ray supports no resource-level permissions",
    "xray:PutTelemetryRecords": "X-Ray supports no resource-level permissions",
    "xray:GetSamplingRules": "X-Ray supports no resource-level permissions",
    "xray:GetSamplingTargets": "X-Ray supports no resource-level permissions",
    "xray:GetSamplingStatisticSummaries": "X-Ray supports no resource-level permissions",
    # SSMParameterReadPolicy (SAM policy template).
    "ssm:DescribeParameters": "SSMParameterReadPolicy; DescribeParameters supports no resource ARN",
    # UnloggedSpendFunction: bedrock-mantle's token metrics (CloudWatch supports no resource for them).
    "cloudwatch:GetMetricData": "CloudWatch supports no resource-level permissions for GetMetricData",
    "cloudwatch:ListMetrics": "CloudWatch supports no resource-level permissions for ListMetrics",
    # DenyFunction: finds an orphaned session policy by path.
    "iam:ListPolicies": "IAM supports no resource for ListPolicies",
    # The state machine's execution logs (Step Functions vended log delivery): AWS documents "*".
    "logs:CreateLogDelivery": "Step Functions log delivery: CloudWatch Logs supports no resource for it",
    "logs:GetLogDelivery": "Step Functions log delivery: CloudWatch Logs supports no resource for it",
    "logs:UpdateLogDelivery": "Step Functions log delivery: CloudWatch Logs supports no resource for it",
    "logs:DeleteLogDelivery": "Step Functions log delivery: CloudWatch Logs supports no resource for it",
    "logs:ListLogDeliveries": "Step Functions log delivery: CloudWatch Logs supports no resource for it",
    "logs:PutResourcePolicy": "Step Functions log delivery: account-level log resource policy",
    "logs:DescribeResourcePolicies": "Step Functions log delivery: account-level log resource policy",
    "logs:DescribeLogGroups": "Step Functions log delivery: DescribeLogGroups lists the account's groups",
    # OperatorActionsPolicy: the Step Functions console lists the machines to open the operators' one.
    "states:ListStateMachines": "Step Functions supports no resource for ListStateMachines",
    # UsageCalculatorFunction, organization mode: the OUs above an account (metering.org_units). Its
    # account and OU ARNs name the management account, which the stack does not know.
    "organizations:ListParents": "Organizations ARNs name the management account the stack does not know",
    # PriceRefreshFunction reads Bedrock's prices from the Price List API.
    "pricing:GetProducts": "the Price List API supports no resource-level permissions",
    "pricing:DescribeServices": "the Price List API supports no resource-level permissions",
    # ReconcilerFunction compares metered spend with Cost Explorer's.
    "ce:GetCostAndUsage": "Cost Explorer supports no resource-level permissions for GetCostAndUsage",
}

# Operator data, and the tables a rebuild would take hours to refill (see template.yaml).
PITR_TABLES = {"BudgetsTable", "AuditTable", "TeamsTable", "DeniesTable", "TotalsTable", "RollupsTable"}
KMS_ACTIONS = {"kms:Decrypt", "kms:GenerateDataKey"}
KMS_READ = {"kms:Decrypt"}
# The operators' policy reads the budgets table (the CLI's checks before a run): decrypt only.
ROLES_READING_WITH_THE_KEY = {"OperatorActionsPolicy"}
# Roles that read or write a KMS-encrypted resource (tables, bucket, topic), and the operators'
# HistoryReaderPolicy (Athena's query results in the archive bucket).
ROLES_USING_THE_KEY = {
    "HistoryReaderPolicy",
    "SelfServiceReadPolicy",  # `budgetkeeper me` reads the tables: kms:Decrypt only
    "UsageCalculatorFunctionRole",
    "UsageCompactorFunctionRole",
    "UnloggedSpendFunctionRole",
    "EnforcementFunctionRole",
    "BudgetMonitorFunctionRole",
    "DenyFunctionRole",
    "NotifierFunctionRole",
    "PriceRefreshFunctionRole",
    "ReconcilerFunctionRole",
    "FirehoseRole",
}


def _allow_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Allow statement an identity policy of the stack grants, with where it comes from."""
    for role_name, role in _of_type(template, "AWS::IAM::Role").items():
        for policy in role.get("Policies", []):
            for statement in _as_list(policy["PolicyDocument"]["Statement"]):
                yield f"{role_name}/{policy['PolicyName']}", statement
        for arn in role.get("ManagedPolicyArns", []):
            assert arn in MANAGED_POLICIES, f"{role_name} gets {arn}: add its document to MANAGED_POLICIES"
            for statement in MANAGED_POLICIES[arn]:
                yield f"{role_name}/{arn.rsplit('/', 1)[-1]}", statement
    for kind in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
        for name, policy in _of_type(template, kind).items():
            for statement in _as_list(policy["PolicyDocument"]["Statement"]):
                yield name, statement


def _role_actions(template: dict[str, Any], role_name: str) -> list[tuple[str, Any]]:
    return [
        (action, statement["Resource"])
        for where, statement in _allow_statements(template)
        if where.startswith(f"{role_name}/")
        for action in _as_list(statement["Action"])
    ]


@pytest.fixture(params=sorted(DEPLOYMENTS))
def deployed(request: pytest.FixtureRequest) -> dict[str, Any]:
    return _deployed(request.param)


def test_no_allow_grants_every_action_or_every_resource_without_a_reason(deployed):
    found = []
    for where, statement in _allow_statements(deployed):
        if statement["Effect"] != "Allow":
            continue
        if {"NotAction", "NotResource"} & set(statement):
            found.append(f"{where}: Allow with NotAction/NotResource")
            continue
        actions = _as_list(statement["Action"])
        for action in actions:
            if action == "*" or action.endswith(":*"):
                found.append(f"{where}: action {action}")
        if "*" in _as_list(statement["Resource"]):
            found += [
                f"{where}: {action} on Resource *"
                for action in actions
                if action not in WILDCARD_RESOURCE_ALLOWED
            ]
    assert found == []


def test_the_allow_list_holds_only_what_is_granted():
    granted = {
        action
        for deployment in DEPLOYMENTS
        for _, statement in _allow_statements(_deployed(deployment))
        if statement["Effect"] == "Allow" and "*" in _as_list(statement["Resource"])
        for action in _as_list(statement["Action"])
    }
    assert set(WILDCARD_RESOURCE_ALLOWED) - granted == set()


def test_the_usage_calculator_only_adds_objects_under_its_own_prefixes(deployed):
    s3 = [
        (action, resource)
        for action, resource in _role_actions(deployed, "UsageCalculatorFunctionRole")
        if action.startswith("s3:")
    ]
    assert s3 == [
        (
            "s3:PutObject",
            [
                {"Fn::Sub": "${ArchiveBucket.Arn}/quarantine/*"},
                {"Fn::Sub": "${ArchiveBucket.Arn}/overflow/*"},
            ],
        )
    ]


def test_only_firehose_writes_the_archive_prefixes_and_nobody_changes_the_bucket(deployed):
    bucket_changes = {
        "s3:PutLifecycleConfiguration",
        "s3:PutBucketPolicy",
        "s3:PutBucketVersioning",
        "s3:PutEncryptionConfiguration",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:PutObjectAcl",
    }
    for where, statement in _allow_statements(deployed):
        assert not bucket_changes & set(_as_list(statement["Action"])), where


def test_every_table_is_encrypted_and_operator_data_has_point_in_time_recovery(deployed):
    tables = _of_type(deployed, "AWS::DynamoDB::Table")
    assert set(tables) >= PITR_TABLES
    for name, table in tables.items():
        assert table["SSESpecification"]["SSEEnabled"] is True, name
        if name in PITR_TABLES:
            pitr = table.get("PointInTimeRecoverySpecification")
            assert pitr == {"PointInTimeRecoveryEnabled": True}, name


def test_the_archive_bucket_is_versioned_encrypted_and_prunes_old_versions(deployed):
    bucket = _of_type(deployed, "AWS::S3::Bucket")["ArchiveBucket"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in {"AES256", "aws:kms"}
    rules = bucket["LifecycleConfiguration"]["Rules"]
    assert any("NoncurrentVersionExpiration" in r and r["Status"] == "Enabled" for r in rules)
    assert any(r.get("ExpiredObjectDeleteMarker") is True for r in rules)


def test_the_topic_and_the_delivery_stream_are_encrypted(deployed):
    # CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key: without KmsKeyArn,
    # the alarms' topic has no KMS key (SNS still encrypts its storage at rest).
    for name, topic in _of_type(deployed, "AWS::SNS::Topic").items():
        assert topic.get("KmsMasterKeyId") or name == "OperatorAlarmsTopic", name
    for queue in _of_type(deployed, "AWS::SQS::Queue").values():
        assert queue.get("SqsManagedSseEnabled") or queue.get("KmsMasterKeyId")
    (stream,) = _of_type(deployed, "AWS::KinesisFirehose::DeliveryStream").values()
    assert stream["DeliveryStreamEncryptionConfigurationInput"]["KeyType"] in {
        "AWS_OWNED_CMK",
        "CUSTOMER_MANAGED_CMK",
    }


def test_without_a_key_aws_keys_are_used_and_no_role_gets_kms():
    template = _deployed("defaults")
    for name, table in _of_type(template, "AWS::DynamoDB::Table").items():
        assert table["SSESpecification"] == {"SSEEnabled": True}, name
    bucket = _of_type(template, "AWS::S3::Bucket")["ArchiveBucket"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule == {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    topics = _of_type(template, "AWS::SNS::Topic")
    assert "KmsMasterKeyId" not in topics.pop("OperatorAlarmsTopic")
    for topic in topics.values():
        assert topic["KmsMasterKeyId"] == "alias/aws/sns"
    for queue in _of_type(template, "AWS::SQS::Queue").values():
        assert queue == {**queue, "SqsManagedSseEnabled": True} and "KmsMasterKeyId" not in queue
    (stream,) = _of_type(template, "AWS::KinesisFirehose::DeliveryStream").values()
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {"KeyType": "AWS_OWNED_CMK"}
    assert "EncryptionConfiguration" not in stream["ExtendedS3DestinationConfiguration"]
    granted = {action for _, s in _allow_statements(template) for action in _as_list(s["Action"])}
    assert not {action for action in granted if action.startswith("kms:")}


def test_with_a_key_everything_uses_it_and_the_roles_that_need_it_get_it_on_that_key_only():
    template = _deployed("everything-set")
    for name, table in _of_type(template, "AWS::DynamoDB::Table").items():
        assert table["SSESpecification"] == {
            "SSEEnabled": True,
            "SSEType": "KMS",
            "KMSMasterKeyId": KMS_KEY_ARN,
        }, name
    bucket = _of_type(template, "AWS::S3::Bucket")["ArchiveBucket"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": KMS_KEY_ARN}
    for topic in _of_type(template, "AWS::SNS::Topic").values():
        assert topic["KmsMasterKeyId"] == KMS_KEY_ARN
    for queue in _of_type(template, "AWS::SQS::Queue").values():
        assert queue["KmsMasterKeyId"] == KMS_KEY_ARN
    (stream,) = _of_type(template, "AWS::KinesisFirehose::DeliveryStream").values()
    assert stream["DeliveryStreamEncryptionConfigurationInput"] == {
        "KeyType": "CUSTOMER_MANAGED_CMK",
        "KeyARN": KMS_KEY_ARN,
    }
    destination = stream["ExtendedS3DestinationConfiguration"]
    for config in (destination, destination["S3BackupConfiguration"]):
        assert config["EncryptionConfiguration"] == {"KMSEncryptionConfig": {"AWSKMSKeyARN": KMS_KEY_ARN}}

    with_kms = set()
    for where, statement in _allow_statements(template):
        actions = set(_as_list(statement["Action"]))
        if any(action.startswith("kms:") for action in actions):
            assert actions <= KMS_ACTIONS and "kms:Decrypt" in actions, where
            if where in ROLES_READING_WITH_THE_KEY:
                assert actions == KMS_READ, where
            assert statement["Resource"] == KMS_KEY_ARN, where
            with_kms.add(where.split("/", 1)[0])
    assert with_kms == ROLES_USING_THE_KEY | ROLES_READING_WITH_THE_KEY


# --- what the DenyFunction may do to roles ------------------------------------------------------

STACK_ROLE_TAG_KEY = "budgetkeeper:stack-role"  # template.yaml: Globals Tags and each role's Tags
SESSION_POLICIES = "arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/budgetkeeper/budgetkeeper-sessions-*"
# Ways a role could give itself or another role more power than the template grants.
POWER_ACTIONS = (
    "iam:TagRole",
    "iam:UntagRole",
    "iam:TagUser",
    "iam:UntagUser",
    "iam:TagPolicy",
    "iam:UntagPolicy",
    "iam:PutRolePolicy",
    "iam:PutUserPolicy",
    "iam:PutGroupPolicy",
    "iam:SetDefaultPolicyVersion",
    "iam:UpdateAssumeRolePolicy",
    "iam:DeleteRolePermissionsBoundary",
    "iam:PutRolePermissionsBoundary",
    "iam:CreateRole",
    "iam:PassRole",
)


def _grants(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def _statements_of(template: dict[str, Any], role_name: str) -> list[dict[str, Any]]:
    return [
        statement for where, statement in _allow_statements(template) if where.startswith(f"{role_name}/")
    ]


def test_session_policies_are_attached_only_to_roles_that_opted_in(deployed):
    attaching = [
        statement
        for _, statement in _allow_statements(deployed)
        if statement["Effect"] == "Allow"
        and any(_grants(pattern, "iam:AttachRolePolicy") for pattern in _as_list(statement["Action"]))
    ]
    assert attaching, "nothing attaches a role policy: this test checks nothing"
    for statement in attaching:
        condition = statement.get("Condition", {})
        policy_arn = {**condition.get("ArnEquals", {}), **condition.get("ArnLike", {})}.get("iam:PolicyARN")
        if policy_arn == {"Ref": "BedrockDenyPolicy"}:
            continue  # the stack's own fixed Deny policy, to any principal
        assert policy_arn == {"Fn::Sub": SESSION_POLICIES}, statement
        assert condition["StringEquals"] == {f"aws:ResourceTag/{OPT_IN_TAG_KEY}": OPT_IN_TAG_VALUE}, statement


def test_every_role_of_the_stack_is_tagged_and_the_deny_function_may_not_change_them(deployed):
    roles = _of_type(deployed, "AWS::IAM::Role")
    assert {"DenyFunctionRole", "FirehoseRole", "BudgetEnforcementStateMachineRole"} <= set(roles)
    for name, role in roles.items():
        tags = {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}
        assert tags.get(STACK_ROLE_TAG_KEY) == {"Ref": "AWS::StackName"}, name
    denied = [
        statement
        for statement in _statements_of(deployed, "DenyFunctionRole")
        if statement["Effect"] == "Deny"
        and statement["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/*"}
    ]
    (protection,) = denied
    assert set(_as_list(protection["Action"])) == {"iam:AttachRolePolicy", "iam:DetachRolePolicy"}
    assert protection["Condition"] == {"Null": {f"aws:ResourceTag/{STACK_ROLE_TAG_KEY}": "false"}}


def test_no_role_of_the_stack_may_tag_untag_or_grant_itself_more(deployed):
    found = [
        f"{where}: {pattern} grants {action}"
        for where, statement in _allow_statements(deployed)
        if statement["Effect"] == "Allow"
        for pattern in _as_list(statement["Action"])
        for action in POWER_ACTIONS
        if _grants(pattern, action)
    ]
    assert found == []


def test_iam_evaluates_a_roles_tags_for_attaching_and_detaching_its_policies():
    # The Service Authorization Reference, as the pinned cfn-lint has it: AttachRolePolicy and
    # DetachRolePolicy act on the `role` resource, whose condition keys include aws:ResourceTag, so
    # the opt-in and the protection tag above are evaluated on the role being changed.
    import cfnlint

    specs = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    iam = json.loads(specs.read_text())["iam"]
    for action in ("attachrolepolicy", "detachrolepolicy"):
        assert iam["Actions"][action]["Resources"] == ["role"]
    assert "aws:ResourceTag/${TagKey}" in iam["Resources"]["role"]["ConditionKeys"]


def test_the_notifier_sends_mail_as_the_sender_only_and_reads_one_secret():
    from budgetkeeper.core.settings import Settings

    template = _deployed("everything-set")
    statements = [s for where, s in _allow_statements(template) if where.startswith("NotifierFunctionRole")]
    [ses] = [s for s in statements if "ses:SendEmail" in _as_list(s["Action"])]
    assert _as_list(ses["Action"]) == ["ses:SendEmail"]
    identity = "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/"
    assert _as_list(ses["Resource"]) == [
        {"Fn::Sub": identity + "${NotificationSender}"},
        {
            "Fn::Sub": [
                identity + "${Domain}",
                {"Domain": {"Fn::Select": [1, {"Fn::Split": ["@", "budgets@example.com"]}]}},
            ]
        },
    ]
    assert ses["Condition"] == {"StringEquals": {"ses:FromAddress": "budgets@example.com"}}
    [secret] = [s for s in statements if _as_list(s["Action"]) == ["ssm:GetParameter"]]
    name = Settings.from_environ({**dict.fromkeys(_SETTINGS_VARIABLES, "x"), "BUDGETKEEPER_ENV": "ENV"})
    expected = (
        "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter" + name.slack_webhook_parameter
    )
    assert secret["Resource"] == {"Fn::Sub": expected.replace("ENV", "${Environment}")}
    # Without a sender, the notifier may send no mail at all
    defaults = [
        s for where, s in _allow_statements(_deployed("defaults")) if where.startswith("NotifierFunctionRole")
    ]
    assert not [s for s in defaults if "ses:SendEmail" in _as_list(s["Action"])]


_SETTINGS_VARIABLES = (
    "STACK_NAME",
    "AWS_REGION",
    "ROLLUPS_TABLE",
    "TOTALS_TABLE",
    "BUDGETS_TABLE",
    "AUDIT_TABLE",
    "DEDUPE_TABLE",
    "TEAMS_TABLE",
    "DENIES_TABLE",
    "IDEMPOTENCY_TABLE",
    "ARCHIVE_BUCKET",
)


def test_the_history_reader_reads_the_logs_and_writes_only_query_results():
    # Given the stack deployed with an invocation log bucket
    policy = _of_type(_deployed("everything-set"), "AWS::IAM::ManagedPolicy")["HistoryReaderPolicy"]
    statements = {statement["Sid"]: statement for statement in policy["PolicyDocument"]["Statement"]}
    # Then the logs are read only under their AWSLogs/ folder, and written nowhere
    logs = "arn:${AWS::Partition}:s3:::${InvocationLogBucketName}"
    assert statements["ReadTheLogs"]["Action"] == "s3:GetObject"
    assert statements["ReadTheLogs"]["Resource"] == {"Fn::Sub": logs + "/${InvocationLogPrefix}AWSLogs/*"}
    assert statements["ListTheLogs"]["Resource"] == {"Fn::Sub": logs}
    assert statements["ListTheLogs"]["Condition"] == {
        "StringLike": {"s3:prefix": {"Fn::Sub": "${InvocationLogPrefix}AWSLogs/*"}}
    }
    writes = [
        (sid, action)
        for sid, statement in statements.items()
        for action in _as_list(statement["Action"])
        if action.startswith("s3:Put")
    ]
    assert writes == [("TheQueryResults", "s3:PutObject")]
    assert statements["TheQueryResults"]["Resource"] == {"Fn::Sub": "${ArchiveBucket.Arn}/athena-results/*"}
    # ... queries run only in the stack's workgroup, and Glue is written only in its own database
    assert "workgroup/${HistoryWorkGroup}" in statements["QueryInTheHistoryWorkGroup"]["Resource"]["Fn::Sub"]
    glue = [resource["Fn::Sub"].rsplit(":", 1)[-1] for resource in statements["TheLogTable"]["Resource"]]
    assert glue == ["catalog", "database/budgetkeeper_history", "table/budgetkeeper_history/*"]


def test_the_reconciler_reads_the_bill_and_writes_only_its_query_results():
    # Given the stack deployed with the CUR 2.0 export named, and without
    everything = _statements_of(_deployed("everything-set"), "ReconcilerFunctionRole")
    defaults = _statements_of(_deployed("defaults"), "ReconcilerFunctionRole")
    statements = {statement["Sid"]: statement for statement in everything if "Sid" in statement}
    # Then Cost Explorer is read (it has no resource ARNs), and Athena is used in the named workgroup only
    assert statements["ReadCostExplorer"]["Action"] == "ce:GetCostAndUsage"
    workgroup = statements["QueryTheCurWorkGroup"]["Resource"]["Fn::Sub"]
    assert workgroup.endswith(":workgroup/${CurWorkGroup}")
    # ... Glue only read, on the named database and table
    glue = [resource["Fn::Sub"].rsplit(":", 1)[-1] for resource in statements["TheCurTable"]["Resource"]]
    assert glue == ["catalog", "database/${CurDatabase}", "table/${CurDatabase}/${CurTable}"]
    assert all(action.startswith("glue:Get") for action in statements["TheCurTable"]["Action"])
    # ... the export's bucket only read, and the only write is the query results in the archive
    writes = [
        (sid, action)
        for sid, statement in statements.items()
        for action in _as_list(statement["Action"])
        if action.startswith(("s3:Put", "s3:Delete", "glue:Create", "glue:Update", "glue:Delete"))
    ]
    assert writes == [("TheQueryResults", "s3:PutObject")]
    assert statements["TheQueryResults"]["Resource"] == {
        "Fn::Sub": "${ArchiveBucket.Arn}/athena-results/reconcile/*"
    }
    assert {resource["Fn::Sub"] for resource in statements["ReadTheCurExport"]["Resource"]} == {
        "arn:${AWS::Partition}:s3:::${CurBucket}",
        "arn:${AWS::Partition}:s3:::${CurBucket}/*",
    }
    # And without a CUR table the role has no Athena, Glue or S3 at all
    actions = {action for statement in defaults for action in _as_list(statement["Action"])}
    assert not any(action.startswith(("athena:", "glue:", "s3:")) for action in actions)


# ----------------------------------------------------------------------------- who may start what

STATE_MACHINES = {"BudgetEvaluationStateMachine", "BudgetEnforcementStateMachine"}


def _machines_covered(resource: Any) -> set[str]:
    """The stack's state machines a StartExecution grant on `resource` reaches: by Ref, by SAM's
    StepFunctionsExecutionPolicy (a Sub of the machine's Name), or all of them for a wildcard."""
    covered: set[str] = set()
    for one in _as_list(resource):
        if isinstance(one, dict) and set(one) == {"Ref"}:
            covered |= {one["Ref"]} & STATE_MACHINES
        elif isinstance(one, dict) and "Fn::Sub" in one and isinstance(one["Fn::Sub"], list):
            pattern, variables = one["Fn::Sub"]
            named = {json.dumps(value).split('"')[3] for value in variables.values()}  # GetAtt/Ref target
            covered |= STATE_MACHINES if "*" in pattern else named & STATE_MACHINES
        else:  # a string or a Sub string: any wildcard or a machine not named reaches every machine
            text = one if isinstance(one, str) else json.dumps(one)
            if "*" in text or "stateMachine" in text:
                covered |= STATE_MACHINES
    return covered


def _who_may_start(template: dict[str, Any]) -> dict[str, set[str]]:
    """Each state machine: every role or policy of the stack whose Allow reaches StartExecution on it."""
    starters: dict[str, set[str]] = {machine: set() for machine in STATE_MACHINES}
    for where, statement in _allow_statements(template):
        if statement["Effect"] != "Allow":
            continue
        if not any(_grants(pattern, "states:StartExecution") for pattern in _as_list(statement["Action"])):
            continue
        for machine in _machines_covered(statement["Resource"]):
            starters[machine].add(where.split("/", 1)[0])
    return starters


def test_only_the_operators_policy_may_start_operator_actions(deployed):
    # IAM cannot look into a run's input: the split is by machine. The operators' machine
    # (suspend, restore, protect, unprotect) is started by OperatorActionsPolicy's holders only; the
    # roles that meter (parsing log content callers partly control) and sweep start evaluations.
    starters = _who_may_start(deployed)
    assert starters["BudgetEnforcementStateMachine"] == {"OperatorActionsPolicy"}
    assert starters["BudgetEvaluationStateMachine"] == {
        "UsageCalculatorFunctionRole",
        "UnloggedSpendFunctionRole",
        "BudgetMonitorFunctionRole",
    }
    outputs = yaml_parse(TEMPLATE_PATH.read_text())["Outputs"]
    assert outputs["OperatorActionsPolicyArn"]["Value"] == {"Ref": "OperatorActionsPolicy"}
    assert outputs["BudgetEnforcementStateMachineArn"]["Value"] == {"Ref": "BudgetEnforcementStateMachine"}


def test_the_machines_take_only_their_own_actions_from_one_definition(deployed):
    machines = _of_type(deployed, "AWS::StepFunctions::StateMachine")
    assert {
        name: machine["DefinitionSubstitutions"]["MachineKind"] for name, machine in machines.items()
    } == {
        "BudgetEvaluationStateMachine": "evaluation",
        "BudgetEnforcementStateMachine": "operator",
    }
    assert len({json.dumps(machine["DefinitionS3Location"]) for machine in machines.values()}) == 1
    definition = json.loads((TEMPLATE_PATH.parent / "statemachines/budget_enforcement.asl.json").read_text())
    admit = definition["States"][definition["StartAt"]]
    assert (admit["Type"], admit["Result"], admit["ResultPath"]) == ("Pass", "${MachineKind}", "$.machine")
    routes = {}
    for rule in definition["States"][admit["Next"]]["Choices"]:
        machine, action = rule["And"]
        assert machine["Variable"] == "$.machine", rule
        actions = [action] if "Variable" in action else action["Or"]
        routes.setdefault(machine["StringEquals"], set()).update(a["StringEquals"] for a in actions)
    assert routes == {
        "evaluation": {"evaluate", "restore_due"},
        "operator": {"suspend", "restore", "protect", "unprotect"},
    }


def test_only_enforcement_runs_and_its_own_schedule_may_invoke_the_deny_function(deployed):
    invokers = set()
    for where, statement in _allow_statements(deployed):
        reaches_it = "DenyFunction" in json.dumps(statement["Resource"]) or "*" in _as_list(
            statement["Resource"]
        )
        invokes = any(_grants(pattern, "lambda:InvokeFunction") for pattern in _as_list(statement["Action"]))
        if statement["Effect"] == "Allow" and invokes and reaches_it:
            invokers.add(where.split("/", 1)[0])
    assert invokers == {"BudgetEvaluationStateMachineRole", "BudgetEnforcementStateMachineRole"}
    permissions = [
        permission
        for permission in _of_type(deployed, "AWS::Lambda::Permission").values()
        if permission["FunctionName"] == {"Ref": "DenyFunction"}
    ]
    assert [permission["Principal"] for permission in permissions] == ["events.amazonaws.com"]
    rule = _of_type(deployed, "AWS::Events::Rule")[permissions[0]["SourceArn"]["Fn::GetAtt"][0]]
    assert [json.loads(target["Input"]) for target in rule["Targets"]] == [{"task": "reconcile"}]


DYNAMODB_READS = ("dynamodb:Get", "dynamodb:BatchGet", "dynamodb:Query", "dynamodb:Scan", "dynamodb:Describe")


def test_the_usage_calculator_writes_no_budget_attribute_but_its_own(deployed):
    # It parses log content callers partly control: it creates default budgets and marks budgets
    # due, and IAM lets it write nothing else of a row (no status, protection or limit).
    from budgetkeeper.storage.budget_rows import CALCULATOR_ATTRIBUTES

    writes = [
        statement
        for where, statement in _allow_statements(deployed)
        if where.startswith("UsageCalculatorFunctionRole/")
        and "BudgetsTable" in json.dumps(statement["Resource"])
        and not all(action.startswith(DYNAMODB_READS) for action in _as_list(statement["Action"]))
    ]
    (statement,) = writes
    assert _as_list(statement["Action"]) == ["dynamodb:UpdateItem"]
    assert statement["Condition"] == {
        "ForAllValues:StringEquals": {"dynamodb:Attributes": list(CALCULATOR_ATTRIBUTES)},
        "StringEqualsIfExists": {"dynamodb:ReturnValues": ["NONE", "UPDATED_OLD", "UPDATED_NEW"]},
    }
    assert not {"status", "protected", "limit_usd", "revision"} & set(CALCULATOR_ATTRIBUTES)
