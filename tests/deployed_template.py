"""template.yaml as CloudFormation receives it (SAM-expanded), per deployment, for the tests.

`deployed_template` evaluates the conditions for a deployment (the defaults, or every optional
parameter set) and keeps the other intrinsics as they are, for checks of what a statement says.
`concrete_template` resolves those too (`Fn::Sub`, `Ref`, `Fn::GetAtt`), as CloudFormation would in
account 123456789012, us-east-1, stack `budgetkeeper`: the documents the IAM evaluator is given.
"""

from __future__ import annotations

import copy
import re
from functools import cache
from typing import Any

import boto3
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

from devkit.harness.template import TEMPLATE_PATH
from tests.iam_eval import ACCOUNT, REGION, IamEvaluator, Request, role_session

KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DEFAULTS: dict[str, str] = {}
EVERYTHING_SET = {
    "KmsKeyArn": KMS_KEY_ARN,
    "IdentityCenterAdminRoleArn": "arn:aws:iam::999999999999:role/BudgetkeeperSso",
    "IdentityCenterRegion": "eu-west-1",
    "OrganizationId": "o-a1b2c3d4e5",
    "NotificationSender": "budgets@example.com",
    "OperatorAlertEmail": "ops@example.com",
    "OperatorAlertPhone": "+15555550100",
    "InvocationLogBucketName": "org-bedrock-logs",
    "InvocationLogPrefix": "bedrock/",
    "CurDatabase": "cur_exports",
    "CurTable": "cur2",
    "CurWorkGroup": "finops",
    "CurBucket": "org-cur-exports",
}
DEPLOYMENTS = {"defaults": DEFAULTS, "everything-set": EVERYTHING_SET}

# The AWS managed policies SAM attaches, as AWS publishes them. Another one fails the test until
# its document is added here, so no managed policy escapes the checks.
MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*",
        }
    ],
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess": [
        {
            "Effect": "Allow",
            "Action": [
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
                "xray:GetSamplingStatisticSummaries",
            ],
            "Resource": "*",
        }
    ],
}


@cache
def expanded_sam() -> dict[str, Any]:
    """template.yaml through the SAM translator, conditions and parameter references untouched."""
    template = yaml_parse(TEMPLATE_PATH.read_text())
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(properties.get(key), str):  # local paths: what `sam package` would upload
                properties[key] = "s3://bucket/key"

    class NoManagedPolicyNames:  # SAM asks IAM only for policies named without an ARN: we use none
        def load(self) -> dict[str, str]:
            return {}

    # What samtranslator.translator.transform.transform does, with a session that names a Region
    # (the translator asks boto3 for one; nothing here calls AWS).
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name="us-east-1"))
    return translator.translate(
        template,
        parameter_values={},
        get_managed_policy_map=NoManagedPolicyNames().load,
    )


def _condition(expression: Any, parameters: dict[str, str], conditions: dict[str, Any]) -> bool:
    if isinstance(expression, dict) and "Fn::Not" in expression:
        return not _condition(expression["Fn::Not"][0], parameters, conditions)
    if isinstance(expression, dict) and "Fn::And" in expression:
        return all(_condition(part, parameters, conditions) for part in expression["Fn::And"])
    if isinstance(expression, dict) and "Fn::Equals" in expression:
        left, right = (_resolve(side, parameters, conditions) for side in expression["Fn::Equals"])
        return bool(left == right)
    if isinstance(expression, dict) and "Condition" in expression:
        return _condition(conditions[expression["Condition"]], parameters, conditions)
    raise AssertionError(f"this test cannot evaluate the condition {expression!r}: teach it")


_NO_VALUE = object()


