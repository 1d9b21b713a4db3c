"""IAM as AWS evaluates it, for the tests: an independent evaluator behind a pipe.

moto stores IAM policies without evaluating them. The tests ask `@cloud-copilot/iam-simulate`
(npm, pinned in tests/iam/package-lock.json; AGPL-3.0, test-only, never shipped) whether a request
is allowed, given the policies the stack writes or ships. tests/iam/evaluate.mjs runs it; this
module starts one Node process and sends it batches (starting Node per request takes ~0.3 s).

A request is built as AWS builds one: the principal's ARN and the global condition keys IAM sets
for it (`aws:username` for users, `aws:userid` = `ROLEID:session` for role sessions, principal tags,
source identity), the action, the resource ARN, and the request's own keys (`s3:prefix`,
`dynamodb:LeadingKeys`, ...). A request key the evaluator drops as not applying to the action makes
the test fail: it would otherwise test nothing.

Also IAM's size count (characters without whitespace) for the size checks.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetkeeper.domain.policies import MANAGED_POLICY_LIMIT, compact_json
from tests.conftest import FAKETIME_VARIABLES

EVALUATOR_DIR = Path(__file__).resolve().parent / "iam"
RUNNER = EVALUATOR_DIR / "evaluate.mjs"
ACCOUNT = "123456789012"
REGION = "us-east-1"

Document = Mapping[str, Any]


class EvaluatorUnavailable(RuntimeError):
    """Node or the pinned packages are missing: the reason says what to install."""


class EvaluationError(RuntimeError):
    """The evaluator refused a request (an invalid policy, action or resource): a test defect."""


# --- principals: what IAM puts in the request context for each kind of caller --------------------


@dataclass(frozen=True, slots=True)
class Principal:
    arn: str
    context: Mapping[str, str | list[str]]

    @property
    def account(self) -> str:
        return self.arn.split(":")[4]


def _tag_keys(tags: Mapping[str, str]) -> dict[str, str | list[str]]:
    keys: dict[str, str | list[str]] = {f"aws:PrincipalTag/{key}": value for key, value in tags.items()}
    if tags:
        keys["aws:PrincipalTagKeys"] = sorted(tags)
    return keys


def iam_user(name: str, *, tags: Mapping[str, str] | None = None, account: str = ACCOUNT) -> Principal:
    """An IAM user (also an API-key user `BedrockAPIKey-xxxx`): `aws:username` is its name."""
    user_id = "AIDA" + re.sub(r"[^A-Z0-9]", "", name.upper()).ljust(17, "X")[:17]
    return Principal(
        f"arn:aws:iam::{account}:user/{name}",
        {
            "aws:username": name,
            "aws:userid": user_id,
            "aws:PrincipalArn": f"arn:aws:iam::{account}:user/{name}",
            "aws:PrincipalAccount": account,
            "aws:PrincipalType": "User",
            **_tag_keys(tags or {}),
        },
    )


def role_session(
    role_name: str,
    session_name: str,
    *,
    role_id: str,
    tags: Mapping[str, str] | None = None,
    source_identity: str | None = None,
    account: str = ACCOUNT,
    path: str = "/",
) -> Principal:
    """A session of a role: `aws:userid` is `ROLEID:session`; there is no `aws:username`."""
    keys: dict[str, str | list[str]] = {
        "aws:userid": f"{role_id}:{session_name}",
        "aws:PrincipalArn": f"arn:aws:iam::{account}:role{path}{role_name}",
        "aws:PrincipalAccount": account,
        "aws:PrincipalType": "AssumedRole",
        **_tag_keys(tags or {}),
    }
    if source_identity is not None:
        keys["aws:SourceIdentity"] = source_identity
    return Principal(f"arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}", keys)


def sso_session(
    role_name: str,
    user_name: str,
    *,
    role_id: str,
    account: str = ACCOUNT,
    tags: Mapping[str, str] | None = None,
) -> Principal:
    """An IAM Identity Center session: the permission set's role in `account`, named after the user."""
    return role_session(
        role_name,
        user_name,
        role_id=role_id,
        tags=tags,
        account=account,
        path=f"/aws-reserved/sso.amazonaws.com/{REGION}/",
    )


# --- requests and answers -------------------------------------------------------------------------

# Keys every signed request carries (a caller's policies may test them, as a Region guard does).
EVERY_REQUEST = {"aws:RequestedRegion": REGION, "aws:SecureTransport": "true"}


