"""Every deny Budgetkeeper applies, through its record: written before IAM is changed, confirmed
after, and lifted only when no budget holds it any more.
docs/architecture.md, "Deny records (enforcement.denies)", tells the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from budgetkeeper.budgets.targets import Target, TargetKind
from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.scopes import split_account
from budgetkeeper.enforcement.iam_denies import (
    CannotDeny,
    EntryKind,
    IamDenies,
    PrincipalGone,
)
from budgetkeeper.enforcement.role_sessions import (
    SessionPolicyRejected,
)
from budgetkeeper.storage.conditional import won
from budgetkeeper.storage.tables import DenyItem

# A holder whose budget is not enforcing is dropped by the reconciler only after this long: a
# manual suspension's row is written after its deny is applied.
STALE_HOLDER_AFTER = timedelta(minutes=15)
# An unreachable member account is told once when an entry is first held up there, then reminded
# at most this often while it stays so (every sweep retries it; the metric counts every try).
UNREACHABLE_REMINDER_AFTER = timedelta(days=1)


@dataclass(frozen=True, slots=True, order=True)
class DenyEntry:
    kind: EntryKind
    name: str  # user, role or group name; `<role>/<session>` for a session

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.name}"

    @classmethod
    def from_key(cls, key: str) -> DenyEntry:
        kind, _, name = key.partition(":")
        return cls(EntryKind(kind), name)

    @property
    def iam_object(self) -> tuple[EntryKind, str]:
        """What one IAM write changes: the principal itself, or a role's set of denied sessions."""
        if self.kind is EntryKind.SESSION:  # `[<account>/]<role>/<session>`
            return EntryKind.SESSION, self.name.rsplit("/", 1)[0]
        return self.kind, self.name


def entries_for(target: Target) -> list[DenyEntry]:
    """The deny entries that carry out a suspension of `target` (enforcement.deny_target)."""
    entries = []
    named = (TargetKind.USER, TargetKind.ROLE, TargetKind.GROUP, TargetKind.PROJECT)
    if target.kind in named and target.name:
        entries.append(DenyEntry(EntryKind(str(target.kind)), target.name))
    entries += [DenyEntry(EntryKind.USER, user) for user in target.users]
    entries += [DenyEntry(EntryKind.SESSION, scope.removeprefix("session:")) for scope in target.sessions]
    return entries


@dataclass
class Outcomes:
    """What one apply, release or reconcile did, for the workflow and the operators."""

    applied: list[str] = field(default_factory=list)  # entry keys denied for the holder
    lifted: list[str] = field(default_factory=list)  # released entries no budget holds any more
    kept: dict[str, list[str]] = field(default_factory=dict)  # released entries others still hold
    alert_only: list[dict[str, Any]] = field(default_factory=list)  # entries that could not be denied
    fixes: list[str] = field(default_factory=list)  # what reconcile (or a converge) had to change
    rejected: list[dict[str, Any]] = field(default_factory=list)  # session policies read back, not ours
    pending: list[dict[str, str]] = field(default_factory=list)  # held in a member account not reachable now

    def to_dict(self) -> dict[str, Any]:
        return {
            "applied": self.applied,
            "lifted": self.lifted,
            "kept": self.kept,
            "alert_only": self.alert_only,
            "fixes": self.fixes,
            "rejected": self.rejected,
            "pending": self.pending,
        }


class MemberAccountUnreachable(Exception):
    """A member account's enforcement role cannot be assumed now: the deny stays recorded and is
    retried, and operators are told (not CannotDeny: the account may be reachable next time)."""

    def __init__(self, account: str, message: str) -> None:
        super().__init__(message)
        self.account = account


