"""Enforcement rules: run names Step Functions accepts, targets, and what a crossing calls for."""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from budgetkeeper.budgets.rules import Budget, Level
from budgetkeeper.budgets.targets import (
    Directory,
    Next,
    Target,
    TargetKind,
    deny_target,
    evaluate,
    is_exempt,
    spare_exempt,
    system_role_prefixes,
)
from budgetkeeper.enforcement.runs import execution_name

# Step Functions: at most 80 characters; no whitespace, brackets, wildcards, `:` `/` and friends.
VALID_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@given(st.text(), st.text(), st.text(), st.integers())
def test_execution_names_are_always_valid_and_deterministic(prefix, scope, window, revision):
    name = execution_name(prefix, scope, window, revision)
    assert VALID_NAME.match(name), name
    assert name == execution_name(prefix, scope, window, revision)


def test_execution_names_differ_by_level_window_and_revision():
    base = ("exceeded", "session:AWSReservedSSO_Dev_1a2b/bob@example.com", "daily", "2026-11-23", "exceeded")
    names = {
        execution_name(*base, 1),
        execution_name(*base, 2),
        execution_name("warning", *base[1:4], "warning", 1),
        execution_name(*base[:3], "2026-11-24", "exceeded", 1),
    }
    assert len(names) == 4


MAPPED = {  # the teams table: team and person members, some of member account 111122223333
    "team:data": ("session:Shared/vik", "user:111122223333/carol", "user:bob"),
    "team:ml": ("session:Shared/vik",),
    "team:edge": ("user:111122223333/carol",),
    "person:alice.martin": ("apikey:BedrockAPIKey-x7k2", "session:111122223333/Shared/alice", "user:alice"),
    "person:shared": ("role:Analytics", "user:alice"),
}

DIRECTORY = Directory(
    role_exists=lambda role: role == "ChatbotApp-BedrockRole",
    group_exists=lambda group: group == "data",
    mapped_identities=lambda scope: MAPPED.get(scope, ()),
    protection=lambda scope: None,
    group_members=lambda group: (),
)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("user:alice", Target(TargetKind.USER, "alice")),
        ("apikey:BedrockAPIKey-x7k2", Target(TargetKind.USER, "BedrockAPIKey-x7k2")),
        ("role:Analytics", Target(TargetKind.ROLE, "Analytics")),
        ("session:Shared/bob", Target(TargetKind.SESSION, sessions=("session:Shared/bob",))),
        # The group holds the central account's users; a member account's are denied one by one
        (
            "team:data",
            Target(TargetKind.GROUP, "data", sessions=("session:Shared/vik",), users=("111122223333/carol",)),
        ),
        ("team:ml", Target(TargetKind.SESSION, sessions=("session:Shared/vik",))),
        ("team:edge", Target(TargetKind.SESSION, users=("111122223333/carol",))),
        # A person: every identity mapped to them, in whichever account
        (
            "person:alice.martin",
            Target(
                TargetKind.SESSION,
                sessions=("session:111122223333/Shared/alice",),
                users=("BedrockAPIKey-x7k2", "alice"),
            ),
        ),
        ("app:ChatbotApp", Target(TargetKind.ROLE, "ChatbotApp-BedrockRole")),
    ],
)
def test_what_a_suspension_denies(scope, expected):
    assert deny_target(scope, DIRECTORY) == expected


@pytest.mark.parametrize(
    "scope", ["app:ReportBuilder", "account:111122223333", "team:nobody", "person:nobody", "person:shared"]
)
def test_scopes_with_nothing_to_deny_say_why(scope):
    target = deny_target(scope, DIRECTORY)
    assert target.kind == TargetKind.NONE and target.why_not


def budget(status: str = "ok", limit: str = "10") -> Budget:
    return Budget(
        scope="user:alice",
        window="daily",
        limit_usd=Decimal(limit),
        time_zone="UTC",
        warning_percent=Decimal(70),
        critical_percent=Decimal(90),
        grace_seconds=0,
        origin="explicit",
        protected=False,
        dry_run=False,
        status=status,
        revision=1,
    )


def decide(spent: str, *, status="ok", requested=Level.EXCEEDED, notified=Level.OK, **extra):
    arguments = {
        "forecast": False,
        "window_closed": False,
        "forecast_notified": False,
        "exempt_because": None,
        "target": Target(TargetKind.USER, "alice"),
        **extra,
    }
    return evaluate(
        budget(status), Decimal(spent), requested=requested, already_notified=notified, **arguments
    )