def _resolve(node: Any, parameters: dict[str, str], conditions: dict[str, Any]) -> Any:
    """Fn::If by the conditions, AWS::NoValue dropped, Ref to a parameter replaced by its value."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            chosen = when_true if _condition(conditions[name], parameters, conditions) else when_false
            return _resolve(chosen, parameters, conditions)
        if set(node) == {"Ref"}:
            if node["Ref"] == "AWS::NoValue":
                return _NO_VALUE
            if node["Ref"] in parameters:
                return parameters[node["Ref"]]
            return node
        resolved = {key: _resolve(value, parameters, conditions) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}
    if isinstance(node, list):
        items = [_resolve(item, parameters, conditions) for item in node]
        return [item for item in items if item is not _NO_VALUE]
    return node


@cache
def deployed_template(deployment: str) -> dict[str, Any]:
    template = copy.deepcopy(expanded_sam())
    declared = template["Parameters"]
    parameters = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
    parameters.update(DEPLOYMENTS[deployment])
    resolved = _resolve(template["Resources"], parameters, template.get("Conditions", {}))
    return {"Resources": resolved, "Parameters": parameters}


def of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# --- concrete values, as CloudFormation gives them ------------------------------------------------

STACK_NAME = "budgetkeeper"
PSEUDO_PARAMETERS = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": STACK_NAME,
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK_NAME}/0f3c8a4e-1111-2222-3333",
}


# The resources whose properties concrete_template resolves: the policies and the roles holding them.
IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::S3::BucketPolicy")


@cache
def concrete_template(deployment: str) -> dict[str, Any]:
    """`deployed_template(deployment)`'s IAM resources with every intrinsic resolved to its value."""
    template = deployed_template(deployment)
    resolver = _Resolver(template["Resources"], template["Parameters"])
    resources = {
        name: {**resource, "Properties": resolver.resolve(resource.get("Properties", {}))}
        for name, resource in template["Resources"].items()
        if resource["Type"] in IAM_TYPES
    }
    return {"Resources": resources, "Parameters": template["Parameters"], "resolve": resolver.resolve}


