"""Deny records and IAM kept in agreement (budgetkeeper.enforcement.denies), on moto IAM.

Each test applies and releases through the DenyBook and reads IAM back; the fault-injection test
fails after each IAM write in turn and checks that the reconciler leaves IAM exactly as the
records say.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from unittest import mock

import pytest
from botocore.exceptions import ClientError

from budgetkeeper.domain.policies import session_deny_problems
from budgetkeeper.enforcement import deny_tasks
from budgetkeeper.enforcement.denies import STALE_HOLDER_AFTER, DenyBook, DenyEntry, Outcomes
from budgetkeeper.enforcement.iam_denies import EntryKind
from budgetkeeper.enforcement.role_sessions import (
    POLICY_NAME_PREFIX,
    POLICY_PATH,
    session_policy_name,
    suspend_session,
    suspended_sessions,
)
from budgetkeeper.storage.tables import DenyItem
from devkit.harness.lambdas import invoke
from tests.integration.test_enforcement_workflow import notifications
from tests.opt_in import OPTED_IN


def holders_by_entry() -> dict[str, frozenset[str]]:
    """Every deny record and its holders, read back from the Denies table."""
    return {item.entry: frozenset(item.holders or ()) for item in DenyItem.scan(consistent_read=True)}


USER = DenyEntry(EntryKind.USER, "alice")
ROLE = DenyEntry(EntryKind.ROLE, "Chatbot-BedrockRole")
GROUP = DenyEntry(EntryKind.GROUP, "data")
SESSION = DenyEntry(EntryKind.SESSION, "Shared/alice")
OTHER_SESSION = DenyEntry(EntryKind.SESSION, "Shared/bob")


@pytest.fixture
def iam(stack, settings):
    client = stack.client("iam")
    client.create_user(UserName="alice")
    client.create_role(RoleName="Chatbot-BedrockRole", AssumeRolePolicyDocument="{}")
    client.create_role(RoleName="Shared", AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
    client.create_group(GroupName="data")
    return client


@pytest.fixture
def book(deny_book, iam) -> DenyBook:
    """The DenyBook on this test's IAM client, so that faults injected into it reach the book."""
    return DenyBook(replace(deny_book.iam, iam=iam))


def iam_state(stack, iam) -> set[str]:
    """Every deny IAM holds now, as entry keys."""
    deny = stack.physical_ids["BedrockDenyPolicy"]
    entities = iam.list_entities_for_policy(PolicyArn=deny)
    held = {f"user:{u['UserName']}" for u in entities["PolicyUsers"]}
    held |= {f"role:{r['RoleName']}" for r in entities["PolicyRoles"]}
    held |= {f"group:{g['GroupName']}" for g in entities["PolicyGroups"]}
    held |= {f"session:Shared/{s}" for s in suspended_sessions(iam, "Shared")}
    return held


def recorded() -> set[str]:
    return {entry for entry, holders in holders_by_entry().items() if holders}


def test_a_deny_is_recorded_with_its_holder_and_released_exactly(book, stack, iam):
    outcome = book.apply("user:alice|daily", [USER])
    assert outcome.applied == ["user:alice"]
    assert iam_state(stack, iam) == {"user:alice"}
    assert holders_by_entry() == {"user:alice": {"user:alice|daily"}}
    book.release(["user:alice|daily"])
    assert iam_state(stack, iam) == set()
    assert holders_by_entry() == {}


def test_two_budgets_on_one_principal_never_lift_each_others_deny(book, stack, iam):
    # An app and its role; a team and a member's session
    book.apply("app:Chatbot|monthly", [ROLE])
    book.apply("role:Chatbot-BedrockRole|daily", [ROLE])
    book.apply("team:data|monthly", [GROUP, SESSION])
    book.apply("session:Shared/alice|daily", [SESSION])
    book.release(["role:Chatbot-BedrockRole|daily", "session:Shared/alice|daily"])
    assert iam_state(stack, iam) == {"role:Chatbot-BedrockRole", "group:data", "session:Shared/alice"}
    book.release(["app:Chatbot|monthly", "team:data|monthly"])
    assert iam_state(stack, iam) == set()


def test_a_role_at_its_policy_quota_is_an_alert_and_holds_nothing(book, stack, iam, monkeypatch):
    # moto's IAM does not enforce the quota of 10 managed policies per role: inject IAM's answer
    real_attach = iam.attach_role_policy

    def quota(**kwargs):
        if kwargs["RoleName"] != "Chatbot-BedrockRole":
            return real_attach(**kwargs)
        raise ClientError(
            {"Error": {"Code": "LimitExceeded", "Message": "Cannot exceed quota for PoliciesPerRole: 10"}},
            "AttachRolePolicy",
        )

    monkeypatch.setattr(iam, "attach_role_policy", quota)
    outcome = book.apply("role:Chatbot-BedrockRole|daily", [ROLE, SESSION])
    assert outcome.applied == ["session:Shared/alice"]
    assert [entry["entry"] for entry in outcome.alert_only] == ["role:Chatbot-BedrockRole"]
    assert "PoliciesPerRole" in outcome.alert_only[0]["message"]
    assert recorded() == {"session:Shared/alice"}


