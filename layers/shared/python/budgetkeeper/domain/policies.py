"""The one builder of Budgetkeeper's IAM policy documents: Deny statements only, pure, no AWS.
docs/architecture.md, "Policy documents (domain.policies)", tells the rest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

POLICY_VERSION = "2012-10-17"

# The one list of actions a suspension denies: every action of the Bedrock services (bedrock,
# bedrock-agentcore, bedrock-mantle, bedrock-websearch) that starts billed work, as IAM can express it.
# template.yaml's BedrockDenyPolicy lists the same actions, and tests/unit/enforcement/test_deny_coverage.py
# compares the list with the Service Authorization Reference as the pinned cfn-lint knows it: an
# action there that is neither denied here nor reviewed as unable to spend fails the tests. Wildcards
# keep the per-role session policy small (each entry is repeated in every statement).
BEDROCK_DENY_ACTIONS: tuple[str, ...] = (
    # Models (also what Converse, StartAsyncInvoke and the bidirectional stream require), agents,
    # inline agents, flows, data automation, blueprints, guardrail checks, automated reasoning, tools.
    "bedrock:Invoke*",
    "bedrock:CallWithBearerToken",  # Bedrock API keys
    "bedrock:Retrieve*",  # knowledge bases: Retrieve embeds the query; RetrieveAndGenerate calls a model
    "bedrock:AgenticRetrieveStream",
    "bedrock:Start*",  # flow executions, knowledge-base ingestion (embeddings), reasoning workflows
    "bedrock:IngestKnowledgeBaseDocuments",  # embeddings
    "bedrock:Rerank",
    "bedrock:GenerateQuery",
    "bedrock:OptimizePrompt",
    "bedrock:ApplyGuardrail",  # billed per text unit on its own
    "bedrock:DetectGeneratedContent",  # watermark detection runs a model
    # Batch inference, customization, evaluation, prompt optimization, model import and copy jobs.
    "bedrock:Create*Job",
    "bedrock:CreateCustomModel*",  # custom model storage, and its on-demand deployment
    "bedrock:CreateProvisionedModelThroughput",
    "bedrock:CreateMarketplaceModelEndpoint",  # instance-hours
    "bedrock:UpdateMarketplaceModelEndpoint",  # more instances
    # The OpenAI-compatible endpoint: inference, fine-tuning, files, reservations.
    "bedrock-mantle:Create*",
    "bedrock-mantle:CallWithBearerToken",
    "bedrock-mantle:UpdateReservation",
    "bedrock-websearch:*",
    # AgentCore: an agent runtime calls models with its own role, so the deny stops what the
    # suspended principal starts: runtimes, code interpreters, gateways, harnesses, web search.
    # Where a wildcard is shorter than the list it stands for, it also denies a few reads and
    # deletes of the same resources while suspended (a smaller policy leaves room for sessions).
    "bedrock-agentcore:Invoke*",
    "bedrock-agentcore:Start*",  # browser and code-interpreter sessions, memory extraction, evaluations
    "bedrock-agentcore:Connect*",  # browser streams: a session kept in use
    "bedrock-agentcore:Evaluate",  # on-demand evaluation with model judges
    "bedrock-agentcore:*OnlineEvaluationConfig",  # continuous evaluation with model judges
    "bedrock-agentcore:CreateEvent",  # short-term memory events, and the extraction they trigger
    "bedrock-agentcore:Batch*MemoryRecords",  # long-term memory records (embedded and stored)
    "bedrock-agentcore:RetrieveMemoryRecords",  # semantic search
    "bedrock-agentcore:SearchRegistryRecords",
    "bedrock-agentcore:*GatewayTarget*",  # tool indexing for the gateway's semantic search
    "bedrock-agentcore:GetResource*",  # identity: token and API-key requests are billed
    "bedrock-agentcore:GetWorkloadAccessToken*",
    "bedrock-agentcore:*Authorize*",  # policy-engine authorization requests
    "bedrock-agentcore:ProcessPayment",
    "bedrock-agentcore:IngestData",
)

SESSION_DENY_SID = "BudgetkeeperDenySuspendedSessions"
SOURCE_IDENTITY_DENY_SID = "BudgetkeeperDenySuspendedSourceIdentities"
SSO_DENY_SID = "BudgetkeeperDenySuspendedSsoSessions"
OUR_SIDS = frozenset({SESSION_DENY_SID, SOURCE_IDENTITY_DENY_SID, SSO_DENY_SID})

USERID_KEY = "aws:userid"
SOURCE_IDENTITY_KEY = "aws:SourceIdentity"

# IAM quotas, in characters without whitespace (bedrock_facts.md §5.2).
MANAGED_POLICY_LIMIT = 6_144
# bedrock_facts.md does not give a quota for a permission set's inline policy. 10,240 is AWS's
# documented quota for permission set inline policies, and it is also IAM's limit for a role's
# inline policies (facts §5.2), which is what a provisioned permission set becomes in each account.
# (PutInlinePolicyToPermissionSet's own length constraint, 32,768, counts whitespace too.)
PERMISSION_SET_INLINE_POLICY_LIMIT = 10_240

_SPECIAL_CHARACTERS = {"*": "${*}", "?": "${?}", "$": "${$}"}
_TO_ESCAPE = re.compile(r"[*?$]")
_ESCAPED = re.compile(r"\$\{([*?$])\}")


class PolicyTooLarge(ValueError):
    """A document over IAM's size limit: raised before anything is written."""

    def __init__(self, what: str, size: int, limit: int) -> None:
        self.what = what
        self.size = size
        self.limit = limit
        super().__init__(
            f"{what} would be {size} characters, over IAM's limit of {limit} (whitespace not counted): "
            "nothing was written"
        )


