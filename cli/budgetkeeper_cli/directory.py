"""Teams, users and Bedrock API keys in IAM and the teams table: what `team` and `user` change.

- A team is the IAM group named like it (the group a team budget denies), under the path
  `/budgetkeeper/teams/`, created on first use with an inline policy that allows Bedrock inference,
  and the teams table's mapping of member scopes to it (what the metering charges to the team).
- A person (`person:NAME`) is the teams table's `person` on the identities operators say are one
  human, in one account or several (organization mode): the metering charges each of their calls
  to the person as well, and a person's budget denies every one of those identities.
- A user is an IAM user under `/budgetkeeper/users/`, tagged with its person, team, e-mail and
  language (`budgetkeeper.core.tags`), a member of its team's group and mapped to its team.
- All keys of one IAM user log the same identity, so an API key is made for one (user, tool): the
  IAM user `BedrockAPIKey-<user>-<tool>` under `/budgetkeeper/apikeys/`, tagged like its user plus
  the tool, in the same group and team; it is the `apikey:` scope, and `user info` rolls it up to
  its user. The key is a Bedrock service-specific credential, shown once.

Nothing here attaches or detaches the deny policy while a budget holds it: that is the workflow's
DenyFunction. Deleting a user detaches our deny only once no budget of the user is enforcing.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from budgetkeeper.core.tags import USER_TAG, tag_list, tags_of
from budgetkeeper.domain.scopes import API_KEY_USER_PREFIX, ScopeKind, split_account
from budgetkeeper.storage.tables import TeamItem
from budgetkeeper_cli.errors import CommandFailed, UsageError

TEAM_GROUP_PATH = "/budgetkeeper/teams/"
USER_PATH = "/budgetkeeper/users/"
API_KEY_USER_PATH = "/budgetkeeper/apikeys/"
BEDROCK_SERVICE = "bedrock.amazonaws.com"
INVOKE_POLICY_NAME = "BudgetkeeperBedrockInvoke"
# What a team member may call; the deny policy (attached while a budget is suspended) wins over it.
INVOKE_ACTIONS = (
    "bedrock:InvokeModel",
    "bedrock:InvokeModelWithResponseStream",
    "bedrock:CallWithBearerToken",
    "bedrock:ListFoundationModels",
    "bedrock:GetFoundationModel",
    "bedrock:ListInferenceProfiles",
    "bedrock:GetInferenceProfile",
)
_TEAM_NAME = re.compile(r"[\w+=,.@-]{1,128}", re.ASCII)
_TOOL_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,31}", re.ASCII)
IAM_USER_NAME_LIMIT = 64


def invoke_policy_document() -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "BedrockInference",
                    "Effect": "Allow",
                    "Action": list(INVOKE_ACTIONS),
                    "Resource": "*",
                }
            ],
        }
    )


def team_name(text: str) -> str:
    cleaned = text.strip()
    if not _TEAM_NAME.fullmatch(cleaned):
        raise UsageError(
            f"team {text!r} is not an IAM group name (letters, digits, +=,.@_-, at most 128): "
            "type e.g. data or platform"
        )
    return cleaned


def tool_name(text: str) -> str:
    cleaned = text.strip().lower()
    if not _TOOL_NAME.fullmatch(cleaned):
        raise UsageError(
            f"--tool {text!r}: use lower-case letters, digits and _ (at most 32), e.g. --tool cline "
            "or --tool claude_code"
        )
    return cleaned


def api_key_user_name(user: str, tool: str) -> str:
    name = f"{API_KEY_USER_PREFIX}{user}-{tool}"
    if len(name) > IAM_USER_NAME_LIMIT:
        raise UsageError(
            f"the API-key user {name} would be longer than IAM's {IAM_USER_NAME_LIMIT} characters: "
            "use a shorter --tool"
        )
    return name


def user_scope(user_name: str) -> str:
    kind = ScopeKind.APIKEY if user_name.startswith(API_KEY_USER_PREFIX) else ScopeKind.USER
    return f"{kind}:{user_name}"


@dataclass
class IamUser:
    name: str
    arn: str
    path: str
    tags: dict[str, str]
    groups: list[str] = field(default_factory=list)

    @property
    def scope(self) -> str:
        return user_scope(self.name)


@dataclass
class Directory:
    """IAM and the teams table, through one IAM client."""

    iam: Any

    # ------------------------------------------------------------------ teams

    def group_exists(self, team: str) -> bool:
        try:
            self.iam.get_group(GroupName=team)
        except self.iam.exceptions.NoSuchEntityException:
            return False
        return True

    def team_known(self, team: str) -> bool:
        return self.group_exists(team) or any(True for _ in TeamItem.scan(TeamItem.team == team, limit=1))

    def ensure_team_group(self, team: str) -> bool:
        """The team's group with its invoke policy; True when this call created it."""
        if self.group_exists(team):
            return False
        self.iam.create_group(GroupName=team, Path=TEAM_GROUP_PATH)
        self.iam.put_group_policy(
            GroupName=team, PolicyName=INVOKE_POLICY_NAME, PolicyDocument=invoke_policy_document()
        )
        return True

    def require_team(self, team: str) -> None:
        if not self.team_known(team):
            raise CommandFailed(
                f"unknown team {team!r}: create it with budgetkeeper team create {team} "
                "(budgetkeeper team list shows the teams)"
            )
        self.ensure_team_group(team)

    def teams(self) -> dict[str, list[str]]:
        """Every team (our groups and the teams table) with its mapped member scopes."""
        teams: dict[str, list[str]] = {}
        for page in self.iam.get_paginator("list_groups").paginate(PathPrefix=TEAM_GROUP_PATH):
            for group in page["Groups"]:
                teams.setdefault(group["GroupName"], [])
        for item in TeamItem.scan(TeamItem.team.exists()):
            teams.setdefault(item.team, []).append(item.principal)
        return {team: sorted(members) for team, members in sorted(teams.items())}

    def members(self, team: str) -> list[str]:
        return sorted(item.principal for item in TeamItem.scan(TeamItem.team == team))

    def group_users(self, team: str) -> list[str]:
        if not self.group_exists(team):
            return []
        users: list[str] = []
        for page in self.iam.get_paginator("get_group").paginate(GroupName=team):
            users.extend(user["UserName"] for user in page["Users"])
        return sorted(users)

    def map_member(self, scope: str, team: str) -> str | None:
        """Map `scope` to `team` (and put a user in the team's group); returns the team it left."""
        try:
            previous: str | None = TeamItem.get(scope, consistent_read=True).team
        except TeamItem.DoesNotExist:
            previous = None
        user = _user_of_scope(scope)
        if user is not None:
            try:
                self.iam.add_user_to_group(GroupName=team, UserName=user)
            except self.iam.exceptions.NoSuchEntityException:
                raise CommandFailed(
                    f"no IAM user {user}: budgetkeeper user create {user} --person ... --team {team} "
                    "creates one in the team"
                ) from None
            if previous and previous != team and self.group_exists(previous):
                self._leave_group(user, previous)
        TeamItem(scope).update(actions=[TeamItem.team.set(team)])  # keeps the scope's person
        return previous if previous != team else None

    def unmap_member(self, scope: str, team: str) -> None:
        _unmap(scope, TeamItem.team, team)
        user = _user_of_scope(scope)
        if user is not None and self.group_exists(team):
            self._leave_group(user, team)

    # ------------------------------------------------------------------ people

    @staticmethod
    def people() -> dict[str, list[str]]:
        """Every person with the identities mapped to them."""
        people: dict[str, list[str]] = {}
        for item in TeamItem.scan(TeamItem.person.exists()):
            people.setdefault(item.person, []).append(item.principal)
        return {person: sorted(identities) for person, identities in sorted(people.items())}

    @staticmethod
    def map_person(scope: str, person: str) -> str | None:
        """Map the identity `scope` to `person`; returns the person it was mapped to before."""
        try:
            previous: str | None = TeamItem.get(scope, consistent_read=True).person
        except TeamItem.DoesNotExist:
            previous = None
        TeamItem(scope).update(actions=[TeamItem.person.set(person)])  # keeps the scope's team
        return previous if previous != person else None

    @staticmethod
    def unmap_person(scope: str, person: str) -> None:
        _unmap(scope, TeamItem.person, person)

    def _leave_group(self, user: str, team: str) -> None:
        with contextlib.suppress(self.iam.exceptions.NoSuchEntityException):  # not a member
            self.iam.remove_user_from_group(GroupName=team, UserName=user)

    # ------------------------------------------------------------------ users

    def user(self, name: str) -> IamUser | None:
        try:
            found = self.iam.get_user(UserName=name)["User"]
        except self.iam.exceptions.NoSuchEntityException:
            return None
        tags = tags_of(self.iam.list_user_tags(UserName=name)["Tags"])
        groups = [group["GroupName"] for group in self.iam.list_groups_for_user(UserName=name)["Groups"]]
        return IamUser(found["UserName"], found["Arn"], found.get("Path", "/"), tags, groups)

    def create_user(self, name: str, path: str, tags: dict[str, str | None]) -> IamUser:
        try:
            created = self.iam.create_user(UserName=name, Path=path, Tags=tag_list(tags))["User"]
        except self.iam.exceptions.EntityAlreadyExistsException:
            raise CommandFailed(
                f"IAM user {name} already exists: budgetkeeper user info {name} shows it "
                "(pick another name, or delete it first with budgetkeeper user delete)"
            ) from None
        return IamUser(created["UserName"], created["Arn"], path, {k: v for k, v in tags.items() if v})

    def api_key_users(self, user: str) -> list[IamUser]:
        """The API-key users made for `user` by `create-key`."""
        found = []
        for page in self.iam.get_paginator("list_users").paginate(PathPrefix=API_KEY_USER_PATH):
            for entry in page["Users"]:
                if entry["UserName"].startswith(f"{API_KEY_USER_PREFIX}{user}-"):
                    key_user = self.user(entry["UserName"])
                    if key_user is not None and key_user.tags.get(USER_TAG) == user:
                        found.append(key_user)
        return sorted(found, key=lambda key_user: key_user.name)

    def create_api_key(self, key_user: str, age_days: int | None) -> dict[str, Any]:
        arguments: dict[str, Any] = {"UserName": key_user, "ServiceName": BEDROCK_SERVICE}
        if age_days is not None:
            arguments["CredentialAgeDays"] = age_days
        return dict(self.iam.create_service_specific_credential(**arguments)["ServiceSpecificCredential"])

    def api_keys(self, key_user: str) -> list[dict[str, Any]]:
        answer = self.iam.list_service_specific_credentials(UserName=key_user, ServiceName=BEDROCK_SERVICE)
        return list(answer.get("ServiceSpecificCredentials", []))

    def delete_user(self, user: IamUser, deny_policy_arn: str | None) -> list[str]:
        """Remove the user's keys, group memberships, our deny, mapping; then the user. What was done."""
        done: list[str] = []
        for key in self.api_keys(user.name):
            self.iam.delete_service_specific_credential(
                UserName=user.name, ServiceSpecificCredentialId=key["ServiceSpecificCredentialId"]
            )
            done.append(f"API key {key['ServiceSpecificCredentialId']} deleted")
        for group in user.groups:
            self.iam.remove_user_from_group(GroupName=group, UserName=user.name)
            done.append(f"left group {group}")
        attached = self.iam.list_attached_user_policies(UserName=user.name)["AttachedPolicies"]
        for policy in attached:
            if policy["PolicyArn"] == deny_policy_arn:
                self.iam.detach_user_policy(UserName=user.name, PolicyArn=policy["PolicyArn"])
                done.append("deny policy detached")
        try:
            TeamItem.get(user.scope).delete()
            done.append("team mapping removed")
        except TeamItem.DoesNotExist:
            pass
        try:
            self.iam.delete_user(UserName=user.name)
        except self.iam.exceptions.DeleteConflictException as error:
            raise CommandFailed(
                f"IAM refused to delete {user.name} ({error.response['Error']['Message']}): it has "
                "policies, access keys or a password Budgetkeeper did not give it; remove them, then run "
                "the command again"
            ) from None
        done.append("IAM user deleted")
        return done


def _user_of_scope(scope: str) -> str | None:
    """The central account's IAM user a scope names (a member account's is in no group here)."""
    kind, _, name = scope.partition(":")
    if kind not in (ScopeKind.USER, ScopeKind.APIKEY) or split_account(name)[0] is not None:
        return None
    return name


def _unmap(scope: str, attribute: Any, value: str) -> None:
    """Take `scope` out of its team or off its person (`attribute`), which must be `value`; the item
    goes when nothing is left on it."""
    what = attribute.attr_name  # "team" or "person"
    try:
        item = TeamItem.get(scope, consistent_read=True)
    except TeamItem.DoesNotExist:
        item = None
    mapped = getattr(item, what) if item is not None else None
    if item is None or mapped != value:
        verb = "is in" if attribute is TeamItem.team else "is mapped to"
        raise CommandFailed(f"{scope} {verb} {f'{what} {mapped}, not {value}' if mapped else f'no {what}'}")
    other = TeamItem.person if attribute is TeamItem.team else TeamItem.team
    if getattr(item, other.attr_name) is None and not item.contact:
        item.delete(condition=attribute == value)
    else:
        item.update(actions=[attribute.remove()], condition=attribute == value)
