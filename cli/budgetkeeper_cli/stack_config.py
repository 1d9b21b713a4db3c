"""Which deployed stack the CLI talks to, and the AWS session it talks through.

The stack is found by `--stack-name`, else `BUDGETKEEPER_STACK`: its CloudFormation outputs name
the tables, the state machine, the deny policy and the topic. Explicit options (`--budgets-table`,
...) name them instead, or override single outputs. Credentials, profile, region and endpoint are
boto3's own: `AWS_PROFILE`, `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL` (and the per-service
`AWS_ENDPOINT_URL_<SERVICE>`) work as they do for the AWS CLI, so the same commands run against
moto. `AWS_REGION`, which the AWS CLI reads but the pinned botocore does not, is read here
(`aws_region`) and wins over `AWS_DEFAULT_REGION`, as it does for the AWS CLI. pynamodb reads none
of those endpoints, so the DynamoDB endpoint is passed to it through `Settings.dynamodb_endpoint`,
as `Settings.from_environ` does for the functions.

AWS errors that mean "who are you?" (no credentials, an expired or unknown token) become one clear
`CommandFailed`, whichever call meets them first: see `aws_errors`.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    TokenRetrievalError,
)
from pynamodb.exceptions import PynamoDBException

from budgetkeeper.core.settings import Settings
from budgetkeeper.core.tunables import RejectedTunable, Tunables
from budgetkeeper.storage.tables import bind_tables
from budgetkeeper_cli.errors import CommandFailed, UsageError

STACK_VARIABLE = "BUDGETKEEPER_STACK"
ENV_VARIABLE = "BUDGETKEEPER_ENV"

# Stack output -> Settings field; these are template.yaml's Outputs.
NO_ORGANIZATION = "none"  # the output OrganizationIdInUse of a stack deployed without OrganizationId
OUTPUT_FIELDS: Mapping[str, str] = {
    "EnvironmentName": "env",
    "RollupsTableName": "rollups_table",
    "TotalsTableName": "totals_table",
    "BudgetsTableName": "budgets_table",
    "AuditTableName": "audit_table",
    "DedupeTableName": "dedupe_table",
    "TeamsTableName": "teams_table",
    "DeniesTableName": "denies_table",
    "IdempotencyTableName": "idempotency_table",
    "PricesTableName": "prices_table",
    "ArchiveBucketName": "archive_bucket",
    "BudgetEnforcementStateMachineArn": "operator_machine_arn_value",
    "BudgetEvaluationStateMachineArn": "evaluation_machine_arn_value",
    "BudgetEventsTopicArn": "notifications_topic_arn",
    "BedrockDenyPolicyArn": "deny_policy_arn_value",
}

# Explicit options: (option, Settings field, help). The minimal set the commands read.
EXPLICIT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--budgets-table", "budgets_table", "budgets table name (output BudgetsTableName)"),
    ("--totals-table", "totals_table", "window totals table name (output TotalsTableName)"),
    ("--audit-table", "audit_table", "audit table name (output AuditTableName)"),
    (
        "--state-machine-arn",
        "operator_machine_arn_value",
        "the operators' state machine ARN (output BudgetEnforcementStateMachineArn)",
    ),
)
OPTION_OF_FIELD: Mapping[str, str] = {field: option for option, field, _ in EXPLICIT_OPTIONS}
TABLE_FIELDS = (
    "rollups_table",
    "totals_table",
    "budgets_table",
    "audit_table",
    "dedupe_table",
    "teams_table",
    "denies_table",
    "idempotency_table",
)
_STRING_FIELDS = (*TABLE_FIELDS, "archive_bucket")

# Error codes AWS answers when the credentials themselves are the problem.
CREDENTIAL_ERROR_CODES = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "AuthFailure",
    }
)
ACCESS_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
CREDENTIALS_HINT = (
    "set AWS_PROFILE (and run `aws sso login --profile NAME` if it is an SSO profile), or "
    "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, then try again; `aws sts get-caller-identity` "
    "shows who you are"
)
STACK_HINT = (
    f"pass --stack-name NAME or set {STACK_VARIABLE}=NAME (the name `sam deploy` used), or name the "
    "resources with --budgets-table, --totals-table, --audit-table and --state-machine-arn"
)


def add_stack_options(parser: argparse.ArgumentParser, *, region_option: str = "--region") -> None:
    """The options every command that talks to the stack takes, in their own help group.

    `region_option` names the stack's Region option where the command's own `--region` means
    something else (the Region a price applies to)."""
    group = parser.add_argument_group(
        "stack",
        f"which deployment: --stack-name or {STACK_VARIABLE}, or the resources by name.\n"
        "Credentials, profile and endpoint: the usual AWS settings\n"
        "(AWS_PROFILE, AWS_REGION or AWS_DEFAULT_REGION, AWS_ENDPOINT_URL, ...).",
    )
    group.add_argument(
        "--stack-name",
        metavar="NAME",
        help=f"the CloudFormation stack (default: ${STACK_VARIABLE})",
    )
    group.add_argument(
        region_option,
        dest="stack_region",
        metavar="REGION",
        help="AWS region of the stack (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)",
    )
    for option, field_name, help_text in EXPLICIT_OPTIONS:
        group.add_argument(
            option, dest=field_name, metavar="NAME" if "table" in option else "ARN", help=help_text
        )
    group.add_argument(
        "--environment",
        metavar="ENV",
        help=f"the deployment's environment, for its tunables under /budgetkeeper/ENV/ "
        f"(default: the stack's EnvironmentName, else ${ENV_VARIABLE}, else dev)",
    )


@dataclass
class Stack:
    """A deployment as the CLI sees it: settings (tables bound for pynamodb) and an AWS session."""

    settings: Settings
    session: boto3.session.Session
    origin: str  # how it was found, for messages: "stack budgetkeeper-dev" or "the options given"
    outputs: dict[str, str] = field(default_factory=dict)  # every stack output, by key (none when explicit)
    _clients: dict[str, Any] = field(default_factory=dict)
    _caller: str | None = None
    # A boto3 session is not safe to make clients from in two threads at once (the console serves
    # requests in threads); the clients it makes are.
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service)
            return self._clients[service]

    def regional_client(self, service: str, region: str) -> Any:
        """A client in another Region (the stack's own Region: `client`)."""
        if region == self.settings.region:
            return self.client(service)
        key = f"{service}@{region}"
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self.session.client(service, region_name=region)
            return self._clients[key]

    def caller_arn(self) -> str:
        """Who is running the command, as STS says: the actor of what the command does."""
        if self._caller is None:
            self._caller = str(self.client("sts").get_caller_identity()["Arn"])
        return self._caller

    def parameter_values(self) -> dict[str, str]:
        """The SSM parameters set under `/budgetkeeper/<env>/`, by name below that prefix."""
        prefix = self.settings.parameter_prefix
        values: dict[str, str] = {}
        paginator = self.client("ssm").get_paginator("get_parameters_by_path")
        for page in paginator.paginate(Path=prefix, Recursive=True, WithDecryption=True):
            for parameter in page.get("Parameters", ()):
                values[parameter["Name"][len(prefix) :].lstrip("/")] = str(parameter["Value"])
        return values

    def tunables_and_problems(self) -> tuple[Tunables, tuple[RejectedTunable, ...]]:
        """The deployment's tunables from SSM (`/budgetkeeper/<env>/`), read as the functions read
        them: defaults for those not set, and for each bad value, which is named in the second item."""
        return Tunables.accepting(self.parameter_values())

    def tunables(self) -> Tunables:
        """The tunables in force; a bad value takes its default, as in the functions, and is warned
        about on stderr with what to type, so that one mistyped parameter stops no command."""
        tunables, rejected = self.tunables_and_problems()
        for problem in rejected:
            print(f"budgetkeeper: warning: {problem}; {tunable_fix(problem)}", file=sys.stderr)  # noqa: T201
        return tunables


def tunable_fix(problem: RejectedTunable) -> str:
    """What an operator types to mend a bad parameter value: set it right, or reset it to the default."""
    return "; ".join(
        f"type `budgetkeeper config set {key} VALUE`, or `budgetkeeper config reset {key}` for the default"
        for key in problem.parameters
    )


NO_REGION = "no AWS region: pass --region, or set AWS_REGION or AWS_DEFAULT_REGION (or a profile's region)"


def aws_region() -> str | None:
    """`AWS_REGION`, which the AWS CLI reads and this botocore ignores: None leaves the choice to
    botocore (`AWS_DEFAULT_REGION`, then the profile's `region`)."""
    return os.environ.get("AWS_REGION", "").strip() or None


def aws_session(region: str | None) -> boto3.session.Session:
    """The session of the usual AWS settings, in `region` (the --region option), else AWS_REGION's."""
    try:
        session = boto3.session.Session(region_name=region or aws_region())
    except ProfileNotFound as error:
        raise CommandFailed(f"{error}: set AWS_PROFILE to a profile in ~/.aws/config") from None
    if not session.region_name:
        raise CommandFailed(NO_REGION)
    return session


def connect(
    args: argparse.Namespace, *, needs: tuple[str, ...] = (), environment_only: bool = False
) -> Stack:
    """The stack the options name, its tables bound for pynamodb.

    `needs` lists the Settings fields the command uses; in explicit mode (no stack name) each of
    them must be given as an option. A command that reads only the environment's parameters
    (`environment_only`) may name it by --environment or BUDGETKEEPER_ENV instead of a stack.
    """
    session = aws_session(getattr(args, "stack_region", None))
    stack_name = getattr(args, "stack_name", None) or os.environ.get(STACK_VARIABLE) or None
    given = {name: getattr(args, name) for _, name, _ in EXPLICIT_OPTIONS if getattr(args, name, None)}
    outputs: dict[str, str] = {}
    home_account: str | None = None
    if stack_name:
        outputs, home_account = _stack_outputs(session, stack_name)
        values = {OUTPUT_FIELDS[key]: value for key, value in outputs.items() if key in OUTPUT_FIELDS}
        origin = f"stack {stack_name}"
    else:
        missing = [OPTION_OF_FIELD[name] for name in needs if name in OPTION_OF_FIELD and name not in given]
        named_environment = getattr(args, "environment", None) or os.environ.get(ENV_VARIABLE)
        if (not given or missing) and not (environment_only and named_environment):
            raise UsageError(
                f"no stack: {STACK_HINT}"
                + (f" (missing here: {', '.join(missing)})" if given and missing else "")
            )
        values = {}
        origin = "the options given"
    values.update(given)
    environment = getattr(args, "environment", None) or values.get("env") or os.environ.get(ENV_VARIABLE)
    settings = Settings(
        env=environment or "dev",
        stack_name=stack_name or "",
        region=session.region_name,
        **{name: values.get(name, "") for name in _STRING_FIELDS},
        dynamodb_endpoint=os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL"),
        operator_machine_arn_value=values.get("operator_machine_arn_value"),
        evaluation_machine_arn_value=values.get("evaluation_machine_arn_value"),
        notifications_topic_arn=values.get("notifications_topic_arn"),
        deny_policy_arn_value=values.get("deny_policy_arn_value"),
        prices_table=values.get("prices_table") or None,
        # As the functions have them: what the CLI meters (redrive, meter) is scoped as they scope it.
        organization_id=_organization_in_use(outputs),
        home_account_id=home_account,
    )
    missing_outputs = [name for name in needs if not getattr(settings, name, None)]
    if missing_outputs:
        raise CommandFailed(
            f"{origin} does not name {', '.join(missing_outputs)}: is it a Budgetkeeper stack? ({STACK_HINT})"
        )
    bind_tables(settings)
    return Stack(settings=settings, session=session, origin=origin, outputs=outputs)


def _organization_in_use(outputs: Mapping[str, str]) -> str | None:
    """The organization a stack is deployed for (output OrganizationIdInUse), None for one account."""
    in_use = outputs.get("OrganizationIdInUse", NO_ORGANIZATION)
    return None if in_use == NO_ORGANIZATION else in_use


def _stack_outputs(session: boto3.session.Session, stack_name: str) -> tuple[dict[str, str], str]:
    """The stack's outputs by key, and the account it is deployed in (from its StackId)."""
    cloudformation = session.client("cloudformation")
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        details = error.response.get("Error", {})
        if details.get("Code") == "ValidationError" and "does not exist" in str(details.get("Message")):
            raise CommandFailed(
                f"no stack named {stack_name!r} in {session.region_name}: {STACK_HINT}; "
                "`aws cloudformation list-stacks` lists the stacks of this account and region"
            ) from None
        raise
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", ())}
    if "BudgetsTableName" not in outputs:
        raise CommandFailed(
            f"stack {stack_name!r} has no BudgetsTableName output: is it a Budgetkeeper stack "
            f"(status {stacks[0].get('StackStatus')})? {STACK_HINT}"
        )
    return outputs, stacks[0]["StackId"].split(":")[4]


# ----------------------------------------------------------------------------- errors


def _root_cause(error: BaseException) -> BaseException:
    """pynamodb wraps botocore's errors (`.cause`); find the botocore error underneath."""
    seen: set[int] = set()
    current: BaseException = error
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "cause", None) or current.__cause__
        if not isinstance(inner, BaseException):
            break
        current = inner
    return current


