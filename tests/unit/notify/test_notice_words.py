"""Notices in the reader's words: no English in a Spanish notice, amounts and times in its format,
one SMS segment, and what to do next. Every notice kind is rendered from the sample events the
preview command shows, and kept (HTML, text, SMS) in build/test-artifacts/notices/."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from budgetkeeper.core import clock
from budgetkeeper.notify.causes import CAUSES, cause, cause_text
from budgetkeeper.notify.locale import moment, money, percent, window_name
from budgetkeeper.notify.notices import OWNER_NOTICES, notice_for
from budgetkeeper.notify.render import (
    GSM7_SEGMENT,
    Renderer,
    UnknownLanguage,
    fits_one_segment,
    sms_segment_limit,
)
from budgetkeeper.notify.samples import SAMPLE_APP, SAMPLE_MODEL, sample_events, sample_summary

RENDERER = Renderer()
NOTICES = RENDERER.notices()
ARTIFACTS = Path(__file__).resolve().parents[3] / "build" / "test-artifacts" / "notices"
# Words both languages write alike: names of products and services, and a few words of both.
NAMES = ("bedrock", "budgetkeeper", "iam", "aws", "cloudtrail", "step", "functions", "slack", "openai", "api")
SHARED_WORDS = frozenset(
    (*NAMES, "utc", "us", "no", "a", "monitor", "manual", "compatible", "factor", "tokens", "min")
)
# Spanish written without its accents, as the SMS were: a misspelling, or another word (`superara`).
UNACCENTED = (
    "superara",
    "suspension",
    "actue",
    "denegacion",
    "tardio",
    "proteccion",
    "sera",
    "critico",
    "prevision",
    "politica",
    "sesion",
    "desvio",
    "dias",
)


def render(name: str, language: str, *, operator: bool = False, time_zone: str = "UTC", **changes):
    event = sample_events(clock.now())[name]
    if changes:
        event = type(event)(
            **{**{field: getattr(event, field) for field in event.__dataclass_fields__}, **changes}
        )
    notice = notice_for(
        event,
        operator=operator,
        summary=sample_summary() if name == "daily_summary" else None,
        failed_channel="slack",
        console_url="https://budgets.example.com/console" if operator else None,
    )
    return notice, RENDERER.render(notice.template, language, notice.context, time_zone)


def words(notice, text: str) -> set[str]:
    """The words of `text` the template wrote: data (scopes, models, commands, people's reasons) removed."""
    context = notice.context
    for value in (
        context["restore_command"],
        context["self_service"],
        context["console_url"],
        context["run_id"],
    ):
        if value:
            text = text.replace(value, " ")
    text = re.sub(r"`[^`]*`|\bbudgetkeeper( [a-z][a-z-]*)+", " ", text)  # the templates' commands
    summary_names = [
        row["name"] for rows in sample_summary().values() if isinstance(rows, list) for row in rows
    ]
    data = [context[name] for name in ("scope", "actor", "top_model", "top_app", "reason", "note")]
    # An operator alert's causes are worded by the notice; their facts (ids, errors) are data
    data += [value for cause in context["causes"] or () for name, value in cause.items() if name != "code"]
    for value in sorted(filter(None, [*data, *summary_names]), key=len, reverse=True):
        text = text.replace(str(value), " ")
    text = re.sub(r"\S*[:/@]\S+|\S*\.\.\.\S*", " ", text)  # identifiers shortened in an SMS
    text = re.sub(r":[a-z_]+:", " ", text)  # Slack's emoji names
    return {word.lower() for word in re.findall(r"[^\W\d_]+", text)}


def slack_texts(value) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in slack_texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in slack_texts(item)]
    return [value] if isinstance(value, str) else []


