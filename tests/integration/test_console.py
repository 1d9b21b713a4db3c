"""`budgetkeeper console` on moto: its tabs, charts, actions and safety.

The console is served in-test by its own server (werkzeug, a free port, a thread) on the stack
created from template.yaml; Step Functions runs the real ASL, its tasks the real handlers. The
browser test drives headless Chromium (the shared `browser` fixture) through every tab, reads each
chart's data back from the page and compares it with `budgetkeeper report|status --format json` for
the same query, then suspends and restores a user from the Enforcement tab and reads IAM. The
token, CSRF, read-only and escaping rules are checked without a browser, with Flask's test client.
Screenshots of every tab land in build/test-artifacts/console-<tab>.png.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.support.expected_conditions import presence_of_element_located
from selenium.webdriver.support.ui import WebDriverWait

from budgetkeeper.storage.tables import BudgetItem, TeamItem
from budgetkeeper_cli.console.app import COOKIE, create_app
from budgetkeeper_cli.console.server import start_server
from budgetkeeper_cli.main import build_parser, main
from budgetkeeper_cli.stack_config import connect
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import real_handlers
from tests.integration.metered_day import meter_calls, quiet_default_budgets

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
HOSTILE = "<img src=x onerror=alert(1)>"
CALLS = [  # (hours after midnight, IAM user, model, input tokens, output tokens, claimed app)
    (1, "alice", "amazon.nova-pro-v1:0", 2_000_000, 100_000, None),
    (1, "bob", "amazon.nova-lite-v1:0", 900_000, 50_000, "Chatbot"),
    (9, "alice", "amazon.nova-pro-v1:0", 1_000_000, 400_000, None),
    (9, "carol", "anthropic.claude-3-haiku-20240307-v1:0", 300_000, 20_000, HOSTILE),
    (30, "bob", "amazon.nova-lite-v1:0", 700_000, 10_000, "Chatbot"),  # the next day
]
TOKEN = "test-token-" + "x" * 20


@dataclass
class Console:
    stack: LocalStack
    stack_name: str
    app: Any
    url: str

    @property
    def deny(self) -> str:
        return self.stack.physical_ids["BedrockDenyPolicy"]

    def attached(self, user: str) -> list[str]:
        policies = self.stack.client("iam").list_attached_user_policies(UserName=user)["AttachedPolicies"]
        return [policy["PolicyArn"] for policy in policies]


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads("".join(line for line in out.splitlines(True) if not line.startswith('{"_aws"')))


@pytest.fixture
def console(stack: LocalStack, settings, clock, capsys) -> Iterator[Console]:
    """Spend metered by the usage calculator, two budgets, a hostile scope; the console serving it."""
    quiet_default_budgets(stack, settings)
    with real_handlers(stack) as waits:
        waits.max_wait_seconds = 60
        name = stack.publish_outputs()
        for user in ("alice", "bob", "carol"):
            stack.client("iam").create_user(UserName=user)
        TeamItem("user:alice", team="research").save()
        TeamItem("user:bob", team="support").save()
        meter_calls(clock, CALLS)
        for scope, limit in (("user:alice", "4"), ("user:bob", "50")):
            assert (
                main(["budget", "set", scope, "--window", "daily", "--limit", limit, "--stack-name", name])
                == 0
            )
        # A budget row whose scope no IAM name could be (written around the CLI's checks): shown as text.
        BudgetItem(f"user:{HOSTILE}", "daily", limit_usd=Decimal(5), status="ok").save()
        args = build_parser().parse_args(["console", "--stack-name", name])
        app = create_app(connect(args), token=TOKEN)
        server = start_server(app, "127.0.0.1", 0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Console(stack, name, app, f"http://127.0.0.1:{server.server_port}")
        finally:
            server.shutdown()
            server.server_close()
            sfn = stack.client("stepfunctions")
            for run in stack.executions("RUNNING"):
                sfn.stop_execution(executionArn=run["executionArn"])


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def test_the_token_csrf_read_only_and_escaping_rules(console: Console) -> None:
    client = console.app.test_client()
    # A request without the token, or with a wrong one, is refused
    assert client.get("/scopes").status_code == 403
    assert client.get("/scopes?token=wrong").status_code == 403
    # The right token in the URL becomes a cookie and leaves the address
    answer = client.get(f"/scopes?q=user&token={TOKEN}")
    assert (answer.status_code, answer.headers["Location"]) == (302, "/scopes?q=user")
    assert f"{COOKIE}={TOKEN}" in answer.headers["Set-Cookie"] and "HttpOnly" in answer.headers["Set-Cookie"]
    page = client.get("/scopes")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'none': no script
    # A hostile scope is escaped text, never markup
    assert "user:&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    # A POST without the CSRF token, or with a wrong one, is refused and changes nothing
    form = {
        "action": "budget",
        "scope": "user:carol",
        "window": "daily",
        "limit": "7",
    }  # has a default budget
    assert client.post("/act", data=form).status_code == 403
    assert client.post("/act", data={**form, "csrf": "forged"}).status_code == 403
    assert BudgetItem.get("user:carol", "daily").limit_usd is None  # carol's default budget, unchanged
    # With it, the confirmation page first, then the change, audited with the caller as the actor
    confirm = client.post("/confirm", data={**form, "csrf": csrf_of(html)})
    assert confirm.status_code == 200 and "Set the budget of" in confirm.get_data(as_text=True)
    done = client.post("/act", data={**form, "csrf": csrf_of(html), "reason": "pilot"})
    assert "user:carol daily: limit default -&gt; 7 USD, revision 1 -&gt; 2" in done.get_data(as_text=True)
    assert BudgetItem.get("user:carol", "daily").limit_usd == Decimal(7)
    # A bad value is refused with the CLI's own words
    bad = client.post("/confirm", data={**form, "limit": "lots", "csrf": csrf_of(html)})
    assert bad.status_code == 400 and "is not an amount" in bad.get_data(as_text=True)
    # Every table exports as the CLI's CSV
    exported = client.get("/scopes?csv=budgets")
    assert exported.mimetype == "text/csv"
    assert exported.get_data(as_text=True).splitlines()[0].startswith("scope,window,window_id,spent_usd")
    # A read-only console refuses every change, CSRF token or not
    read_only = create_app(
        connect(build_parser().parse_args(["console", "--stack-name", console.stack_name])),
        token=TOKEN,
        read_only=True,
    ).test_client()
    read_only.get(f"/scopes?token={TOKEN}")
    shown = read_only.get("/enforcement").get_data(as_text=True)
    assert 'name="csrf"' not in shown
    assert read_only.post("/act", data={**form, "csrf": csrf_of(html)}).status_code == 403


def test_a_budget_on_a_principal_iam_lacks_is_said_before_it_is_set(console: Console) -> None:
    client = console.app.test_client()
    client.get(f"/scopes?token={TOKEN}")
    csrf = csrf_of(client.get("/scopes").get_data(as_text=True))
    form = {"csrf": csrf, "action": "budget", "scope": "user:carl", "window": "daily", "limit": "5"}
    # When an operator asks for a budget on a user IAM does not have (a typo of carol, say)
    confirm = client.post("/confirm", data=form).get_data(as_text=True)
    # Then the confirmation says so, as `budget set` does, and asks to set it anyway
    assert 'id="missing"' in confirm and "no IAM user carl" in confirm and "Set it anyway" in confirm
    assert 'name="allow_missing" value="yes"' in confirm
    # and a change sent without that confirmation is refused on the form, and sets nothing
    refused = client.post("/act", data=form)
    assert refused.status_code == 400 and "a budget on it would see no spend" in refused.get_data(
        as_text=True
    )
    assert list(BudgetItem.query("user:carl")) == []
    # while the one confirmed is set
    client.post("/act", data={**form, "allow_missing": "yes"})
    assert BudgetItem.get("user:carl", "daily").limit_usd == Decimal(5)


def test_an_operators_mistake_is_shown_on_its_form_and_starts_no_run(console: Console) -> None:
    client = console.app.test_client()
    client.get(f"/enforcement?token={TOKEN}")
    csrf = csrf_of(client.get("/enforcement").get_data(as_text=True))
    mistakes = {
        ("suspend", "user:alcie"): "cannot suspend user:alcie: there is no IAM user alcie",
        ("suspend", "account:111122223333"): "an account is never suspended as a whole",
        ("restore", "user:bob"): "user:bob is not suspended: nothing to restore",
        ("protect", "user:dave"): "user:dave has no budget to protect",
    }
    for (action, scope), message in mistakes.items():
        form = {"csrf": csrf, "action": action, "scope": scope, "reason": "ticket OPS-7"}
        # Refused at the review step and, were it posted straight away, at the act step
        for step in ("/confirm", "/act"):
            answer = client.post(step, data=form)
            html = answer.get_data(as_text=True)
            assert answer.status_code == 400, (step, action, scope)
            on_form = html.split(f'id="form-{action}"', 1)[1].split("</form>", 1)[0]
            assert 'id="refused"' in on_form and message in on_form, (step, action, scope)
            assert f'value="{scope}"' in on_form  # what was typed stays, to be corrected
    assert console.stack.executions() == []


def chart_marks(driver, chart: str) -> dict[str, tuple[Decimal, int]]:
    return {
        mark.get_attribute("data-label"): (
            Decimal(mark.get_attribute("data-cost")),
            int(mark.get_attribute("data-calls")),
        )
        for mark in driver.find_elements("css selector", f'[data-chart="{chart}"] g.mark')
    }


def json_marks(rows: list[dict], field: str) -> dict[str, tuple[Decimal, int]]:
    return {
        row[field] if row[field] is not None else f"(no {field})": (Decimal(row["cost_usd"]), row["calls"])
        for row in rows
    }


def drawn_marks(driver, chart: str) -> dict[str, tuple[Decimal, int]]:
    """The marks with calls: a time chart also draws the days and hours without any."""
    return {label: value for label, value in chart_marks(driver, chart).items() if value[1]}


def page_width(driver) -> int:
    return driver.execute_script("return document.documentElement.scrollWidth")


def submit(driver, form_id: str, **fields: str) -> None:
    form = driver.find_element("id", form_id)
    for name, value in fields.items():
        form.find_element("name", name).send_keys(value)
    form.find_element("css selector", "button[type=submit]").click()
    # The confirmation step, once its page has loaded (a click does not wait for the navigation)
    WebDriverWait(driver, 30).until(presence_of_element_located(("id", "confirm-button"))).click()
    deadline = time.monotonic() + 30
    while "/confirm" in driver.current_url and time.monotonic() < deadline:
        time.sleep(0.1)
    assert driver.find_elements("id", "error") == [], driver.find_element("id", "error").text


def outcome(driver, timeout: float = 60) -> str:
    """The run page's outcome once the run has done what it was asked (it reloads itself)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = driver.find_elements("id", "outcome") + driver.find_elements("id", "failure")
        if found:
            return found[0].text
        time.sleep(0.2)
    raise AssertionError(f"no outcome on {driver.current_url}")