@dataclass(frozen=True, slots=True)
class Request:
    """One API call: who, what, on which resource, under which policies."""

    principal: Principal
    action: str
    resource: str = "*"
    identity_policies: Mapping[str, Document] = field(default_factory=dict)
    context: Mapping[str, str | list[str]] = field(default_factory=dict)
    resource_policy: Document | None = None
    resource_account: str | None = None  # the principal's own account unless given
    session_policy: Document | None = None
    permission_boundaries: Mapping[str, Document] = field(default_factory=dict)
    service_control_policies: Mapping[str, Document] = field(default_factory=dict)

    def simulation(self) -> dict[str, Any]:
        simulation: dict[str, Any] = {
            "request": {
                "principal": self.principal.arn,
                "action": self.action,
                "resource": {
                    "resource": self.resource,
                    "accountId": self.resource_account or self.principal.account,
                },
                "contextVariables": {**EVERY_REQUEST, **self.principal.context, **self.context},
            },
            "identityPolicies": [{"name": n, "policy": p} for n, p in self.identity_policies.items()],
            "serviceControlPolicies": [],
            "resourceControlPolicies": [],
        }
        if self.service_control_policies:
            policies = [{"name": n, "policy": p} for n, p in self.service_control_policies.items()]
            simulation["serviceControlPolicies"] = [{"orgIdentifier": ACCOUNT, "policies": policies}]
        if self.resource_policy is not None:
            simulation["resourcePolicy"] = self.resource_policy
        elif self.action.startswith("kms:"):  # a key's policy must let IAM policies decide
            simulation["resourcePolicy"] = default_key_policy(self.resource.split(":")[4])
        if self.session_policy is not None:
            simulation["sessionPolicy"] = self.session_policy
        if self.permission_boundaries:
            simulation["permissionBoundaryPolicies"] = [
                {"name": n, "policy": p} for n, p in self.permission_boundaries.items()
            ]
        return simulation


def default_key_policy(account: str) -> dict[str, Any]:
    """The key policy AWS gives a KMS key by default: the account's IAM policies decide."""
    root = f"arn:aws:iam::{account}:root"
    statement = {"Sid": "EnableIAMPolicies", "Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*"}
    return {"Version": "2012-10-17", "Statement": [{**statement, "Resource": "*"}]}


@dataclass(frozen=True, slots=True, repr=False)
class Decision:
    request: Request
    result: str  # Allowed, ExplicitlyDenied or ImplicitlyDenied
    denials: tuple[Mapping[str, Any], ...]  # the statements that denied it, explicitly or not

    @property
    def allowed(self) -> bool:
        return self.result == "Allowed"

    @property
    def explicitly_denied(self) -> bool:
        return self.result == "ExplicitlyDenied"

    @property
    def denying_sids(self) -> set[str]:
        return {
            d["statementId"] for d in self.denials if d.get("denialType") == "Explicit" and "statementId" in d
        }

    def __repr__(self) -> str:
        who = self.request.principal.arn
        why = [
            f"{d.get('policyType')}:{d.get('policyIdentifier', '')}:{d.get('statementId', '')}"
            for d in self.denials
        ]
        return f"{self.result}: {who} {self.request.action} on {self.request.resource} {why or ''}"


@dataclass(frozen=True, slots=True)
class ActionInfo:
    """An action of the Service Authorization Reference, as the pinned iam-data has it."""

    service: str
    name: str
    wildcard_only: bool
    resource_arns: tuple[str, ...]  # one example ARN per resource type the action acts on

    @property
    def action(self) -> str:
        return f"{self.service}:{self.name}"


