"""The console's Flask app: one `Console` per stack, its views registered as the routes."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from botocore.exceptions import BotoCoreError, ClientError
from flask import Flask, Response, abort, redirect, render_template, request
from pynamodb.exceptions import PynamoDBException

from budgetkeeper.core import clock, money
from budgetkeeper_cli.budget_changes import (
    LABELS,
    MISSING_MEANS,
    budget_values,
    missing_principal,
    set_budget,
    shown_value,
)
from budgetkeeper_cli.console.catalog_pages import health_page, prices_page
from budgetkeeper_cli.console.forms import (
    ALLOW_MISSING,
    action_request,
    budget_args,
    console_words,
    date_presets,
)
from budgetkeeper_cli.console.pages import (
    Page,
    consumption_page,
    costs_page,
    enforcement_page,
    known_scopes,
    scopes_page,
    step_functions_link,
    teams_page,
)
from budgetkeeper_cli.console.scope_page import scope_page
from budgetkeeper_cli.console.security import COOKIE as COOKIE  # the tests read the cookie's name here
from budgetkeeper_cli.console.security import console_url as console_url
from budgetkeeper_cli.console.security import guard
from budgetkeeper_cli.errors import CommandFailed, UsageError
from budgetkeeper_cli.operator_runs import ACTIONS, RunHistory, outcome_text
from budgetkeeper_cli.rendering import render_csv
from budgetkeeper_cli.reports.html import CHART_SIZES, middle
from budgetkeeper_cli.reports.rollups import ReportWindow, report_window
from budgetkeeper_cli.stack_config import Stack, describe_aws_error

TABS: tuple[tuple[str, str], ...] = (
    ("scopes", "Scopes"),
    ("teams", "Teams"),
    ("consumption", "Consumption"),
    ("costs", "Costs"),
    ("enforcement", "Enforcement"),
    ("prices", "Prices"),
    ("health", "Health"),
)


class _ConsoleFlask(Flask):
    def select_jinja_autoescape(self, filename: str) -> bool:
        return True  # every template, whatever its name: every value from AWS is escaped


def create_app(
    stack: Stack,
    *,
    token: str,
    read_only: bool = False,
    since: str | None = None,
    until: str | None = None,
    banner: str | None = None,
) -> Flask:
    """The console for one stack; `token` is asked of every request. `since`/`until`: the usage
    tabs' window when the page names none (as for `report`; default the current month so far).
    `banner`: a line on top of every page (e.g. which clock a demo's console runs on)."""
    report_window(since, until, clock.now())  # a bad default is refused at start, not on every page
    app = _ConsoleFlask("budgetkeeper_cli", template_folder="templates", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    app.jinja_env.globals.update(CHART_SIZES, tabs=TABS, read_only=read_only, origin=stack.origin)
    app.jinja_env.globals.update(one_hour=timedelta(hours=1), banner=banner, now=clock.now)
    app.jinja_env.filters["dollars"] = money.dollars
    app.jinja_env.filters["middle"] = middle
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    console = Console(stack, secrets.token_urlsafe(32), since, until)
    guard(app, token=token, csrf=console.csrf, read_only=read_only)
    for error in (UsageError, CommandFailed, BotoCoreError, ClientError, PynamoDBException):
        app.register_error_handler(error, _error_page)
    app.add_url_rule("/", view_func=lambda: redirect("/scopes"), endpoint="home")
    for rule, view in console.pages().items():
        app.add_url_rule(rule, view_func=view, endpoint=rule)
    app.add_url_rule("/confirm", view_func=console.confirm, methods=["POST"])
    app.add_url_rule("/act", view_func=console.act, methods=["POST"])
    app.add_url_rule("/run", view_func=console.run)
    return app


def _error_page(error: Exception) -> tuple[str, int]:
    if isinstance(error, UsageError):
        message, code = console_words(str(error)), 400
    elif isinstance(error, CommandFailed):
        message, code = str(error), 502
    else:
        message, code = describe_aws_error(error), 502
    return render_template("console/error.html.j2", message=message), code


class Console:
    """The views of one stack's console (every read and act goes through the CLI's own code)."""

    def __init__(self, stack: Stack, csrf: str, since: str | None, until: str | None) -> None:
        self.stack = stack
        self.csrf = csrf
        self._since = since
        self._until = until

    def window(self) -> ReportWindow:
        return report_window(
            request.args.get("since") or self._since, request.args.get("until") or self._until, clock.now()
        )

    def pages(self) -> dict[str, Any]:
        stack = self.stack
        organization = stack.settings.organization_id is not None
        return {
            "/scopes": lambda: self.show(scopes_page(stack, request.args)),
            "/scope": lambda: self.show(
                scope_page(stack, request.args.get("name", ""), self.window(), request.args)
            ),
            "/teams": lambda: self.show(teams_page(self.window(), request.args)),
            "/consumption": lambda: self.show(consumption_page(self.window(), request.args)),
            "/costs": lambda: self.show(costs_page(self.window(), request.args, organization=organization)),
            "/enforcement": lambda: self.show(enforcement_page(stack, request.args)),
            "/prices": lambda: self.show(prices_page(request.args, self.window())),
            "/health": lambda: self.show(health_page(stack)),
        }

    def show(self, page: Page, **extra: Any) -> Any:
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
            f"console/{page.tab}.html.j2",
            page=page,
            csrf=self.csrf,
            query=_query_without_csv,
            scopes=known_scopes(),
            presets=date_presets(clock.now()),
            args=request.args,
            **extra,
        )

    def refused_on_its_form(self, action: str, error: UsageError) -> tuple[Any, int]:
        """The tab of the form again, the operator's mistake said on it in the console's words."""
        if action not in (*ACTIONS, "budget"):
            return _error_page(error)
        refused = {"action": action, "message": console_words(str(error)), "form": request.form}
        if action == "budget":
            return self.show(scopes_page(self.stack, {}), refused=refused), 400
        return self.show(enforcement_page(self.stack, {}), refused=refused), 400

    def confirm(self) -> Any:
        """What the operator asked, checked, for a second look before anything changes."""
        form = request.form
        if form.get("action", "") == "budget":
            try:
                args = budget_args(form)
                values = budget_values(args)
            except UsageError as error:
                return self.refused_on_its_form("budget", error)
            shown = {
                LABELS[name]: shown_value(name, value) for name, value in values.items() if value is not None
            }
            # As `budget set` without --allow-missing: a principal IAM lacks is said before anything is set.
            missing = missing_principal(self.stack, args.scope, args.window)
            return render_template(
                "console/confirm.html.j2",
                form=form,
                csrf=self.csrf,
                values=shown,
                act=None,
                missing=missing,
                allow_missing=ALLOW_MISSING,
            )
        try:
            act = action_request(form)
            act.check(self.stack)
        except UsageError as error:
            return self.refused_on_its_form(form.get("action", ""), error)
        return render_template("console/confirm.html.j2", form=form, csrf=self.csrf, values=None, act=act)

    def act(self) -> Any:
        form = request.form
        if form.get("action") == "budget":
            try:
                args = budget_args(form)
                missing = missing_principal(self.stack, args.scope, args.window)
                # Sent without the confirmation that said it is missing (or it went missing since)
                if missing and form.get(ALLOW_MISSING) != "yes":
                    raise UsageError(f"{missing}: {MISSING_MEANS}; check the name, then confirm again")
                said, note = set_budget(
                    self.stack,
                    args.scope,
                    args.window,
                    budget_values(args),
                    (form.get("reason") or "").strip() or None,
                )
            except UsageError as error:
                return self.refused_on_its_form("budget", error)
            return render_template("console/done.html.j2", said=said, note=note)
        try:
            execution_arn = action_request(form).start(self.stack)
        except UsageError as error:  # or it changed since the confirmation page
            return self.refused_on_its_form(form.get("action", ""), error)
        return redirect("/run?" + urlencode({"arn": execution_arn}), code=303)

    def run(self) -> Any:
        """A run of the workflow as it goes: its states, and its outcome once known."""
        execution_arn = request.args.get("arn", "")
        if not execution_arn.startswith("arn:"):
            abort(404)
        sfn = self.stack.client("stepfunctions")
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
            link=step_functions_link(self.stack.settings.region, execution_arn),
        )


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