@pytest.mark.browser
def test_every_tab_shows_the_reports_json_and_the_enforcement_tab_suspends_and_restores(
    console: Console, browser, clock, capsys
) -> None:
    stack = ["--stack-name", console.stack_name]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{console.url}/?token={TOKEN}")
    assert browser.current_url == f"{console.url}/scopes"  # the token went to a cookie
    # Each tab renders with data and no error, and its charts are the report's JSON for the same query
    for tab in ("scopes", "teams", "consumption", "costs", "enforcement", "prices", "health"):
        browser.get(f"{console.url}/{tab}")
        assert browser.find_elements("id", "error") == [], tab
        assert browser.find_elements("css selector", "main table tbody tr"), f"{tab}: no rows"
        browser.save_screenshot(str(ARTIFACTS / f"console-{tab}.png"))
        assert page_width(browser) <= 1400, tab
        if tab == "scopes":
            for bar in browser.find_elements("css selector", '[data-chart="budgets"] g.budget'):
                scope = bar.get_attribute("data-scope")
                if scope == f"user:{HOSTILE}":
                    continue  # `status` refuses to be asked about it: not an IAM name
                status = cli_json(capsys, "status", scope, *stack, "--format", "json")
                row = next(r for r in status["budgets"] if r["window"] == bar.get_attribute("data-window"))
                assert Decimal(bar.get_attribute("data-spent")) == Decimal(row["spent_usd"]), scope
                assert Decimal(bar.get_attribute("data-percent")) == Decimal(row["percent"]), scope
            # a principal's hostile name is shown as text, never as an element
            assert f"user:{HOSTILE}" in browser.find_element("id", "content").text
            assert browser.find_elements("css selector", "#content img") == []
        for chart in {"teams": ["team"], "consumption": ["day", "model", "region"], "costs": ["app"]}.get(
            tab, []
        ):
            rows = cli_json(capsys, "report", "--group-by", chart, *stack, "--format", "json")
            assert drawn_marks(browser, chart) == json_marks(rows, chart), (tab, chart)
        if tab == "costs":  # the claimed app's hostile name, as text
            assert f"app:{HOSTILE}" in chart_marks(browser, "app")
            assert browser.find_elements("css selector", "#content img") == []
        if tab == "consumption":
            rows = cli_json(capsys, "report", "--group-by", "hour", *stack, "--format", "json")
            cells = {
                (cell.get_attribute("data-day"), int(cell.get_attribute("data-hour"))): Decimal(
                    cell.get_attribute("data-cost")
                )
                for cell in browser.find_elements("css selector", '[data-chart="heat"] rect[data-cost]')
            }
            assert cells == {(r["hour"][:10], int(r["hour"][11:])): Decimal(r["cost_usd"]) for r in rows}
    # A suspension from the Enforcement tab starts the workflow, and the deny appears in IAM
    browser.get(f"{console.url}/enforcement")
    submit(browser, "form-suspend", scope="user:bob", reason="runaway notebook", duration="2h")
    assert "/run?arn=arn%3Aaws%3Astates" in browser.current_url
    assert outcome(browser).startswith("user:bob suspended until 20")
    assert console.attached("bob") == [console.deny]
    audit = cli_json(capsys, "audit", "user:bob", *stack, "--format", "json")
    caller = console.stack.client("sts").get_caller_identity()["Arn"]
    assert (audit[-1]["to_status"], audit[-1]["actor"], audit[-1]["reason"]) == (
        "suspended",
        caller,
        "runaway notebook",
    )
    browser.get(f"{console.url}/enforcement")
    assert "user:bob" in browser.find_element("id", "attention").text
    browser.save_screenshot(str(ARTIFACTS / "console-enforcement-suspended.png"))
    assert page_width(browser) <= 1400
    # The suspended row on the Scopes tab has a Restore button (and its status is the same there)
    browser.get(f"{console.url}/scopes")
    browser.save_screenshot(str(ARTIFACTS / "console-scopes-suspended.png"))
    assert page_width(browser) <= 1400
    row = next(
        tr
        for tr in browser.find_elements("css selector", "#chart-budgets table tbody tr")
        if tr.find_elements("css selector", "a.button.restore") and "user:bob" in tr.text
    )
    assert "suspended" in row.text
    row.find_element("css selector", "a.button.restore").click()
    # which opens the restore form filled in for that row: only the reason is asked
    form = browser.find_element("id", "form-restore")
    assert form.find_element("name", "scope").get_attribute("value") == "user:bob"
    assert form.find_element("name", "window").get_attribute("value") == "manual"
    submit(browser, "form-restore", reason="notebook fixed")
    assert outcome(browser).startswith("user:bob restored (manual): deny lifted from IAM user bob")
    assert console.attached("bob") == []


