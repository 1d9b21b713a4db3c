"""Scopes: what spend is charged to and what a budget applies to. The one module that splits ARNs.
docs/architecture.md, "Scopes and trust (domain.scopes)", tells the rest.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from budgetkeeper.domain.usage import Invocation


class ScopeKind(StrEnum):
    USER = "user"
    APIKEY = "apikey"
    ROLE = "role"
    SESSION = "session"
    APP = "app"
    TEAM = "team"
    ACCOUNT = "account"
    PROJECT = "project"
    # Identities (of one or several accounts) operators mapped to one person: the teams table's `person`.
    PERSON = "person"
    # An organizational unit of AWS Organizations: the accounts under it (metering.org_units).
    OU = "ou"


SCOPE_KINDS: tuple[str, ...] = tuple(ScopeKind)
# The IAM principals, whose names may name a member account (split_account).
ACCOUNT_QUALIFIED_KINDS = frozenset({ScopeKind.USER, ScopeKind.APIKEY, ScopeKind.ROLE, ScopeKind.SESSION})
UNKNOWN_SCOPE_KIND = "unknown"  # recorded and reported, never budgeted: see the module docstring
API_KEY_USER_PREFIX = "BedrockAPIKey-"
SSO_ROLE_PREFIX = "AWSReservedSSO_"
APP_ROLE_SUFFIX = "-BedrockRole"
APP_TAG = "app"
# Plain prefixes for the per-record path, where formatting an enum member would cost more.
_APP_PREFIX = f"{ScopeKind.APP.value}:"
_TEAM_PREFIX = f"{ScopeKind.TEAM.value}:"
_ACCOUNT_PREFIX = f"{ScopeKind.ACCOUNT.value}:"
_PERSON_PREFIX = f"{ScopeKind.PERSON.value}:"
_OU_PREFIX = f"{ScopeKind.OU.value}:"

_SCOPE_EXAMPLES: Mapping[ScopeKind, str] = {
    ScopeKind.USER: "user:alice",
    ScopeKind.APIKEY: "apikey:BedrockAPIKey-x7k2",
    ScopeKind.ROLE: "role:ChatbotApp-BedrockRole",
    ScopeKind.SESSION: "session:AWSReservedSSO_Dev_1a2b/bob@example.com",
    ScopeKind.APP: "app:ChatbotApp",
    ScopeKind.TEAM: "team:data",
    ScopeKind.ACCOUNT: "account:111122223333",
    ScopeKind.PROJECT: "project:proj_7f3a",
    ScopeKind.PERSON: "person:alice.martin",
    ScopeKind.OU: "ou:ou-ab12-cdef3456",
}
# IAM user, role and session names: letters, digits and + = , . @ _ -
_IAM_NAME = r"[\w+=,.@-]{1,64}"
_IAM_NAME_PATTERN = re.compile(_IAM_NAME, re.ASCII)
_ACCOUNT_PATTERN = re.compile(r"\d{12}", re.ASCII)
_OU_PATTERN = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}", re.ASCII)
_PROJECT_PATTERN = re.compile(r"[\w.-]{1,128}", re.ASCII)
_IDENTITY_ARN = re.compile(r"arn:(aws(?:-[a-z]+)*):(iam|sts)::(\d{12}):(.+)", re.ASCII)
_IAM_USER_RESOURCE = re.compile(rf"user/(?:[!-~]*/)?({_IAM_NAME})", re.ASCII)
_ASSUMED_ROLE_RESOURCE = re.compile(rf"assumed-role/({_IAM_NAME})/({_IAM_NAME})", re.ASCII)
_IAM_ROLE_RESOURCE = re.compile(rf"role/(?:[!-~]*/)?({_IAM_NAME})", re.ASCII)
_FEDERATED_USER_RESOURCE = re.compile(rf"federated-user/({_IAM_NAME})", re.ASCII)
_APPLICATION_INFERENCE_PROFILE_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:bedrock:[a-z0-9-]+:\d{12}:application-inference-profile/[a-z0-9]+", re.ASCII
)


class InvalidScope(ValueError):
    """A scope string that cannot be used; the message says what to type instead."""


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def parse_scope(text: str) -> Scope:
    """Read a scope an operator typed, e.g. `user:alice`, saying what to type when it is wrong."""
    text = text.strip()
    kind_text, colon, name = text.partition(":")
    if not colon:
        raise InvalidScope(f"scope {text!r} has no kind: type kind:name, e.g. user:alice or team:data")
    if kind_text not in SCOPE_KINDS:
        raise InvalidScope(
            f"unknown scope kind {kind_text!r} in {text!r}: use one of {', '.join(SCOPE_KINDS)}"
        )
    kind = ScopeKind(kind_text)
    example = _SCOPE_EXAMPLES[kind]
    if not name:
        raise InvalidScope(f"scope {text!r} has no name: type e.g. {example}")
    if not is_valid_scope_name(name):
        raise InvalidScope(
            f"scope name {name!r} has surrounding spaces or control characters: type e.g. {example}"
        )
    if kind is ScopeKind.ACCOUNT and not _ACCOUNT_PATTERN.fullmatch(name):
        raise InvalidScope(f"{name!r} is not a 12-digit AWS account id: type e.g. {example}")
    if kind is ScopeKind.PROJECT and not _PROJECT_PATTERN.fullmatch(name):
        raise InvalidScope(
            f"{name!r} is not a bedrock-mantle project id (letters, digits, _.-): type e.g. {example}"
        )
    if kind is ScopeKind.OU and not _OU_PATTERN.fullmatch(name):
        raise InvalidScope(f"{name!r} is not an organizational unit id (ou-...): type e.g. {example}")
    account, local_name = None, name
    if kind in ACCOUNT_QUALIFIED_KINDS:
        account, local_name = split_account(name, session=kind is ScopeKind.SESSION)
    if account is not None and not _ACCOUNT_PATTERN.fullmatch(account):
        raise InvalidScope(
            f"{account!r} in {text!r} is not a 12-digit AWS account id: type e.g. {example}, "
            f"or {kind}:111122223333/{example.split(':', 1)[1]} for a member account's"
        )
    if kind is ScopeKind.SESSION:
        role_name, slash, session_name = local_name.partition("/")
        if not (
            slash and _IAM_NAME_PATTERN.fullmatch(role_name) and _IAM_NAME_PATTERN.fullmatch(session_name)
        ):
            raise InvalidScope(
                f"session scope {text!r} needs <role name>/<session name>: type e.g. {example}"
            )
    if kind in (ScopeKind.USER, ScopeKind.APIKEY, ScopeKind.ROLE) and not _IAM_NAME_PATTERN.fullmatch(
        local_name
    ):
        raise InvalidScope(f"{name!r} is not an IAM name (letters, digits, +=,.@_-): type e.g. {example}")
    if kind is ScopeKind.USER and local_name.startswith(API_KEY_USER_PREFIX):
        raise InvalidScope(f"IAM user {name!r} is a Bedrock API-key user: type apikey:{name}")
    if kind is ScopeKind.APIKEY and not local_name.startswith(API_KEY_USER_PREFIX):
        raise InvalidScope(
            f"API-key users are IAM users named {API_KEY_USER_PREFIX}...: type e.g. {example}, "
            f"or user:{name} for another IAM user"
        )
    return Scope(kind, name)


def split_account(name: str, *, session: bool = False) -> tuple[str | None, str]:
    """`111122223333/alice` -> ("111122223333", "alice"); a name of the stack's own account -> (None, name).

    IAM names have no slash; a session's name is `<role>/<session>`, so it names an account when it
    has two. The account part is returned as written: parse_scope checks it is 12 digits.
    """
    if name.count("/") != (2 if session else 1):
        return None, name
    account, _, local_name = name.partition("/")
    return account, local_name


def qualified_scope(scope: str, account: str) -> str:
    """`user:alice` of a member account -> `user:111122223333/alice` (and role, API key, session)."""
    kind, _, name = scope.partition(":")
    if kind not in ACCOUNT_QUALIFIED_KINDS:
        return scope
    return f"{kind}:{account}/{name}"


def is_valid_scope_name(name: str) -> bool:
    return bool(name) and name.isprintable() and name == name.strip()


class PrincipalKind(StrEnum):
    IAM_USER = "iam_user"
    API_KEY_USER = "api_key_user"
    ASSUMED_ROLE = "assumed_role"
    ROOT = "root"
    FEDERATED_USER = "federated_user"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a call, read from the log record's `identity.arn`.

    `session_name` is a role session's name, or a federated user's name: both are chosen by the
    caller. The IAM path of an assumed role is not in the sts ARN, so it is not here either.
    """

    kind: PrincipalKind
    arn: str
    principal_scope: str
    partition: str | None = None
    account: str | None = None
    user_name: str | None = None
    role_name: str | None = None
    session_name: str | None = None
    role_scope: str | None = None

    @property
    def is_sso(self) -> bool:
        """An IAM Identity Center role: denied through its permission set, not through IAM."""
        return self.role_name is not None and self.role_name.startswith(SSO_ROLE_PREFIX)


