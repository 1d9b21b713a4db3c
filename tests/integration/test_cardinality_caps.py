"""Names a caller mints (app claims, model ids, session names, profile ARNs) create bounded rows,
requests and metrics (issue 25), through the real UsageCalculatorFunction handler on moto."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

from budgetkeeper.core import clock
from budgetkeeper.core.tunables import Tunables
from budgetkeeper.metering.caps import OTHER_APP, OTHER_UNKNOWN_MODEL
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.storage.audit_rows import Change
from budgetkeeper.storage.budget_rows import create_budget
from budgetkeeper.storage.readers import scope_rollups
from budgetkeeper.storage.tables import BudgetItem, TotalItem
from devkit.harness.logs import cloudwatch_payload, converse_message
from devkit.harness.template import load_template
from tests.integration.test_usage_calculator import ACCOUNT, NOVA, expected_cost, run
from tests.timeline import now_iso, window_id

WORKER = f"arn:aws:sts::{ACCOUNT}:assumed-role/Worker/mallory"
DEFAULTS = Tunables.defaults()


def calls(count: int, *, arn: str = WORKER, model=lambda i: NOVA, app=lambda i: "chat", tokens=1000) -> bytes:
    return cloudwatch_payload(
        [
            converse_message(
                arn,
                model(i),
                tokens,
                100,
                account=ACCOUNT,
                timestamp=now_iso(),
                request_metadata={"app": app(i)},
            )
            for i in range(count)
        ]
    )


def emf_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]


def emitted_metric(emf: dict, name: str) -> tuple[str, str]:
    """(namespace, metric name) of one metric of an EMF line."""
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert name in {metric["Name"] for metric in directive["Metrics"]}
    return directive["Namespace"], name


def watched_by(alarm: str) -> set[tuple[str, str]]:
    """The metrics an alarm of template.yaml reads, as (namespace, name). Their one dimension is
    the service Powertools adds in Lambda (the template's POWERTOOLS_SERVICE_NAME; unset here)."""
    template = load_template()
    service = template["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
    metrics = [
        query["MetricStat"]["Metric"]
        for query in template["Resources"][alarm]["Properties"]["Metrics"]
        if "MetricStat" in query
    ]
    assert all(metric["Dimensions"] == [{"Name": "service", "Value": service}] for metric in metrics)
    return {(metric["Namespace"], metric["MetricName"]) for metric in metrics}


def test_claims_beyond_the_cap_are_charged_to_app_other_and_counted(settings, capsys):
    # Given one caller claiming 5 more apps than the cap, one call each
    cap = DEFAULTS.app_claims_per_principal
    run([calls(cap + 5, app=lambda i: f"app{i:02d}")])

    # Then the first `cap` apps have their own rollups, the rest are charged to app:(other)
    assert sum(r.calls for r in scope_rollups("app:app00")) == 1
    assert list(scope_rollups(f"app:app{cap:02d}")) == []
    assert sum(r.calls for r in scope_rollups(OTHER_APP)) == 5
    # and the caller is charged for every call
    assert sum(r.calls for r in scope_rollups("session:Worker/mallory")) == cap + 5
    # and operators see how many were folded
    [counts] = [line for line in emf_lines(capsys) if "AppClaimsFolded" in line]
    assert counts["AppClaimsFolded"] == [5.0]
    # and the alarm that tells them watches that very metric, in the namespace and service it has
    assert emitted_metric(counts, "AppClaimsFolded") in watched_by("CallerCapsAlarm")


def test_unknown_models_beyond_the_cap_are_one_row_and_one_metric(settings, capsys):
    # Given calls of 8 made-up models and one priced one
    cap = DEFAULTS.unknown_models_per_batch
    run([calls(cap + 3, model=lambda i: f"acme.made-up-{i}-v1:0"), calls(1)])

    # Then the first `cap` ids have rows by name, the others one row, and every call is counted
    models = {r.model: int(r.calls) for r in scope_rollups("session:Worker/mallory")}
    assert models == {**{f"acme.made-up-{i}-v1:0": 1 for i in range(cap)}, OTHER_UNKNOWN_MODEL: 3, NOVA: 1}
    # and CloudWatch gets one Model dimension for all unpriced models, whatever their number
    lines = emf_lines(capsys)
    dimensions = {line["Model"] for line in lines if "Model" in line}
    assert dimensions == {"unknown", NOVA}
    # and operators are alerted of the 3 folded, by the alarm that reads that metric
    [counts] = [line for line in lines if "UnknownModelsFolded" in line]
    assert counts["UnknownModelsFolded"] == [3.0]
    assert emitted_metric(counts, "UnknownModelsFolded") in watched_by("CallerCapsAlarm")


def test_a_new_session_gets_stored_default_budgets_only_above_the_floor(settings):
    floor_calls = int(DEFAULTS.default_budget_floor_usd / expected_cost(NOVA, 1000, 100)) + 1
    # Given a session that spent under the floor
    run([calls(1)])
    # Then its default budgets are not stored, but its spend is counted in their windows
    assert list(BudgetItem.query("session:Worker/mallory")) == []
    total = TotalItem.get("session:Worker/mallory|daily", window_id("daily"))
    assert total.spent_usd == expected_cost(NOVA, 1000, 100)
    # When it spends past the floor
    run([calls(floor_calls)])
    # Then they are stored, following the defaults, and the total has every call
    stored = [(item.window, item.origin) for item in BudgetItem.query("session:Worker/mallory")]
    assert stored == [("daily", "default"), ("monthly", "default")]
    total = TotalItem.get("session:Worker/mallory|daily", window_id("daily"))
    assert total.spent_usd == expected_cost(NOVA, 1000, 100) * (floor_calls + 1)


def test_an_operators_weekly_budget_is_read_through_the_kind_index(settings):
    # Given an operator's weekly budget on a session
    change = Change(actor="ops", reason="test", at=clock.now())
    create_budget("session:Worker/mallory", "weekly", {"limit_usd": Decimal(5)}, "budget set", change)
    # When it spends
    run([calls(2)])
    # Then the weekly total counts it, and no default budget is added beside it
    total = TotalItem.get("session:Worker/mallory|weekly", window_id("weekly"))
    assert total.spent_usd == expected_cost(NOVA, 1000, 100) * 2
    assert [item.window for item in BudgetItem.query("session:Worker/mallory")] == ["weekly"]


def test_rollups_and_totals_expire_after_the_retention(settings):
    run([calls(1)])
    retention = DEFAULTS.usage_retention_days * 86_400
    [rollup] = scope_rollups("session:Worker/mallory")
    hour = datetime.fromisoformat(f"{rollup.hour}:00+00:00")
    assert rollup.expires_at == int(hour.timestamp()) + retention
    total = TotalItem.get("session:Worker/mallory|daily", window_id("daily"))
    assert total.expires_at == int(datetime.fromisoformat(total.window_end).timestamp()) + retention


class CountingBedrock:
    def __init__(self) -> None:
        self.calls = 0

    def get_inference_profile(self, **_: str) -> dict:
        self.calls += 1
        return {"models": []}

    def list_tags_for_resource(self, **_: str) -> dict:
        self.calls += 1
        return {"tags": []}


def test_profile_look_ups_are_bounded_per_batch():
    # Given a batch allowed 4 look-ups, and 10 distinct profile ARNs
    bedrock = CountingBedrock()
    profiles = InferenceProfiles(bedrock)  # type: ignore[arg-type]
    profiles.begin_batch(4)
    arns = [f"arn:aws:bedrock:us-east-1:{ACCOUNT}:application-inference-profile/p{i}" for i in range(10)]
    # When each is resolved
    for arn in arns:
        profiles.model_id_for(arn)
        profiles.tags_for(arn)
    # Then Bedrock was asked 4 times, and the rest wait for a later batch
    assert bedrock.calls == 4 and profiles.deferred == 16
    profiles.begin_batch(4)
    profiles.model_id_for(arns[9])
    assert bedrock.calls == 5