class IamEvaluator:
    """One Node process running tests/iam/evaluate.mjs; `evaluate` sends a batch per call."""

    def __init__(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise EvaluatorUnavailable(
                "node is not installed (apt-get install nodejs npm; `make test` does the rest)"
            )
        if not (EVALUATOR_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
            raise EvaluatorUnavailable(f"the evaluator is not installed: run `npm ci` in {EVALUATOR_DIR}")
        # The machine's clock as `make test-clock` fakes it is for the product, not for the evaluator.
        environment = {name: value for name, value in os.environ.items() if name not in FAKETIME_VARIABLES}
        self._process = subprocess.Popen(
            [node, str(RUNNER)],
            cwd=EVALUATOR_DIR,
            env=environment,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._process.poll() is None:
            assert self._process.stdin is not None
            self._process.stdin.close()
            self._process.wait(timeout=10)

    def _ask(self, requests: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        # One line out, one line back: Node reads the whole batch before it writes, so no pipe fills.
        with self._lock:
            stdin, stdout = self._process.stdin, self._process.stdout
            assert stdin is not None and stdout is not None
            stdin.write(json.dumps(list(requests)) + "\n")
            stdin.flush()
            line = stdout.readline()
        if not line:
            raise EvaluationError(f"the evaluator stopped (exit {self._process.poll()})")
        return json.loads(line)

    def evaluate(self, requests: Iterable[Request]) -> list[Decision]:
        requests = list(requests)
        answers = self._ask([{"simulation": request.simulation()} for request in requests])
        decisions = []
        for request, answer in zip(requests, answers, strict=True):
            if "error" in answer:
                raise EvaluationError(
                    f"{request.action} on {request.resource}: {json.dumps(answer['error'])}"
                )
            dropped = set(answer["ignoredContextKeys"]) & set(request.context)
            if dropped:
                raise EvaluationError(
                    f"{request.action} does not take {sorted(dropped)}: the test asks nothing"
                )
            decisions.append(Decision(request, answer["decision"], tuple(answer["denials"])))
        return decisions

    def decide(self, request: Request) -> Decision:
        (decision,) = self.evaluate([request])
        return decision

    def actions(self, service: str) -> list[ActionInfo]:
        (answer,) = self._ask([{"service": service}])
        if "error" in answer:
            raise EvaluationError(answer["error"]["message"])
        return [
            ActionInfo(service, action["name"], action["wildcardOnly"], _unambiguous_arns(action))
            for action in answer["actions"]
        ]


def _unambiguous_arns(action: Mapping[str, Any]) -> tuple[str, ...]:
    # Two resource types of one action with the same ARN format (iam-data lists a few): the
    # evaluator cannot tell which one a request means, so neither is asked.
    arns = [example_arn(kind["arn"]) for kind in action["resourceTypes"]]
    return tuple(arn for arn in arns if arns.count(arn) == 1)


def example_arn(arn_format: str, account: str = ACCOUNT) -> str:
    """A resource ARN of the format the Service Authorization Reference gives (`${Region}`, ...)."""
    values = {"Partition": "aws", "Region": REGION, "Account": account}
    return re.sub(
        r"\$\{([^}]+)\}", lambda m: values.get(m.group(1), f"example-{m.group(1).lower()}"), arn_format
    )


# --- IAM's size count -----------------------------------------------------------------------------


def policy_size(document: Document | str) -> int:
    """Characters as IAM counts them: the document's compact form, whitespace outside strings dropped."""
    if isinstance(document, str):
        document = json.loads(document)
    return len(compact_json(document))


def document_fits(document: Document | str, limit: int = MANAGED_POLICY_LIMIT) -> bool:
    return policy_size(document) <= limit


# --- the question most tests ask ------------------------------------------------------------------

# The broad Allow a Bedrock user typically holds, as AmazonBedrockFullAccess grants it: the deny
# must win against it.
# Every IAM service prefix of Bedrock that the deny reaches (the Service Authorization Reference).
BEDROCK_SERVICES = ("bedrock", "bedrock-mantle", "bedrock-agentcore", "bedrock-websearch")
BEDROCK_FULL_ACCESS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "BedrockAll",
            "Effect": "Allow",
            "Action": [f"{service}:*" for service in BEDROCK_SERVICES],
            "Resource": "*",
        }
    ],
}
INVOKE_MODEL = "bedrock:InvokeModel"
FOUNDATION_MODEL = f"arn:aws:bedrock:{REGION}::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"


def invoke_model_denied(
    evaluator: IamEvaluator, documents: Mapping[str, Document], principals: Iterable[Principal]
) -> list[bool]:
    """Whether each principal, holding BEDROCK_FULL_ACCESS and `documents`, is denied InvokeModel."""
    policies = {"AmazonBedrockFullAccess": BEDROCK_FULL_ACCESS, **documents}
    decisions = evaluator.evaluate(
        Request(principal, INVOKE_MODEL, FOUNDATION_MODEL, identity_policies=policies)
        for principal in principals
    )
    for decision in decisions:
        assert decision.allowed or decision.explicitly_denied, decision
    return [decision.explicitly_denied for decision in decisions]
