"""Organization mode: the DenyFunction of the central account (moto's 123456789012) denying a
principal of a member account (111122223333) through that account's BudgetkeeperEnforcement role.

moto serves both accounts: STS AssumeRole into the member account gives credentials there. The
member account holds what templates/member-account.yaml creates, written from that template.
moto does not evaluate trust policies, so a role that cannot be assumed is AWS's refusal played
by botocore's Stubber.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

from budgetkeeper.budgets.targets import Target, TargetKind, deny_target
from budgetkeeper.enforcement import deny_tasks
from budgetkeeper.enforcement.principals import iam_directory, why_not_suspendable
from budgetkeeper.storage.tables import BudgetItem, DenyItem
from devkit.harness.lambdas import invoke
from devkit.harness.organization import MemberAccount
from devkit.harness.stack import ACCOUNT_ID
from tests.integration.test_enforcement_workflow import notifications

MEMBER = "111122223333"
ALICE = f"user:{MEMBER}/alice"
MEMBER_DENY = f"arn:aws:iam::{MEMBER}:policy/budgetkeeper/BudgetkeeperBedrockDeny"


@pytest.fixture
def member(stack, settings):
    """The member account as the member stack leaves it, and alice, one of its IAM users."""
    iam = MemberAccount(MEMBER).deploy(stack).client("iam")
    iam.create_user(UserName="alice")
    return iam


def apply_denies(stack, scope: str, execution: str = "run-1") -> dict:
    """The workflow's apply step, on the real DenyFunction handler, for a budget of `scope`."""
    target = deny_target(scope, iam_directory(stack.client("iam")))
    state = {"scope": scope, "window": "daily", "decision": {"next": "suspend", "target": target.to_dict()}}
    return invoke("DenyFunction", {"task": "apply_denies", "state": state, "execution": execution})


def member_denied(iam) -> set[str]:
    entities = iam.list_entities_for_policy(PolicyArn=MEMBER_DENY)
    return {user["UserName"] for user in entities["PolicyUsers"]}


def home_denied(stack) -> list[dict]:
    deny = stack.physical_ids["BedrockDenyPolicy"]
    return stack.client("iam").list_entities_for_policy(PolicyArn=deny)["PolicyUsers"]


def test_a_member_accounts_user_is_denied_in_that_account(stack, member):
    assert deny_target(ALICE, iam_directory(stack.client("iam"))) == Target(
        TargetKind.USER, f"{MEMBER}/alice"
    )
    # When alice of the member account is over her budget and the workflow applies the deny
    state = apply_denies(stack, ALICE)
    # Then the member account's deny policy is on her there, the record names her account, and
    # nothing changed in the central account
    assert state["denies"]["applied"] == [ALICE] and state["denies"]["suspended"]
    assert member_denied(member) == {"alice"}
    assert [item.entry for item in DenyItem.scan()] == [ALICE]
    assert home_denied(stack) == []
    # And the release lifts it there
    released = invoke(
        "DenyFunction", {"task": "release_denies", "state": {"scope": ALICE, "window": "daily"}}
    )
    assert released["released"]["lifted"] == [ALICE]
    assert member_denied(member) == set()


def test_the_central_accounts_own_id_names_the_same_principal_as_no_id(stack, member):
    stack.client("iam").create_user(UserName="bob")
    apply_denies(stack, f"user:{ACCOUNT_ID}/bob")
    assert [user["UserName"] for user in home_denied(stack)] == ["bob"]
    assert [item.entry for item in DenyItem.scan()] == ["user:bob"]


class RefusedAssumeRole:
    """STS as AWS answers when the member role's trust does not admit the DenyFunction."""

    def __init__(self) -> None:
        self.real_client = boto3.client
        self.refusing = True

    def client(self, service: str, *args, **kwargs):
        client = self.real_client(service, *args, **kwargs)
        if service == "sts" and self.refusing:
            stubber = Stubber(client)
            stubber.add_client_error(
                "assume_role",
                service_error_code="AccessDenied",
                service_message="User is not authorized to perform: sts:AssumeRole",
                http_status_code=403,
            )
            stubber.activate()
        return client


