"""The budget enforcement workflow's tasks and the one way to start it.

The state machine (statemachines/budget_enforcement.asl.json) owns the order of steps, the waits
and the IAM attach/detach calls; each Lambda task here takes the workflow state, records what
happened (budget status, audit) and publishes one notification event, and returns the state with
what the next Choice needs. Tasks are safe to run twice: every write is conditional on the state
it expects, and a repeated step finds its work done.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from aws_lambda_powertools.metrics import MetricUnit

from budgetkeeper.budgets.rules import (
    ENFORCING,
    MANUAL_WINDOW,
    Budget,
    Level,
    Status,
    forecast_crossing,
    forecast_spend,
    is_manual_window,
    manual_window,
)
from budgetkeeper.budgets.targets import (
    Directory,
    Next,
    Target,
    TargetKind,
    deny_target,
    evaluate,
    exemption,
    is_exempt,
    spare_exempt,
    still_exceeded,
)
from budgetkeeper.core import clock
from budgetkeeper.core.actors import SYSTEM_ACTOR
from budgetkeeper.core.money import exact
from budgetkeeper.core.observability import logger, metrics
from budgetkeeper.core.settings import Tunables
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.domain.scopes import parse_scope
from budgetkeeper.enforcement.state import Decision, WorkflowState, window_end_of
from budgetkeeper.notify import NotificationEvent, SnsPublisher
from budgetkeeper.notify.notices import AUTOMATIC_ACTORS, DRIVEN_NOTICES
from budgetkeeper.storage import budget_rows
from budgetkeeper.storage.budget_rows import Change
from budgetkeeper.storage.readers import budget_row, budget_rows_of, claims_in_window, spent_in_window
from budgetkeeper.storage.spend_drivers import top_app, top_model
from budgetkeeper.storage.tables import BudgetItem


class BudgetNotFound(Exception):
    """The workflow was asked about a budget that does not exist."""


class BudgetChangedMeanwhile(Exception):
    """Another run kept changing the budget while this one evaluated it; Step Functions retries."""


class InvalidRequest(Exception):
    """An operator's input is missing something or names something that cannot be done."""


# What the state machine's Admit step writes into `machine`: the operators' machine, from its own
# definition (template.yaml's DefinitionSubstitutions), never from a run's input.
OPERATOR_MACHINE = "operator"
# An operator's own action that failed or could not suspend is answered to the operator (the CLI
# and the console show how the run ended): a routine notice, never a page.
ANSWERS_TO_OPERATORS = frozenset({"cannot_suspend", "workflow_failed"})