@pytest.mark.browser
def test_a_scope_page_shows_its_spend_budgets_audit_and_members(
    console: Console, browser, clock, capsys
) -> None:
    stack = ["--stack-name", console.stack_name]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.get(f"{console.url}/?token={TOKEN}")
    # Scope names are links: alice's from the Scopes tab leads to her page
    browser.find_element("css selector", '#chart-budgets a[href="/scope?name=user%3Aalice"]').click()
    assert browser.find_element("id", "scope-name").get_attribute("data-scope") == "user:alice"
    browser.save_screenshot(str(ARTIFACTS / "console-scope.png"))
    assert page_width(browser) <= 1400
    assert browser.find_elements("id", "error") == []
    # Her spend per day is the report's for her calls
    rows = cli_json(
        capsys, "report", "--group-by", "day", "--arn-pattern", "*:user/alice", *stack, "--format", "json"
    )
    assert drawn_marks(browser, "day") == json_marks(rows, "day")
    # with her daily budget's limit and forecast across the chart, as `status` says them
    status = cli_json(capsys, "status", "user:alice", *stack, "--format", "json")
    daily = next(row for row in status["budgets"] if row["window"] == "daily")
    levels = {
        level.get_attribute("data-kind"): Decimal(level.get_attribute("data-value"))
        for level in browser.find_elements("css selector", '[data-chart="day"] g.level')
    }
    assert levels["budget"] == Decimal(daily["limit_usd"])
    assert daily["forecast_usd"] is not None and levels["forecast"] == Decimal(daily["forecast_usd"])
    # her budgets
    bars = browser.find_elements("css selector", '[data-chart="budgets"] g.budget')
    assert {bar.get_attribute("data-scope") for bar in bars} == {"user:alice"}
    assert {bar.get_attribute("data-window") for bar in bars} == {row["window"] for row in status["budgets"]}
    # her audit trail, newest first, and her team
    audit = cli_json(capsys, "audit", "user:alice", *stack, "--format", "json")
    shown = browser.find_element("id", "table-audit").text
    assert audit and all(re.sub(r"\.\d+Z$", "Z", line["time"]) in shown for line in audit)  # to the second
    assert "team:research" in browser.find_element("id", "table-members").text
    # and her top model (a model is no scope: not a link)
    assert set(drawn_marks(browser, "model")) == {"amazon.nova-pro-v1:0"}
    assert browser.find_elements("css selector", '[data-chart="model"] svg a') == []
    # A team's page lists its members
    browser.get(f"{console.url}/scope?name=team%3Aresearch")
    assert "user:alice" in browser.find_element("id", "table-members").text
    assert page_width(browser) <= 1400