def test_a_member_role_that_cannot_be_assumed_is_alerted_and_retried(stack, member, monkeypatch):
    sts = RefusedAssumeRole()
    monkeypatch.setattr(deny_tasks.boto3, "client", sts.client)
    BudgetItem(ALICE, "daily", limit_usd=Decimal("1"), status="suspended").save()
    # When the apply step cannot assume the member account's role
    state = apply_denies(stack, ALICE)
    # Then nothing is denied yet, but the deny is held (the budget is suspended) and pending ...
    assert member_denied(member) == set()
    assert state["denies"]["applied"] == [] and state["denies"]["suspended"]
    assert [pending["entry"] for pending in state["denies"]["pending"]] == [ALICE]
    assert {item.entry: item.holders for item in DenyItem.scan()} == {ALICE: {f"{ALICE}|daily"}}
    # ... and operators are told, urgently, which account and what is not denied there
    (told,) = [n for n in notifications(stack) if n["type"] == "member_account_unreachable"]
    assert (
        told["scope"] == f"account:{MEMBER}" and ALICE in told["reason"] and "AccessDenied" in told["reason"]
    )
    # When the reconciler runs while the role is still refused: still held, retried, not told again
    report = invoke("DenyFunction", {"task": "reconcile"})
    assert [pending["entry"] for pending in report["pending"]] == [ALICE]
    assert unreachable_notices(stack) == 1
    # And once the role can be assumed, the next reconcile denies alice in her account
    sts.refusing = False
    report = invoke("DenyFunction", {"task": "reconcile"})
    assert report["pending"] == [] and f"{ALICE}: deny attached" in report["fixes"]
    assert member_denied(member) == {"alice"}


def test_the_reconciler_lifts_a_deny_no_record_holds_in_a_member_account(stack, member):
    member.create_user(UserName="mallory")
    apply_denies(stack, ALICE)
    # Someone attached the deny policy on mallory there by hand: no budget holds it
    member.attach_user_policy(UserName="mallory", PolicyArn=MEMBER_DENY)
    report = invoke("DenyFunction", {"task": "reconcile"})
    assert f"user:{MEMBER}/mallory: deny detached (no budget holds it)" in report["fixes"]
    assert member_denied(member) == {"alice"}


def unreachable_notices(stack) -> int:
    return len([n for n in notifications(stack) if n["type"] == "member_account_unreachable"])


def test_an_unreachable_member_account_is_told_once_an_episode_then_reminded_daily(
    stack, member, monkeypatch, clock
):
    sts = RefusedAssumeRole()
    monkeypatch.setattr(deny_tasks.boto3, "client", sts.client)
    BudgetItem(ALICE, "daily", limit_usd=Decimal("1"), status="suspended").save()
    apply_denies(stack, ALICE)
    assert unreachable_notices(stack) == 1
    # Every sweep of the next day retries the account; none tells operators again ...
    for _ in range(3):
        clock.advance(timedelta(hours=7))
        assert [p["entry"] for p in invoke("DenyFunction", {"task": "reconcile"})["pending"]] == [ALICE]
    assert unreachable_notices(stack) == 1
    # ... until a day has passed since they were told: then a reminder
    clock.advance(timedelta(hours=4))
    invoke("DenyFunction", {"task": "reconcile"})
    assert unreachable_notices(stack) == 2
    # Once the role can be assumed the deny is attached and the episode is over
    sts.refusing = False
    assert invoke("DenyFunction", {"task": "reconcile"})["pending"] == []
    assert member_denied(member) == {"alice"}
    # And when it is refused again, an hour later, that is a new episode: told at once
    sts.refusing = True
    clock.advance(timedelta(hours=1))
    invoke("DenyFunction", {"task": "reconcile"})
    assert unreachable_notices(stack) == 3


def test_a_release_in_an_unreachable_member_account_is_kept_until_the_reconciler_lifts_it(
    stack, member, monkeypatch
):
    apply_denies(stack, ALICE)
    sts = RefusedAssumeRole()
    monkeypatch.setattr(deny_tasks.boto3, "client", sts.client)
    # When the budget's window refreshes while the member role is refused
    state = invoke("DenyFunction", {"task": "release_denies", "state": {"scope": ALICE, "window": "daily"}})
    # Then alice is still denied there, so nothing says lifted; the record stays, without a holder
    assert state["released"]["lifted"] == [] and member_denied(member) == {"alice"}
    assert {item.entry: item.holders for item in DenyItem.scan()} == {ALICE: None}
    assert [n["scope"] for n in notifications(stack) if n["type"] == "member_account_unreachable"] == [
        f"account:{MEMBER}"
    ]
    # And the first reconcile that reaches the account lifts the deny and forgets the record
    sts.refusing = False
    report = invoke("DenyFunction", {"task": "reconcile"})
    assert f"{ALICE}: deny detached (no budget holds it)" in report["fixes"]
    assert member_denied(member) == set() and list(DenyItem.scan()) == []


@pytest.mark.parametrize("scope", [ALICE, f"session:{MEMBER}/Shared/bob", f"role:{MEMBER}/App-BedrockRole"])
def test_an_operator_may_suspend_a_member_accounts_principal(stack, scope):
    # The operator's credentials see only the central account's IAM: the check leaves a member
    # account's principal to the DenyFunction instead of calling it missing
    assert why_not_suspendable(stack.client("iam"), scope) is None
    assert (
        why_not_suspendable(stack.client("iam"), "user:nobody")
        == "cannot suspend user:nobody: there is no IAM user nobody"
    )
