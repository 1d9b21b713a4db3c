"""The workflow's session steps: deny or restore single sessions on shared roles.

They run in their own function, the only one allowed to write policies under `/budgetkeeper/`,
with a reserved concurrency of one: IAM has no conditional writes, so two runs changing one role's
session policy at once could lose a change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import boto3

from budgetkeeper.enforcement import Target, TargetKind
from budgetkeeper.observability import logger
from budgetkeeper.session_denies import (
    IdentityCenterConnection,
    Outcome,
    connect_identity_center,
    deny_session_scope,
    restore_session_scope,
)
from budgetkeeper.settings import Settings

DENIED = frozenset({Outcome.DENIED, Outcome.ALREADY_DENIED})


@dataclass
class SessionTasks:
    iam: Any
    identity_center: Callable[[], IdentityCenterConnection]

    def deny_sessions(self, state: dict[str, Any]) -> dict[str, Any]:
        target = Target.from_dict(state["decision"]["target"])
        denied, alert_only = [], []
        for scope in target.sessions:
            outcome = deny_session_scope(scope, iam=self.iam, identity_center=self.identity_center())
            logger.info("session deny", scope=scope, outcome=str(outcome.outcome), detail=outcome.message)
            if outcome.outcome in DENIED:
                denied.append(scope)
            else:
                alert_only.append({"scope": scope, "message": outcome.message})
        # Something is suspended if any session was denied, or a user, role or group was attached before.
        suspended = bool(denied) or target.kind != TargetKind.SESSION
        return {**state, "sessions": {"denied": denied, "alert_only": alert_only, "suspended": suspended}}

    def restore_sessions(self, state: dict[str, Any]) -> dict[str, Any]:
        target = Target.from_dict(state["restore"]["target"])
        for scope in target.sessions:
            outcome = restore_session_scope(scope, iam=self.iam, identity_center=self.identity_center())
            logger.info("session restore", scope=scope, outcome=str(outcome.outcome), detail=outcome.message)
        return state


SESSION_TASKS = {
    "deny_sessions": SessionTasks.deny_sessions,
    "restore_sessions": SessionTasks.restore_sessions,
}


def run_session_task(tasks: SessionTasks, event: dict[str, Any]) -> dict[str, Any]:
    task = SESSION_TASKS.get(event.get("task", ""))
    if task is None:
        raise ValueError(f"unknown session task {event.get('task')!r}")
    return task(tasks, {**event["state"], "execution": event.get("execution")})


def build_session_tasks(settings: Settings) -> SessionTasks:
    # Session steps run only when a session is suspended or restored: connecting (assuming the
    # Identity Center admin role) on each is cheap, and its credentials are always fresh.
    connection: list[IdentityCenterConnection] = []

    def identity_center() -> IdentityCenterConnection:
        if not connection:
            connection.append(connect_identity_center(settings.identity_center_admin_role_arn))
        return connection[0]

    return SessionTasks(iam=boto3.client("iam"), identity_center=identity_center)