@functools.lru_cache(maxsize=4096)
def parse_identity_arn(arn: str) -> Principal:
    """Read a caller ARN; forms this module does not know become an UNKNOWN principal."""
    match = _IDENTITY_ARN.fullmatch(arn)
    if match is None:
        return _unknown_principal(arn)
    partition, service, account, resource = match.groups()
    if service == "iam":
        if resource == "root":
            return Principal(
                kind=PrincipalKind.ROOT,
                arn=arn,
                principal_scope=f"{ScopeKind.ACCOUNT}:{account}",
                partition=partition,
                account=account,
            )
        if user := _IAM_USER_RESOURCE.fullmatch(resource):
            user_name = user.group(1)
            is_api_key = user_name.startswith(API_KEY_USER_PREFIX)
            return Principal(
                kind=PrincipalKind.API_KEY_USER if is_api_key else PrincipalKind.IAM_USER,
                arn=arn,
                principal_scope=f"{ScopeKind.APIKEY if is_api_key else ScopeKind.USER}:{user_name}",
                partition=partition,
                account=account,
                user_name=user_name,
            )
    elif assumed := _ASSUMED_ROLE_RESOURCE.fullmatch(resource):
        role_name, session_name = assumed.groups()
        return Principal(
            kind=PrincipalKind.ASSUMED_ROLE,
            arn=arn,
            principal_scope=f"{ScopeKind.SESSION}:{role_name}/{session_name}",
            partition=partition,
            account=account,
            role_name=role_name,
            session_name=session_name,
            role_scope=f"{ScopeKind.ROLE}:{role_name}",
        )
    elif federated := _FEDERATED_USER_RESOURCE.fullmatch(resource):
        return Principal(
            kind=PrincipalKind.FEDERATED_USER,
            arn=arn,
            principal_scope=f"{UNKNOWN_SCOPE_KIND}:{arn}",
            partition=partition,
            account=account,
            session_name=federated.group(1),
        )
    return _unknown_principal(arn)


