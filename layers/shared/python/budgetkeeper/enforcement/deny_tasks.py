"""The workflow's IAM steps and the reconciler: every deny goes through budgetkeeper.enforcement.denies.

They run in their own function (DenyFunction), the only one allowed to change IAM, with a reserved
concurrency of one: IAM has no conditional writes, and the records and IAM are then changed by one
writer at a time. Each step is safe to run twice: records hold sets, and IAM is converged to them.

Only the two state machines' roles may invoke it (apply and release, in enforcement runs), and its
own schedule, whose fixed input asks for the reconcile: IAM made to agree with the records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3
from aws_lambda_powertools.metrics import MetricUnit

from budgetkeeper.budgets.rules import ENFORCING
from budgetkeeper.budgets.targets import Target, TargetKind
from budgetkeeper.core import clock
from budgetkeeper.core.actors import RECONCILER, SYSTEM_ACTOR
from budgetkeeper.core.observability import logger, metrics
from budgetkeeper.core.settings import Settings
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.enforcement.accounts import MEMBER_ROLE_NAME, MemberAccounts
from budgetkeeper.enforcement.denies import DenyBook, Outcomes, entries_for
from budgetkeeper.enforcement.iam_denies import IamDenies
from budgetkeeper.enforcement.identity_center import IdentityCenterConnection, connect_identity_center
from budgetkeeper.enforcement.project_tags import ProjectTags
from budgetkeeper.enforcement.state import WorkflowState, workflow_state
from budgetkeeper.notify import NotificationEvent, SnsPublisher
from budgetkeeper.notify.causes import cause
from budgetkeeper.storage.tables import BudgetItem, bind_tables, budget_key


@dataclass
class DenyTasks:
    book: DenyBook
    publisher: SnsPublisher

    def apply_denies(self, state: WorkflowState) -> WorkflowState:
        """Deny what the decision names, held by this budget (`scope|window`); dry run writes nothing."""
        decision = state["decision"]
        target = Target.from_dict(decision["target"])
        entries = entries_for(target)
        # Every principal it reaches was spared (protected, excluded): suspended, denying nothing.
        spared = target.kind == TargetKind.SPARED
        if decision.get("dry_run"):
            would = [entry.key for entry in entries]
            return {
                **state,
                "denies": {"suspended": bool(would) or spared, "applied": [], "would_apply": would},
            }
        outcome = self.book.apply(budget_key(state["scope"], state["window"]), entries)
        self._alert_rejected(outcome, state.get("execution"))
        self._alert_unreachable(outcome, state.get("execution"))
        for failed in outcome.alert_only:
            logger.warning("cannot deny", entry=failed["entry"], detail=failed["message"])
        return {
            **state,
            "denies": {
                # A deny pending in an unreachable member account is held, and retried until applied.
                "suspended": bool(outcome.applied or outcome.pending) or spared,
                "applied": outcome.applied,
                "alert_only": outcome.alert_only,
                "pending": outcome.pending,
            },
        }

    def release_denies(self, state: WorkflowState) -> WorkflowState:
        """Take this run's budgets out of every deny record: a deny no budget holds is lifted.

        What is lifted is what the records say was applied, whatever the settings say now.
        """
        restore = state.get("restore")
        windows = (restore["windows"] if restore else None) or [state["window"]]
        outcome = self.book.release(budget_key(state["scope"], window) for window in windows)
        self._alert_rejected(outcome, state.get("execution"))
        self._alert_unreachable(outcome, state.get("execution"))
        return {**state, "released": {"lifted": outcome.lifted, "kept": outcome.kept}}

    def reconcile(self) -> dict[str, Any]:
        """The scheduled check: IAM as the records say; each fix told to operators and counted."""
        outcome = self.book.reconcile(is_enforcing)
        metrics.add_metric(name="DenyFixes", unit=MetricUnit.Count, value=len(outcome.fixes))
        self._alert_rejected(outcome, None)
        self._alert_unreachable(outcome, None)
        for refused in outcome.alert_only:  # IAM refuses (a quota): the next sweep tries again
            logger.error("deny not reconciled", extra=refused)
        for fix in outcome.fixes:
            logger.warning("deny reconciled", fix=fix)
            self._publish("deny_reconciled", fix.split(": ", 1)[0], None, note=fix)
        return outcome.to_dict()

    def _alert_rejected(self, outcome: Outcomes, execution: str | None) -> None:
        """Each session policy that read back as not ours (and was removed), told to operators."""
        for rejected in outcome.rejected:
            why = cause(
                "session_policy_not_ours",
                policy_arn=rejected["policy_arn"],
                role=rejected["role"],
                problems="; ".join(rejected["problems"]),
            )
            logger.error("session policy rejected", **rejected)
            self._publish("session_policy_rejected", f"role:{rejected['role']}", execution, causes=[why])

    def _alert_unreachable(self, outcome: Outcomes, execution: str | None) -> None:
        """Each member account whose role could not be assumed: logged and counted at every try,
        told to operators once an episode (an entry newly held up there), then at most daily."""
        accounts = sorted({pending["account"] for pending in outcome.pending})
        metrics.add_metric(name="MemberAccountsUnreachable", unit=MetricUnit.Count, value=len(accounts))
        to_tell = self.book.accounts_to_tell(outcome.pending)
        for account in accounts:
            pending = [p for p in outcome.pending if p["account"] == account]
            logger.error("member account unreachable", account=account, entries=[p["entry"] for p in pending])
            if account not in to_tell:
                continue
            why = cause(
                "member_role_unreachable",
                role=MEMBER_ROLE_NAME,
                account=account,
                error=pending[0]["message"],
                entries=", ".join(p["entry"] for p in pending),
            )
            self._publish("member_account_unreachable", f"account:{account}", execution, causes=[why])

    def _publish(
        self,
        event_type: str,
        scope: str,
        execution: str | None,
        *,
        causes: list[dict[str, str]] | None = None,
        note: str = "",
    ) -> None:
        """An operator alert: its causes worded in each reader's language, or an English `note`."""
        actor = RECONCILER if execution is None else SYSTEM_ACTOR
        self.publisher.publish(
            NotificationEvent.operator_alert(
                event_type, scope, actor, causes or [], iso_utc(clock.now()), note, execution=execution
            )
        )