@dataclass
class WorkflowTasks:
    """Everything the workflow's Lambda tasks need; one instance per invocation."""

    tunables: Tunables
    publisher: SnsPublisher
    directory: Directory
    stop_execution: Callable[[str, str], None]
    system_roles: tuple[str, ...] = ()
    clock: Callable[[], datetime] = clock.now

    # ------------------------------------------------------------------ helpers

    def _budget(self, scope: str, window: str) -> tuple[BudgetItem, Budget]:
        item = budget_row(scope, window)
        if item is None:
            raise BudgetNotFound(f"no budget {window} for {scope}")
        return item, Budget.resolve(item, self.tunables)

    def _change(self, state: WorkflowState, reason: str | None = None) -> Change:
        """Who and why, from the run's input: what a budget row's audit line records."""
        return Change(
            actor=state.get("actor") or SYSTEM_ACTOR,
            at=self.clock(),
            reason=state.get("reason") if reason is None else reason,
            execution_arn=state.get("execution"),
        )

    def _notify(
        self,
        event_type: str,
        state: WorkflowState,
        *,
        budget: Budget | None = None,
        spent: Decimal | None = None,
        refresh_at: str | None = None,
        note: str | None = None,
        dry_run: bool = False,
        routine: bool = False,
        **facts: str | None,
    ) -> None:
        """Publish the event. Its reason is a person's only: a run's own reasons are its fields
        (spent, limit, percent, `facts` such as suspend_at), worded per reader by the notifier."""
        answer_to_operator = state.get("machine") == OPERATOR_MACHINE and event_type in ANSWERS_TO_OPERATORS
        actor = state.get("actor") or SYSTEM_ACTOR
        model = app = None
        if budget is not None and spent and event_type in DRIVEN_NOTICES:
            now = self.clock()
            model = top_model(state["scope"], budget.span_at(now).start, now)
            app = top_app(state["scope"], budget.span_at(now).start, now)
        self.publisher.publish(
            NotificationEvent(
                type=event_type,
                scope=state["scope"],
                window=state.get("window"),
                window_id=state.get("window_id"),
                spent_usd=None if spent is None else str(spent),
                limit_usd=None if budget is None else str(budget.limit_usd),
                percent=None if budget is None or spent is None else str(budget.percent_of(spent)),
                refresh_at=refresh_at or state.get("window_end"),
                actor=actor,
                reason=None if actor in AUTOMATIC_ACTORS else state.get("reason"),
                execution=state.get("execution"),
                at=iso_utc(self.clock()),
                dry_run=dry_run,
                note=note,
                routine=routine or answer_to_operator,
                top_model=model.name if model else None,
                top_model_usd=exact(model.cost_usd) if model else None,
                top_app=app.name if app else None,
                top_app_usd=exact(app.cost_usd) if app else None,
                causes=None,  # an operator alert's; a run's facts are its fields
                **{"time_zone": budget.time_zone if budget else None, **facts},
            )
        )

    def _outlook(
        self, event_type: str, state: WorkflowState, budget: Budget, spent: Decimal
    ) -> dict[str, Any]:
        """What comes next, in fields: the grace period's end; the forecast's spend and crossing."""
        now = self.clock()
        if event_type == Status.GRACE:
            return {"suspend_at": iso_utc(now + timedelta(seconds=budget.grace_seconds))}
        if event_type != "forecast":
            return {}
        span = budget.span_at(now)
        # The monitor projects from the recent burn and says so; the calculator's crossing, from
        # the window's average.
        given = state.get("projected_usd")
        projected = Decimal(given) if given else forecast_spend(spent, span, now)
        if projected is None:
            return {}
        crosses = forecast_crossing(spent, projected, budget.limit_usd, now, span.end)
        return {"projected_usd": exact(projected), "crosses_at": iso_utc(crosses) if crosses else None}

    def _exempt(self, budget: Budget) -> str | None:
        return is_exempt(budget, self.tunables.exclusions, self.system_roles)

    def _target(self, scope: str, target: Target) -> tuple[Target, tuple[str, ...]]:
        """`target` without the principals protection or the exclusions spare, and who they are."""
        return spare_exempt(
            target,
            scope,
            lambda principal: exemption(
                principal, self.directory.protection(principal), self.tunables.exclusions, self.system_roles
            ),
            self.directory.group_members,
        )

    # ------------------------------------------------------------------ automatic path

    def evaluate(self, state: WorkflowState, attempts: int = 3) -> WorkflowState:
        """Decide what a crossing calls for now; notify-only outcomes are recorded here.

        Two runs may evaluate one budget at once (a late warning run and the exceeded run): the
        transition is written only if the budget is still as it was read, else evaluated afresh.
        """
        scope, window, window_id = state["scope"], state["window"], state["window_id"]
        item, budget = self._budget(scope, window)
        spent = spent_in_window(scope, window, window_id)
        if (
            item.baseline_window_id == window_id
            and item.baseline_usd is not None
            and spent <= item.baseline_usd
        ):
            spent_for_level = Decimal(0)  # nothing new since the last restore in this window
        else:
            spent_for_level = spent
        notified = Level(item.notified_level_in(window_id))
        claims = claims_in_window(scope, window, window_id)
        trusted_over_limit = budget.level_of(spent - claims.claimed_usd) >= Level.EXCEEDED
        target, spared = self._target(
            scope, deny_target(scope, self.directory, claims=claims, trusted_over_limit=trusted_over_limit)
        )
        window_closed = datetime.fromisoformat(window_end_of(state)) <= self.clock()
        outcome = evaluate(
            budget,
            spent_for_level,
            requested=Level[state["level"].upper()],
            forecast=bool(state.get("forecast")),
            window_closed=window_closed,
            already_notified=notified,
            forecast_notified=item.forecast_window_id == window_id,
            exempt_because=self._exempt(budget),
            target=target,
        )
        decision: Decision = {
            "next": str(outcome.next),
            "target": target.to_dict(),
            "spared": list(spared),
            "dry_run": budget.dry_run,
            "grace_seconds": budget.grace_seconds,
            "note": outcome.note,
        }
        logger.info(
            "evaluated", scope=scope, window=window, spent=str(spent), **cast(dict[str, Any], decision)
        )
        if outcome.next == Next.NOTHING:
            return {**state, "decision": decision}
        assert outcome.event_type is not None
        # Warning, critical and grace move the status; the other notifications leave it.
        to_status = (
            Status(outcome.event_type)
            if outcome.next in (Next.NOTIFY, Next.GRACE)
            and outcome.event_type in (Status.WARNING, Status.CRITICAL, Status.GRACE)
            else None
        )
        recorded = budget_rows.record_notified(
            item,
            window_id=window_id,
            level=outcome.level,
            forecast=outcome.event_type == "forecast",
            to_status=to_status,
            change=self._change(state),
        )
        if not recorded:
            if attempts <= 1:
                raise BudgetChangedMeanwhile(f"{scope} {window} kept changing while it was evaluated")
            return self.evaluate(state, attempts - 1)
        self._notify(
            outcome.event_type,
            state,
            budget=budget,
            spent=spent,
            note=outcome.note if outcome.next != Next.GRACE else None,
            dry_run=budget.dry_run,
            **self._outlook(outcome.event_type, state, budget, spent),
        )
        return {**state, "decision": decision}

    def reevaluate(self, state: WorkflowState) -> WorkflowState:
        """After the grace period: suspend, or stand down if the situation changed meanwhile."""
        scope, window, window_id = state["scope"], state["window"], state["window_id"]
        item, budget = self._budget(scope, window)
        spent = spent_in_window(scope, window, window_id)
        window_ended = datetime.fromisoformat(window_end_of(state)) <= self.clock()
        stand_down = still_exceeded(budget, spent, self._exempt(budget), window_ended=window_ended)
        decision = state["decision"].copy()
        if stand_down is None:
            # Protection or an exclusion added during the grace period spares its principal too.
            target, spared = self._target(scope, Target.from_dict(decision["target"]))
            decision.update(
                {
                    "next": "suspend",
                    "target": target.to_dict(),
                    "spared": [*(decision.get("spared") or ()), *spared],
                }
            )
            return {**state, "decision": decision}
        decision["next"] = "stand_down"
        to_status = {Level.WARNING: Status.WARNING, Level.CRITICAL: Status.CRITICAL}.get(
            budget.level_of(spent), Status.OK
        )
        budget_rows.stand_down(item, to_status, self._change(state, reason=stand_down))
        self._notify("stood_down", state, budget=budget, spent=spent, note=stand_down)
        return {**state, "decision": decision}

    # ------------------------------------------------------------------ operators

    def prepare_manual_suspend(self, state: WorkflowState) -> WorkflowState:
        scope = state["scope"]
        if not state.get("reason"):
            raise InvalidRequest("a suspension needs a reason")
        parse_scope(scope)
        target, spared = self._target(scope, deny_target(scope, self.directory))
        if target.kind == TargetKind.NONE:
            raise InvalidRequest(f"cannot suspend {scope}: {target.why_not}")
        if target.kind == TargetKind.SPARED:
            raise InvalidRequest(f"cannot suspend {scope}: {'; '.join(spared)} (unprotect it first)")
        until = state.get("until")
        if until:
            until_at = datetime.fromisoformat(until.replace("Z", "+00:00"))
            if until_at <= self.clock():
                raise InvalidRequest(f"until {until} is in the past")
            until = iso_utc(until_at)
        return {
            **state,
            "window": self._reserve_manual_row(scope, state),
            "window_end": until,
            "decision": {
                "next": "suspend",
                "target": target.to_dict(),
                "spared": list(spared),
                "dry_run": self.tunables.dry_run,
                "grace_seconds": 0,
                "note": None,
            },
        }

    def _reserve_manual_row(self, scope: str, state: WorkflowState) -> str:
        """The row of this operator's suspension, reserved before its denies are applied.

        Each operator's suspension is its own row and its own holder of its denies, so one that
        ends (or is restored alone) never lifts another: the scope's first is `manual`, one made
        while another holds it `manual#<hold>`, named after this run (a retried step agrees).
        """
        change = self._change(state)
        if budget_rows.reserve_manual_suspension(scope, MANUAL_WINDOW, change):
            return MANUAL_WINDOW
        window = manual_window(hashlib.sha256(str(state.get("execution")).encode()).hexdigest()[:12])
        if not budget_rows.reserve_manual_suspension(scope, window, change):
            raise BudgetChangedMeanwhile(f"{scope} {window} is held by another run")
        return window

    def _drop_manual_reservation(self, state: WorkflowState) -> None:
        """A manual suspension that applied nothing leaves no row behind."""
        if is_manual_window(state.get("window")):
            budget_rows.drop_manual_reservation(state["scope"], state["window"], self._change(state))

    def record_suspended(self, state: WorkflowState) -> WorkflowState:
        """The denies are applied (or, in dry run, would be): record it and say when it ends."""
        scope, window = state["scope"], state["window"]
        target = Target.from_dict(state["decision"]["target"])
        dry_run = bool(state["decision"]["dry_run"])
        restore_at = state.get("window_end")  # None: a manual suspension with no end
        spared = "; ".join(state["decision"].get("spared") or ())
        reason = "; ".join(filter(None, (state.get("reason"), spared))) or None
        change = self._change(state, reason=reason)
        if is_manual_window(window):
            item = budget_rows.record_manual_suspension(
                scope, window, target=target, until=restore_at, change=change
            )
        else:
            item = budget_rows.record_suspended(
                self._budget(scope, window)[0],
                target=target,
                until=restore_at,
                window_id=state.get("window_id"),
                change=change,
            )
        budget = None if is_manual_window(window) else Budget.resolve(item, self.tunables)
        spent = None if budget is None else spent_in_window(scope, window, state["window_id"])
        note = describe_target(target) + ("" if restore_at else "; no end: only a restore")
        fallbacks = [entry["message"] for entry in state.get("denies", {}).get("alert_only", [])]
        if fallbacks:
            note += "; alert only for: " + "; ".join(fallbacks)
        if spared:
            note += "; spared: " + spared
        self._notify(
            "suspended", state, budget=budget, spent=spent, refresh_at=restore_at, note=note, dry_run=dry_run
        )
        metrics.add_metric(name="Suspensions", unit=MetricUnit.Count, value=1)
        return {**state, "suspension": {"restore_at": restore_at}}

    def prepare_restore(self, state: WorkflowState) -> WorkflowState:
        """At the refresh (or a manual suspension's end): this window's denies are released next."""
        return self._prepare_restore(state, windows=[state["window"]], stop_others=False)

    def prepare_due_restore(self, state: WorkflowState) -> WorkflowState:
        """The monitor's backstop restore, on the evaluation machine: only one the budget's record
        calls for (its suspension's end has passed, or a restore claimed it and did not finish)."""
        item, _ = self._budget(state["scope"], state["window"])
        why_not = why_no_restore_is_due(item, self.clock())
        if why_not:
            raise InvalidRequest(f"no restore is due for {state['scope']} {state['window']}: {why_not}")
        return self._prepare_restore(state, windows=[state["window"]], stop_others=False)

    def prepare_emergency_restore(self, state: WorkflowState) -> WorkflowState:
        """An operator's restore: ends every suspension of the scope (or of one window) at once."""
        if not state.get("reason"):
            raise InvalidRequest("a restore needs a reason")
        scope = state["scope"]
        # A budget in its grace period is restored too: its run is stopped before it suspends.
        enforcing = [item.window for item in budget_rows_of(scope) if item.status in ENFORCING]
        if state.get("window") == MANUAL_WINDOW:  # every operator's suspension of the scope
            windows = [window for window in enforcing if is_manual_window(window)]
        else:
            windows = [state["window"]] if state.get("window") else enforcing
        if not windows:
            raise InvalidRequest(f"{scope} is not suspended")
        return self._prepare_restore(state, windows=windows, stop_others=True)

    def _prepare_restore(
        self, state: WorkflowState, *, windows: list[str], stop_others: bool
    ) -> WorkflowState:
        scope = state["scope"]
        rows = {item.window: item for item in budget_rows_of(scope, consistent_read=True)}
        restoring = [rows[window] for window in windows if window in rows]
        if stop_others:
            for item in restoring:
                if item.execution_arn and item.execution_arn != state.get("execution"):
                    self.stop_execution(item.execution_arn, f"restored by {state.get('actor')}")
        for item in restoring:
            budget_rows.claim_for_restore(item)
        # What is lifted is decided by the deny records (ReleaseDenies): a deny another window or
        # another scope still holds stays. The note only tells people why access may not come back.
        still = [
            item.window
            for item in budget_rows_of(scope, consistent_read=True)
            if item.status == Status.SUSPENDED and item.window not in windows
        ]
        note = f"still suspended by {', '.join(still)}" if still else None
        return {**state, "restore": {"windows": windows, "note": note}}

    def record_restored(self, state: WorkflowState) -> WorkflowState:
        scope = state["scope"]
        restore = state["restore"]
        for window in restore["windows"]:
            item = budget_row(scope, window)
            if item is None:
                continue
            window_id = item.status_window_id
            spent = (
                spent_in_window(scope, window, window_id)
                if window_id and not is_manual_window(window)
                else Decimal(0)
            )
            if not budget_rows.record_restored(item, baseline_usd=spent, change=self._change(state)):
                continue
            # The window that runs now (at a refresh: the new one), not the one that ended.
            budget = None if is_manual_window(window) else Budget.resolve(item, self.tunables)
            self._notify(
                "restored",
                {**state, "window": window},
                note=restore.get("note"),
                refresh_at=iso_utc(budget.span_at(self.clock()).end) if budget else None,
                time_zone=budget.time_zone if budget else None,
            )
            metrics.add_metric(name="Restores", unit=MetricUnit.Count, value=1)
        return state

    def report_cannot_suspend(self, state: WorkflowState) -> WorkflowState:
        """Every deny fell back to an alert (or there was none to apply): nothing was suspended; say why."""
        scope, window = state["scope"], state["window"]
        alerts = state.get("denies", {}).get("alert_only", [])
        reasons = "; ".join(entry["message"] for entry in alerts) or (
            state["decision"]["target"].get("why_not") or "nothing in IAM to deny"
        )
        # Principals that no longer exist cannot spend either: told, but no one is paged for it.
        routine = bool(alerts) and all(entry.get("gone") for entry in alerts)
        if not is_manual_window(window):
            item, budget = self._budget(scope, window)
            budget_rows.record_cannot_suspend(item, self._change(state, reason=reasons))
            spent = spent_in_window(scope, window, state["window_id"])
            self._notify("cannot_suspend", state, budget=budget, spent=spent, note=reasons, routine=routine)
        else:
            self._drop_manual_reservation(state)
            self._notify("cannot_suspend", state, note=reasons, routine=routine)
        return state

    def set_protection(self, state: WorkflowState) -> WorkflowState:
        scope, protect = state["scope"], state["action"] == "protect"
        if protect and not state.get("reason"):
            raise InvalidRequest("protecting a scope needs a reason")
        items = budget_rows_of(scope)
        if state.get("window"):
            items = [item for item in items if item.window == state["window"]]
        if not items:
            raise BudgetNotFound(f"{scope} has no budget to protect; set one first")
        for item in items:
            budget_rows.set_protection(item, protect, self._change(state))
        self._notify("protected" if protect else "unprotected", state)
        return state

    def report_failure(self, state: WorkflowState) -> WorkflowState:
        failure = state.get("failure") or {}
        logger.error("workflow failed", scope=state.get("scope"), failure=failure)
        self._drop_manual_reservation(state)
        metrics.add_metric(name="WorkflowFailures", unit=MetricUnit.Count, value=1)
        self._notify(
            "workflow_failed",
            state,
            note=f"{failure.get('Error', 'error')}: {str(failure.get('Cause', ''))[:500]}",
        )
        return state


