"""`budgetkeeper console`: the operators' web console, served from their own machine.

A Flask app on werkzeug's WSGI server. It reads and acts through the CLI's own code: the rows of
`report`, `status`, `audit`, `prices show` and `doctor` (its charts are the HTML report's SVG
macros, `templates/charts.html.j2`), and every suspend, restore, protect and unprotect is a run of
the enforcement workflow started as `budgetkeeper suspend ...` starts it (`ActionRequest`), with
the operator's STS identity as the actor; `budget set` is `set_budget`.

Safety: a random access token, printed at start, is required on every request (in the URL once,
then in an HttpOnly SameSite=Strict cookie); a state change is a POST carrying the page's CSRF
token, shown first on a confirmation page; `read_only` refuses every POST; every value is escaped
(jinja2 autoescape on every template) and a Content-Security-Policy allows no script at all.
"""

from __future__ import annotations

import argparse
import hmac
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, abort, redirect, render_template, request
from pynamodb.exceptions import PynamoDBException
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from budgetkeeper.budgets.rules import ENFORCING, MANUAL_WINDOW, Status
from budgetkeeper.core import clock, money
from budgetkeeper.core.windows import iso_utc
from budgetkeeper.storage.readers import MOST_WATCHED, BudgetList, budgets_to_watch
from budgetkeeper_cli.commands.budget import budget_values, set_budget
from budgetkeeper_cli.commands.doctor import COLUMNS as DOCTOR_COLUMNS
from budgetkeeper_cli.commands.doctor import diagnose
from budgetkeeper_cli.commands.prices import (
    BUNDLED,
    OVERRIDE_COLUMNS,
    VERSION_COLUMNS,
    override_rows_in_force,
    version_rows,
)
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.html_report import (
    CHART_SIZES,
    Chart,
    HeatRow,
    Table,
    budget_bar,
    build_chart,
    build_heat,
    html_table,
)
from budgetkeeper_cli.operator_runs import ACTIONS, ActionRequest, RunHistory, outcome_text
from budgetkeeper_cli.rendering import Column, render_csv
from budgetkeeper_cli.rollup_report import ReportWindow, fill, report_window
from budgetkeeper_cli.stack_config import Stack, describe_aws_error
from budgetkeeper_cli.usage_report import UsageReport, report_rows
from budgetkeeper_cli.views import (
    AUDIT_COLUMNS,
    STATUS_COLUMNS,
    BudgetState,
    audit_items,
    audit_row,
    budget_states,
    execution_statuses,
    status_row,
)

TABS: tuple[tuple[str, str], ...] = (
    ("scopes", "Scopes"),
    ("teams", "Teams"),
    ("consumption", "Consumption"),
    ("costs", "Costs"),
    ("enforcement", "Enforcement"),
    ("prices", "Prices"),
    ("health", "Health"),
)
COOKIE = "budgetkeeper_console"
AUDIT_LINES = 50
SORTS = ("scope", "window", "spent_usd", "limit_usd", "percent", "status", "next_refresh")
STATUSES = tuple(str(status) for status in Status)
EXECUTION_COLUMNS = (Column("name"), Column("status"), Column("started"), Column("console"))
SOURCE_COLUMNS = (Column("source"), Column("as_of", "as of"), Column("rows", numeric=True))
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(slots=True)
class Section:
    """One table of a page, drawn as HTML and exported as the CLI's CSV (`?csv=<id>`)."""

    id: str
    title: str
    columns: Sequence[Column]
    rows: Sequence[dict[str, Any]]
    footer: dict[str, Any] | None = None

    @property
    def table(self) -> Table:
        return html_table(self.columns, self.rows, self.footer)


@dataclass(slots=True)
class Page:
    tab: str
    sections: list[Section] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, section_id: str) -> Section | None:
        return next((section for section in self.sections if section.id == section_id), None)


class _ConsoleFlask(Flask):
    def select_jinja_autoescape(self, filename: str) -> bool:
        return True  # every template, whatever its name: every value from AWS is escaped


def console_url(host: str, port: int, token: str) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?{urlencode({'token': token})}"


