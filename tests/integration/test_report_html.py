"""`budgetkeeper report --html` opened in headless Chromium: what the page shows is the report's JSON.

Chromium (Debian's `chromium` and `chromium-driver`, installed by .ci/run) runs headless with no
sandbox and no GPU; the page may load nothing (checked: no resource was fetched). The numbers are
read back from the rendered charts (the bars' data and their drawn widths, the heat map's cells,
the budgets' bars) and compared with `budgetkeeper report --format json` for the same query. A
screenshot is kept in build/test-artifacts/. Under CI=true a missing browser fails the run.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from budgetkeeper.storage.tables import TeamItem
from budgetkeeper_cli.main import main
from tests.integration.metered_day import ACCOUNT, meter_calls, quiet_default_budgets

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"
HOSTILE_TEAM = "<script>alert(1)</script> \"R&D\" 'quotes'"
CALLS = [  # (hours after midnight, IAM user, model, input tokens, output tokens)
    (1, "alice", "amazon.nova-pro-v1:0", 2_000_000, 100_000),
    (1, "bob", "amazon.nova-lite-v1:0", 900_000, 50_000),
    (9, "alice", "amazon.nova-pro-v1:0", 1_000_000, 400_000),
    (9, "carol", "anthropic.claude-3-haiku-20240307-v1:0", 300_000, 20_000),
    (9, "dave", "amazon.nova-micro-v1:0", 50_000, 1_000),
    (30, "bob", "amazon.nova-lite-v1:0", 700_000, 10_000),  # the next day
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


@pytest.fixture
def spend(stack, settings, clock) -> str:
    """The calls above, metered by the usage calculator; teams, one with a hostile name."""
    quiet_default_budgets(stack, settings)
    TeamItem("user:alice", team="research").save()
    TeamItem("user:bob", team=HOSTILE_TEAM).save()
    meter_calls(clock, CALLS)
    return stack.publish_outputs()


def page_marks(driver, chart: str) -> dict[str, tuple[Decimal, int, float]]:
    marks = {}
    for mark in driver.find_elements("css selector", f'[data-chart="{chart}"] g.mark'):
        rect = mark.find_element("css selector", "rect")
        width = rect.size["width"] if chart not in ("day", "hour") else rect.size["height"]
        marks[mark.get_attribute("data-label")] = (
            Decimal(mark.get_attribute("data-cost")),
            int(mark.get_attribute("data-calls")),
            float(width),
        )
    return marks


def json_marks(rows: list[dict], field: str) -> dict[str, tuple[Decimal, int]]:
    return {
        row[field] if row[field] is not None else f"(no {field})": (Decimal(row["cost_usd"]), row["calls"])
        for row in rows
    }


def drawn(marks: dict[str, tuple[Decimal, int, float]]) -> dict[str, tuple[Decimal, int]]:
    """The marks with spend: a time chart also draws the days and hours without any."""
    return {label: (cost, calls) for label, (cost, calls, _) in marks.items() if calls}


@pytest.mark.browser
def test_the_charts_in_chromium_show_the_reports_json(spend: str, browser, clock, capsys, tmp_path) -> None:
    # Given a budget and an HTML report of the two days
    day = clock().strftime("%Y-%m-%d")
    next_day = (clock() + timedelta(days=1)).strftime("%Y-%m-%d")
    window = ["--stack-name", spend, "--since", day, "--until", next_day]
    run(capsys, "budget", "set", "user:alice", "--window", "daily", "--limit", "4", "--stack-name", spend)
    html = tmp_path / "report.html"
    run(capsys, "report", *window, "--html", str(html))
    # When Chromium opens it
    browser.get(html.as_uri())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report.png"))
    # Then it fetched nothing and runs no script
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert browser.find_elements("css selector", "script") == []
    # and each chart shows the rows of the report's JSON for the same query, bars drawn to scale
    for chart, field, extra in (
        ("day", "day", []),
        ("team", "team", []),
        ("model", "model", []),
        ("principal", "principal", ["--top", "10"]),
    ):
        rows = json.loads(run(capsys, "report", *window, "--group-by", field, *extra, "--format", "json"))
        shown = page_marks(browser, chart)
        assert drawn(shown) == json_marks(rows, field), chart
        longest = max(width for _, _, width in shown.values())
        highest = max(cost for cost, _, _ in shown.values())
        for label, (cost, _, width) in shown.items():
            assert abs(width - float(cost / highest) * longest) <= 1.0, (chart, label)
    # the hostile team name is shown as text, escaped, never run
    assert f"team:{HOSTILE_TEAM}" in page_marks(browser, "team")
    # the heat map holds the spend of each hour
    rows = json.loads(run(capsys, "report", *window, "--group-by", "hour", "--format", "json"))
    cells = {
        (cell.get_attribute("data-day"), int(cell.get_attribute("data-hour"))): Decimal(
            cell.get_attribute("data-cost")
        )
        for cell in browser.find_elements("css selector", '[data-chart="heat"] rect[data-cost]')
    }
    assert cells == {(row["hour"][:10], int(row["hour"][11:])): Decimal(row["cost_usd"]) for row in rows}
    assert len(browser.find_elements("css selector", '[data-chart="heat"] rect.cell')) == 2 * 24
    # and the budget's bar shows its spend and percent as `status` reports them
    status = json.loads(run(capsys, "status", "user:alice", "--stack-name", spend, "--format", "json"))
    budget = next(row for row in status["budgets"] if row["window"] == "daily")
    bar = browser.find_element(
        "css selector", '[data-chart="budgets"] g.budget[data-scope="user:alice"][data-window="daily"]'
    )
    assert Decimal(bar.get_attribute("data-spent")) == Decimal(budget["spent_usd"])
    assert Decimal(bar.get_attribute("data-percent")) == Decimal(budget["percent"])
    fill = bar.find_element("css selector", "rect.budget-fill").size["width"]
    track = bar.find_element("css selector", "rect.budget-track").size["width"]
    assert abs(fill - min(float(budget["percent"]) / 100, 1.0) * track) <= 1.0


def boxes_outside_their_chart(driver) -> list[str]:
    """Texts of every chart drawn (partly) outside their SVG: a clipped label."""
    return driver.execute_script(
        """
        const out = [];
        for (const svg of document.querySelectorAll('svg')) {
          const box = svg.getBoundingClientRect();
          for (const text of svg.querySelectorAll('text')) {
            const r = text.getBoundingClientRect();
            if (r.width && (r.left < box.left - 0.5 || r.right > box.right + 0.5 ||
                            r.top < box.top - 0.5 || r.bottom > box.bottom + 0.5)) {
              out.push(text.textContent);
            }
          }
        }
        return out;
        """
    )


@pytest.mark.browser
def test_a_three_day_report_shows_every_day_its_budgets_window_and_forecast(
    stack, settings, clock, browser, capsys, tmp_path
) -> None:
    # Given spend on the first and the third day only
    quiet_default_budgets(stack, settings)
    meter_calls(
        clock,
        [
            (1, "alice", "amazon.nova-pro-v1:0", 2_000_000, 100_000),
            (49, "alice", "amazon.nova-pro-v1:0", 1_000_000, 50_000),
            (49, "bob", "us.amazon.nova-pro-v1:0", 500_000, 10_000),
        ],
    )
    name = stack.publish_outputs()
    first = clock().strftime("%Y-%m-%d")
    third = (clock() + timedelta(days=2)).strftime("%Y-%m-%d")
    run(capsys, "budget", "set", "user:alice", "--window", "daily", "--limit", "4", "--stack-name", name)
    account = f"account:{ACCOUNT}"
    run(capsys, "budget", "set", account, "--window", "daily", "--limit", "2.5", "--stack-name", name)
    # on the third day at noon (a forecast needs some of the budget's window to have passed)
    clock.set(clock().replace(hour=12) + timedelta(days=2))
    html = tmp_path / "report.html"
    window = ["--stack-name", name, "--since", first, "--until", third]
    run(capsys, "report", *window, "--html", str(html), "--top", "1")
    browser.get(html.as_uri())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "report-three-days.png"))
    # Then the day chart shows the three days in time order, the middle one at zero
    days = [
        (slot.get_attribute("data-label"), Decimal(slot.get_attribute("data-cost")))
        for slot in browser.find_elements("css selector", '[data-chart="day"] g.mark')
    ]
    rows = json.loads(run(capsys, "report", *window, "--group-by", "day", "--format", "json"))
    middle_day = (clock() - timedelta(days=1)).strftime("%Y-%m-%d")
    assert days == [
        (first, Decimal(rows[0]["cost_usd"]) if rows[0]["day"] == first else Decimal(rows[1]["cost_usd"])),
        (middle_day, Decimal(0)),
        (third, next(Decimal(r["cost_usd"]) for r in rows if r["day"] == third)),
    ]
    # on a money axis whose ticks rise from zero past the highest day
    ticks = [
        Decimal(t.get_attribute("data-value"))
        for t in browser.find_elements("css selector", '[data-chart="day"] g.tick')
    ]
    assert ticks[0] == 0 and ticks == sorted(ticks) and ticks[-1] >= max(cost for _, cost in days)
    # and the hours are a continuous series too: 72 of them
    assert len(browser.find_elements("css selector", '[data-chart="hour"] g.mark')) == 72
    # One model, whatever its endpoint: us. and in-Region calls together, the endpoints as detail
    model = browser.find_element("css selector", '[data-chart="model"] g.mark')
    by_model = json.loads(run(capsys, "report", *window, "--group-by", "model", "--format", "json"))
    assert model.get_attribute("data-label") == "amazon.nova-pro-v1:0"
    assert Decimal(model.get_attribute("data-cost")) == sum(Decimal(r["cost_usd"]) for r in by_model)
    assert "us. " in model.get_attribute("data-detail")
    # --top 1 is honoured: one principal and the (others)
    principals = [
        m.get_attribute("data-label")
        for m in browser.find_elements("css selector", '[data-chart="principal"] g.mark')
    ]
    assert principals == ["user:alice", "(others)"]
    # Cost by kind of token adds up to the total
    kinds = {
        m.get_attribute("data-label"): Decimal(m.get_attribute("data-cost"))
        for m in browser.find_elements("css selector", '[data-chart="token-kind"] g.mark')
    }
    assert set(kinds) == {"input", "output", "cache read", "cache write"}
    assert sum(kinds.values()) == Decimal(browser.find_element("id", "total").get_attribute("data-cost"))
    # The budget's bar: its window is the reported one's last day, its limit and forecast as `status` says
    status = json.loads(run(capsys, "status", "user:alice", "--stack-name", name, "--format", "json"))
    budget = next(row for row in status["budgets"] if row["window"] == "daily")
    bar = browser.find_element("css selector", '[data-chart="budgets"] g.budget[data-scope="user:alice"]')
    assert bar.get_attribute("data-window-id") == budget["window_id"] == third
    assert Decimal(bar.get_attribute("data-limit")) == Decimal(budget["limit_usd"]) == 4
    assert budget["forecast_usd"] is not None
    assert Decimal(bar.get_attribute("data-forecast")) == Decimal(budget["forecast_usd"])
    # The account's daily budget is a line across the day chart, at the limit `status` says
    status = json.loads(run(capsys, "status", account, "--stack-name", name, "--format", "json"))
    limit = next(row for row in status["budgets"] if row["window"] == "daily")["limit_usd"]
    line = browser.find_element("css selector", '[data-chart="day"] g.level[data-kind="budget"]')
    assert Decimal(line.get_attribute("data-value")) == Decimal(limit) == Decimal("2.5")
    # No label is clipped, and the page fits a 1,400 px window
    assert boxes_outside_their_chart(browser) == []
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 1400


def test_a_report_of_a_past_day_shows_the_budgets_of_that_day(
    stack, settings, clock, capsys, tmp_path
) -> None:
    quiet_default_budgets(stack, settings)
    meter_calls(clock, [(1, "alice", "amazon.nova-pro-v1:0", 2_000_000, 100_000)])
    name = stack.publish_outputs()
    run(capsys, "budget", "set", "user:alice", "--window", "daily", "--limit", "4", "--stack-name", name)
    day = clock().strftime("%Y-%m-%d")
    clock.set(clock() + timedelta(days=1))  # the next day: the budget's current window is empty
    html = tmp_path / "report.html"
    run(capsys, "report", "--stack-name", name, "--since", day, "--until", day, "--html", str(html))
    page = html.read_text()
    bar = page.split('data-scope="user:alice"', 1)[1].split(">", 1)[0]
    assert f'data-window-id="{day}"' in bar
    status = json.loads(run(capsys, "status", "user:alice", "--stack-name", name, "--format", "json"))
    assert next(r for r in status["budgets"] if r["window"] == "daily")["window_id"] != day
    assert 'data-percent="0"' not in bar
