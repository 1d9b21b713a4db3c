"""Reads of the tables that the use cases and the operators' views ask, so that rules take answers
and are testable without DynamoDB: budget rows, spend in windows and hours, an app's claims, a
scope's protection, teams and their contacts, usage lines; and the bounded reads of what operators
look at (`status`, the console, the HTML report, the daily summary), which read sparse indexes and
never grow with the default budgets callers mint (docs/architecture.md, "Bounded readers")."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from budgetkeeper.budgets.targets import AppClaims
from budgetkeeper.domain.scopes import SCOPE_KINDS, ScopeKind
from budgetkeeper.storage.keys import TotalKey, line_partition
from budgetkeeper.storage.tables import (
    OPERATOR_SET,
    SWEEP_DUE,
    BudgetItem,
    RollupItem,
    TeamItem,
    TotalItem,
    budget_key,
)
from budgetkeeper.storage.usage_journal import RowRange, usage_rows

# Watched budgets the operators' views read at most; the rest are counted, not read.
MOST_WATCHED = 500


@dataclass(frozen=True, slots=True)
class BudgetList:
    """Budgets read, by scope and window, and how many due ones were left unread past the limit."""

    items: list[BudgetItem]
    more: int = 0


def _by_key(items: Iterable[BudgetItem]) -> list[BudgetItem]:
    unique = {(item.scope, item.window): item for item in items}
    return [unique[key] for key in sorted(unique)]


def operator_budgets() -> list[BudgetItem]:
    """Every budget an operator wrote (no default budget, no operator's suspension)."""
    partitions = [partition for kind in SCOPE_KINDS for partition in (kind, f"{kind}#{OPERATOR_SET}")]
    return _by_key(item for partition in partitions for item in BudgetItem.kind_index.query(partition))


def due_budgets(limit: int | None = None) -> BudgetList:
    """The budgets the monitor watches, first `limit` by scope and window (None: all of them)."""
    items = list(BudgetItem.sweep_index.query(SWEEP_DUE, limit=limit))
    more = 0
    if limit is not None and len(items) == limit:
        more = BudgetItem.sweep_index.count(SWEEP_DUE) - limit
    return BudgetList(_by_key(items), more)


def budgets_to_watch(limit: int | None = None) -> BudgetList:
    """The operators' budgets and the due ones (default budgets in trouble, suspensions)."""
    due = due_budgets(limit)
    return BudgetList(_by_key([*operator_budgets(), *due.items]), due.more)


def scope_budgets(scope: str) -> list[BudgetItem]:
    """Every row of one scope: its budgets, default or not, and its operators' suspensions."""
    return list(BudgetItem.query(scope, consistent_read=True))


def budget_row(scope: str, window: str) -> BudgetItem | None:
    """One budget's row, read consistently; None when there is no such budget."""
    try:
        return BudgetItem.get(scope, window, consistent_read=True)
    except BudgetItem.DoesNotExist:
        return None


def budget_rows_of(scope: str, *, consistent_read: bool = False) -> list[BudgetItem]:
    """Every budget row of one scope (one per window, manual suspensions included)."""
    return list(BudgetItem.query(scope, consistent_read=consistent_read))


def due_budget_rows() -> list[BudgetItem]:
    """The budgets the monitor must look at: those marked due in the sparse sweep index."""
    return list(BudgetItem.sweep_index.query(SWEEP_DUE))


def spent_in_hours(scope: str, low_hour: str, high_hour: str) -> Decimal:
    """A scope's spend from its hourly rollups in the hours `low_hour` to `high_hour` - 1
    (`YYYY-MM-DDTHH`): buckets are `<hour>#<model>#<region>`, so between() stops before `high_hour`."""
    rollups = usage_rows([RowRange(scope, low_hour, high_hour)])
    return sum((item.cost_usd for item in rollups), Decimal(0))


def scope_rollups(scope: str) -> list[RollupItem]:
    """Every hourly rollup of a scope (or row of another rollups-table partition), with the usage
    journal's open entries folded in."""
    return usage_rows([RowRange(scope)])


def rollup_costs(scope: str, bucket_prefix: str) -> list[tuple[str, Decimal]]:
    """(bucket, cost) of a scope's hourly rollups whose bucket starts with `bucket_prefix`."""
    return [
        (rollup.bucket, rollup.cost_usd) for rollup in usage_rows([RowRange(scope, prefix=bucket_prefix)])
    ]


def team_scopes() -> list[str]:
    """`team:<name>` of every team the team table maps a principal to, sorted."""
    return sorted({f"{ScopeKind.TEAM}:{item.team}" for item in TeamItem.scan() if item.team})


def spent_in_windows(keys: Iterable[TotalKey], *, consistent_read: bool = True) -> dict[TotalKey, Decimal]:
    """The spend of many (scope, window, window id) totals, 100 a BatchGetItem; a window with no
    spend yet has no total and is absent."""
    wanted = {
        (budget_key(scope, window), window_id): (scope, window, window_id)
        for scope, window, window_id in keys
    }
    return {
        wanted[(item.budget, item.window_id)]: item.spent_usd
        for item in TotalItem.batch_get(list(wanted), consistent_read=consistent_read)
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


def mapped_identities(scope: str) -> tuple[str, ...]:
    """The principal scopes the team table maps to a team (`team:<name>`) or a person (`person:<name>`)."""
    kind, _, name = scope.partition(":")
    attribute = TeamItem.person if kind == ScopeKind.PERSON else TeamItem.team
    return tuple(sorted(item.principal for item in TeamItem.scan(attribute == name)))


def load_teams() -> dict[str, str]:
    """The whole team mapping; it is small (one item per mapped principal)."""
    return load_teams_and_people()[0]


def load_teams_and_people() -> tuple[dict[str, str], dict[str, str]]:
    """Principal scope -> team, and principal scope -> the person operators mapped it to (who may
    have identities in several accounts), from one read of the teams table."""
    teams, people = {}, {}
    for item in TeamItem.scan():
        if item.team:
            teams[item.principal] = item.team
        if item.person:
            people[item.principal] = item.person
    return teams, people


def team_contact(scope: str) -> str | None:
    """The contact on the scope's own team item, else on its team's item (`team:<name>`)."""
    try:
        item = TeamItem.get(scope)
    except TeamItem.DoesNotExist:
        return None
    team_scope = f"{ScopeKind.TEAM}:{item.team}"
    if item.contact or item.team is None or scope == team_scope:
        return item.contact
    try:
        return TeamItem.get(team_scope).contact
    except TeamItem.DoesNotExist:
        return None


def usage_lines_of_day(day: str) -> list[RollupItem]:
    """Every usage line of one UTC day (one per hour, model, Region, caller and attribution)."""
    return usage_rows([RowRange(line_partition(day))])