class InvalidPolicyDocument(ValueError):
    """An existing document that is not an IAM policy this module can merge into."""


# --- names and escaping -------------------------------------------------------------------------


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value or not value.isprintable() or value != value.strip():
        raise ValueError(f"{what} {value!r} is empty, or has surrounding spaces or control characters")
    return value


def escape_for_condition(value: str) -> str:
    """`value` as a literal in a condition: `*`, `?` and `$` become `${*}`, `${?}` and `${$}`."""
    return _TO_ESCAPE.sub(lambda match: _SPECIAL_CHARACTERS[match.group()], value)


def unescape_condition(value: str) -> str:
    """The literal a value written by `escape_for_condition` stands for."""
    return _ESCAPED.sub(lambda match: match.group(1), value)


# --- sizes --------------------------------------------------------------------------------------


def compact_json(document: Mapping[str, Any]) -> str:
    """The text Budgetkeeper writes: no whitespace outside strings, ASCII only.

    ASCII, because IAM and sso-admin accept only `\\t \\n \\r` and U+0020 to U+00FF in a document;
    the escapes are then counted as IAM will count them.
    """
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True)


def check_size(document: Mapping[str, Any] | str, limit: int, what: str) -> str:
    """The compact text to write, or PolicyTooLarge when it is over `limit`."""
    text = compact_json(json.loads(document) if isinstance(document, str) else document)
    if len(text) > limit:
        raise PolicyTooLarge(what, len(text), limit)
    return text


# --- statements ---------------------------------------------------------------------------------


def deny_statement(sid: str, operator: str, key: str, values: Iterable[str]) -> dict[str, Any]:
    """A Deny of the Bedrock actions when `key` matches any of `values` (sorted, deduplicated)."""
    ordered = sorted(set(values))
    if not ordered:
        raise ValueError(f"statement {sid} needs at least one condition value")
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Action": list(BEDROCK_DENY_ACTIONS),
        "Resource": "*",
        "Condition": {operator: {key: ordered}},
    }


@dataclass(frozen=True, slots=True)
class SessionDenies:
    """The sessions suspended on one role: the state its policy document holds.

    `session_names` are denied by `aws:userid` (`ROLEID:name`); `source_identities` by
    `aws:SourceIdentity`, for roles whose callers set one. The two are kept as two sets, because
    that is what the document can hold without a second source of truth: a source identity goes
    in with the session it was suspended with, and comes out when a restore names it.
    """

    session_names: frozenset[str] = frozenset()
    source_identities: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.session_names or self.source_identities)

    def with_session(self, session_name: str, source_identity: str | None = None) -> SessionDenies:
        _check_name(session_name, "session name")
        identities = self.source_identities
        if source_identity is not None:
            identities = identities | {_check_name(source_identity, "source identity")}
        return SessionDenies(self.session_names | {session_name}, identities)

    def without_session(self, session_name: str, source_identity: str | None = None) -> SessionDenies:
        identities = self.source_identities
        if source_identity is not None:
            identities = identities - {source_identity}
        return SessionDenies(self.session_names - {session_name}, identities)

    def denies(self, session_name: str, source_identity: str | None = None) -> bool:
        """Whether the document holds this session (and, when given, this source identity)."""
        return session_name in self.session_names and (
            source_identity is None or source_identity in self.source_identities
        )


def session_userid(role_id: str, session_name: str) -> str:
    """The `aws:userid` of a role session, as IAM puts it in the request: `ROLEID:session`."""
    return f"{role_id}:{session_name}"


