"""Audit lines: the one module that writes them. Each records who changed a budget row (or a price
version), when, why and from which run (`Change`), keyed by time so that readers query ranges;
the system never deletes them. Budget rows (budget_rows) write theirs after the row's write won.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from budgetkeeper.core.windows import iso_utc
from budgetkeeper.storage.tables import AuditItem


@dataclass(frozen=True, slots=True)
class Change:
    """Who changes a budget row, when and why: what its audit line records."""

    actor: str
    at: datetime
    reason: str | None = None
    execution_arn: str | None = None

    @property
    def at_iso(self) -> str:
        return iso_utc(self.at)


def audit_at(at: datetime) -> str:
    """The time part of an audit line's sort key; readers query time ranges with it."""
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%fZ}"


def audit_key(at: datetime) -> str:
    """An audit line's sort key `<time>#<id>`: in time order, and unique for lines at one moment."""
    return f"{audit_at(at)}#{uuid.uuid4().hex[:8]}"


def write_audit(scope: str, window: str, from_status: str, to_status: str, change: Change) -> None:
    """One line of a budget's history."""
    AuditItem(
        scope,
        audit_key(change.at),
        window=window,
        from_status=str(from_status),
        to_status=str(to_status),
        actor=change.actor,
        reason=change.reason,
        execution_arn=change.execution_arn,
    ).save()


def write_operator_audit(
    scope: str, window: str, from_status: str, to_status: str, what: str, change: Change
) -> None:
    """An operator's edit: what was done, then the reason they gave (when they gave one)."""
    reason = f"{what}; {change.reason.strip()}" if change.reason and change.reason.strip() else what
    write_audit(scope, window, from_status, to_status, replace(change, reason=reason))
