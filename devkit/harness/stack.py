"""The stack on moto, created from template.yaml itself.

Resources are made from the template's own properties (key schemas, indexes, TTL), so the tests
are honest about what `sam deploy` creates. Physical names follow CloudFormation's habit of
prefixing the stack name. Works in-process (`mock_aws`) and against a `ThreadedMotoServer`.
"""

from __future__ import annotations

import io
import json
import os
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from budgetkeeper.core.settings import Settings, get_settings
from budgetkeeper.storage.tables import bind_tables
from devkit.harness.template import TEMPLATE_PATH, load_template, resources_of_type

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"

PSEUDO_PARAMETERS = {
    "AWS::Partition": "aws",
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT_ID,
    "AWS::StackName": "{stack}",
    "AWS::StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT_ID}:stack/{{stack}}/local",
}

_NO_VALUE = object()  # what AWS::NoValue leaves in a document: nothing

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class LocalStack:
    stack_name: str = "budgetkeeper-local"
    environment_name: str = "local"
    endpoint_url: str | None = None  # None: in-process moto (mock_aws)
    parameters: dict[str, str] = field(default_factory=dict)  # template parameter overrides
    physical_ids: dict[str, str] = field(default_factory=dict)  # what Ref returns
    function_arns: dict[str, str] = field(default_factory=dict)
    table_ids: set[str] = field(default_factory=set)
    stream_arns: dict[str, str] = field(default_factory=dict)
    destination_arns: dict[str, str] = field(default_factory=dict)  # CloudWatch Logs destinations

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint_url)

    def physical_name(self, logical_id: str) -> str:
        return f"{self.stack_name}-{logical_id}"

    def create(self) -> LocalStack:
        template = load_template()
        for logical_id, resource in resources_of_type(template, "AWS::DynamoDB::Table").items():
            self._create_table(logical_id, resource["Properties"])
        for logical_id in resources_of_type(template, "AWS::S3::Bucket"):
            name = self.physical_name(logical_id).lower()
            self.client("s3").create_bucket(Bucket=name)
            self.physical_ids[logical_id] = name
        for logical_id in resources_of_type(template, "AWS::KinesisFirehose::DeliveryStream"):
            self._create_delivery_stream(logical_id)
        for logical_id, resource in resources_of_type(template, "AWS::Logs::Destination").items():
            if self._condition_holds(resource.get("Condition")):
                self._create_destination(logical_id, resource["Properties"])
        for logical_id, resource in resources_of_type(template, "AWS::Logs::SubscriptionFilter").items():
            self._create_subscription(logical_id, resource["Properties"])
        for logical_id in resources_of_type(template, "AWS::SNS::Topic"):
            topic = self.client("sns").create_topic(Name=self.physical_name(logical_id))
            self.physical_ids[logical_id] = topic["TopicArn"]
        for logical_id in resources_of_type(template, "AWS::Serverless::Function"):
            self._create_function(logical_id)
        self.create_state_machines()
        # After the state machines: the operators' policy names them.
        for logical_id, resource in resources_of_type(template, "AWS::IAM::ManagedPolicy").items():
            if not self._condition_holds(resource.get("Condition")):
                continue  # an optional feature this stack's parameters leave out
            properties = resource["Properties"]
            policy = self.client("iam").create_policy(
                PolicyName=self.physical_name(logical_id),
                Path=properties.get("Path", "/"),
                PolicyDocument=json.dumps(self._resolve_tree(properties["PolicyDocument"])),
                Description=properties.get("Description", ""),
            )
            self.physical_ids[logical_id] = policy["Policy"]["Arn"]
        for logical_id, resource in resources_of_type(template, "AWS::Serverless::Function").items():
            self._subscribe_function(logical_id, resource["Properties"])
        sender = self.parameters.get("NotificationSender")
        if sender:  # what the deployer did before `sam deploy`: the sender is a verified identity
            self.client("ses").verify_email_identity(EmailAddress=sender)
        return self

    def _subscribe_function(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        """SAM's `Events: {Type: SNS}`: the function subscribed to the topic."""
        for event in properties.get("Events", {}).values():
            if event["Type"] == "SNS":
                self.client("sns").subscribe(
                    TopicArn=self._resolve(event["Properties"]["Topic"]),
                    Protocol="lambda",
                    Endpoint=self.function_arns[logical_id],
                )

    def _create_function(self, logical_id: str) -> None:
        # The code never runs inside moto: Lambda tasks are routed to the real handlers in-process.
        role = self._harness_role()
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as bundle:
            bundle.writestr("app.py", "def lambda_handler(event, context):\n    return event\n")
        function = self.client("lambda").create_function(
            FunctionName=self.physical_name(logical_id),
            Runtime="python3.12",
            Role=role,
            Handler="app.lambda_handler",
            Code={"ZipFile": archive.getvalue()},
        )
        self.physical_ids[logical_id] = function["FunctionName"]
        self.function_arns[logical_id] = function["FunctionArn"]

    def _create_delivery_stream(self, logical_id: str) -> None:
        # A stream to the archive bucket, no transform: the harness invokes the calculator itself.
        firehose = self.client("firehose")
        name = self.physical_name(logical_id)
        firehose.create_delivery_stream(
            DeliveryStreamName=name,
            ExtendedS3DestinationConfiguration={
                "RoleARN": self._harness_role(),
                "BucketARN": f"arn:aws:s3:::{self.physical_ids['ArchiveBucket']}",
            },
        )
        self.physical_ids[logical_id] = name
        self.stream_arns[logical_id] = firehose.describe_delivery_stream(DeliveryStreamName=name)[
            "DeliveryStreamDescription"
        ]["DeliveryStreamARN"]

    def _create_destination(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        """A CloudWatch Logs destination and its access policy, as the template writes them."""
        logs = self.client("logs")
        name = self._resolve(properties["DestinationName"])
        destination = logs.put_destination(
            destinationName=name,
            targetArn=self._resolve(properties["TargetArn"]),
            roleArn=self._harness_role(),
        )["destination"]
        logs.put_destination_policy(
            destinationName=name, accessPolicy=self._resolve(properties["DestinationPolicy"])
        )
        self.physical_ids[logical_id] = name
        self.destination_arns[logical_id] = destination["arn"]

    def _create_subscription(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        """The subscription of the invocation log group; the group is the account's (it must exist
        before `sam deploy`), so the harness makes it as an operator would have."""
        logs = self.client("logs")
        group = self._resolve(properties["LogGroupName"])
        if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
            logs.create_log_group(logGroupName=group)
        logs.put_subscription_filter(
            logGroupName=group,
            filterName=self.physical_name(logical_id),
            filterPattern=properties.get("FilterPattern", ""),
            destinationArn=self._resolve(properties["DestinationArn"]),
            roleArn=self._harness_role(),
        )

    def _harness_role(self) -> str:
        iam = self.client("iam")
        name = f"{self.stack_name}-harness"
        try:
            return str(iam.get_role(RoleName=name)["Role"]["Arn"])
        except iam.exceptions.NoSuchEntityException:
            trust = {"Version": "2012-10-17", "Statement": []}
            return str(
                iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
            )

    def create_state_machines(self) -> None:
        """The template's state machines, created in the Step Functions backend moto uses now (with
        its executor on and off, moto keeps two stores: a machine made in one is not in the other).
        A machine made again has the same ARN."""
        for logical_id, resource in resources_of_type(
            load_template(), "AWS::Serverless::StateMachine"
        ).items():
            self._create_state_machine(logical_id, resource["Properties"])

    def _create_state_machine(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        definition = (TEMPLATE_PATH.parent / properties["DefinitionUri"]).read_text()
        for key, value in properties.get("DefinitionSubstitutions", {}).items():
            definition = definition.replace("${" + key + "}", self._resolve(value))
        machine = self.client("stepfunctions").create_state_machine(
            name=f"{self.stack_name}-{logical_id}",
            definition=definition,
            roleArn=self._harness_role(),
            type=properties.get("Type", "STANDARD"),
        )
        self.physical_ids[logical_id] = machine["stateMachineArn"]

    def executions(self, status: str | None = None) -> list[dict[str, Any]]:
        """The runs of every state machine of the stack (evaluations and operators' actions)."""
        sfn = self.client("stepfunctions")
        found = []
        for logical_id in resources_of_type(load_template(), "AWS::Serverless::StateMachine"):
            arguments = {"stateMachineArn": self.physical_ids[logical_id]}
            if status:
                arguments["statusFilter"] = status
            for page in sfn.get_paginator("list_executions").paginate(**arguments):
                found += page["executions"]
        return found

    def _create_table(self, logical_id: str, properties: Mapping[str, Any]) -> None:
        name = self.physical_name(logical_id)
        arguments: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties["BillingMode"],
        }
        if "GlobalSecondaryIndexes" in properties:
            arguments["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**arguments)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        self.physical_ids[logical_id] = name
        self.table_ids.add(logical_id)

    def publish_outputs(self) -> str:
        """Create a CloudFormation stack in moto whose Outputs are template.yaml's, resolved to this
        harness's physical ids, so `describe_stacks` answers as it would for the deployed stack.

        Outputs the harness cannot resolve are left out.
        moto needs one resource: a WaitConditionHandle, which creates nothing. Returns the stack name.
        """
        outputs: dict[str, Any] = {}
        for name, output in load_template().get("Outputs", {}).items():
            try:
                value = self._resolve(output["Value"])
            except (KeyError, ValueError):
                continue
            outputs[name] = {"Value": value}
        document = {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"OutputsHolder": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": outputs,
        }
        with warnings.catch_warnings():  # in-process moto says it does not model the handle: none needed
            warnings.filterwarnings("ignore", message=".*WaitConditionHandle.*")
            self.client("cloudformation").create_stack(
                StackName=self.stack_name, TemplateBody=json.dumps(document)
            )
        return self.stack_name

    def function_environment(self) -> dict[str, str]:
        """The variables template.yaml's Globals give every function, resolved for this stack."""
        template = load_template()
        variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
        # Handlers share one process here, so each sees the variables of every function.
        for function in resources_of_type(template, "AWS::Serverless::Function").values():
            variables.update(function["Properties"].get("Environment", {}).get("Variables", {}))
        environment = dict(FAKE_CREDENTIALS)
        for name, value in variables.items():
            environment[name] = self._resolve(value)
        if self.endpoint_url:
            environment["AWS_ENDPOINT_URL"] = self.endpoint_url
        return environment

    def _resolve_tree(self, node: Any) -> Any:
        """A document with every intrinsic function in it resolved (policy documents); a statement
        an Fn::If leaves out (AWS::NoValue) is left out."""
        if isinstance(node, dict):
            if node == {"Ref": "AWS::NoValue"}:
                return _NO_VALUE
            if len(node) == 1 and "Fn::If" in node:
                condition, when_true, when_false = node["Fn::If"]
                return self._resolve_tree(when_true if self._condition_holds(condition) else when_false)
            if len(node) == 1 and next(iter(node)) in ("Ref", "Fn::GetAtt", "Fn::Sub"):
                return self._resolve(node)
            return {key: self._resolve_tree(value) for key, value in node.items()}
        if isinstance(node, list):
            return [item for item in map(self._resolve_tree, node) if item is not _NO_VALUE]
        return node

    def _condition_holds(self, name: str | None) -> bool:
        """A template condition, for the forms template.yaml uses (Fn::And, Fn::Not, Fn::Equals of a Ref)."""
        if name is None:
            return True

        def holds(expression: Any) -> bool:
            if "Fn::Not" in expression:
                return not holds(expression["Fn::Not"][0])
            if "Fn::And" in expression:
                return all(holds(part) for part in expression["Fn::And"])
            if "Fn::Equals" in expression:
                left, right = (self._resolve(side) for side in expression["Fn::Equals"])
                return left == right
            raise ValueError(f"the harness cannot evaluate the condition {expression!r} yet")

        return holds(load_template()["Conditions"][name])

    def _resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return re.sub(r"\$\{([^}!]+)\}", lambda name: self._resolve_name(name.group(1)), value["Fn::Sub"])
        if "Ref" in value:
            reference = value["Ref"]
            if reference in PSEUDO_PARAMETERS:
                return self._resolve_name(reference)
            if reference == "Environment":
                return self.environment_name
            if reference == "AWS::StackName":
                return self.stack_name
            declared = load_template().get("Parameters", {})
            if reference in declared:
                return str(self.parameters.get(reference, declared[reference].get("Default", "")))
            return self.physical_ids[reference]
        if "Fn::If" in value:
            condition, when_true, when_false = value["Fn::If"]
            return self._resolve(when_true if self._condition_holds(condition) else when_false)
        if "Fn::GetAtt" in value:
            found = self._attribute(*value["Fn::GetAtt"])
            if found is not None:
                return found
        raise ValueError(f"the harness cannot resolve {value!r} yet")

    def _attribute(self, logical_id: str, attribute: str) -> str | None:
        """`Fn::GetAtt` of a resource the harness made; None for one it cannot resolve."""
        if attribute == "Arn" and logical_id in self.function_arns:
            return self.function_arns[logical_id]
        if attribute == "Name":  # a state machine's name: the last part of its ARN
            return self.physical_ids[logical_id].rsplit(":", 1)[-1]
        if attribute == "Arn" and logical_id in self.stream_arns:
            return self.stream_arns[logical_id]
        if attribute == "Arn" and logical_id in self.destination_arns:
            return self.destination_arns[logical_id]
        if attribute == "Arn" and logical_id.removesuffix("Role") in self.function_arns:
            # the role SAM makes for a function (the harness's functions run in-process)
            return f"arn:aws:iam::{ACCOUNT_ID}:role/{self.physical_name(logical_id)}"
        if attribute == "Arn" and logical_id in self.table_ids:
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{self.physical_ids[logical_id]}"
        return None

    def _resolve_name(self, name: str) -> str:
        """`${Name}` in an Fn::Sub: a pseudo parameter, a parameter, or a resource's physical id."""
        if name in PSEUDO_PARAMETERS:
            return PSEUDO_PARAMETERS[name].format(stack=self.stack_name)
        if "." in name:
            logical_id, attribute = name.split(".", 1)
            return self._resolve({"Fn::GetAtt": [logical_id, attribute]})
        return self._resolve({"Ref": name})

    @contextmanager
    def activated(self) -> Iterator[Settings]:
        """Run code as a function of this stack: its environment set, settings and tables bound."""
        saved = {name: os.environ.get(name) for name in self.function_environment()}
        os.environ.update(self.function_environment())
        get_settings.cache_clear()
        try:
            settings = get_settings()
            bind_tables(settings)
            yield settings
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            get_settings.cache_clear()