def test_an_exceeded_budget_goes_to_the_grace_period_once():
    assert decide("10.5").next == Next.GRACE
    assert decide("10.5", status="grace").next == Next.NOTHING
    assert decide("10.5", notified=Level.EXCEEDED).next == Next.NOTHING


def test_a_late_run_reports_the_level_reached_not_the_one_it_was_started_for():
    outcome = decide("9.5", requested=Level.WARNING)
    assert (outcome.next, outcome.event_type) == (Next.NOTIFY, "critical")


def test_protected_closed_and_undeniable_scopes_never_reach_the_grace_period():
    assert decide("11", exempt_because="protected").next == Next.PROTECTED
    assert decide("11", window_closed=True).event_type == "late_spend"
    nothing = Target(TargetKind.NONE, why_not="no principal")
    assert decide("11", target=nothing).event_type == "cannot_suspend"


def test_a_forecast_is_sent_once_per_window():
    assert decide("2", requested=Level.OK, forecast=True).event_type == "forecast"
    assert decide("2", requested=Level.OK, forecast=True, forecast_notified=True).next == Next.NOTHING


@pytest.mark.parametrize(
    ("scope", "exempt"),
    [
        ("role:budgetkeeper-prod-EnforcementFunctionRole-1AB2", True),
        ("session:budgetkeeper-prod-UsageCalculatorFunctionRole-9Z/fn", True),
        ("role:AWSServiceRoleForAmazonBedrock", True),
        ("role:Analytics", False),
        ("user:budgetkeeper-prod-admin", False),  # only roles are named after the stack by SAM
    ],
)
def test_system_principals_are_never_suspended(scope, exempt):
    reason = is_exempt(replace(budget(), scope=scope), (), system_role_prefixes("budgetkeeper-prod"))
    assert (reason is not None) is exempt


# --- protection follows the principal, whichever budget asks -------------------------------------

PROTECTED = {"role:ProdChatbot-BedrockRole": "protected (customer-facing)", "team:data": "protected"}


NO_MEMBERS = DIRECTORY.group_members


def exempt(scope: str) -> str | None:
    return PROTECTED.get(scope) or (
        "excluded by the exclusions parameter" if scope == "user:ci-bot" else None
    )


def test_a_protected_role_is_spared_from_its_apps_deny_and_named():
    target = Target(TargetKind.ROLE, "ProdChatbot-BedrockRole", users=("mallory",))
    left, spared = spare_exempt(target, "app:ProdChatbot", exempt, NO_MEMBERS)
    assert left == Target(TargetKind.SESSION, users=("mallory",))
    assert spared == (
        "role:ProdChatbot-BedrockRole is protected (customer-facing): not denied for app:ProdChatbot",
    )


def test_an_excluded_claimer_and_the_sessions_of_a_protected_role_are_spared():
    target = Target(
        TargetKind.GROUP,
        "ml",
        sessions=("session:ProdChatbot-BedrockRole/fn", "session:Shared/vik"),
        users=("ci-bot",),
    )
    left, spared = spare_exempt(target, "team:ml", exempt, NO_MEMBERS)
    assert left == Target(TargetKind.GROUP, "ml", sessions=("session:Shared/vik",))
    assert [line.split(" is ")[0] for line in spared] == ["user:ci-bot", "session:ProdChatbot-BedrockRole/fn"]


def test_when_every_principal_is_spared_the_target_denies_nothing():
    left, spared = spare_exempt(
        Target(TargetKind.GROUP, "data"), "team:data", exempt, lambda group: ("ci-bot", "eve")
    )
    assert left.kind == TargetKind.SPARED and spared == ("group:data is protected: not denied for team:data",)


def test_a_target_with_nobody_to_spare_is_unchanged():
    target = Target(TargetKind.USER, "alice")
    assert spare_exempt(target, "user:alice", exempt, NO_MEMBERS) == (target, ())


def test_a_group_with_an_excluded_member_is_denied_member_by_member():
    target = Target(TargetKind.GROUP, "ml", sessions=("session:Shared/vik",))
    left, spared = spare_exempt(
        target, "team:ml", exempt, lambda group: ("ci-bot", "eve", "BedrockAPIKey-x7k2")
    )
    assert left == Target(
        TargetKind.SESSION, sessions=("session:Shared/vik",), users=("eve", "BedrockAPIKey-x7k2")
    )
    assert spared == ("user:ci-bot is excluded by the exclusions parameter: not denied for team:ml",)
