"""The IAM of a member account, for the denies there: reached through the BudgetkeeperEnforcement
role that templates/member-account.yaml puts in every member account (organization mode).

The DenyFunction assumes a member's role when it first meets a deny in that account, once per
invocation (it runs for two minutes at most; the credentials last an hour). A role that cannot be
assumed raises MemberAccountUnreachable: the deny stays recorded, operators are told, and the next
reconcile tries again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError

from budgetkeeper.enforcement.denies import MemberAccountUnreachable
from budgetkeeper.enforcement.iam_denies import IamDenies

# The names templates/member-account.yaml gives them, the same in every member account.
MEMBER_ROLE_NAME = "BudgetkeeperEnforcement"
MEMBER_DENY_POLICY = "policy/budgetkeeper/BudgetkeeperBedrockDeny"
ROLE_SESSION_NAME = "budgetkeeper-deny"


def member_role_arn(partition: str, account: str) -> str:
    return f"arn:{partition}:iam::{account}:role/{MEMBER_ROLE_NAME}"


@dataclass
class MemberAccounts:
    """Each member account's IamDenies, as the home account's, through its assumed role."""

    home: IamDenies
    sts: Any
    # Per invocation: an account refused once is not asked again until the next invocation.
    _reached: dict[str, IamDenies | MemberAccountUnreachable] = field(default_factory=dict)

    def __call__(self, account: str) -> IamDenies:
        if account not in self._reached:
            try:
                self._reached[account] = self._assume(account)
            except MemberAccountUnreachable as error:
                self._reached[account] = error
        reached = self._reached[account]
        if isinstance(reached, MemberAccountUnreachable):
            raise reached
        return reached

    def _assume(self, account: str) -> IamDenies:
        partition = self.home.deny_policy_arn.split(":")[1]
        role_arn = member_role_arn(partition, account)
        try:
            response = self.sts.assume_role(RoleArn=role_arn, RoleSessionName=ROLE_SESSION_NAME)
        except ClientError as error:
            raise MemberAccountUnreachable(
                account,
                f"cannot assume {role_arn}: {error.response.get('Error', {}).get('Code')}: "
                f"{error.response.get('Error', {}).get('Message')} (is templates/member-account.yaml "
                "deployed there, trusting this stack's DenyFunction role?)",
            ) from error
        credentials = response["Credentials"]
        iam = boto3.client(
            "iam",
            aws_access_key_id=credentials["AccessKeyId"],
            aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        deny_policy_arn = f"arn:{partition}:iam::{account}:{MEMBER_DENY_POLICY}"
        return IamDenies(iam, deny_policy_arn, self.home.identity_center)