def describe_aws_error(error: BaseException) -> str:
    """What an AWS error means for the operator, with what to do about it."""
    cause = _root_cause(error)
    if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
        return f"no usable AWS credentials ({cause}): {CREDENTIALS_HINT}"
    if isinstance(cause, TokenRetrievalError):
        return f"the AWS session has expired ({cause}): {CREDENTIALS_HINT}"
    if isinstance(cause, NoRegionError):
        return NO_REGION
    if isinstance(cause, EndpointConnectionError):
        return f"cannot reach AWS ({cause}): check the network, the region and AWS_ENDPOINT_URL"
    if isinstance(cause, ClientError):
        details = cause.response.get("Error", {})
        code = str(details.get("Code", "error"))
        message = str(details.get("Message") or cause)
        operation = getattr(cause, "operation_name", None)
        if code in CREDENTIAL_ERROR_CODES:
            return f"AWS rejected the credentials ({code}: {message}): {CREDENTIALS_HINT}"
        if code in ACCESS_DENIED_CODES:
            return (
                f"access denied{f' to {operation}' if operation else ''} ({message}): "
                "the operator role needs it; see docs/cli.md for the permissions each command uses"
            )
        if code == "ResourceNotFoundException" and operation in (None, "Query", "Scan", "GetItem"):
            return f"{code}: {message} (does the stack's table exist in this region?)"
        return f"{code}{f' in {operation}' if operation else ''}: {message}"
    if isinstance(cause, BotoCoreError):
        return f"{cause} (check AWS_PROFILE, credentials, region and endpoint)"
    return str(error) or type(error).__name__


@contextmanager
def aws_errors() -> Iterator[None]:
    """Turn AWS and pynamodb errors met while a command runs into a CommandFailed (exit 1)."""
    try:
        yield
    except (BotoCoreError, ClientError, PynamoDBException) as error:
        raise CommandFailed(describe_aws_error(error)) from None


Run = TypeVar("Run", bound=Callable[[argparse.Namespace], int])


def translating_aws_errors(run: Run) -> Run:
    """A command's `run` with `aws_errors` around it."""

    def wrapped(args: argparse.Namespace) -> int:
        with aws_errors():
            return run(args)

    wrapped.__name__ = run.__name__
    wrapped.__doc__ = run.__doc__
    return wrapped  # type: ignore[return-value]
