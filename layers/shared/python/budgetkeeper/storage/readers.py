"""Reads of the budget, totals and team tables that several packages ask: spend in windows, an app's
claims, a scope's protection, team members and contacts. The rules that use them take the answers,
so they are testable without DynamoDB."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from budgetkeeper.budgets.targets import AppClaims
from budgetkeeper.domain.scopes import ScopeKind
from budgetkeeper.storage.keys import TotalKey
from budgetkeeper.storage.tables import BudgetItem, TeamItem, TotalItem, budget_key


def spent_in_windows(keys: Iterable[TotalKey]) -> dict[TotalKey, Decimal]:
    """The spend of many (scope, window, window id) totals, 100 a BatchGetItem; a window with no
    spend yet has no total and is absent."""
    wanted = {
        (budget_key(scope, window), window_id): (scope, window, window_id)
        for scope, window, window_id in keys
    }
    return {
        wanted[(item.budget, item.window_id)]: item.spent_usd
        for item in TotalItem.batch_get(list(wanted), consistent_read=True)
    }


def spent_in_window(scope: str, window: str, window_id: str) -> Decimal:
    try:
        return TotalItem.get(budget_key(scope, window), window_id, consistent_read=True).spent_usd
    except TotalItem.DoesNotExist:
        return Decimal(0)


def claims_in_window(scope: str, window: str, window_id: str) -> AppClaims:
    """An app budget's spend in one window that callers only claimed (request metadata), and who."""
    try:
        total = TotalItem.get(budget_key(scope, window), window_id, consistent_read=True)
    except TotalItem.DoesNotExist:
        return AppClaims(Decimal(0), frozenset())
    return AppClaims(total.claimed_usd or Decimal(0), frozenset(total.claimed_by or ()))


def protection_of(scope: str) -> str | None:
    """Why an operator protected `scope` ("protected (<reason>)"), if any budget of it is protected."""
    for item in BudgetItem.query(scope, consistent_read=True):
        if item.protected:
            return f"protected ({item.protected_reason})" if item.protected_reason else "protected"
    return None


def team_session_scopes(team: str) -> tuple[str, ...]:
    """Session scopes mapped to `team` in the team table (members calling through shared roles)."""
    return tuple(
        sorted(
            item.principal
            for item in TeamItem.scan(TeamItem.team == team)
            if item.principal.startswith("session:")
        )
    )


def load_teams() -> dict[str, str]:
    """The whole team mapping; it is small (one item per mapped principal)."""
    return {item.principal: item.team for item in TeamItem.scan()}


def team_contact(scope: str) -> str | None:
    """The contact on the scope's own team item, else on its team's item (`team:<name>`)."""
    try:
        item = TeamItem.get(scope)
    except TeamItem.DoesNotExist:
        return None
    team_scope = f"{ScopeKind.TEAM}:{item.team}"
    if item.contact or scope == team_scope:
        return item.contact
    try:
        return TeamItem.get(team_scope).contact
    except TeamItem.DoesNotExist:
        return None