def test_the_reconciler_removes_an_orphan_and_puts_back_a_missing_deny(book, stack, iam):
    deny = stack.physical_ids["BedrockDenyPolicy"]
    book.apply("user:alice|daily", [USER])
    # Someone detaches alice's deny by hand, and attaches ours to a group no budget holds
    iam.detach_user_policy(UserName="alice", PolicyArn=deny)
    iam.attach_group_policy(GroupName="data", PolicyArn=deny)
    outcome = book.reconcile(is_enforcing=lambda holder: True)
    assert iam_state(stack, iam) == {"user:alice"}
    assert sorted(outcome.fixes) == [
        "group:data: deny detached (no budget holds it)",
        "user:alice: deny attached",
    ]


def test_the_reconciler_drops_a_holder_whose_budget_stopped_enforcing(book, stack, iam, clock):
    book.apply("user:alice|daily", [USER])
    # Just after: an apply may be under way, so a holder is never dropped at once
    book.reconcile(is_enforcing=lambda holder: False)
    assert iam_state(stack, iam) == {"user:alice"}
    clock.advance(STALE_HOLDER_AFTER + timedelta(seconds=1))
    book.reconcile(is_enforcing=lambda holder: False)
    assert iam_state(stack, iam) == set() and holders_by_entry() == {}


def test_the_reconciler_releases_the_deny_of_a_principal_deleted_from_iam_once(book, stack, iam, clock):
    deny = stack.physical_ids["BedrockDenyPolicy"]
    book.apply("user:alice|daily", [USER])
    # An administrator detaches the deny and deletes alice (IAM deletes no user with policies)
    iam.detach_user_policy(UserName="alice", PolicyArn=deny)
    iam.delete_user(UserName="alice")
    outcome = book.reconcile(is_enforcing=lambda holder: True)
    assert outcome.fixes == ["user:alice: user alice no longer exists in IAM: its deny record was released"]
    assert holders_by_entry() == {}
    # and the next sweep has nothing to retry or to tell
    assert book.reconcile(is_enforcing=lambda holder: True).to_dict() == Outcomes().to_dict()


class InjectedFault(Exception):
    pass


APPLY_WRITES = (
    "attach_user_policy",
    "attach_role_policy",
    "attach_group_policy",
    "create_policy",
    "create_policy_version",
)
RELEASE_WRITES = (
    "detach_user_policy",
    "detach_role_policy",
    "detach_group_policy",
    "create_policy_version",
    "delete_policy_version",
    "delete_policy",
)


def fail_after_write(iam, monkeypatch, operations: tuple[str, ...], n: int) -> None:
    """The n-th call of any of `operations` completes in IAM, then the Lambda dies."""
    writes = {"count": 0}
    for name in operations:
        real = getattr(iam, name)

        def counted(*args, _real=real, **kwargs):
            result = _real(*args, **kwargs)
            writes["count"] += 1
            if writes["count"] == n:
                raise InjectedFault(f"died after IAM write {n}")
            return result

        monkeypatch.setattr(iam, name, counted)


@pytest.mark.parametrize("fail_after", range(1, 7))  # six IAM writes in all
def test_a_failure_after_any_iam_write_is_repaired_by_the_reconciler(
    book, stack, iam, monkeypatch, fail_after
):
    # Given a suspension that fails right after its n-th IAM write (the Lambda dies there)
    fail_after_write(iam, monkeypatch, APPLY_WRITES, fail_after)
    with pytest.raises(InjectedFault):
        book.apply("team:data|monthly", [GROUP, USER, ROLE, SESSION, OTHER_SESSION])
    monkeypatch.undo()
    # When the reconciler runs, with the budget still enforcing
    book.reconcile(is_enforcing=lambda holder: True)
    # Then IAM holds exactly what the records say: no orphan, every recorded deny in force
    assert iam_state(stack, iam) == recorded() == {e.key for e in (GROUP, USER, ROLE, SESSION, OTHER_SESSION)}
    # And a restore after it removes every one of them
    book.release(["team:data|monthly"])
    assert iam_state(stack, iam) == set() == recorded()


@pytest.mark.parametrize("fail_after", range(1, 9))  # eight IAM writes in all
def test_a_failure_after_any_iam_write_of_a_release_is_repaired_by_the_reconciler(
    book, stack, iam, monkeypatch, clock, fail_after
):
    # Given denies in force, and a restore that dies right after its n-th IAM write
    book.apply("team:data|monthly", [GROUP, USER, ROLE, SESSION, OTHER_SESSION])
    fail_after_write(iam, monkeypatch, RELEASE_WRITES, fail_after)
    with pytest.raises(InjectedFault):
        book.release(["team:data|monthly"])
    monkeypatch.undo()
    # When the reconciler runs, the budget no longer enforcing and its holders long stale
    clock.advance(STALE_HOLDER_AFTER + timedelta(seconds=1))
    book.reconcile(is_enforcing=lambda holder: False)
    # Then nothing is left denied, and no record is left
    assert iam_state(stack, iam) == set() == recorded()