def session_deny_document(role_id: str, denies: SessionDenies) -> dict[str, Any]:
    """The per-role policy: one Deny by `aws:userid`, one by `aws:SourceIdentity` when there are any."""
    if not re.fullmatch(r"[A-Z0-9]+", role_id or ""):
        raise ValueError(f"{role_id!r} is not an IAM RoleId (from GetRole)")
    if not denies:
        raise ValueError("no suspended sessions: restore detaches and deletes the policy instead")
    statements = []
    if denies.session_names:
        values = (
            session_userid(role_id, escape_for_condition(_check_name(name, "session name")))
            for name in denies.session_names
        )
        statements.append(deny_statement(SESSION_DENY_SID, "StringLike", USERID_KEY, values))
    if denies.source_identities:
        # StringEquals has no wildcards, but `${` still starts a policy variable: escape alike.
        values = (
            escape_for_condition(_check_name(identity, "source identity"))
            for identity in denies.source_identities
        )
        statements.append(
            deny_statement(SOURCE_IDENTITY_DENY_SID, "StringEquals", SOURCE_IDENTITY_KEY, values)
        )
    return {"Version": POLICY_VERSION, "Statement": statements}


_SESSION_DENY_SIDS = frozenset({SESSION_DENY_SID, SOURCE_IDENTITY_DENY_SID})
_SESSION_DENY_CONDITIONS = {
    SESSION_DENY_SID: ("StringLike", USERID_KEY),
    SOURCE_IDENTITY_DENY_SID: ("StringEquals", SOURCE_IDENTITY_KEY),
}


def session_deny_problems(document: Mapping[str, Any] | str) -> list[str]:
    """Why `document` is not a per-role session deny as `session_deny_document` builds it; [] if it is.

    What such a document may hold: Version 2012-10-17 and one or two statements, each ours (by
    Sid), `Effect` Deny of exactly `BEDROCK_DENY_ACTIONS` on `*`, with only its own condition (the
    sessions' `aws:userid`, or their source identities); nothing that widens it (`NotAction`,
    `NotResource`, `Principal`). A document read back from IAM is checked with this before it is
    trusted: IAM cannot restrict what the DenyFunction writes, so what it wrote is verified.
    """
    try:
        parsed = _parse_document(document)
    except InvalidPolicyDocument as error:
        return [str(error)]
    problems = []
    if parsed.get("Version") != POLICY_VERSION:
        problems.append(f"Version is {parsed.get('Version')!r}, not {POLICY_VERSION}")
    if set(parsed) - {"Version", "Statement"}:
        problems.append(f"unexpected top-level keys {sorted(set(parsed) - {'Version', 'Statement'})}")
    statements = _statement_list(parsed)
    if not statements:
        problems.append("no statement")
    sids = []
    for index, statement in enumerate(statements):
        if not isinstance(statement, Mapping):
            problems.append(f"statement {index} is not an object")
            continue
        sid = statement.get("Sid")
        sids.append(sid)
        where = f"statement {sid or index}"
        if sid not in _SESSION_DENY_SIDS:
            problems.append(f"{where}: not one of Budgetkeeper's session deny statements")
        if statement.get("Effect") != "Deny":
            problems.append(f"{where}: Effect is {statement.get('Effect')!r}, not Deny")
        if statement.get("Action") != list(BEDROCK_DENY_ACTIONS):
            problems.append(f"{where}: Action is not exactly the Bedrock deny actions")
        if statement.get("Resource") != "*":
            problems.append(f"{where}: Resource is not *")
        extra = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
        if extra:
            problems.append(f"{where}: unexpected keys {sorted(extra)}")
        operator, key = _SESSION_DENY_CONDITIONS.get(sid, ("", ""))
        condition = statement.get("Condition")
        if not (
            isinstance(condition, Mapping)
            and list(condition) == [operator]
            and list(condition[operator]) == [key]
        ):
            problems.append(f"{where}: Condition is not {operator} on {key}")
        elif not _condition_values(statement, operator, key):
            problems.append(f"{where}: Condition names no session")
    if len(sids) != len(set(sids)):
        problems.append("a statement appears twice")
    return problems


def session_denies_of(document: Mapping[str, Any] | str | None) -> SessionDenies:
    """The suspended sessions a per-role policy holds (empty for None)."""
    if document is None:
        return SessionDenies()
    statements = _statements_by_sid(_parse_document(document))
    names = {
        unescape_condition(value.partition(":")[2])
        for value in _condition_values(statements.get(SESSION_DENY_SID), "StringLike", USERID_KEY)
    }
    identities = {
        unescape_condition(value)
        for value in _condition_values(
            statements.get(SOURCE_IDENTITY_DENY_SID), "StringEquals", SOURCE_IDENTITY_KEY
        )
    }
    return SessionDenies(frozenset(names), frozenset(identities))