def billed_principal_scope(arn: str) -> tuple[str | None, str]:
    """The account and principal scope of an IAM principal as the bill names it (CUR 2.0's
    `line_item_iam_principal`): a caller ARN as the invocation log has it (a user, an assumed-role
    session), or an IAM role's own ARN, which is the role scope over all of its sessions."""
    match = _IDENTITY_ARN.fullmatch(arn)
    if (
        match is not None
        and match.group(2) == "iam"
        and (role := _IAM_ROLE_RESOURCE.fullmatch(match.group(4)))
    ):
        return match.group(3), f"{ScopeKind.ROLE}:{role.group(1)}"
    principal = parse_identity_arn(arn)
    return principal.account, principal.principal_scope


def _unknown_principal(arn: str) -> Principal:
    return Principal(kind=PrincipalKind.UNKNOWN, arn=arn, principal_scope=f"{UNKNOWN_SCOPE_KIND}:{arn}")


@functools.lru_cache(maxsize=1024)
def is_application_inference_profile(model_id: str) -> bool:
    """An application inference profile ARN: an admin-made profile whose tags can name the app."""
    return model_id.startswith("arn:") and _APPLICATION_INFERENCE_PROFILE_ARN.fullmatch(model_id) is not None


@dataclass(frozen=True, slots=True)
class Attribution:
    """The scopes one invocation is charged to; every field is a scope string, None when unknown.

    `scopes` holds each of them once, in the order principal, role, app, team, person, account, then
    the account's organizational units, nearest first (the root user's principal scope is its
    account scope).
    """

    principal: str
    role: str | None
    app: str | None
    team: str | None
    account: str
    scopes: tuple[str, ...]
    # The app is only a claim (requestMetadata, an unregistered profile's tag): charged to the app
    # for reports and its budget, never a reason to deny the app's own role (enforcement.app_target),
    # and never a way into the app's team.
    app_claimed: bool = False
    person: str | None = None  # the person operators mapped the principal to, in any account
    org_units: tuple[str, ...] = ()  # `ou:<id>` of the OUs above the caller's account