TASKS = {
    "evaluate": WorkflowTasks.evaluate,
    "reevaluate": WorkflowTasks.reevaluate,
    "prepare_manual_suspend": WorkflowTasks.prepare_manual_suspend,
    "record_suspended": WorkflowTasks.record_suspended,
    "prepare_restore": WorkflowTasks.prepare_restore,
    "prepare_due_restore": WorkflowTasks.prepare_due_restore,
    "prepare_emergency_restore": WorkflowTasks.prepare_emergency_restore,
    "record_restored": WorkflowTasks.record_restored,
    "report_cannot_suspend": WorkflowTasks.report_cannot_suspend,
    "set_protection": WorkflowTasks.set_protection,
    "report_failure": WorkflowTasks.report_failure,
}


def why_no_restore_is_due(item: BudgetItem, now: datetime) -> str | None:
    """None when the record calls for a restore; else why it does not."""
    if item.status == Status.RESTORING:
        return None  # claimed by a restore that did not finish: finishing it lifts what it claimed
    if item.status != Status.SUSPENDED:
        return f"it is {item.status}, not suspended"
    if not item.suspended_until:
        return "its suspension has no end: only an operator's restore ends it"
    if datetime.fromisoformat(item.suspended_until) > now:
        return f"its suspension ends at {item.suspended_until}"
    return None


def describe_target(target: Target) -> str:
    parts = [f"deny policy on IAM {target.kind} {target.name}"] if target.name else []
    if target.sessions:
        parts.append(f"{len(target.sessions)} session(s) denied alone: {', '.join(target.sessions)}")
    if target.kind == TargetKind.SPARED:
        return "nothing denied: every principal it reaches is protected or excluded"
    return "; ".join(parts) or "nothing in IAM"