# Facts for each cause an operator alert can carry, and the alert that carries it.
CAUSE_FACTS = {
    "no_price_rows": ("prices_refused", {}),
    "price_jump": (
        "prices_refused",
        {
            "model": "amazon.nova-pro-v1:0",
            "region": "us-east-1",
            "tier": "flex",
            "kind": "cache_write_5m",
            "old": "0.8",
            "new": "8",
            "factor": "3",
        },
    ),
    "metered_without_price": ("prices_refused", {"model": "amazon.nova-pro-v1:0", "region": "eu-west-3"}),
    "billed_not_metered": ("billing_drift", {"day": "2026-06-10"}),
    "billing_drift": ("billing_drift", {"day": "2026-06-10", "percent": "5", "min_usd": "1"}),
    "no_creator": ("batch_job_unmetered", {"call": "CreateModelInvocationJob"}),
    "manifest_unreadable": ("batch_job_unmetered", {"manifest": "manifest.json.out", "error": "EOF"}),
    "manifest_not_whole": ("batch_job_unmetered", {"manifest": "manifest.json.out", "counts": "{}"}),
    "outputs_unreadable": ("batch_job_unmetered", {"where": "s3://out/job/", "error": "NoSuchKey"}),
    "more_tokens_than_manifest": ("batch_job_unmetered", {"manifest": "manifest.json.out"}),
    "session_policy_not_ours": (
        "session_policy_rejected",
        {"policy_arn": "arn:aws:iam::111122223333:policy/p", "role": "App", "problems": "Effect Allow"},
    ),
    "member_role_unreachable": (
        "member_account_unreachable",
        {
            "role": "BudgetkeeperEnforcement",
            "account": "111122223333",
            "error": "AccessDenied",
            "entries": "user:111122223333/bob",
        },
    ),
}


def render_cause(code: str, language: str, *, operator: bool = True):
    name, facts = CAUSE_FACTS[code]
    return render(name, language, operator=operator, causes=[cause(code, **facts)])


def english_words() -> set[str]:
    vocabulary: set[str] = set()
    for name in NOTICES:
        for operator in (False, True):
            notice, rendered = render(name, "en", operator=operator)
            vocabulary |= words(notice, f"{rendered.subject} {rendered.text} {rendered.sms}")
    for code in CAUSE_FACTS:  # every operator alert's cause, as English words it
        notice, rendered = render_cause(code, "en")
        vocabulary |= words(notice, rendered.text)
    return vocabulary - SHARED_WORDS


ENGLISH = english_words()


def test_the_english_word_list_catches_what_the_issue_saw():
    # Given the raw reason and window name a Spanish mail carried before
    seen = "Motivo: spend 0.50065382 USD is 108.8% of 0.46 USD (daily)"
    # Then the check flags them (it can fail), and the vocabulary is the templates' whole English
    found = {word.lower() for word in re.findall(r"[^\W\d_]+", seen)} & ENGLISH
    assert {"spend", "is", "of", "daily"} <= found
    assert len(ENGLISH) > 150


def test_the_english_word_list_catches_an_operator_alert_s_english_cause():
    # Given the English refusal a Spanish operator read before (it passed as data, unchecked)
    seen = "se guardó pero no se activó: the refresh yielded no price rows; x was metered in the last 30 days"
    # Then the vocabulary holds the causes' English words, so the check below can fail on them
    found = {word.lower() for word in re.findall(r"[^\W\d_]+", seen)} & ENGLISH
    assert {"refresh", "yielded", "rows", "metered", "last", "days"} <= found


def test_every_cause_is_worded_in_every_language_and_has_sample_facts():
    assert set(CAUSE_FACTS) == set(CAUSES["en"])
    assert all(set(CAUSES[language]) == set(CAUSES["en"]) for language in RENDERER.languages())
    with pytest.raises(ValueError, match="no words for the cause 'typo'"):
        cause("typo")


@pytest.mark.parametrize("operator", [False, True], ids=["owner", "operator"])
@pytest.mark.parametrize("code", CAUSE_FACTS)
def test_a_spanish_operator_alert_words_its_cause_in_spanish(code, operator):
    # Given an operator alert (price refresh, billing reconciler, batch job) with one cause
    notice, rendered = render_cause(code, "es", operator=operator)
    # Then every part words it in Spanish, and English is left to the English notice
    assert_no_english(notice, rendered)
    assert cause_text(notice.context["causes"][0], "es") in rendered.text
    assert notice.context["reason"] is None  # the English reason, kept for the logs, is not shown
    assert fits_one_segment(rendered.sms), rendered.sms


@pytest.mark.parametrize("operator", [False, True], ids=["owner", "operator"])
@pytest.mark.parametrize("name", NOTICES)
def test_a_spanish_notice_has_no_english_reason_or_window_name(name, operator):
    # Given the sample event of each notice, read by a Spanish-speaking owner or operator
    notice, rendered = render(name, "es", operator=operator)
    # Then subject, text, SMS and Slack carry no English word of the English notices
    assert_no_english(notice, rendered)


def assert_no_english(notice, rendered) -> None:
    slack = " ".join(slack_texts(rendered.slack))
    for part in (rendered.subject, rendered.text, rendered.sms, slack):
        assert not words(notice, part) & ENGLISH, (words(notice, part) & ENGLISH, part)


