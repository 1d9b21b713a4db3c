"""The Prices and Health tabs: the rates in force per Region and tier (models in use first,
searchable, what a stored version would change), and whether metering keeps up."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.core import clock
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.metering.usage_lines import HOUR, usage_lines
from budgetkeeper.pricing.versions import active_table, active_version, diff, load_version, versions
from budgetkeeper_cli.console.pages import Page, Section
from budgetkeeper_cli.diagnosis import COLUMNS as DOCTOR_COLUMNS
from budgetkeeper_cli.diagnosis import FAIL, OK, WARN, Finding, diagnose
from budgetkeeper_cli.price_rows import (
    BUNDLED,
    CHANGE_COLUMNS,
    OVERRIDE_COLUMNS,
    ROW_COLUMNS,
    VERSION_COLUMNS,
    override_rows_in_force,
    price_row,
    version_rows,
)
from budgetkeeper_cli.reports.aggregation import UsageReport
from budgetkeeper_cli.reports.rollups import ReportWindow, fill
from budgetkeeper_cli.stack_config import Stack, describe_aws_error

RATE_ROWS = 200  # rows of rates shown at once; the search finds the others
FRESH = timedelta(hours=2)  # metered this recently: metering keeps up
STALE = timedelta(hours=24)


def prices_page(args: Any, window: ReportWindow) -> Page:
    """Rates per model, Region and tier in force, the models called in `window` first; `q` searches."""
    used = UsageReport(["model"])
    fill([used], window, None)
    models_in_use = {row.group[0] for row in used.rows() if row.group[0]}
    table = active_table()
    query = (args.get("q") or "").strip().lower()
    rows = [price_row(row) for row in table]
    if query:
        rows = [row for row in rows if query in f"{row['model']} {row['region']} {row['tier']}".lower()]
    rows.sort(key=lambda row: (row["model"] not in models_in_use, row["model"], row["region"], row["tier"]))
    shown = rows[:RATE_ROWS]
    page = Page(
        "prices",
        [
            Section("rates", f"Rates in force ({table.version}), USD per 1M tokens", ROW_COLUMNS, shown),
            Section(
                "changes", "What the newest stored version would change", CHANGE_COLUMNS, _changes(table)
            ),
            Section("versions", "Price versions from the AWS Price List", VERSION_COLUMNS, version_rows()),
            Section("overrides", "Operators' overrides", OVERRIDE_COLUMNS, override_rows_in_force()),
        ],
    )
    page.extra.update(
        active=active_version() or BUNDLED,
        table_version=table.version,
        q=args.get("q") or "",
        in_use=sorted(models_in_use),
        left_out=len(rows) - len(shown),
        matched=len(rows),
    )
    return page


def _changes(table: Any) -> list[dict[str, Any]]:
    stored = [item.version for item in versions() if item.version != table.version]
    if not stored:
        return []
    changes = diff(table, load_version(max(stored)))
    return [{**change.to_dict(), "old": change.old, "new": change.new} for change in changes]


def health_page(stack: Stack) -> Page:
    """Metering freshness first (coloured), then `doctor`'s checks."""
    now = clock.now()
    freshness = [finding.row() for finding in (_last_metered(now), *_workflow_health(stack, now))]
    findings = [finding.row() for finding in diagnose(stack, None)]
    return Page(
        "health",
        [
            Section("freshness", "Does metering keep up?", DOCTOR_COLUMNS, freshness),
            Section("checks", "Checks (budgetkeeper doctor)", DOCTOR_COLUMNS, findings),
        ],
    )


def _last_metered(now: datetime) -> Finding:
    """The newest hour with a usage line, today or yesterday (UTC)."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    newest = max(
        (line.hour for line in usage_lines(hour - timedelta(days=1), hour + HOUR) if line.hour), default=None
    )
    check = "last record metered"
    if newest is None:
        return Finding(
            check,
            WARN,
            "no call metered today or yesterday",
            "check `budgetkeeper doctor` below: is logging on?",
        )
    age = now - datetime.fromisoformat(f"{newest}:00:00+00:00")
    detail = f"hour {newest}:00Z, {_age(age)} ago"
    if age <= FRESH:
        return Finding(check, OK, detail)
    return Finding(
        check, WARN if age <= STALE else FAIL, detail, "no call since, or the usage calculator is behind"
    )


def _workflow_health(stack: Stack, now: datetime) -> list[Finding]:
    sfn = stack.client("stepfunctions")
    findings = []
    machine = stack.settings.evaluation_machine_arn_value
    try:
        latest = sfn.list_executions(stateMachineArn=machine, maxResults=1)["executions"] if machine else []
        failed = [
            run
            for arn in filter(None, (machine, stack.settings.operator_machine_arn_value))
            for run in sfn.list_executions(stateMachineArn=arn, statusFilter="FAILED")["executions"]
            if run.get("stopDate") and now - run["stopDate"] <= STALE
        ]
    except (BotoCoreError, ClientError) as error:
        return [Finding("budget evaluations", FAIL, f"could not check: {describe_aws_error(error)}")]
    if latest:
        started = latest[0]["startDate"]
        findings.append(
            Finding(
                "last budget evaluation (sweep or metering)",
                OK,
                f"started {iso_utc(started)}, {_age(now - started)} ago",
            )
        )
    else:
        findings.append(Finding("last budget evaluation (sweep or metering)", WARN, "none yet"))
    findings.append(
        Finding(
            "failed workflow runs, last 24 h",
            FAIL if failed else OK,
            f"{len(failed)}",
            "open them in the Enforcement tab's runs or the Step Functions console" if failed else None,
        )
    )
    return findings


def _age(age: timedelta) -> str:
    minutes = max(int(age.total_seconds() // 60), 0)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"