def sso_userid_pattern(user_name: str) -> str:
    """`*:user`: an SSO session in any account the permission set is provisioned to."""
    return f"*:{escape_for_condition(_check_name(user_name, 'user name'))}"


def sso_deny_statement(user_names: Iterable[str]) -> dict[str, Any]:
    """Our statement for a permission set's inline policy: its SSO sessions of these users."""
    return deny_statement(SSO_DENY_SID, "StringLike", USERID_KEY, (sso_userid_pattern(u) for u in user_names))


def sso_users_of(document: Mapping[str, Any] | str | None) -> frozenset[str]:
    """The users our statement in a permission set's inline policy denies (empty for None)."""
    if document is None:
        return frozenset()
    statement = _statements_by_sid(_parse_document(document)).get(SSO_DENY_SID)
    return frozenset(
        unescape_condition(value[2:])
        for value in _condition_values(statement, "StringLike", USERID_KEY)
        if value.startswith("*:")
    )


# --- merging into a customer's document ---------------------------------------------------------


def merge_statement(existing: str | Mapping[str, Any] | None, statement: Mapping[str, Any]) -> str:
    """`existing` with `statement` in it, replacing only a statement with the same Sid.

    Every other statement stays as it was, in its order; top-level keys (`Version`, `Id`) are kept.
    A new statement goes last. Returns the compact text to write (check its size before writing).
    """
    sid = statement.get("Sid")
    if sid not in OUR_SIDS or statement.get("Effect") != "Deny":
        raise ValueError(f"only Budgetkeeper's own Deny statements are merged, not {statement!r}")
    document = _parse_document(existing) if _has_content(existing) else {"Version": POLICY_VERSION}
    statements = _statement_list(document)
    merged: list[Any] = []
    replaced = False
    for current in statements:
        if isinstance(current, Mapping) and current.get("Sid") == sid:
            if not replaced:  # ours, replaced where it stood; a duplicate Sid (invalid in IAM) is dropped
                merged.append(dict(statement))
                replaced = True
            continue
        merged.append(current)
    if not replaced:
        merged.append(dict(statement))
    document["Statement"] = merged
    document.setdefault("Version", POLICY_VERSION)
    return compact_json(document)


def remove_statement(existing: str | Mapping[str, Any] | None, sid: str) -> str | None:
    """`existing` without the statement `sid`; None when no statement is left.

    Every other statement stays as it was, in its order. A document without `sid` comes back
    unchanged in content (as compact text).
    """
    if not _has_content(existing):
        return None
    document = _parse_document(existing)
    remaining = [
        current
        for current in _statement_list(document)
        if not (isinstance(current, Mapping) and current.get("Sid") == sid)
    ]
    if not remaining:
        return None
    if not isinstance(document.get("Statement"), Mapping):  # a lone statement object stays an object
        document["Statement"] = remaining
    return compact_json(document)


def _has_content(document: str | Mapping[str, Any] | None) -> bool:
    if document is None:
        return False
    return bool(document.strip()) if isinstance(document, str) else True


def _parse_document(document: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(document, str):
        try:
            parsed = json.loads(document)
        except ValueError as error:
            raise InvalidPolicyDocument(f"policy document is not JSON: {error}") from error
    else:
        parsed = json.loads(json.dumps(document))  # a deep copy, so callers' data is never changed
    if not isinstance(parsed, dict):
        raise InvalidPolicyDocument("policy document is not a JSON object")
    statement = parsed.get("Statement", [])
    if not isinstance(statement, list | dict):
        raise InvalidPolicyDocument("policy Statement is neither a list nor an object")
    return parsed


def _statement_list(document: Mapping[str, Any]) -> list[Any]:
    statement = document.get("Statement", [])
    return [statement] if isinstance(statement, Mapping) else list(statement)


def _statements_by_sid(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        statement["Sid"]: statement
        for statement in _statement_list(document)
        if isinstance(statement, Mapping) and isinstance(statement.get("Sid"), str)
    }


def _condition_values(statement: Mapping[str, Any] | None, operator: str, key: str) -> list[str]:
    if statement is None:
        return []
    values = statement.get("Condition", {}).get(operator, {}).get(key, [])
    return [values] if isinstance(values, str) else [value for value in values if isinstance(value, str)]