@pytest.mark.parametrize("name", NOTICES)
def test_a_run_s_reason_never_reaches_an_owner(name):
    # Given an event whose run wrote its own reason (the audit's English)
    _, rendered = render(name, "es", reason="spend 1240.00065382 USD is 100.4% of 1234.5 USD")
    # Then owners read the numbers in their words, not that sentence, when no person wrote it
    if sample_events(clock.now())[name].actor.startswith("budgetkeeper"):
        assert not re.search(r"\bspend\b", rendered.text) and "0065382" not in rendered.text


@pytest.mark.parametrize("operator", [False, True], ids=["owner", "operator"])
@pytest.mark.parametrize("language", RENDERER.languages())
@pytest.mark.parametrize("name", NOTICES)
def test_every_sms_is_one_segment_and_spanish_keeps_gsm7(name, language, operator):
    # Given a long scope, as SSO sessions have
    long_scope = "session:AWSReservedSSO_BedrockUsers_0123456789abcdef/maria.fernandez@example.com"
    _, rendered = render(name, language, operator=operator, scope=long_scope)
    # Then the SMS is one segment; plain-ASCII data keeps Spanish in GSM-7 (160), not UCS-2 (70)
    assert fits_one_segment(rendered.sms), rendered.sms
    assert sms_segment_limit(rendered.sms) == GSM7_SEGMENT, rendered.sms
    assert not any(re.search(rf"\b{word}\b", rendered.sms.lower()) for word in UNACCENTED), rendered.sms


def test_spanish_is_accented_where_gsm7_allows_it_in_full_text():
    _, rendered = render("forecast", "es")
    assert "Previsión" in rendered.subject and "superará" in rendered.subject


def test_amounts_percentages_and_times_in_the_reader_s_format():
    assert money("1234.5", "en") == "$1,234.50" and money("1234.5", "es") == "1.234,50 US$"
    assert money("0.004", "en") == "<$0.01" and money("0.004", "es") == "<0,01 US$"
    assert money("0", "en") == "$0.00"
    assert (
        percent("108.8", "es") == "109 %"
        and percent("8.25", "es") == "8,2 %"
        and percent("80", "en") == "80%"
    )
    assert moment("2026-06-10T22:30:00Z", "es", "Europe/Madrid") == "11/06/2026 00:30 CEST"
    assert moment("2026-06-10T22:30:00Z", "en", "America/New_York") == "2026-06-10 18:30 EDT"
    assert window_name("daily", "es") == "diario" and window_name("monthly", "es") == "mensual"
    assert window_name("days:7@2026-01-05", "es") == "de 7 días"
    assert window_name("days:7@2026-01-05", "en") == "every-7-day"


def test_the_forecast_says_how_much_and_when():
    _, rendered = render("forecast", "es", time_zone="Europe/Madrid")
    crossing = sample_events(clock.now())["forecast"].crosses_at
    assert "1.490,22 US$" in rendered.text and moment(crossing, "es", "Europe/Madrid") in rendered.text
    assert "1.490,22 US$" in rendered.sms


def test_the_grace_notice_says_when_the_suspension_comes():
    suspend_at = sample_events(clock.now())["grace"].suspend_at
    _, rendered = render("grace", "en")
    assert f"suspended at {moment(suspend_at, 'en')}" in rendered.text
    assert moment(suspend_at, "en") in rendered.sms