def session_policies(iam) -> dict[str, int]:
    """Every session policy under /budgetkeeper/, with the number of roles it is attached to."""
    policies = iam.list_policies(Scope="Local", PathPrefix=POLICY_PATH)["Policies"]
    return {
        p["PolicyName"]: p["AttachmentCount"]
        for p in policies
        if p["PolicyName"].startswith(POLICY_NAME_PREFIX)
    }


def test_the_reconciler_deletes_session_policies_no_suspended_session_needs(stack, settings, book, iam):
    # Given alice's session on Shared suspended by her budget (its record holds it), and two
    # session policies nothing holds: Other's, written with no record (a release that died after
    # dropping the record), and one left attached to no role (its role was deleted)
    book.apply("session:Shared/alice|daily", [SESSION])
    iam.create_role(RoleName="Other", AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
    suspend_session(iam, "Other", "bob")
    iam.create_role(RoleName="Gone", AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
    suspend_session(iam, "Gone", "carl")
    gone_policy = iam.list_attached_role_policies(RoleName="Gone")["AttachedPolicies"][0]["PolicyArn"]
    iam.detach_role_policy(RoleName="Gone", PolicyArn=gone_policy)
    iam.delete_role(RoleName="Gone")
    assert set(session_policies(iam)) == {session_policy_name(r) for r in ("Shared", "Other", "Gone")}
    # When the monitor has the DenyFunction reconcile
    report = invoke("DenyFunction", {"task": "reconcile"})
    # Then only the held one is left, alice is still denied, and each removal is reported and told
    assert session_policies(iam) == {session_policy_name("Shared"): 1}
    assert suspended_sessions(iam, "Shared") == {"alice"} and suspended_sessions(iam, "Other") == set()
    other_policy = gone_policy.replace(session_policy_name("Gone"), session_policy_name("Other"))
    assert sorted(report["fixes"]) == [
        f"{gone_policy}: orphaned session policy deleted (attached to no role)",
        f"{other_policy}: orphaned session policy deleted (no suspended session of role Other holds it)",
    ]
    told = [n for n in notifications(stack) if n["type"] == "deny_reconciled"]
    assert sorted(n["scope"] for n in told) == sorted([other_policy, gone_policy])
    # And a second sweep finds nothing more to do
    assert invoke("DenyFunction", {"task": "reconcile"})["fixes"] == []


def test_a_session_policy_attached_to_a_role_it_was_not_written_for_is_deleted(book, iam):
    iam.create_role(RoleName="Other", AssumeRolePolicyDocument="{}", Tags=OPTED_IN)
    book.apply("session:Shared/alice|daily", [SESSION])
    shared_policy = iam.list_attached_role_policies(RoleName="Shared")["AttachedPolicies"][0]["PolicyArn"]
    # Someone moves Shared's policy (alice's deny) onto Other by hand
    iam.detach_role_policy(RoleName="Shared", PolicyArn=shared_policy)
    iam.attach_role_policy(RoleName="Other", PolicyArn=shared_policy)
    outcome = book.reconcile(is_enforcing=lambda holder: True)
    # Then it is taken off Other and written again, where it belongs
    why = "attached to Other, none of them the role it was written for"
    assert f"{shared_policy}: orphaned session policy deleted ({why})" in outcome.fixes
    assert iam.list_attached_role_policies(RoleName="Other")["AttachedPolicies"] == []
    assert suspended_sessions(iam, "Shared") == {"alice"}


def test_a_held_session_policy_changed_behind_our_back_is_rewritten_by_the_sweep(stack, settings, book, iam):
    # Given alice's session denied, and someone who then makes an Allow the policy's default
    book.apply("session:Shared/alice|daily", [SESSION])
    (policy,) = iam.list_attached_role_policies(RoleName="Shared", PathPrefix=POLICY_PATH)["AttachedPolicies"]
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    iam.create_policy_version(
        PolicyArn=policy["PolicyArn"], PolicyDocument=json.dumps(allow), SetAsDefault=True
    )
    # When the monitor has the DenyFunction reconcile
    with mock.patch.object(deny_tasks.logger, "error") as logged:
        report = invoke("DenyFunction", {"task": "reconcile"})
    # Then the Allow is gone, alice is denied by a policy of ours again, and operators are told
    assert [r["policy_arn"] for r in report["rejected"]] == [policy["PolicyArn"]]
    assert "session:Shared/alice: session denied" in report["fixes"]
    version = iam.get_policy(PolicyArn=policy["PolicyArn"])["Policy"]["DefaultVersionId"]
    document = iam.get_policy_version(PolicyArn=policy["PolicyArn"], VersionId=version)["PolicyVersion"]
    assert session_deny_problems(document["Document"]) == []
    assert suspended_sessions(iam, "Shared") == {"alice"}
    (told,) = [n for n in notifications(stack) if n["type"] == "session_policy_rejected"]
    assert told["scope"] == "role:Shared" and "Effect is 'Allow'" in told["reason"]
    # and the logs keep what was read back, for whoever searches them
    (rejected,) = [call.kwargs for call in logged.call_args_list if call.args == ("session policy rejected",)]
    assert rejected["policy_arn"] == policy["PolicyArn"]