def step_functions_link(region: str, execution_arn: str) -> str:
    return (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{execution_arn}"
    )


def create_app(
    stack: Stack,
    *,
    token: str,
    read_only: bool = False,
    since: str | None = None,
    until: str | None = None,
) -> Flask:
    """The console for one stack; `token` is asked of every request. `since`/`until`: the usage
    tabs' window when the page names none (as for `report`; default the current month so far)."""
    report_window(since, until, clock.now())  # a bad default is refused at start, not on every page
    app = _ConsoleFlask(__name__, template_folder="templates", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.jinja_env.globals.update(CHART_SIZES, tabs=TABS, read_only=read_only, origin=stack.origin)
    app.jinja_env.filters["dollars"] = money.dollars
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    csrf = secrets.token_urlsafe(32)

    def same(given: str | None, expected: str) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), expected.encode())

    @app.before_request
    def authenticate() -> Response | None:
        given = request.args.get("token")
        if not same(given if given is not None else request.cookies.get(COOKIE), token):
            return _refused("no valid access token: open the URL `budgetkeeper console` printed")
        if request.method == "POST":
            if read_only:
                return _refused("the console runs with --read-only: nothing can be changed from it")
            if not same(request.form.get("csrf"), csrf):
                return _refused("the form's CSRF token is missing or wrong: reload the page and try again")
        elif given is not None:  # the token leaves the address bar for a cookie
            kept = [(name, value) for name, value in request.args.items(multi=True) if name != "token"]
            response = redirect(request.path + (f"?{urlencode(kept)}" if kept else ""))
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
            return response
        return None

    @app.after_request
    def harden(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(UsageError)
    def usage_error(error: UsageError) -> tuple[str, int]:
        return _error_page(str(error)), 400

    @app.errorhandler(CommandFailed)
    def command_failed(error: CommandFailed) -> tuple[str, int]:
        return _error_page(str(error)), 502

    @app.errorhandler(BotoCoreError)
    @app.errorhandler(ClientError)
    @app.errorhandler(PynamoDBException)
    def aws_error(error: Exception) -> tuple[str, int]:
        return _error_page(describe_aws_error(error)), 502

    def window() -> ReportWindow:
        return report_window(
            request.args.get("since") or since, request.args.get("until") or until, clock.now()
        )

    def show(page: Page, **extra: Any) -> Any:
        wanted = request.args.get("csv")
        if wanted is not None:
            section = page.section(wanted)
            if section is None:
                abort(404)
            return Response(
                render_csv(section.columns, section.rows),
                mimetype="text/csv",
                headers={
                    "Content-Disposition": f'attachment; filename="budgetkeeper-{page.tab}-{wanted}.csv"'
                },
            )
        return render_template(
            f"console/{page.tab}.html.j2", page=page, csrf=csrf, query=_query_without_csv, **extra
        )

    def refused_on_its_form(action: str, error: UsageError) -> tuple[Any, int]:
        """The enforcement tab again, the operator's mistake said on the form they filled in."""
        refused = {"action": action, "message": str(error), "form": request.form}
        return show(enforcement_page(stack), refused=refused), 400

    @app.get("/")
    def home() -> Response:
        return redirect("/scopes")

    @app.get("/scopes")
    def scopes() -> Any:
        return show(scopes_page(stack, request.args))

    @app.get("/teams")
    def teams() -> Any:
        return show(usage_page("teams", window(), TEAMS_CHARTS, TEAMS_TABLES))

    @app.get("/consumption")
    def consumption() -> Any:
        return show(consumption_page(window()))

    @app.get("/costs")
    def costs() -> Any:
        return show(costs_page(window()))

    @app.get("/enforcement")
    def enforcement() -> Any:
        return show(enforcement_page(stack))

    @app.get("/prices")
    def prices() -> Any:
        return show(prices_page())

    @app.get("/health")
    def health() -> Any:
        return show(health_page(stack))

    @app.post("/confirm")
    def confirm() -> Any:
        """What the operator asked, checked, for a second look before anything changes."""
        form = request.form
        action = form.get("action", "")
        if action == "budget":
            values = budget_values(_budget_args(form))
            return render_template("console/confirm.html.j2", form=form, csrf=csrf, values=values, act=None)
        act = _action_request(form)
        try:
            act.check(stack)
        except UsageError as error:
            return refused_on_its_form(act.action, error)
        return render_template("console/confirm.html.j2", form=form, csrf=csrf, values=None, act=act)

    @app.post("/act")
    def act() -> Any:
        form = request.form
        if form.get("action") == "budget":
            args = _budget_args(form)
            said, note = set_budget(
                stack,
                args.scope,
                args.window,
                budget_values(args),
                (form.get("reason") or "").strip() or None,
            )
            return render_template("console/done.html.j2", said=said, note=note)
        act = _action_request(form)
        try:
            execution_arn = act.start(stack)
        except UsageError as error:  # it changed since the confirmation page
            return refused_on_its_form(act.action, error)
        return redirect("/run?" + urlencode({"arn": execution_arn}), code=303)

    @app.get("/run")
    def run() -> Any:
        """A run of the workflow as it goes: its states, and its outcome once known."""
        execution_arn = request.args.get("arn", "")
        if not execution_arn.startswith("arn:"):
            abort(404)
        sfn = stack.client("stepfunctions")
        described = sfn.describe_execution(executionArn=execution_arn)
        history = RunHistory.read(sfn, execution_arn)
        started = _json_input(described.get("input"))
        outcome, failure = None, None
        if history.settled:
            try:
                outcome = outcome_text(
                    str(started.get("action")), str(started.get("scope")), history, started.get("window")
                )
            except CommandFailed as error:
                failure = str(error)
        return render_template(
            "console/run.html.j2",
            arn=execution_arn,
            described=described,
            history=history,
            request_input=started,
            outcome=outcome,
            failure=failure,
            link=step_functions_link(stack.settings.region, execution_arn),
        )

    return app


def _refused(message: str) -> Response:
    return Response(f"403 refused: {message}\n", status=403, mimetype="text/plain")


def _error_page(message: str) -> str:
    return render_template("console/error.html.j2", message=message)


def _query_without_csv(**changes: str) -> str:
    """The current query string with `changes` (e.g. csv=...): for links on the page."""
    values = {name: value for name, value in request.args.items() if name not in ("csv", "token")}
    values.update(changes)
    return "?" + urlencode(values)


def _json_input(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _action_request(form: Any) -> ActionRequest:
    action = form.get("action", "")
    if action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}")
    return ActionRequest.parse(
        action,
        form.get("scope", ""),
        form.get("reason"),
        window=form.get("window"),
        duration=form.get("duration"),
    )


def _budget_args(form: Any) -> argparse.Namespace:
    """The form of `budget set` as its options: the same checks and the same messages."""
    from budgetkeeper_cli import options

    def given(name: str) -> str | None:
        return (form.get(name) or "").strip() or None

    dry_run = given("dry_run")
    return argparse.Namespace(
        scope=options.scope(form.get("scope", "")),
        window=options.window(given("window")) if given("window") else None,
        limit=given("limit"),
        time_zone=given("time_zone"),
        warning_percent=given("warning_percent"),
        critical_percent=given("critical_percent"),
        grace=given("grace"),
        owner=given("owner"),
        language=given("language"),
        dry_run=None if dry_run is None else dry_run == "yes",
    )


# ----------------------------------------------------------------------------- pages


def _states(stack: Stack, watched: BudgetList | None = None) -> list[BudgetState]:
    """The operators' budgets and the watched ones (storage.readers): never every default budget."""
    items = (watched or budgets_to_watch(MOST_WATCHED)).items
    return budget_states(items, stack.tunables(), clock.now())


def _budgets_title(watched: BudgetList) -> str:
    unread = f"; {watched.more} more watched budgets not read" if watched.more else ""
    return f"Budgets operators set, and default budgets needing attention{unread}"


def _status_rows(stack: Stack, states: Sequence[BudgetState]) -> list[dict[str, Any]]:
    runs = execution_statuses(
        stack.client("stepfunctions"), [s.item.execution_arn for s in states if s.item.execution_arn]
    )
    return [status_row(state, runs.get(state.item.execution_arn or "")) for state in states]


def _sort_key(name: str) -> Callable[[dict[str, Any]], Any]:
    def key(row: dict[str, Any]) -> Any:
        value = row.get(name)
        # Rows with no value sort last whatever the order; numbers as numbers.
        if isinstance(value, Decimal | int):
            return (0, value, "")
        return (0 if value is not None else 1, Decimal(0), str(value or ""))

    return key


def scopes_page(stack: Stack, args: Any) -> Page:
    """Every budget and operator's suspension: spend, limit, percent, status, next refresh."""
    text = (args.get("q") or "").strip().lower()
    status = args.get("status") or ""
    sort = args.get("sort") if args.get("sort") in SORTS else "percent"
    descending = (args.get("order") or ("desc" if sort in ("percent", "spent_usd") else "asc")) == "desc"
    watched = budgets_to_watch(MOST_WATCHED)
    states = _states(stack, watched)
    pairs = list(zip(states, _status_rows(stack, states), strict=True))
    pairs = [
        (state, row)
        for state, row in pairs
        if text in row["scope"].lower() and (not status or row["status"] == status)
    ]
    pairs.sort(key=lambda pair: _sort_key(sort)(pair[1]), reverse=descending)
    bars = [budget_bar(state.budget, row) for state, row in pairs if state.budget is not None]
    page = Page(
        "scopes", [Section("budgets", _budgets_title(watched), STATUS_COLUMNS, [row for _, row in pairs])]
    )
    page.extra.update(
        bars=bars, q=args.get("q") or "", status=status, sort=sort, descending=descending, statuses=STATUSES
    )
    return page


# (chart id, title, group, top, drawn as) as in the HTML report; tables: (id, title, group fields)
TEAMS_CHARTS = (("team", "Spend per team", "team", None, "bars"),)
TEAMS_TABLES = (("team-principal", "Spend per team and member", ("team", "principal")),)


def usage_page(
    tab: str,
    window: ReportWindow,
    charts: Sequence[tuple[str, str, str, int | None, str]],
    tables: Sequence[tuple[str, str, Sequence[str]]],
    *,
    hours: bool = False,
    compare: bool = False,
) -> Page:
    """Charts and tables of `budgetkeeper report` rows over one window, from one read of it."""
    chart_reports = {chart_id: UsageReport([group]) for chart_id, _, group, _, _ in charts}
    table_reports = {table_id: UsageReport(list(groups)) for table_id, _, groups in tables}
    hour_report = UsageReport(["hour"])
    fill([*chart_reports.values(), *table_reports.values(), hour_report], window, None)
    previous_reports: dict[str, UsageReport] = {}
    if compare:
        previous_reports = {table_id: UsageReport(list(groups)) for table_id, _, groups in tables}
        fill(list(previous_reports.values()), window.previous(), None)
    page = Page(tab)
    page.charts = [
        build_chart(chart_id, title, group, kind, chart_reports[chart_id], top)
        for chart_id, title, group, top, kind in charts
    ]
    for chart, (chart_id, title, _, top, _) in zip(page.charts, charts, strict=True):
        rows = report_rows(chart_reports[chart_id], top=top)
        page.sections.append(Section(chart.id, title, rows.columns, rows.rows, rows.total))
    for table_id, title, _ in tables:
        rows = report_rows(table_reports[table_id], previous=previous_reports.get(table_id))
        page.sections.append(Section(table_id, title, rows.columns, rows.rows, rows.total))
    heat: list[HeatRow] = build_heat(hour_report, window) if hours else []
    if hours:
        rows = report_rows(hour_report)
        page.sections.append(Section("hour", "Spend per hour", rows.columns, rows.rows, rows.total))
    total = hour_report.total
    page.extra.update(
        window=window,
        previous=window.previous() if compare else None,
        heat=heat,
        total_cost=total.cost_usd,
        total_calls=total.calls,
        since=iso_utc(window.since),
        until=iso_utc(window.until),
    )
    return page


CONSUMPTION_CHARTS = (
    ("day", "Spend per day", "day", None, "columns"),
    ("model", "Spend per model", "model", None, "bars"),
    ("region", "Spend per Region", "region", None, "bars"),
)
COSTS_CHARTS = (("app", "Spend per app", "app", None, "bars"),)
COSTS_TABLES = (
    ("model-compare", "Per model, against the window before", ("model",)),
    ("region-compare", "Per Region, against the window before", ("region",)),
    ("app-compare", "Per app, against the window before", ("app",)),
)


def consumption_page(window: ReportWindow) -> Page:
    return usage_page("consumption", window, CONSUMPTION_CHARTS, (), hours=True)


def costs_page(window: ReportWindow) -> Page:
    return usage_page("costs", window, COSTS_CHARTS, COSTS_TABLES, compare=True)


def enforcement_page(stack: Stack) -> Page:
    """Budgets warned, in grace, suspended or protected; the runs going on; the audit trail."""
    states = [
        state
        for state in _states(stack)
        if state.needs_attention or state.item.protected or state.item.status in ENFORCING
    ]
    rows = _status_rows(stack, states)
    bars = [
        budget_bar(state.budget, row)
        for state, row in zip(states, rows, strict=True)
        if state.budget is not None
    ]
    page = Page(
        "enforcement",
        [Section("attention", "Warned, in grace, suspended or protected", STATUS_COLUMNS, rows)],
    )
    runs = []
    paginator = stack.client("stepfunctions").get_paginator("list_executions")
    machines = (stack.settings.evaluation_machine_arn_value, stack.settings.operator_machine_arn_value)
    for machine in filter(None, machines):
        for result in paginator.paginate(stateMachineArn=machine, statusFilter="RUNNING"):
            runs += [
                {
                    "name": execution["name"],
                    "status": execution["status"],
                    "started": execution["startDate"].isoformat(),
                    "console": step_functions_link(stack.settings.region, execution["executionArn"]),
                    "arn": execution["executionArn"],
                }
                for execution in result["executions"]
            ]
    page.sections.append(Section("runs", "Runs going on", EXECUTION_COLUMNS, runs))
    audit = [audit_row(item) for item in audit_items(None, last=AUDIT_LINES)]
    audit.reverse()  # newest first
    page.sections.append(Section("audit", f"Audit trail (newest {AUDIT_LINES})", AUDIT_COLUMNS, audit))
    page.extra.update(bars=bars, runs=runs, manual=MANUAL_WINDOW)
    return page


def prices_page() -> Page:
    from budgetkeeper.pricing.versions import active_table, active_version

    table = active_table()
    sources: dict[tuple[str, str], int] = {}
    for row in table:
        key = (str(row.source), str(row.as_of))
        sources[key] = sources.get(key, 0) + 1
    page = Page(
        "prices",
        [
            Section(
                "sources",
                f"Sources of the table in force ({table.version})",
                SOURCE_COLUMNS,
                [{"source": s, "as_of": a, "rows": n} for (s, a), n in sorted(sources.items())],
            ),
            Section("versions", "Price versions from the AWS Price List", VERSION_COLUMNS, version_rows()),
            Section("overrides", "Operators' overrides", OVERRIDE_COLUMNS, override_rows_in_force()),
        ],
    )
    page.extra.update(active=active_version() or BUNDLED, table_version=table.version)
    return page


def health_page(stack: Stack) -> Page:
    findings = [finding.row() for finding in diagnose(stack, None)]
    return Page("health", [Section("checks", "Checks (budgetkeeper doctor)", DOCTOR_COLUMNS, findings)])


# ----------------------------------------------------------------------------- serving


class _RequestHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: the first request's query string holds the access token.
        self.log("info", '"%s %s" %s', self.command, urlsplit(self.path).path, code)


def start_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """werkzeug's threaded WSGI server for the app, bound (port 0: a free one), not yet serving."""
    return make_server(host, port, app, threaded=True, request_handler=_RequestHandler)