def test_restored_at_the_refresh_names_the_new_window_and_no_old_reason():
    new_end = (clock.now() + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    _, rendered = render(
        "restored", "es", refresh_at=new_end.isoformat(), reason="spend 1240 USD is 100.4% of 1234.5 USD"
    )
    assert f"este periodo dura hasta el {moment(new_end.isoformat(), 'es')}" in rendered.text
    assert not re.search(r"\bspend\b", rendered.text) and "Motivo" not in rendered.text


@pytest.mark.parametrize("name", ["warning", "suspended", "grace", "forecast"])
def test_what_drove_the_spend_and_what_to_do_next(name):
    # Owners read the top model and app and the command that shows their spend
    _, rendered = render(name, "es")
    assert SAMPLE_MODEL in rendered.text and "912,34 US$" in rendered.text
    assert f"Aplicación con más gasto: {SAMPLE_APP} (701,05 US$)" in rendered.text
    assert SAMPLE_APP in rendered.html and SAMPLE_APP in str(rendered.slack)
    _, english = render(name, "en")
    assert f"Top app: {SAMPLE_APP} ($701.05)" in english.text
    assert "budgetkeeper me" in rendered.text and "budgetkeeper me" in rendered.html
    # The footer names the run, never its ARN
    assert "arn:aws:states" not in rendered.text + rendered.html + str(rendered.slack)
    assert f"ejecución: {name}-3f2a9c1d" in rendered.text


def test_a_top_app_over_the_last_hours_of_a_long_window_says_so():
    # Given a monthly budget's notice whose top app was read over the window's last 24 hours
    _, spanish = render("suspended", "es", window="monthly", top_app_hours=24)
    _, english = render("suspended", "en", window="monthly", top_app_hours=24)
    # Then the label says over which hours, in each language, in text, HTML and Slack
    assert f"Aplicación con más gasto, últimas 24 horas: {SAMPLE_APP} (701,05 US$)" in spanish.text
    assert f"Top app, last 24 hours: {SAMPLE_APP} ($701.05)" in english.text
    assert "últimas 24 horas" in spanish.html and "last 24 hours" in str(english.slack)


@pytest.mark.parametrize("name", ["grace", "suspended", "manual_suspension"])
def test_operators_get_the_restore_command_instead_of_owner_advice(name):
    _, owner = render(name, "en")
    notice, operator = render(name, "en", operator=True)
    command = notice.context["restore_command"]
    assert command.startswith("budgetkeeper restore user:alice --window ")
    assert command in operator.text and command in str(operator.slack)
    assert "ask an operator" not in operator.text and "ask an operator" not in str(operator.slack)
    assert "budgetkeeper restore" not in owner.text
    assert "https://budgets.example.com/console" in str(operator.slack)


def test_a_language_asked_for_by_name_must_exist():
    with pytest.raises(UnknownLanguage, match="use one of en, es"):
        RENDERER.exact_language("fr")


def test_every_notice_kind_kept_as_artifacts():
    # Every notice kind, both languages, owner and operator: HTML, text and SMS for people to look at
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    index = []
    for name in NOTICES:
        for language in RENDERER.languages():
            for reader in ("owner", "operator") if name in OWNER_NOTICES else ("operator",):
                _, rendered = render(name, language, operator=reader == "operator")
                stem = f"{name}.{language}.{reader}"
                (ARTIFACTS / f"{stem}.html").write_text(rendered.html, encoding="utf-8")
                (ARTIFACTS / f"{stem}.txt").write_text(
                    f"{rendered.text}\n-- SMS\n{rendered.sms}\n", encoding="utf-8"
                )
                index.append(
                    f'<li><a href="{stem}.html">{stem}</a> (<a href="{stem}.txt">text, SMS</a>)</li>'
                )
    (ARTIFACTS / "index.html").write_text(f"<!DOCTYPE html><ul>{''.join(index)}</ul>", encoding="utf-8")
    assert len(index) >= 2 * len(NOTICES)


def test_times_follow_the_clock():
    # The samples' times come from the clock the tests set, never a fixed date
    events = sample_events(datetime(2031, 3, 4, 12, tzinfo=UTC))
    assert events["grace"].suspend_at.startswith("2031-03-04T12:15")


def render_summary(language: str, **changes) -> str:
    """The daily summary's text and SMS, with some of the sample summary's values changed."""
    event = sample_events(clock.now())["daily_summary"]
    notice = notice_for(event, summary={**sample_summary(), **changes})
    rendered = RENDERER.render(notice.template, language, notice.context)
    return f"{rendered.text}\n{rendered.sms}"


@pytest.mark.parametrize(
    ("count", "spanish", "english"),
    [(1, "1 suspendido,", "1 suspended,"), (2, "2 suspendidos,", "2 suspended,")],
)
def test_counts_agree_with_their_number_in_both_languages(count, spanish, english):
    # Given a day with `count` suspended scopes and a model without a price called `count` times
    unknown = [{"name": "vendor.new-model-v1", "calls": count}]
    changes = {"counts": {"suspended": count, "grace": 0}, "unknown_models": unknown}
    # Then each language writes the count with its noun in agreement
    es, en = render_summary("es", **changes), render_summary("en", **changes)
    assert spanish in es and english in en
    calls = "llamada" if count == 1 else "llamadas"
    assert f"vendor.new-model-v1 ({count} {calls})" in es
    assert f"vendor.new-model-v1 ({count} {'call' if count == 1 else 'calls'})" in en
    assert not re.search(r"\b1 (suspendidos|llamadas|calls)\b", es + en)