class _Resolver:
    def __init__(self, resources: dict[str, Any], parameters: dict[str, str]) -> None:
        self.resources = resources
        self.values = {**parameters, **PSEUDO_PARAMETERS}

    def resolve(self, node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                return self.ref(argument)
            if function == "Fn::GetAtt":
                logical_id, attribute = argument.split(".", 1) if isinstance(argument, str) else argument
                return self.attribute(logical_id, attribute)
            if function == "Fn::Sub":
                text, variables = (argument, {}) if isinstance(argument, str) else argument
                variables = {name: self.resolve(value) for name, value in variables.items()}
                return re.sub(r"\$\{([^}!]+)\}", lambda m: self.name(m.group(1), variables), text)
            if function == "Fn::Join":
                separator, items = argument
                return separator.join(self.resolve(items))
            if function == "Fn::Select":
                index, items = argument
                return self.resolve(items)[int(index)]
            if function == "Fn::Split":
                separator, text = argument
                return self.resolve(text).split(separator)
            if function.startswith("Fn::"):
                raise AssertionError(f"this resolver does not know {function}: teach it")
        if isinstance(node, dict):
            return {key: self.resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self.resolve(item) for item in node]
        return node

    def name(self, name: str, variables: dict[str, Any]) -> str:
        if name in variables:
            return str(variables[name])
        if "." in name:
            return str(self.attribute(*name.split(".", 1)))
        return str(self.ref(name))

    def ref(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        kind, _ = self._resource(name)
        if kind in ("AWS::IAM::ManagedPolicy", "AWS::SNS::Topic", "AWS::StepFunctions::StateMachine"):
            return self.attribute(name, "Arn")
        return self.physical_name(name)

    def attribute(self, logical_id: str, attribute: str) -> Any:
        kind, properties = self._resource(logical_id)
        name = self.physical_name(logical_id)
        service_arn = f"arn:aws:{{service}}:{REGION}:{ACCOUNT}:"
        arns = {
            "AWS::DynamoDB::Table": service_arn.format(service="dynamodb") + f"table/{name}",
            "AWS::S3::Bucket": f"arn:aws:s3:::{name}",
            "AWS::Lambda::Function": service_arn.format(service="lambda") + f"function:{name}",
            "AWS::SNS::Topic": service_arn.format(service="sns") + name,
            "AWS::SQS::Queue": service_arn.format(service="sqs") + name,
            "AWS::StepFunctions::StateMachine": service_arn.format(service="states") + f"stateMachine:{name}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{name}",
            "AWS::IAM::ManagedPolicy": f"arn:aws:iam::{ACCOUNT}:policy{properties.get('Path', '/')}{name}",
            "AWS::Logs::LogGroup": service_arn.format(service="logs") + f"log-group:{name}:*",
            "AWS::KinesisFirehose::DeliveryStream": service_arn.format(service="firehose")
            + f"deliverystream/{name}",
            "AWS::Logs::Destination": service_arn.format(service="logs") + f"destination:{name}",
        }
        if attribute == "Arn" and kind in arns:
            return arns[kind]
        if attribute in ("Name", "TopicName", "QueueName"):
            return name
        if attribute == "RoleId":
            return "AROA" + re.sub(r"[^A-Z0-9]", "", logical_id.upper())[:17].ljust(17, "X")
        raise AssertionError(f"this resolver does not know {logical_id}.{attribute} ({kind}): teach it")

    def physical_name(self, logical_id: str) -> str:
        """The name the template gives the resource, else one like CloudFormation generates."""
        kind, properties = self._resource(logical_id)
        for key in (
            "Name",
            "TableName",
            "RoleName",
            "FunctionName",
            "TopicName",
            "QueueName",
            "LogGroupName",
            "ManagedPolicyName",
            "DestinationName",
            "StateMachineName",
            "DeliveryStreamName",
        ):
            if key in properties:
                return str(self.resolve(properties[key]))
        generated = f"{STACK_NAME}-{logical_id}-1A2B3C4D5E6F"
        return generated.lower() if kind == "AWS::S3::Bucket" else generated

    def _resource(self, logical_id: str) -> tuple[str, dict[str, Any]]:
        if logical_id not in self.resources:
            raise AssertionError(f"{logical_id} is neither a parameter nor a resource of the template")
        resource = self.resources[logical_id]
        return resource["Type"], resource.get("Properties", {})


def role_policies(template: dict[str, Any], role: str) -> dict[str, dict[str, Any]]:
    """Every identity policy of the stack's role `role` (logical id), by name: what IAM evaluates."""
    resources = template["Resources"]
    properties = resources[role]["Properties"]
    policies = {policy["PolicyName"]: policy["PolicyDocument"] for policy in properties.get("Policies", [])}
    ours = {
        template["resolve"]({"Ref": name}): name
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::ManagedPolicy"
    }
    for arn in properties.get("ManagedPolicyArns", []):
        if arn in ours:
            policies[ours[arn]] = resources[ours[arn]]["Properties"]["PolicyDocument"]
        else:
            assert arn in MANAGED_POLICIES, f"{role} gets {arn}: add its document to MANAGED_POLICIES"
            policies[arn.rsplit("/", 1)[-1]] = {"Version": "2012-10-17", "Statement": MANAGED_POLICIES[arn]}
    return policies


def managed_policy(template: dict[str, Any], logical_id: str) -> dict[str, Any]:
    """The document of the stack's managed policy `logical_id`."""
    return template["Resources"][logical_id]["Properties"]["PolicyDocument"]


def stack_role_request(
    deployment: str, role: str, action: str, resource: str, context: dict[str, Any] | None = None
) -> Request:
    """`action` on `resource` by a session of the stack's role `role`, under every policy it holds."""
    template = concrete_template(deployment)
    role_name = template["resolve"]({"Ref": role})
    principal = role_session(
        role_name, role.removesuffix("Role"), role_id=template["resolve"]({"Fn::GetAtt": [role, "RoleId"]})
    )
    return Request(
        principal, action, resource, identity_policies=role_policies(template, role), context=context or {}
    )


def may_start_execution(
    evaluator: IamEvaluator, role: str, state_machine_arn: str, deployment: str = "defaults"
) -> bool:
    """Whether the stack's role `role` may start an execution of the state machine `state_machine_arn`."""
    request = stack_role_request(deployment, role, "states:StartExecution", state_machine_arn)
    return evaluator.decide(request).allowed


def stack_roles(deployment: str = "defaults") -> list[str]:
    """The logical ids of the stack's roles."""
    return sorted(of_type(concrete_template(deployment), "AWS::IAM::Role"))


def concrete_plain_template(template: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    """A plain CloudFormation template (no SAM), its conditions evaluated and intrinsics resolved
    as `concrete_template` does: for the templates under templates/."""
    values = {name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()}
    values.update(parameters)
    conditions = {**template.get("Conditions", {})}
    # A pseudo parameter in a condition is compared with its value, as CloudFormation would.
    values_with_pseudo = {**values, **PSEUDO_PARAMETERS}
    present = {
        name: resource
        for name, resource in template["Resources"].items()
        if "Condition" not in resource
        or _condition(conditions[resource["Condition"]], values_with_pseudo, conditions)
    }
    resources = _resolve(present, values_with_pseudo, conditions)
    resolver = _Resolver(resources, values)
    resolved = {
        name: {**r, "Properties": resolver.resolve(r.get("Properties", {}))} for name, r in resources.items()
    }
    return {"Resources": resolved, "Parameters": values, "resolve": resolver.resolve}
