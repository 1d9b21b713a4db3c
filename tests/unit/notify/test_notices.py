"""Every notice, in every language and format: escaped, complete, and one SMS segment."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from budgetkeeper.notify import TITLES, NotificationEvent
from budgetkeeper.notify.notices import notice_for, restore_cause
from budgetkeeper.notify.render import (
    GSM7_SEGMENT,
    UCS2_SEGMENT,
    Renderer,
    fits_one_segment,
    sms_length,
    sms_segment_limit,
)
from tests.timeline import now_iso

RENDERER = Renderer()
LANGUAGES = RENDERER.languages()
NOTICES = RENDERER.notices()
SCRIPT = "<script>alert(1)</script>"
QUOTED_REASON = 'INC-42: "approved" by O\'Brien & <b>ops</b>'

SUMMARY = {
    "total_today": "USD 12.50",
    "total_month": "USD 310.00",
    "teams": [{"name": f"team:{SCRIPT}", "today": "USD 3.00", "month": "USD 40.00"}],
    "top_scopes": [{"name": f"user:{SCRIPT}", "today": "USD 2.00"}],
    "suspended": [{"name": f"user:{SCRIPT}", "detail": "daily"}],
    "grace": [],
    "near": [{"name": "role:App-BedrockRole", "detail": "91%"}],
    "unknown_models": [{"name": f"vendor.{SCRIPT}", "detail": "3 calls"}],
    "counts": {"suspended": 1, "grace": 0},  # before the lists are capped (notify/summary_rows)
}


def event(
    notice: str, *, scope: str = f"user:{SCRIPT}", actor: str = "jdoe@example.com"
) -> NotificationEvent:
    return NotificationEvent(
        type={"manual_suspension": "suspended", "daily_summary": "summary"}.get(notice, notice),
        scope=scope,
        window="manual" if notice == "manual_suspension" else "daily",
        window_id="d1",
        spent_usd="1.0249",
        limit_usd="1",
        percent="102.5",
        refresh_at=now_iso(),
        actor=actor,
        reason=QUOTED_REASON,
        execution="arn:aws:states:us-east-1:123456789012:execution:sm:run-1",
        at=now_iso(),
        note=f"note about {SCRIPT}",
    )


def context(notice: str, **kwargs) -> dict:
    values = notice_for(
        event(notice, **kwargs), contact=f"owner{SCRIPT}@example.com", failed_channel="slack"
    ).context
    if notice == "daily_summary":
        values.update(summary=SUMMARY, day="d1")
    return values


class TextOf(HTMLParser):
    """The text a mail client shows, and whether any element other than the layout's appeared."""

    LAYOUT_TAGS = {
        "html",
        "head",
        "meta",
        "title",
        "body",
        "table",
        "tr",
        "td",
        "th",
        "p",
        "strong",
        "code",
        "h3",
        "ol",
        "ul",
        "li",
    }

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.foreign_tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.LAYOUT_TAGS:
            self.foreign_tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_every_notice_exists_in_every_language():
    # Given the template folders / Then each language has the same notices, English among them
    assert "en" in LANGUAGES and "es" in LANGUAGES
    for language in LANGUAGES:
        assert RENDERER.notices(language) == NOTICES
    assert {
        "forecast",
        "warning",
        "critical",
        "grace",
        "suspended",
        "restored",
        "stood_down",
        "protected_alert",
        "cannot_suspend",
        "manual_suspension",
        "late_spend",
        "workflow_failed",
        "daily_summary",
    } <= set(NOTICES)


def test_every_event_type_published_has_a_notice():
    # Given every event type the functions publish / Then the notifier has words for each of them
    assert set(TITLES) <= set(NOTICES)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("notice", NOTICES)
def test_html_escapes_every_outside_value(notice, language):
    # When a notice names a principal "<script>alert(1)</script>" with a quoted reason
    rendered = RENDERER.render(notice, language, context(notice))
    # Then the HTML holds no element of theirs, and shows their text as written
    parser = TextOf()
    parser.feed(rendered.html)
    assert parser.foreign_tags == []
    assert SCRIPT not in rendered.html
    shown = "".join(parser.text)
    assert SCRIPT in shown
    if notice != "daily_summary":
        assert QUOTED_REASON in shown
        assert "O&#39;Brien" in rendered.html and "&#34;approved&#34;" in rendered.html
    assert f'lang="{language}"' in rendered.html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("notice", NOTICES)