def is_enforcing(holder: str) -> bool:
    """Whether the budget `scope|window` still needs its denies (grace, suspended or restoring)."""
    scope, _, window = holder.rpartition("|")
    try:
        return BudgetItem.get(scope, window, consistent_read=True).status in ENFORCING
    except BudgetItem.DoesNotExist:
        return False


DENY_TASKS: dict[str, Callable[[DenyTasks, WorkflowState], WorkflowState]] = {
    "apply_denies": DenyTasks.apply_denies,
    "release_denies": DenyTasks.release_denies,
}


def run_deny_task(tasks: DenyTasks, event: dict[str, Any]) -> dict[str, Any]:
    """`{"task": "reconcile"}` from the schedule, or a workflow step `{"task", "state", "execution"}`."""
    if event.get("task") == "reconcile":
        return tasks.reconcile()
    task = DENY_TASKS.get(event.get("task", ""))
    if task is None:
        raise ValueError(f"unknown deny task {event.get('task')!r}")
    return dict(task(tasks, workflow_state(event)))


def build_deny_tasks(settings: Settings) -> DenyTasks:
    bind_tables(settings)
    # Connected (the Identity Center admin role assumed) only when an SSO session is met, each time
    # afresh: the step is rare, and its credentials are then always fresh.
    connection: list[IdentityCenterConnection] = []

    def identity_center() -> IdentityCenterConnection:
        if not connection:
            connection.append(
                connect_identity_center(
                    settings.identity_center_admin_role_arn, region_name=settings.identity_center_region
                )
            )
        return connection[0]

    account_id = settings.deny_policy_arn.split(":")[4]
    projects = ProjectTags(
        # no client stubs: the pinned botocore has no bedrock-mantle model (project_tags says what then)
        lambda: boto3.client("bedrock-mantle", region_name=settings.region),  # type: ignore[call-overload]
        settings.region,
        account_id,
    )
    iam = IamDenies(boto3.client("iam"), settings.deny_policy_arn, identity_center, projects)
    publisher = SnsPublisher.for_stack(settings)
    return DenyTasks(DenyBook(iam, MemberAccounts(iam, boto3.client("sts"))), publisher)
