"""What the static review of the template found (issue 28), each checked on the SAM-expanded template.

The deployments and the statement walk are those of test_template_security: the defaults, and one
with every optional parameter set.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import pytest

from devkit.harness.template import REPO_ROOT, load_template
from tests.deployed_template import DEPLOYMENTS
from tests.deployed_template import expanded_sam as _expanded_sam
from tests.unit.template.test_template_security import _allow_statements, _as_list, _deployed

# The only S3 actions a request for which carries `s3:prefix` (Service Authorization Reference).
ACTIONS_WITH_S3_PREFIX = {"s3:ListBucket", "s3:ListBucketVersions", "s3:ListBucketMultipartUploads"}


def _condition_keys(statement: dict[str, Any]) -> set[str]:
    return {key for operator in statement.get("Condition", {}).values() for key in operator}


@pytest.mark.parametrize("deployment", sorted(DEPLOYMENTS))
def test_no_grant_is_conditioned_on_a_key_its_action_never_carries(deployment):
    # Finding 3: s3:GetBucketLocation under an s3:prefix condition never matches, so never allows.
    found = [
        f"{where}: {action}"
        for where, statement in _allow_statements(_deployed(deployment))
        if "s3:prefix" in _condition_keys(statement)
        for action in _as_list(statement["Action"])
        if action not in ACTIONS_WITH_S3_PREFIX
    ]
    assert found == []


def test_athena_readers_may_locate_every_bucket_they_list():
    # Athena calls GetBucketLocation on the buckets it reads and writes results to.
    template = _deployed("everything-set")
    for reader in ("HistoryReaderPolicy", "ReconcilerFunctionRole"):
        statements = [
            statement for where, statement in _allow_statements(template) if where.startswith(reader)
        ]
        listed = [
            resource
            for statement in statements
            if "s3:ListBucket" in _as_list(statement["Action"])
            for resource in _as_list(statement["Resource"])
            if not str(resource).endswith("/*")
        ]
        located = [
            resource
            for statement in statements
            if "s3:GetBucketLocation" in _as_list(statement["Action"]) and not statement.get("Condition")
            for resource in _as_list(statement["Resource"])
        ]
        assert listed and all(resource in located for resource in listed), reader


# --- Identity Center (finding 2) ----------------------------------------------------------------


def _allowed_pattern(parameter: str) -> re.Pattern[str]:
    # CloudFormation matches AllowedPattern (a Java regex) against the whole value.
    return re.compile(load_template()["Parameters"][parameter]["AllowedPattern"])


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("", True),
        ("arn:aws:iam::999999999999:role/BudgetkeeperSso", True),
        ("arn:aws:iam::999999999999:role/admins/Budgetkeeper-Sso@x", True),
        ("arn:aws-us-gov:iam::999999999999:role/BudgetkeeperSso", True),
        ("*", False),
        ("arn:aws:iam::999999999999:role/*", False),
        ("arn:aws:iam::*:role/BudgetkeeperSso", False),
        ("arn:aws:iam::999999999999:role/Budget?", False),
        ("arn:aws:iam::999999999999:user/BudgetkeeperSso", False),
        ("arn:aws:iam::999999999999:role/", False),
    ],
)
def test_identity_center_admin_role_is_one_role_named_in_full(value, accepted):
    assert bool(_allowed_pattern("IdentityCenterAdminRoleArn").fullmatch(value)) is accepted


def test_the_deny_function_role_is_an_output():
    # The Identity Center admin role's trust policy must name it (README, Identity Center).
    assert load_template()["Outputs"]["DenyFunctionRoleArn"]["Value"] == {
        "Fn::GetAtt": ["DenyFunctionRole", "Arn"]
    }
    assert "DenyFunctionRole" in _expanded_sam()["Resources"]


# --- half-set CUR parameters (finding 8) --------------------------------------------------------


def _rule_value(expression: Any, parameters: dict[str, str]) -> Any:
    if isinstance(expression, dict):
        ((function, argument),) = expression.items()
        if function == "Ref":
            return parameters[argument]
        if function == "Fn::Equals":
            left, right = (_rule_value(side, parameters) for side in argument)
            return left == right
        if function == "Fn::Not":
            return not _rule_value(argument[0], parameters)
        if function == "Fn::Or":
            return any(_rule_value(part, parameters) for part in argument)
        if function == "Fn::And":
            return all(_rule_value(part, parameters) for part in argument)
        raise AssertionError(f"this test cannot evaluate {function}: teach it")
    return expression


def _rules_accept(parameters: dict[str, str]) -> bool:
    for rule in load_template().get("Rules", {}).values():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], parameters):
            continue
        if not all(_rule_value(assertion["Assert"], parameters) for assertion in rule["Assertions"]):
            return False
    return True


@pytest.mark.parametrize("which", list(itertools.product([False, True], repeat=3)))
def test_cur_parameters_are_set_together_or_not_at_all(which):
    names = ("CurTable", "CurDatabase", "CurBucket")
    parameters = {name: ("cur_x" if is_set else "") for name, is_set in zip(names, which, strict=True)}
    assert _rules_accept(parameters) is (all(which) or not any(which))


# --- the daily functions' errors (finding 9) ----------------------------------------------------

# Asynchronously invoked functions watched another way than by their Errors in the faults alarm.
WATCHED_OTHERWISE = {
    "BudgetMonitorFunction": "SweepSilentAlarm: no sweep for half an hour",
    "NotifierFunction": "its dead-letter queue is in the faults alarm",
}


def test_every_scheduled_function_failing_reaches_the_faults_alarm():
    template = load_template()
    resources = template["Resources"]
    asynchronous = {
        name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"].get("Events", {}).values()
        if event["Type"] in ("Schedule", "ScheduleV2", "SNS", "S3", "EventBridgeRule", "CloudWatchLogs")
    }
    alarm = resources["FaultsAlarm"]["Properties"]
    metrics = {query["Id"]: query for query in alarm["Metrics"]}
    (expression,) = [query["Expression"] for query in alarm["Metrics"] if query.get("ReturnData")]
    errors_of = {
        query["MetricStat"]["Metric"]["Dimensions"][0]["Value"]["Ref"]: query_id
        for query_id, query in metrics.items()
        if "MetricStat" in query and query["MetricStat"]["Metric"]["MetricName"] == "Errors"
    }
    for function in sorted(asynchronous - set(WATCHED_OTHERWISE)):
        assert function in errors_of, f"{function} fails unnoticed"
        assert f"FILL({errors_of[function]}, 0)" in expression
    assert {"PriceRefreshFunction", "ReconcilerFunction"} <= asynchronous


# --- the regional collector (finding 4) ---------------------------------------------------------

COLLECTOR = REPO_ROOT / "templates" / "regional-collector.yaml"


def test_the_collector_keeps_what_it_cannot_forward_and_alarms_in_its_region():
    resources = load_template(COLLECTOR)["Resources"]
    forwarder = resources["ForwarderFunction"]["Properties"]
    # CloudWatch Logs invokes it asynchronously: after Lambda's retries a failed payload is kept
    queue = forwarder["DeadLetterConfig"]["TargetArn"]
    assert queue == {"Fn::GetAtt": ["FailedPayloadsQueue", "Arn"]}
    assert resources["FailedPayloadsQueue"]["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600
    grants = [
        statement
        for policy in resources["ForwarderRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    assert {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue} in grants
    retries = resources["ForwarderInvokeConfig"]["Properties"]
    assert retries["FunctionName"] == {"Ref": "ForwarderFunction"} and retries["MaximumRetryAttempts"] == 2
    # and the alarm, in the collector's own Region, watches the forwarder's errors and the queue
    alarm = resources["ForwardingFailedAlarm"]["Properties"]
    watched = {
        (query["MetricStat"]["Metric"]["MetricName"], json.dumps(query["MetricStat"]["Metric"]["Dimensions"]))
        for query in alarm["Metrics"]
        if "MetricStat" in query
    }
    assert (
        "Errors",
        json.dumps([{"Name": "FunctionName", "Value": {"Ref": "ForwarderFunction"}}]),
    ) in watched
    assert (
        "ApproximateNumberOfMessagesVisible",
        json.dumps([{"Name": "QueueName", "Value": {"Fn::GetAtt": ["FailedPayloadsQueue", "QueueName"]}}]),
    ) in watched
    (expression,) = [query["Expression"] for query in alarm["Metrics"] if query.get("ReturnData")]
    assert "FILL(errors, 0)" in expression and "FILL(deadLetters, 0)" in expression
    assert alarm["AlarmActions"] == [{"Ref": "CollectorAlarmsTopic"}]


def test_the_forwarder_says_truly_what_raising_does():
    code = load_template(COLLECTOR)["Resources"]["ForwarderFunction"]["Properties"]["Code"]["ZipFile"]
    assert "CloudWatch Logs retry" not in code and "dead-letter queue" in code


def test_cfn_lint_passes_on_the_collector():
    # (template.yaml is linted by `make lint`, which lints the collector too)
    from cfnlint.api import lint_all

    findings = [str(match) for match in lint_all(COLLECTOR.read_text()) if match.rule.id[0] in "EW"]
    assert findings == []  # errors and warnings, as the cfn-lint command reports


# --- session tags (finding 11) ------------------------------------------------------------------


def _trusted_principal_tags() -> set[str]:
    policy = _deployed("everything-set")["Resources"]["SelfServiceReadPolicy"]["Properties"]["PolicyDocument"]
    return set(re.findall(r"\$\{aws:PrincipalTag/([^}]+)\}", json.dumps(policy)))


def test_no_role_of_the_stack_trusts_session_tags():
    for name, resource in _deployed("everything-set")["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            trust = json.dumps(resource["Properties"]["AssumeRolePolicyDocument"])
            assert "sts:TagSession" not in trust, name


def test_the_readme_says_how_to_keep_the_trusted_principal_tags_out_of_session_tags():
    # The risk stays (IAM cannot tell a session tag from a principal tag): the README says so, with
    # an SCP that names exactly the tag keys the self-service policy trusts.
    readme = (REPO_ROOT / "README.md").read_text()
    power = readme[readme.index("### What power the stack keeps") :]
    (snippet,) = re.findall(r'\{"Effect": "Deny", "Action": "sts:TagSession".*?\}\}\}', power, re.DOTALL)
    keys = json.loads(snippet)["Condition"]["ForAnyValue:StringEquals"]["aws:TagKeys"]
    assert set(keys) == _trusted_principal_tags() == {"team", "budgetkeeper-role", "budgetkeeper-user"}