def test_slack_block_kit_escapes_every_outside_value(notice, language):
    rendered = RENDERER.render(notice, language, context(notice))
    payload = rendered.slack
    # Then it is Block Kit: a fallback text and blocks of known types with mrkdwn text
    assert payload["text"] and payload["blocks"]
    assert {block["type"] for block in payload["blocks"]} <= {"section", "context"}
    texts = json.dumps(payload, ensure_ascii=False)
    # and Slack's control characters from outside arrive escaped, never as markup
    assert "<script>" not in texts and "&lt;script&gt;alert(1)&lt;/script&gt;" in texts
    if notice != "daily_summary":
        assert "&amp; &lt;b&gt;ops&lt;/b&gt;" in texts
        assert '\\"approved\\"' in texts  # a quote is a quote inside the JSON string


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("notice", NOTICES)
def test_text_and_sms(notice, language):
    rendered = RENDERER.render(notice, language, context(notice))
    # Then the text e-mail has the subject, the values as written and whom to contact
    assert rendered.text.startswith(rendered.subject)
    assert "\n" not in rendered.subject
    if notice != "daily_summary":
        assert QUOTED_REASON in rendered.text
    assert f"owner{SCRIPT}@example.com" in rendered.text
    # and the SMS is one line in one segment
    assert "\n" not in rendered.sms
    assert fits_one_segment(rendered.sms), (rendered.sms, sms_length(rendered.sms))


def test_the_usage_bar_and_colours_follow_the_notice():
    warning = RENDERER.render("warning", "en", context("warning") | {"percent": "75"})
    suspended = RENDERER.render("suspended", "en", context("suspended"))
    restored = RENDERER.render("restored", "en", context("restored"))
    assert "#b7791f" in warning.html and "width:75%" in warning.html  # amber, a bar three quarters long
    assert "[###############-----] 75%" in warning.text
    assert "#c53030" in suspended.html and "width:100%" in suspended.html  # red, the bar full at 102%
    assert "#2f855a" in restored.html  # green


@pytest.mark.parametrize(
    ("window", "actor", "cause", "words"),
    [
        ("daily", "budgetkeeper", "refresh", "refreshed"),
        ("manual", "budgetkeeper", "until", "reached its end"),
        ("daily", "jdoe@example.com", "emergency", "emergency restore"),
        ("manual", "jdoe@example.com", "operator", "lifted the suspension"),
    ],
)
def test_a_restore_says_why_access_came_back(window, actor, cause, words):
    restored = NotificationEvent(
        type="restored",
        scope="user:alice",
        window=window,
        window_id="d1",
        spent_usd=None,
        limit_usd=None,
        percent=None,
        refresh_at=None,
        actor=actor,
        reason=None,
        execution="arn:x",
        at=now_iso(),
    )
    notice = notice_for(restored)
    assert restore_cause(restored) == cause
    assert words in RENDERER.render(notice.template, "en", notice.context).text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("notice", NOTICES)
def test_a_long_accented_name_still_fits_one_sms_segment(notice, language):
    # Given a long name outside GSM-7 (í, ó switch an SMS to UCS-2: 70 characters)
    scope = "user:" + "andrés.garcía.lópez-" * 6
    rendered = RENDERER.render(notice, language, context(notice, scope=scope, actor="Íñigo Ortúzar"))
    # Then the SMS fits one segment of its own encoding, the scope shortened in the middle
    assert fits_one_segment(rendered.sms), rendered.sms
    assert scope not in rendered.sms


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_accented_sms_is_held_to_70_characters(language):
    # Given an operator whose name is outside GSM-7 suspends a long-named scope
    rendered = RENDERER.render(
        "manual_suspension",
        language,
        context("manual_suspension", scope="user:" + "x" * 120, actor="Íñigo Ortúzar"),
    )
    # Then the SMS is UCS-2, at most 70 characters, with the operator's name whole
    assert sms_segment_limit(rendered.sms) == UCS2_SEGMENT
    assert len(rendered.sms) <= UCS2_SEGMENT
    assert "Íñigo Ortúzar" in rendered.sms and "user:" in rendered.sms and "...xxx" in rendered.sms


def test_segment_limits_follow_the_encoding():
    assert sms_segment_limit("a" * 200) == GSM7_SEGMENT
    assert sms_segment_limit("Ñandú") == UCS2_SEGMENT  # ú is not GSM-7, Ñ is
    assert sms_segment_limit("Ñandu é") == GSM7_SEGMENT
    assert sms_length("price [EUR]") == 13  # [ and ] take two septets each
    assert fits_one_segment("a" * 160) and not fits_one_segment("a" * 161)
    assert fits_one_segment("í" * 70) and not fits_one_segment("í" * 71)


def test_language_choice_falls_back_to_english():
    assert RENDERER.language_for("es-MX") == "es"
    assert RENDERER.language_for("ES") == "es"
    assert RENDERER.language_for("fr") == "en"
    assert RENDERER.language_for(None) == "en"
