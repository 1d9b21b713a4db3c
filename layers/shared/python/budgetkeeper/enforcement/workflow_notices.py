"""The notice a workflow task publishes: its fields from the run's state and the budget (who acted,
spend, limit, what drove it), the outlook a grace or forecast notice carries, and what a suspension
denied. Fields only, never words: the notifier words them per reader (budgetkeeper.notify.locale).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from budgetkeeper.budgets.rules import Budget, Status, forecast_crossing, forecast_spend
from budgetkeeper.budgets.targets import Target, TargetKind
from budgetkeeper.core.actors import SYSTEM_ACTOR
from budgetkeeper.core.money import exact
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.enforcement.state import WorkflowState
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.notices import AUTOMATIC_ACTORS, DRIVEN_NOTICES
from budgetkeeper.storage.spend_drivers import top_app, top_model

# What the state machine's Admit step writes into `machine`: the operators' machine, from its own
# definition (template.yaml's DefinitionSubstitutions), never from a run's input.
OPERATOR_MACHINE = "operator"
# An operator's own action that failed or could not suspend is answered to the operator (the CLI
# and the console show how the run ended): a routine notice, never a page.
ANSWERS_TO_OPERATORS = frozenset({"cannot_suspend", "workflow_failed"})


def workflow_notice(
    event_type: str,
    state: WorkflowState,
    now: datetime,
    *,
    budget: Budget | None = None,
    spent: Decimal | None = None,
    refresh_at: str | None = None,
    note: str | None = None,
    dry_run: bool = False,
    routine: bool = False,
    **facts: str | None,
) -> NotificationEvent:
    """The event of `event_type` for this run. Its reason is a person's only: a run's own reasons
    are its fields (spent, limit, percent, `facts` such as suspend_at)."""
    answer_to_operator = state.get("machine") == OPERATOR_MACHINE and event_type in ANSWERS_TO_OPERATORS
    actor = state.get("actor") or SYSTEM_ACTOR
    model = app = None
    if budget is not None and spent and event_type in DRIVEN_NOTICES:
        model = top_model(state["scope"], budget.span_at(now).start, now)
        app = top_app(state["scope"], budget.span_at(now).start, now)
    return NotificationEvent(
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
        at=iso_utc(now),
        dry_run=dry_run,
        note=note,
        routine=routine or answer_to_operator,
        top_model=model.name if model else None,
        top_model_usd=exact(model.cost_usd) if model else None,
        top_app=app.name if app else None,
        top_app_usd=exact(app.cost_usd) if app else None,
        top_app_hours=app.hours if app else None,
        causes=None,  # an operator alert's; a run's facts are its fields
        **{"time_zone": budget.time_zone if budget else None, **facts},
    )


def outlook(
    event_type: str, state: WorkflowState, budget: Budget, spent: Decimal, now: datetime
) -> dict[str, str | None]:
    """What comes next, in fields: the grace period's end; the forecast's spend and crossing."""
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


def suspension_note(state: WorkflowState, target: Target, restore_at: str | None, spared: str) -> str:
    """What a suspension denied, until when, what fell back to an alert and whom it spared."""
    note = describe_target(target) + ("" if restore_at else "; no end: only a restore")
    fallbacks = [entry["message"] for entry in state.get("denies", {}).get("alert_only", [])]
    if fallbacks:
        note += "; alert only for: " + "; ".join(fallbacks)
    if spared:
        note += "; spared: " + spared
    return note


def describe_target(target: Target) -> str:
    parts = [f"deny policy on IAM {target.kind} {target.name}"] if target.name else []
    if target.sessions:
        parts.append(f"{len(target.sessions)} session(s) denied alone: {', '.join(target.sessions)}")
    if target.users:  # a member account's names its account: `111122223333/alice`
        parts.append(f"deny policy on IAM user(s) {', '.join(target.users)}")
    if target.kind == TargetKind.SPARED:
        return "nothing denied: every principal it reaches is protected or excluded"
    return "; ".join(parts) or "nothing in IAM"