def attribute(
    invocation: Invocation,
    *,
    teams: Mapping[str, str],
    profile_tags: Callable[[str], Mapping[str, str]] | None = None,
    app_metadata_key: str = "app",
    registered_profiles: Mapping[str, str] | None = None,
    people: Mapping[str, str] | None = None,
    home_account: str | None = None,
    org_units: Callable[[str], tuple[str, ...]] | None = None,
) -> Attribution:
    """Charge an invocation to its principal, role, app, team and account.

    The app is taken from, in this order, what operators control first and claims last: the app
    an operator registered the called application inference profile for (`registered_profiles`,
    profile ARN -> app), the role-name convention `{App}-BedrockRole`; then, as claims, the `app`
    tag of an unregistered application inference profile (`profile_tags(arn)`, cached by the
    caller: anyone allowed to create and tag profiles can write any app there), then
    `requestMetadata[app_metadata_key]`. The team is `teams` of the principal scope, else of the
    role scope, else of the app scope when the app is not a claim: a claim reaches its app only,
    never the team an operator mapped the app to.

    In organization mode (`home_account` set), a principal of another account is named with its
    account, read from the caller's ARN (AWS signs it; the record's `accountId` is not used): a
    member's `user:alice` is `user:111122223333/alice`, not the central account's alice. `people`
    maps principal scopes, so named, to the person operators say they are; `org_units(account)`
    gives the ids of the OUs above the caller's account (its ARN's, again).
    """
    principal = parse_identity_arn(invocation.identity_arn)
    principal_scope, role_scope = principal.principal_scope, principal.role_scope
    account = invocation.account_id
    if home_account is not None and principal.account is not None:
        account = principal.account  # the record's accountId is only a claim
    if home_account is not None and principal.account not in (None, home_account):
        principal_scope = qualified_scope(principal_scope, principal.account)
        role_scope = role_scope and qualified_scope(role_scope, principal.account)
    app_name, claimed = _app_name(
        invocation, principal.role_name, registered_profiles or {}, profile_tags, app_metadata_key
    )
    app = _APP_PREFIX + app_name if app_name else None
    team_name = _team_name(teams, principal_scope, role_scope, None if claimed else app)
    team = _TEAM_PREFIX + team_name if team_name else None
    person_name = (people or {}).get(principal_scope)
    person = _PERSON_PREFIX + person_name if person_name else None
    units = org_units(principal.account) if org_units is not None and principal.account else ()
    return _attribution(
        principal_scope,
        role_scope,
        app,
        team,
        _ACCOUNT_PREFIX + account,
        claimed,
        person,
        tuple(_OU_PREFIX + unit for unit in units),
    )


@functools.lru_cache(maxsize=4096)
def _attribution(
    principal: str,
    role: str | None,
    app: str | None,
    team: str | None,
    account: str,
    claimed: bool,
    person: str | None = None,
    org_units: tuple[str, ...] = (),
) -> Attribution:
    # Cached: callers repeat, and building the frozen dataclass costs more than the lookup.
    # Scope kinds differ, so only a root principal (its scope is its account's) can repeat one.
    charged = (principal, role, app, team, person, account if account != principal else None, *org_units)
    return Attribution(
        principal=principal,
        role=role,
        app=app,
        team=team,
        account=account,
        scopes=tuple(filter(None, charged)),
        app_claimed=claimed,
        person=person,
        org_units=org_units,
    )


def project_attribution(project: str, account_id: str, teams: Mapping[str, str]) -> Attribution:
    """The scopes a bedrock-mantle project's tokens are charged to: the project, the team operators
    mapped it to, the account. AWS's metrics name the project: trusted, as a caller's ARN is."""
    scope = f"{ScopeKind.PROJECT}:{project}"
    team_name = teams.get(scope)
    team = _TEAM_PREFIX + team_name if team_name else None
    return _attribution(scope, None, None, team, _ACCOUNT_PREFIX + account_id, False)


def _team_name(teams: Mapping[str, str], *scopes: str | None) -> str | None:
    for scope in scopes:
        if scope is not None and scope in teams:
            return teams[scope]
    return None


def app_of_role(role_name: str | None) -> str | None:
    """The app a role's name says, by the convention `{App}-BedrockRole`."""
    if role_name and role_name.endswith(APP_ROLE_SUFFIX) and len(role_name) > len(APP_ROLE_SUFFIX):
        return role_name[: -len(APP_ROLE_SUFFIX)]
    return None


def _app_name(
    invocation: Invocation,
    role_name: str | None,
    registered_profiles: Mapping[str, str],
    profile_tags: Callable[[str], Mapping[str, str]] | None,
    app_metadata_key: str,
) -> tuple[str | None, bool]:
    """The app's name, and whether it is only a claim (see `attribute`)."""
    profile = invocation.model_id if is_application_inference_profile(invocation.model_id) else None
    if profile and (registered := registered_profiles.get(profile)):
        return registered, False
    if app := app_of_role(role_name):
        return app, False
    if profile and profile_tags is not None:
        tagged = profile_tags(profile).get(APP_TAG)
        if tagged and is_valid_scope_name(tagged):
            return tagged, True
    claimed = invocation.request_metadata.get(app_metadata_key)
    return (claimed, True) if claimed and is_valid_scope_name(claimed) else (None, False)


def project_arn(region: str, account_id: str, project: str, partition: str = "aws") -> str:
    """The project resource `bedrock-mantle:CreateInference` is authorized on."""
    return f"arn:{partition}:bedrock-mantle:{region}:{account_id}:project/{project}"
