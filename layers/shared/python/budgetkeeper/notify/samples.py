"""A sample event for every notice, as the workflow, the monitor and the reconciler publish them.

`budgetkeeper notices preview` renders them so that whoever edits a template sees every notice in
every language; the rendering tests check the same samples. Times follow the clock.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from budgetkeeper.budgets.rules import manual_window
from budgetkeeper.core.actors import (
    BATCH_JOBS_ACTOR,
    BILLING_ACTOR,
    MONITOR_ACTOR,
    PRICE_REFRESH_ACTOR,
    SYSTEM_ACTOR,
)
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.notify import NotificationEvent
from budgetkeeper.notify.causes import cause

SAMPLE_SCOPE = "user:alice"
SAMPLE_OPERATOR = "arn:aws:iam::123456789012:user/ops-jordan"
SAMPLE_MODEL = "us.anthropic.claude-sonnet-4-20250514-v1:0"
SAMPLE_APP = "app:ResearchAssistant"
_RUN = "arn:aws:states:us-east-1:123456789012:execution:budgetkeeper-enforcement:{}-3f2a9c1d5e7b"


def sample_events(now: datetime) -> dict[str, NotificationEvent]:
    """One event per notice (template name), at `now`: amounts as the workflow writes them."""
    day_end = iso_utc(now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1))

    def budget_event(
        kind: str, spent: str | None = None, percent: str | None = None, **fields: Any
    ) -> NotificationEvent:
        values: dict[str, Any] = {
            "type": kind,
            "scope": SAMPLE_SCOPE,
            "window": "daily",
            "window_id": now.date().isoformat(),
            "spent_usd": spent,
            "limit_usd": "1234.5",
            "percent": percent,
            "refresh_at": day_end,
            "actor": SYSTEM_ACTOR,
            "reason": None,
            "execution": _RUN.format(kind),
            "at": iso_utc(now),
            "top_model": SAMPLE_MODEL,
            "top_model_usd": "912.3371",
            "top_app": SAMPLE_APP,
            "top_app_usd": "701.0488",
        }
        return NotificationEvent(**{**values, **fields})

    operator = {"actor": SAMPLE_OPERATOR, "reason": "INC-42: runaway batch job"}
    no_drivers = {"top_model": None, "top_model_usd": None, "top_app": None, "top_app_usd": None}
    quiet = {"limit_usd": None, **no_drivers}
    return {
        "forecast": budget_event(
            "forecast",
            "640.125",
            "51.85",
            actor=MONITOR_ACTOR,
            projected_usd="1490.22",
            crosses_at=iso_utc(now + timedelta(hours=5, minutes=12)),
        ),
        "warning": budget_event("warning", "1004.90256", "81.4"),
        "critical": budget_event("critical", "1150.5", "93.2"),
        "grace": budget_event(
            "grace", "1240.00065382", "100.4", suspend_at=iso_utc(now + timedelta(minutes=15))
        ),
        "suspended": budget_event("suspended", "1250.75", "101.3", note="denied user alice"),
        "manual_suspension": budget_event(
            "suspended",
            window=manual_window("a1b2"),
            refresh_at=iso_utc(now + timedelta(hours=2)),
            **quiet,
            **operator,
        ),
        "restored": budget_event("restored", **quiet),
        "stood_down": budget_event("stood_down", "1100.2", "89.1"),
        "protected_alert": budget_event("protected_alert", "1301.8", "105.5"),
        "cannot_suspend": budget_event("cannot_suspend", "1250.75", "101.3"),
        "late_spend": budget_event("late_spend", "12.5", "1"),
        "protected": budget_event("protected", **quiet, **operator),
        "unprotected": budget_event("unprotected", **quiet, **operator),
        "workflow_failed": budget_event("workflow_failed", **quiet),
        "notification_failed": budget_event("notification_failed", **quiet),
        "deny_reconciled": budget_event("deny_reconciled", **quiet),
        "session_policy_rejected": budget_event(
            "session_policy_rejected",
            scope="role:ChatbotApp-BedrockRole",
            window=None,
            reason=None,
            causes=[
                cause(
                    "session_policy_not_ours",
                    policy_arn="arn:aws:iam::111122223333:policy/budgetkeeper/sessions/ChatbotApp-BedrockRole",
                    role="ChatbotApp-BedrockRole",
                    problems="Effect Allow, not Deny",
                )
            ],
            **quiet,
        ),
        "prices_refused": budget_event(
            "prices_refused",
            scope="prices",
            window=None,
            actor=PRICE_REFRESH_ACTOR,
            reason=None,
            causes=[
                cause("no_price_rows"),
                cause(
                    "price_jump",
                    model="anthropic.claude-3-haiku-20240307-v1:0",
                    region="us-east-1",
                    tier="standard",
                    kind="cache_read",
                    old="0.03",
                    new="0.3",
                    factor="3",
                ),
                cause("metered_without_price", model="amazon.nova-pro-v1:0", region="eu-west-3"),
            ],
            **quiet,
        ),
        "billing_drift": budget_event(
            "billing_drift",
            "20.02",
            "27.4",
            scope="account",
            window="daily",
            actor=BILLING_ACTOR,
            reason=None,
            causes=[cause("billing_drift", day=now.date().isoformat(), percent="5", min_usd="1")],
            billed_usd="14.57",
            limit_usd=None,
            **no_drivers,
        ),
        "batch_job_unmetered": budget_event(
            "batch_job_unmetered",
            scope="user:alice",
            window=None,
            actor=BATCH_JOBS_ACTOR,
            reason=None,
            causes=[cause("outputs_unreadable", where="s3://batch-out/job-7/", error="AccessDenied")],
            **quiet,
        ),
        "member_account_unreachable": budget_event(
            "member_account_unreachable",
            scope="account:111122223333",
            window=None,
            reason=None,
            causes=[
                cause(
                    "member_role_unreachable",
                    role="BudgetkeeperEnforcement",
                    account="111122223333",
                    error="AccessDenied: not authorized to perform sts:AssumeRole",
                    entries="user:111122223333/alice",
                )
            ],
            **quiet,
        ),
        "daily_summary": budget_event("daily_summary", scope="", window=None, **quiet),
    }


def sample_summary() -> dict[str, Any]:
    """A daily summary's lists, amounts exact as summary.gather_summary writes them."""
    return {
        "total_today": "1843.2051",
        "total_month": "20411.9",
        "teams": [{"name": "team:data", "today": "912.3371", "month": "10020.5"}],
        "top_scopes": [{"name": SAMPLE_SCOPE, "today": "1250.75"}, {"name": "role:etl", "today": "0.0042"}],
        "suspended": [
            {"name": SAMPLE_SCOPE, "window": "daily", "status": "suspended"},
            {"name": "user:bob", "until": None},
        ],
        "grace": [],
        "near": [{"name": "role:etl", "window": "monthly", "status": "critical"}],
        "unknown_models": [{"name": "vendor.new-model-v1", "calls": 3}],
        "counts": {"suspended": 2, "grace": 0},
    }