def test_the_console_speaks_its_own_words_on_its_forms(console: Console) -> None:
    client = console.app.test_client()
    client.get(f"/scopes?token={TOKEN}")
    csrf = csrf_of(client.get("/scopes").get_data(as_text=True))
    # A budget form's mistake is said on that form, with its field's label, not a CLI flag
    bad = client.post(
        "/confirm", data={"csrf": csrf, "action": "budget", "scope": "user:carol", "limit": "lots"}
    )
    html = bad.get_data(as_text=True)
    on_form = html.split('id="form-budget"', 1)[1].split("</form>", 1)[0]
    assert bad.status_code == 400 and 'id="refused"' in on_form and "--" not in on_form.split("</p>")[0]
    assert 'value="lots"' in on_form
    # A suspension's duration is named as the form names it
    bad = client.post(
        "/confirm",
        data={"csrf": csrf, "action": "suspend", "scope": "user:bob", "reason": "r", "duration": "soon"},
    )
    refused = bad.get_data(as_text=True).split('id="refused">', 1)[1].split("</p>", 1)[0]
    assert "--for" not in refused and "for" in refused
    # A confirmation says what changes in words
    confirm = client.post(
        "/confirm",
        data={
            "csrf": csrf,
            "action": "budget",
            "scope": "user:carol",
            "window": "daily",
            "limit": "7",
            "warning_percent": "70",
        },
    ).get_data(as_text=True)
    summary = confirm.split('id="summary">', 1)[1].split("</p>", 1)[0]
    assert "limit 7 USD" in summary and "warning 70%" in summary and "limit_usd" not in summary
    # The audit trail pages: 50 lines a page, an Older link while more are left
    for number in range(60):
        client.post(
            "/act",
            data={
                "csrf": csrf,
                "action": "budget",
                "scope": "user:carol",
                "window": "daily",
                "limit": str(10 + number),
                "reason": f"step {number}",
            },
        )
    first = client.get("/enforcement").get_data(as_text=True)
    assert 'id="audit-older"' in first and "step 59" in first and "step 5<" not in first
    second = client.get("/enforcement?audit_page=1").get_data(as_text=True)
    assert 'id="audit-newer"' in second and "step 5<" in second and "step 59" not in second
    # Health says whether metering keeps up, coloured by result
    health = client.get("/health").get_data(as_text=True)
    assert 'data-check="last record metered" data-result="ok"' in health
    assert 'class="result-ok"' in health
    # Prices: rates in force, the models in use first, searchable
    prices = client.get("/prices").get_data(as_text=True)
    rates = prices.split('id="table-rates"', 1)[1].split("</table>", 1)[0]
    first_model = rates.split("<tbody>", 1)[1].split("<td>", 2)[1].split("</td>", 1)[0]
    assert first_model in {model for _, _, model, *_ in CALLS}
    found = client.get("/prices?q=nova-lite").get_data(as_text=True).split('id="table-rates"', 1)[1]
    assert "amazon.nova-pro" not in found.split("</table>", 1)[0]
