"""Scopes, caller ARNs and attribution (budgetkeeper.domain.scopes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import pytest

from budgetkeeper.domain.log_records import parse_invocation
from budgetkeeper.domain.scopes import (
    SCOPE_KINDS,
    Attribution,
    InvalidScope,
    Principal,
    PrincipalKind,
    Scope,
    ScopeKind,
    attribute,
    is_application_inference_profile,
    parse_identity_arn,
    parse_scope,
    split_account,
)
from budgetkeeper.domain.usage import Invocation, TokenCounts
from devkit.harness.logs import load_invocation_log, log_message

ACCOUNT = "111122223333"
PROFILE_ARN = f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/x7p3k9q2m4ab"
SSO_ROLE = "AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b"
NO_TEAMS: Mapping[str, str] = {}


def invocation(
    identity_arn: str,
    *,
    model_id: str = "anthropic.claude-3-haiku-20240307-v1:0",
    request_metadata: Mapping[str, str] | None = None,
) -> Invocation:
    return Invocation(
        request_id="4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f6a7b8",
        timestamp=datetime(2025, 11, 18, 12, 0, 12, tzinfo=UTC),
        account_id=ACCOUNT,
        identity_arn=identity_arn,
        region="us-east-1",
        operation="Converse",
        model_id=model_id,
        tokens=TokenCounts(input=10, output=5),
        request_metadata=request_metadata or {},
    )


def tags_of(profiles: Mapping[str, Mapping[str, str]]) -> Callable[[str], Mapping[str, str]]:
    """A stand-in for the cached ListTagsForResource lookup the caller injects."""
    return lambda arn: profiles.get(arn, {})


# --- parse_identity_arn ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "expected"),
    [
        (
            "arn:aws:iam::111122223333:user/alice",
            Principal(
                kind=PrincipalKind.IAM_USER,
                arn="arn:aws:iam::111122223333:user/alice",
                principal_scope="user:alice",
                partition="aws",
                account="111122223333",
                user_name="alice",
            ),
        ),
        (
            "arn:aws:iam::111122223333:user/division/ops/alice",
            Principal(
                kind=PrincipalKind.IAM_USER,
                arn="arn:aws:iam::111122223333:user/division/ops/alice",
                principal_scope="user:alice",
                partition="aws",
                account="111122223333",
                user_name="alice",
            ),
        ),
        (
            "arn:aws:iam::111122223333:user/BedrockAPIKey-x7k2",
            Principal(
                kind=PrincipalKind.API_KEY_USER,
                arn="arn:aws:iam::111122223333:user/BedrockAPIKey-x7k2",
                principal_scope="apikey:BedrockAPIKey-x7k2",
                partition="aws",
                account="111122223333",
                user_name="BedrockAPIKey-x7k2",
            ),
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B",
            Principal(
                kind=PrincipalKind.ASSUMED_ROLE,
                arn="arn:aws:sts::111122223333:assumed-role/ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B",
                principal_scope="session:ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B",
                partition="aws",
                account="111122223333",
                role_name="ChatbotApp-BedrockRole",
                session_name="chatbot-prod-ChatFunction-1A2B",
                role_scope="role:ChatbotApp-BedrockRole",
            ),
        ),
        (
            "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b/bob@example.com",
            Principal(
                kind=PrincipalKind.ASSUMED_ROLE,
                arn="arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b/bob@example.com",
                principal_scope="session:AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b/bob@example.com",
                partition="aws",
                account="111122223333",
                role_name="AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b",
                session_name="bob@example.com",
                role_scope="role:AWSReservedSSO_Dev_1a2b3c4d5e6f7a8b",
            ),
        ),
        (
            "arn:aws:iam::111122223333:root",
            Principal(
                kind=PrincipalKind.ROOT,
                arn="arn:aws:iam::111122223333:root",
                principal_scope="account:111122223333",
                partition="aws",
                account="111122223333",
            ),
        ),
        (
            "arn:aws:sts::111122223333:federated-user/bob",
            Principal(
                kind=PrincipalKind.FEDERATED_USER,
                arn="arn:aws:sts::111122223333:federated-user/bob",
                principal_scope="unknown:arn:aws:sts::111122223333:federated-user/bob",
                partition="aws",
                account="111122223333",
                session_name="bob",
            ),
        ),
        (
            "arn:aws-us-gov:iam::123456789012:user/alice",
            Principal(
                kind=PrincipalKind.IAM_USER,
                arn="arn:aws-us-gov:iam::123456789012:user/alice",
                principal_scope="user:alice",
                partition="aws-us-gov",
                account="123456789012",
                user_name="alice",
            ),
        ),
        (
            "arn:aws-cn:sts::123456789012:assumed-role/Ops/jo",
            Principal(
                kind=PrincipalKind.ASSUMED_ROLE,
                arn="arn:aws-cn:sts::123456789012:assumed-role/Ops/jo",
                principal_scope="session:Ops/jo",
                partition="aws-cn",
                account="123456789012",
                role_name="Ops",
                session_name="jo",
                role_scope="role:Ops",
            ),
        ),
    ],
)
def test_identity_arn_forms(arn: str, expected: Principal) -> None:
    assert parse_identity_arn(arn) == expected


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sts::xxxx",  # as masked in a published record
        "arn:aws:iam::111122223333:role/ChatbotApp-BedrockRole",  # a role ARN never calls
        "arn:aws:sts::111122223333:assumed-role/OnlyARole",
        "arn:aws:sts::111122223333:assumed-role/Role/with space",
        "arn:aws:s3:::my-bucket",
        "arn:aws:iam::11112222333:user/alice",  # 11-digit account
        "AIDAIHL7V6WZEXAMPLEVU",
        "",
    ],
)
def test_unrecognised_arns_are_unknown_principals_never_guessed(arn: str) -> None:
    principal = parse_identity_arn(arn)

    assert principal == Principal(kind=PrincipalKind.UNKNOWN, arn=arn, principal_scope=f"unknown:{arn}")
    assert principal.role_scope is None
    assert not principal.is_sso


def test_sso_roles_are_recognised() -> None:
    sso = parse_identity_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/bob@example.com")
    app_role = parse_identity_arn(f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/s1")
    user = parse_identity_arn(f"arn:aws:iam::{ACCOUNT}:user/alice")

    assert (sso.is_sso, app_role.is_sso, user.is_sso) == (True, False, False)


def test_parsing_is_cached_by_arn() -> None:
    arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{SSO_ROLE}/bob@example.com"

    assert parse_identity_arn(arn) is parse_identity_arn(arn)


# --- attribute: principals and roles ---------------------------------------------------------------


def attribute_fixture(
    name: str,
    *,
    teams: Mapping[str, str] = NO_TEAMS,
    profile_tags: Callable[[str], Mapping[str, str]] | None = None,
) -> Attribution:
    parsed = parse_invocation(log_message(load_invocation_log(name)))
    return attribute(parsed, teams=teams, profile_tags=profile_tags)


def test_two_sso_users_on_one_role_are_two_principals_with_one_role() -> None:
    bob = attribute_fixture("sso_session_bob")
    carol = attribute_fixture("sso_session_carol")

    assert bob.principal == f"session:{SSO_ROLE}/bob@example.com"
    assert carol.principal == f"session:{SSO_ROLE}/carol@example.com"
    assert bob.role == carol.role == f"role:{SSO_ROLE}"


def test_api_key_user_is_charged_to_its_apikey_scope() -> None:
    attribution = attribute_fixture("api_key_user")

    assert attribution == Attribution(
        principal="apikey:BedrockAPIKey-x7k2",
        role=None,
        app=None,
        team=None,
        account="account:111122223333",
        scopes=("apikey:BedrockAPIKey-x7k2", "account:111122223333"),
    )


def test_every_scope_in_order_principal_role_app_team_account() -> None:
    attribution = attribute_fixture("app_role_chatbot", teams={"app:ChatbotApp": "support"})

    assert attribution.scopes == (
        "session:ChatbotApp-BedrockRole/chatbot-prod-ChatFunction-1A2B3C4D5E6F",
        "role:ChatbotApp-BedrockRole",
        "app:ChatbotApp",
        "team:support",
        "account:111122223333",
    )


def test_root_is_charged_to_its_account_once() -> None:
    attribution = attribute(invocation(f"arn:aws:iam::{ACCOUNT}:root"), teams=NO_TEAMS)

    assert attribution.principal == attribution.account == "account:111122223333"
    assert attribution.scopes == ("account:111122223333",)


def test_unknown_principal_is_recorded_as_unknown_with_its_account() -> None:
    attribution = attribute(invocation("arn:aws:sts::xxxx"), teams=NO_TEAMS)

    assert attribution == Attribution(
        principal="unknown:arn:aws:sts::xxxx",
        role=None,
        app=None,
        team=None,
        account="account:111122223333",
        scopes=("unknown:arn:aws:sts::xxxx", "account:111122223333"),
    )


def test_unknown_parts_stay_none() -> None:
    # Given an IAM user, a plain model id, no metadata and no team mapping
    attribution = attribute_fixture("invoke_model_claude3_sonnet")

    assert (attribution.role, attribution.app, attribution.team) == (None, None, None)
    assert attribution.scopes == ("user:alice", "account:111122223333")


# --- attribute: the app, by each rule and in precedence --------------------------------------------


def test_app_from_application_inference_profile_tag() -> None:
    call = invocation(f"arn:aws:iam::{ACCOUNT}:user/erin", model_id=PROFILE_ARN)

    attribution = attribute(
        call, teams=NO_TEAMS, profile_tags=tags_of({PROFILE_ARN: {"app": "SalesReports"}})
    )

    assert attribution.app == "app:SalesReports"


def test_app_from_role_name_convention() -> None:
    call = invocation(f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/s1")

    assert attribute(call, teams=NO_TEAMS).app == "app:ChatbotApp"


def test_app_from_request_metadata() -> None:
    call = invocation(f"arn:aws:iam::{ACCOUNT}:user/erin", request_metadata={"app": "SupportDesk"})

    assert attribute(call, teams=NO_TEAMS).app == "app:SupportDesk"


def test_app_metadata_key_is_configurable() -> None:
    call = invocation(f"arn:aws:iam::{ACCOUNT}:user/erin", request_metadata={"application": "SupportDesk"})

    assert attribute(call, teams=NO_TEAMS).app is None
    assert attribute(call, teams=NO_TEAMS, app_metadata_key="application").app == "app:SupportDesk"


def test_a_registered_profile_wins_over_role_and_metadata_and_is_trusted() -> None:
    # Given all three sources naming different apps, the profile registered by an operator
    call = invocation(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/s1",
        model_id=PROFILE_ARN,
        request_metadata={"app": "reports-cli"},
    )

    attribution = attribute(
        call,
        teams={"app:SalesReports": "finance"},
        profile_tags=tags_of({PROFILE_ARN: {"app": "Other"}}),
        registered_profiles={PROFILE_ARN: "SalesReports"},
    )

    assert (attribution.app, attribution.app_claimed, attribution.team) == (
        "app:SalesReports",
        False,
        "team:finance",
    )


def test_an_unregistered_profile_tag_is_a_claim_below_the_role_name() -> None:
    # Anyone allowed to create and tag profiles can write any app in the tag
    tags = tags_of({PROFILE_ARN: {"app": "SalesReports"}})
    by_role = invocation(
        f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/s1", model_id=PROFILE_ARN
    )
    by_user = invocation(
        f"arn:aws:iam::{ACCOUNT}:user/erin", model_id=PROFILE_ARN, request_metadata={"app": "reports-cli"}
    )

    assert attribute(by_role, teams=NO_TEAMS, profile_tags=tags).app == "app:ChatbotApp"
    claimed = attribute(by_user, teams={"app:SalesReports": "finance"}, profile_tags=tags)
    assert (claimed.app, claimed.app_claimed, claimed.team) == ("app:SalesReports", True, None)


def test_a_claimed_app_never_puts_the_call_in_the_apps_team() -> None:
    # Given the data team's app, claimed by an outsider in requestMetadata
    call = invocation(f"arn:aws:iam::{ACCOUNT}:user/mallory", request_metadata={"app": "DataApp"})

    attribution = attribute(call, teams={"app:DataApp": "data"})

    # Then the app is charged (a claim), the team is not
    assert attribution.scopes == ("user:mallory", "app:DataApp", "account:111122223333")
    assert attribution.app_claimed


def test_role_convention_wins_over_metadata() -> None:
    # The chatbot fixture's requestMetadata says app "chatbot-web"; its role says ChatbotApp
    assert attribute_fixture("app_role_chatbot").app == "app:ChatbotApp"


def test_profile_fixture_app_comes_from_its_tag() -> None:
    profile_tags = tags_of({PROFILE_ARN: {"app": "SalesReports", "team": "finance"}})

    assert (
        attribute_fixture("application_inference_profile", profile_tags=profile_tags).app
        == "app:SalesReports"
    )


def test_profile_without_app_tag_falls_through_to_the_next_rule() -> None:
    call = invocation(
        f"arn:aws:iam::{ACCOUNT}:user/erin", model_id=PROFILE_ARN, request_metadata={"app": "Self"}
    )

    attribution = attribute(call, teams=NO_TEAMS, profile_tags=tags_of({PROFILE_ARN: {"cost-center": "42"}}))

    assert attribution.app == "app:Self"


def test_without_profile_tags_the_profile_rule_is_skipped() -> None:
    call = invocation(
        f"arn:aws:iam::{ACCOUNT}:user/erin", model_id=PROFILE_ARN, request_metadata={"app": "Self"}
    )

    assert attribute(call, teams=NO_TEAMS).app == "app:Self"


def test_tags_are_only_read_for_application_inference_profiles() -> None:
    asked: list[str] = []

    def profile_tags(arn: str) -> Mapping[str, str]:
        asked.append(arn)
        return {"app": "Wrong"}

    system_profile = (
        f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0"
    )
    attribute(
        invocation(f"arn:aws:iam::{ACCOUNT}:user/erin", model_id=system_profile),
        teams=NO_TEAMS,
        profile_tags=profile_tags,
    )

    assert asked == []


@pytest.mark.parametrize(
    "role",
    ["-BedrockRole", "ChatbotApp-BedrockRoleV2", "ChatbotAppBedrockRole", "ChatbotApp-Role"],
)
def test_roles_outside_the_convention_name_no_app(role: str) -> None:
    call = invocation(f"arn:aws:sts::{ACCOUNT}:assumed-role/{role}/s1")

    assert attribute(call, teams=NO_TEAMS).app is None


@pytest.mark.parametrize("claimed", ["", " padded ", "tab\there"])
def test_unusable_metadata_app_names_are_ignored(claimed: str) -> None:
    call = invocation(f"arn:aws:iam::{ACCOUNT}:user/erin", request_metadata={"app": claimed})

    assert attribute(call, teams=NO_TEAMS).app is None


# --- attribute: the team ---------------------------------------------------------------------------

CHATBOT_SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/s1"


@pytest.mark.parametrize(
    ("teams", "expected"),
    [
        ({"session:ChatbotApp-BedrockRole/s1": "data"}, "team:data"),
        ({"role:ChatbotApp-BedrockRole": "platform"}, "team:platform"),
        ({"app:ChatbotApp": "support"}, "team:support"),
        (
            {
                "session:ChatbotApp-BedrockRole/s1": "data",
                "role:ChatbotApp-BedrockRole": "platform",
                "app:ChatbotApp": "x",
            },
            "team:data",
        ),
        ({"role:ChatbotApp-BedrockRole": "platform", "app:ChatbotApp": "support"}, "team:platform"),
        ({"user:someone-else": "data"}, None),
    ],
)
def test_team_from_principal_then_role_then_app(teams: Mapping[str, str], expected: str | None) -> None:
    assert attribute(invocation(CHATBOT_SESSION), teams=teams).team == expected


def test_sso_users_share_a_team_mapped_on_their_role() -> None:
    teams = {f"role:{SSO_ROLE}": "data"}

    assert attribute_fixture("sso_session_bob", teams=teams).team == "team:data"
    assert attribute_fixture("sso_session_carol", teams=teams).team == "team:data"


def test_team_of_an_iam_user() -> None:
    attribution = attribute(invocation(f"arn:aws:iam::{ACCOUNT}:user/alice"), teams={"user:alice": "data"})

    assert attribution.scopes == ("user:alice", "team:data", "account:111122223333")


# --- is_application_inference_profile -------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [
        (PROFILE_ARN, True),
        ("arn:aws-us-gov:bedrock:us-gov-west-1:123456789012:application-inference-profile/abc123", True),
        (
            f"arn:aws:bedrock:us-east-1:{ACCOUNT}:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
            False,
        ),
        (f"arn:aws:bedrock:us-east-1:{ACCOUNT}:provisioned-model/t2nq8y4c6w1z", False),
        ("anthropic.claude-3-haiku-20240307-v1:0", False),
    ],
)
def test_application_inference_profile_arns(model_id: str, expected: bool) -> None:
    assert is_application_inference_profile(model_id) is expected


# --- parse_scope -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "name"),
    [
        ("user:alice", ScopeKind.USER, "alice"),
        ("apikey:BedrockAPIKey-x7k2", ScopeKind.APIKEY, "BedrockAPIKey-x7k2"),
        ("role:ChatbotApp-BedrockRole", ScopeKind.ROLE, "ChatbotApp-BedrockRole"),
        (
            "session:AWSReservedSSO_Dev_1a2b/bob@example.com",
            ScopeKind.SESSION,
            "AWSReservedSSO_Dev_1a2b/bob@example.com",
        ),
        ("app:ChatbotApp", ScopeKind.APP, "ChatbotApp"),
        ("app:Chatbot App", ScopeKind.APP, "Chatbot App"),
        ("team:data", ScopeKind.TEAM, "data"),
        ("account:111122223333", ScopeKind.ACCOUNT, "111122223333"),
        ("  user:alice\n", ScopeKind.USER, "alice"),
    ],
)
def test_parse_scope_round_trips(text: str, kind: ScopeKind, name: str) -> None:
    scope = parse_scope(text)

    assert scope == Scope(kind, name)
    assert str(scope) == text.strip()


def test_scope_kinds() -> None:
    assert SCOPE_KINDS == (
        "user",
        "apikey",
        "role",
        "session",
        "app",
        "team",
        "account",
        "project",
        "person",
        "ou",
    )


USE_ONE_OF_KINDS = "use one of user, apikey, role, session, app, team, account, project, person, ou"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("usr:alice", f"unknown scope kind 'usr' in 'usr:alice': {USE_ONE_OF_KINDS}"),
        ("alice", "scope 'alice' has no kind: type kind:name, e.g. user:alice or team:data"),
        ("team:", "scope 'team:' has no name: type e.g. team:data"),
        ("account:1234", "'1234' is not a 12-digit AWS account id: type e.g. account:111122223333"),
        (
            "session:bob@example.com",
            "session scope 'session:bob@example.com' needs <role name>/<session name>: "
            "type e.g. session:AWSReservedSSO_Dev_1a2b/bob@example.com",
        ),
        (
            "user:BedrockAPIKey-x7k2",
            "IAM user 'BedrockAPIKey-x7k2' is a Bedrock API-key user: type apikey:BedrockAPIKey-x7k2",
        ),
        (
            "apikey:alice",
            "API-key users are IAM users named BedrockAPIKey-...: type e.g. apikey:BedrockAPIKey-x7k2, "
            "or user:alice for another IAM user",
        ),
        (
            "user:alice smith",
            "'alice smith' is not an IAM name (letters, digits, +=,.@_-): type e.g. user:alice",
        ),
        (
            "app: padded",
            "scope name ' padded' has surrounding spaces or control characters: type e.g. app:ChatbotApp",
        ),
        (
            "unknown:arn:aws:sts::xxxx",
            f"unknown scope kind 'unknown' in 'unknown:arn:aws:sts::xxxx': {USE_ONE_OF_KINDS}",
        ),
        (
            "user:prod/alice",
            "'prod' in 'user:prod/alice' is not a 12-digit AWS account id: type e.g. user:alice, "
            "or user:111122223333/alice for a member account's",
        ),
        (
            "user:111122223333/BedrockAPIKey-x7k2",
            "IAM user '111122223333/BedrockAPIKey-x7k2' is a Bedrock API-key user: "
            "type apikey:111122223333/BedrockAPIKey-x7k2",
        ),
        (
            "session:111122223333/Shared/bob/x",
            "session scope 'session:111122223333/Shared/bob/x' needs <role name>/<session name>: "
            "type e.g. session:AWSReservedSSO_Dev_1a2b/bob@example.com",
        ),
    ],
)
def test_parse_scope_errors_say_what_to_type(text: str, message: str) -> None:
    with pytest.raises(InvalidScope) as raised:
        parse_scope(text)

    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("text", "account", "local_name"),
    [
        ("user:alice", None, "alice"),
        ("user:111122223333/alice", "111122223333", "alice"),
        ("apikey:111122223333/BedrockAPIKey-x7k2", "111122223333", "BedrockAPIKey-x7k2"),
        ("role:111122223333/ChatbotApp-BedrockRole", "111122223333", "ChatbotApp-BedrockRole"),
        ("session:Shared/bob", None, "Shared/bob"),
        # A role may be named with 12 digits: one slash is still <role>/<session>
        ("session:111122223333/bob", None, "111122223333/bob"),
        ("session:111122223333/Shared/bob", "111122223333", "Shared/bob"),
    ],
)
def test_a_member_accounts_principal_names_its_account(
    text: str, account: str | None, local_name: str
) -> None:
    scope = parse_scope(text)
    assert str(scope) == text
    assert split_account(scope.name, session=scope.kind is ScopeKind.SESSION) == (account, local_name)


def test_team_and_app_names_name_no_account() -> None:
    # Not IAM principals: a slash in their names is part of the name, as it was
    assert str(parse_scope("team:data/eng")) == "team:data/eng"
    assert str(parse_scope("app:111122223333/chat")) == "app:111122223333/chat"


def test_attributed_scopes_parse_back_to_themselves() -> None:
    attribution = attribute_fixture("app_role_chatbot", teams={"app:ChatbotApp": "support"})

    assert [str(parse_scope(scope)) for scope in attribution.scopes] == list(attribution.scopes)


# --- organization mode: member accounts' principals, people ----------------------------------------

CENTRAL = "999988887777"


@pytest.mark.parametrize(
    ("arn", "principal", "role"),
    [
        (f"arn:aws:iam::{ACCOUNT}:user/alice", f"user:{ACCOUNT}/alice", None),
        (f"arn:aws:iam::{ACCOUNT}:user/BedrockAPIKey-x7k2", f"apikey:{ACCOUNT}/BedrockAPIKey-x7k2", None),
        (
            f"arn:aws:sts::{ACCOUNT}:assumed-role/ChatbotApp-BedrockRole/fn",
            f"session:{ACCOUNT}/ChatbotApp-BedrockRole/fn",
            f"role:{ACCOUNT}/ChatbotApp-BedrockRole",
        ),
        (f"arn:aws:iam::{ACCOUNT}:root", f"account:{ACCOUNT}", None),
        (f"arn:aws:iam::{CENTRAL}:user/alice", "user:alice", None),
    ],
)
def test_a_member_accounts_principal_is_named_with_its_account(arn, principal, role):
    attribution = attribute(invocation(arn), teams=NO_TEAMS, home_account=CENTRAL)
    assert (attribution.principal, attribution.role) == (principal, role)
    # Every scope a member's call is charged to names a principal that parse_scope accepts
    for scope in attribution.scopes:
        assert str(parse_scope(scope)) == scope


def test_a_person_and_a_team_join_identities_of_several_accounts():
    people = {f"user:{ACCOUNT}/alice": "alice.martin", "user:alice": "alice.martin"}
    teams = {f"user:{ACCOUNT}/alice": "data"}
    member = attribute(
        invocation(f"arn:aws:iam::{ACCOUNT}:user/alice"), teams=teams, people=people, home_account=CENTRAL
    )
    central = attribute(
        invocation(f"arn:aws:iam::{CENTRAL}:user/alice"), teams=teams, people=people, home_account=CENTRAL
    )
    assert member.scopes == (
        f"user:{ACCOUNT}/alice",
        "team:data",
        "person:alice.martin",
        f"account:{ACCOUNT}",
    )
    assert central.person == "person:alice.martin" and central.team is None
    # Without organization mode nothing is qualified: a one-account stack is unchanged
    assert (
        attribute(invocation(f"arn:aws:iam::{ACCOUNT}:user/alice"), teams=NO_TEAMS).principal == "user:alice"
    )