@dataclass
class DenyBook:
    """The deny records (DenyItem) and IAM, kept in agreement. The one writer of deny records."""

    iam: IamDenies  # the stack's own account
    # A member account's IamDenies (budgetkeeper.enforcement.accounts); None: one-account stack.
    member_accounts: Callable[[str], IamDenies] | None = None

    # ------------------------------------------------------------------ the workflow's steps

    def apply(self, holder: str, entries: Iterable[DenyEntry]) -> Outcomes:
        """Deny `entries` on behalf of `holder` (a budget key `scope|window`)."""
        entries = sorted({self._in_own_words(entry) for entry in entries})
        outcomes = Outcomes()
        now = iso_utc(clock.now())
        for entry in entries:  # recorded before IAM is touched
            DenyItem(entry.key).update(actions=[DenyItem.holders.add({holder}), DenyItem.updated_at.set(now)])
        failed: dict[str, Exception] = {}
        for iam_object in sorted({entry.iam_object for entry in entries}):
            failed |= self.converge(iam_object, outcomes)
        pending = _unreachable(failed, outcomes)  # held and recorded: the reconciler applies them later
        for entry in entries:
            if entry.key in pending:
                continue
            if entry.key in failed:
                self._drop_holders(entry.key, {holder})
                error = failed[entry.key]
                gone = isinstance(error, PrincipalGone)
                outcomes.alert_only.append({"entry": entry.key, "message": str(error), "gone": gone})
            elif self._confirm(entry.key, holder):
                outcomes.applied.append(entry.key)
        self._delete_unheld(key for key in failed if key not in pending)
        return outcomes

    def release(self, holders: Iterable[str]) -> Outcomes:
        """Take `holders` out of every record; lift each deny no budget holds any more."""
        holders = set(holders)
        outcomes = Outcomes()
        touched = []
        for item in DenyItem.scan(consistent_read=True):
            if item.holders and holders & item.holders:
                self._drop_holders(item.entry, holders & item.holders)
                touched.append(DenyEntry.from_key(item.entry))
                others = sorted(item.holders - holders)
                if others:
                    outcomes.kept[item.entry] = others
                else:
                    outcomes.lifted.append(item.entry)
        failed: dict[str, Exception] = {}
        for iam_object in sorted({entry.iam_object for entry in touched}):
            failed |= self.converge(iam_object, outcomes)
        # A lift in an unreachable member account keeps its record: the reconciler lifts it later.
        unreachable = _unreachable(failed, outcomes)
        outcomes.lifted = [key for key in outcomes.lifted if key not in unreachable]
        self._delete_unheld(entry.key for entry in touched if entry.key not in unreachable)
        return outcomes

    def holders_of(self, entry: DenyEntry) -> frozenset[str]:
        try:
            return frozenset(DenyItem.get(entry.key, consistent_read=True).holders or ())
        except DenyItem.DoesNotExist:
            return frozenset()

    # ------------------------------------------------------------------ the monitor's sweep

    def reconcile(self, is_enforcing: Callable[[str], bool]) -> Outcomes:
        """Make IAM and the records agree, and drop holders whose budget no longer enforces.

        `is_enforcing(holder)` says whether that budget is still grace, suspended or restoring.
        """
        outcomes = Outcomes()
        stale_before = clock.now() - STALE_HOLDER_AFTER
        records = list(DenyItem.scan(consistent_read=True))
        for item in records:
            if item.updated_at and datetime.fromisoformat(item.updated_at) > stale_before:
                continue  # an apply or release may be under way: leave it to the next sweep
            stale = {holder for holder in item.holders or () if not is_enforcing(holder)}
            if stale:
                self._drop_holders(item.entry, stale)
                outcomes.fixes.append(f"{item.entry}: dropped holders no longer enforcing: {sorted(stale)}")
        sweep = self.iam.sweep_session_policies(lambda role_name: bool(self._held_sessions(role_name)))
        outcomes.fixes += sweep.removed
        outcomes.rejected += [rejected.to_dict() for rejected in sweep.rejected]
        objects = {DenyEntry.from_key(item.entry).iam_object for item in records}
        objects |= self.iam.attached_principals() | self._attached_in_member_accounts(objects)
        gone = []
        failed: dict[str, Exception] = {}
        for iam_object in sorted(objects):
            failed |= self.converge(iam_object, outcomes)
        unreachable = _unreachable(failed, outcomes)
        for key, error in failed.items():
            if key in unreachable:
                continue
            if isinstance(error, PrincipalGone):  # released and told once, not retried every sweep
                gone.append(key)
                self._drop_holders(key, set(self.holders_of(DenyEntry.from_key(key))))
                outcomes.fixes.append(f"{key}: {error}: its deny record was released")
            else:
                outcomes.alert_only.append({"entry": key, "message": str(error)})
        settled = [item.entry for item in records if item.entry not in unreachable]
        for item in records:  # reached again: the episode is over, a new one is told at once
            if item.unreachable_told_at and item.entry not in unreachable:
                self._update_if_exists(item.entry, [DenyItem.unreachable_told_at.remove()])
        self._delete_unheld(settled + gone)
        return outcomes

    # ------------------------------------------------------------------ IAM from the records

    def converge(self, iam_object: tuple[EntryKind, str], outcomes: Outcomes) -> dict[str, Exception]:
        """Make one IAM object carry exactly the denies its records hold; the entries that could not."""
        kind, name = iam_object
        account, local_name = split_account(name)
        try:
            iam = self._iam_in(account)
        except MemberAccountUnreachable as error:
            if kind is EntryKind.SESSION:  # every session record of the role, held or being lifted
                prefix = f"{kind}:{name}/"
                records = DenyItem.scan(DenyItem.entry.startswith(prefix), consistent_read=True)
                return {item.entry: error for item in records}
            return {DenyEntry(kind, name).key: error}
        if kind is EntryKind.SESSION:
            return self._converge_sessions(iam, name, local_name, outcomes)
        wanted = bool(self.holders_of(DenyEntry(kind, name)))
        held = iam.holds(kind, local_name)
        try:
            if wanted and not held:
                iam.attach(kind, local_name)
                outcomes.fixes.append(f"{kind}:{name}: deny attached")
            elif held and not wanted:
                iam.detach(kind, local_name)
                outcomes.fixes.append(f"{kind}:{name}: deny detached (no budget holds it)")
        except CannotDeny as error:
            return {DenyEntry(kind, name).key: error}
        return {}

    def _in_own_words(self, entry: DenyEntry) -> DenyEntry:
        """The stack's own account's principals are named without it: one record per principal."""
        account, local_name = split_account(entry.name, session=entry.kind is EntryKind.SESSION)
        own_account = self.iam.deny_policy_arn.split(":")[4]
        return DenyEntry(entry.kind, local_name) if account == own_account else entry

    def _attached_in_member_accounts(self, objects: set[tuple[EntryKind, str]]) -> set[tuple[EntryKind, str]]:
        """Where the deny policy is attached in each member account the records name (orphans too);
        an account not reachable now is left to `converge`, which holds its records and tells."""
        accounts = {split_account(name, session=kind is EntryKind.SESSION)[0] for kind, name in objects}
        found: set[tuple[EntryKind, str]] = set()
        for account in sorted(filter(None, accounts)):
            with contextlib.suppress(MemberAccountUnreachable):
                found |= {
                    (kind, f"{account}/{name}") for kind, name in self._iam_in(account).attached_principals()
                }
        return found

    def _iam_in(self, account: str | None) -> IamDenies:
        if account is None:
            return self.iam
        if self.member_accounts is None:
            raise MemberAccountUnreachable(account, f"account {account}: organization mode is not set up")
        return self.member_accounts(account)

    def _converge_sessions(
        self, iam: IamDenies, role_name: str, local_role_name: str, outcomes: Outcomes
    ) -> dict[str, Exception]:
        prefix = f"{EntryKind.SESSION}:{role_name}/"
        wanted = self._held_sessions(role_name)
        denied = iam.denied_sessions(local_role_name)
        failed: dict[str, Exception] = {}
        # Lifts first: they make room in a session policy close to IAM's size limit.
        for session in sorted(denied - wanted):
            try:
                iam.lift_session(local_role_name, session)
                outcomes.fixes.append(f"{prefix}{session}: session deny lifted (no budget holds it)")
            except SessionPolicyRejected as error:  # removed: every session of the role is undenied
                outcomes.rejected.append(error.to_dict())
                denied = set()
                break
        for session in sorted(wanted - denied):
            try:
                iam.deny_session(local_role_name, session)
                outcomes.fixes.append(f"{prefix}{session}: session denied")
            except CannotDeny as error:
                failed[f"{prefix}{session}"] = error
            except SessionPolicyRejected as error:
                # The policy is gone: no session of the role is denied now, and writing it again
                # for the next session is left to the reconciler.
                outcomes.rejected.append(error.to_dict())
                failed |= {f"{prefix}{other}": error for other in wanted}
                break
        return failed

    @staticmethod
    def _held_sessions(role_name: str) -> set[str]:
        """The sessions of `role_name` a budget holds a deny for."""
        prefix = f"{EntryKind.SESSION}:{role_name}/"
        return {
            item.entry.removeprefix(prefix)
            for item in DenyItem.scan(DenyItem.entry.startswith(prefix), consistent_read=True)
            if item.holders
        }

    # ------------------------------------------------------------------ records

    def accounts_to_tell(self, pending: Iterable[dict[str, str]]) -> set[str]:
        """The member accounts of `pending` entries operators are to be told about now: an entry
        not told yet, or told longer ago than UNREACHABLE_REMINDER_AFTER (marked told here)."""
        now = clock.now()
        due = DenyItem.unreachable_told_at.does_not_exist() | (
            DenyItem.unreachable_told_at < iso_utc(now - UNREACHABLE_REMINDER_AFTER)
        )
        accounts = set()
        for entry in pending:
            if self._update_if_exists(entry["entry"], [DenyItem.unreachable_told_at.set(iso_utc(now))], due):
                accounts.add(entry["account"])
        return accounts

    @staticmethod
    def _update_if_exists(key: str, actions: list[Any], condition: Any = None) -> bool:
        """Update the record `key` if it exists (and `condition` holds); whether it was updated."""
        exists = DenyItem.entry.exists()
        return won(
            DenyItem(key).update,
            actions=actions,
            condition=exists if condition is None else exists & condition,
        )

    @staticmethod
    def _confirm(key: str, holder: str) -> bool:
        """Mark the record applied, if `holder` still holds it (a release may have come between)."""
        return DenyBook._update_if_exists(
            key, [DenyItem.applied.set(True)], DenyItem.holders.contains(holder)
        )

    @staticmethod
    def _drop_holders(key: str, holders: set[str]) -> None:
        DenyItem(key).update(
            actions=[DenyItem.holders.delete(holders), DenyItem.updated_at.set(iso_utc(clock.now()))]
        )

    @staticmethod
    def _delete_unheld(keys: Iterable[str]) -> None:
        for key in set(keys):
            # Not won: held again meanwhile, the record stays.
            won(DenyItem(key).delete, condition=DenyItem.holders.does_not_exist())


def _unreachable(failed: dict[str, Exception], outcomes: Outcomes) -> set[str]:
    """The entries of `failed` in a member account not reachable now, put in `outcomes.pending`."""
    unreachable = {key: e for key, e in failed.items() if isinstance(e, MemberAccountUnreachable)}
    outcomes.pending += [
        {"entry": key, "account": error.account, "message": str(error)}
        for key, error in sorted(unreachable.items())
    ]
    return set(unreachable)


def describe_entry(key: str) -> str:
    """`IAM user alice`, `session bob of role Shared`: an entry in the words of the notices."""
    entry = DenyEntry.from_key(key)
    if entry.kind is EntryKind.SESSION:
        role, _, session = entry.name.partition("/")
        return f"session {session} of role {role}"
    if entry.kind is EntryKind.PROJECT:
        return f"bedrock-mantle project {entry.name}"
    return f"IAM {entry.kind} {entry.name}"
