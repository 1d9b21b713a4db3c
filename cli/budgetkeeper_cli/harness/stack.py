"""The stack on moto, created from template.yaml itself.

Resources are made from the template's own properties (key schemas, indexes, TTL), so the tests
are honest about what `sam deploy` creates. Physical names follow CloudFormation's habit of
prefixing the stack name. Works in-process (`mock_aws`) and against a `ThreadedMotoServer`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3

from budgetkeeper.settings import Settings, get_settings
from budgetkeeper.store import bind_tables
from budgetkeeper_cli.harness.template import load_template, resources_of_type

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"

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
    physical_ids: dict[str, str] = field(default_factory=dict)

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
        return self

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

    def function_environment(self) -> dict[str, str]:
        """The variables template.yaml's Globals give every function, resolved for this stack."""
        template = load_template()
        variables = template["Globals"]["Function"]["Environment"]["Variables"]
        environment = dict(FAKE_CREDENTIALS)
        for name, value in variables.items():
            environment[name] = self._resolve(value)
        if self.endpoint_url:
            environment["AWS_ENDPOINT_URL"] = self.endpoint_url
        return environment

    def _resolve(self, value: Any) -> str:
        if isinstance(value, str):
            return value
        if "Ref" in value:
            reference = value["Ref"]
            if reference == "Environment":
                return self.environment_name
            return self.physical_ids[reference]
        raise ValueError(f"the harness cannot resolve {value!r} yet")

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
