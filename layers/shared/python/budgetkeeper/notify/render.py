"""Notices rendered from the jinja2 templates: plain text, HTML, one SMS segment and Slack Block Kit.

Templates live in `templates/<language>/<notice>.j2`, one per notice and language; each defines its
words (blocks `subject`, `body`, `next_step`, `sms`) and extends `<language>/_language.j2` (labels),
which extends the layout of the format being rendered (`templates/_layouts/`). A new language is a
new folder of files only. Escaping is the environment's job, never the template author's:
- HTML: jinja2 autoescape;
- Slack: every string of the context is escaped for mrkdwn (`&`, `<`, `>`) before rendering, and
  every `{{ }}` for a JSON string (the layout is JSON);
- text and SMS: plain text, nothing to escape.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template

from budgetkeeper.notify.causes import causes_text
from budgetkeeper.notify.locale import localize

TEMPLATE_DIR = Path(__file__).parent / "templates"
DEFAULT_LANGUAGE = "en"

# One SMS segment: 160 GSM-7 septets, or 70 UCS-2 characters once one character is outside GSM-7.
GSM7_SEGMENT = 160
UCS2_SEGMENT = 70
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    "ÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")  # two septets each (escape + character)

# The colour of the HTML banner and the Slack emoji, by notice.
TONES = {
    "forecast": "amber",
    "warning": "amber",
    "critical": "amber",
    "grace": "red",
    "suspended": "red",
    "manual_suspension": "red",
    "cannot_suspend": "red",
    "protected_alert": "red",
    "workflow_failed": "red",
    "notification_failed": "red",
    "restored": "green",
    "stood_down": "green",
}
COLOURS = {"amber": "#b7791f", "red": "#c53030", "green": "#2f855a", "grey": "#4a5568"}
EMOJIS = {
    "amber": "warning",
    "red": "rotating_light",
    "green": "white_check_mark",
    "grey": "information_source",
}


class TemplateMissing(LookupError):
    """No template for a notice: every notice the notifier sends has one in every language."""


class UnknownLanguage(LookupError):
    """A language no templates exist for, asked for by name (a preview, not a reader's tag)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """One notice in every format, in one language."""

    language: str
    subject: str
    text: str
    html: str
    sms: str
    slack: dict[str, Any]


def sms_segment_limit(text: str) -> int:
    """How many units one segment holds for this text: GSM-7 160, else UCS-2 70."""
    return GSM7_SEGMENT if all(ch in _GSM7_BASIC or ch in _GSM7_EXTENDED for ch in text) else UCS2_SEGMENT


def sms_length(text: str) -> int:
    """The text's length in its encoding's units: GSM-7 septets, or UTF-16 code units."""
    if sms_segment_limit(text) == GSM7_SEGMENT:
        return sum(2 if ch in _GSM7_EXTENDED else 1 for ch in text)
    return len(text.encode("utf-16-le")) // 2


def fits_one_segment(text: str) -> bool:
    return sms_length(text) <= sms_segment_limit(text)


def mrkdwn_escape(text: str) -> str:
    """Slack's three control characters; everything else is shown as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_strings(value: Any) -> Any:
    if isinstance(value, str):
        return mrkdwn_escape(value)
    if isinstance(value, Mapping):
        return {key: _escape_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_escape_strings(item) for item in value]
    return value


def _json_string(value: Any) -> str:
    """`{{ }}` in the Slack layout: the value as the inside of a JSON string."""
    return json.dumps("" if value is None else str(value), ensure_ascii=False)[1:-1]


def _shorten(text: str, keep: int) -> str:
    """`text` cut in the middle to `keep` characters, so both ends stay readable."""
    if len(text) <= keep:
        return text
    if keep <= 3:
        return text[:keep]
    head = (keep - 3) // 2 + (keep - 3) % 2
    return text[:head] + "..." + text[len(text) - (keep - 3 - head) :]


def ascii_line(text: str, limit: int) -> str:
    """One line of ASCII (what an SNS subject accepts): accents folded, controls dropped."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"\s+", " ", folded).strip()[:limit]


class Renderer:
    """Renders a notice in one language in every format."""

    def __init__(self, template_dir: Path = TEMPLATE_DIR) -> None:
        loader = FileSystemLoader(str(template_dir))
        common: dict[str, Any] = {
            "loader": loader,
            "undefined": StrictUndefined,
            "keep_trailing_newline": False,
        }
        self._html = Environment(autoescape=True, **common)
        self._text = Environment(autoescape=False, **common)
        self._slack = Environment(autoescape=False, finalize=_json_string, **common)
        self._template_dir = template_dir

    def languages(self) -> tuple[str, ...]:
        """Every folder of templates is a language."""
        return tuple(
            sorted(
                path.name for path in self._template_dir.iterdir() if path.is_dir() and path.name[0] != "_"
            )
        )

    def notices(self, language: str = DEFAULT_LANGUAGE) -> tuple[str, ...]:
        return tuple(
            sorted(
                path.stem
                for path in (self._template_dir / language).glob("*.j2")
                if not path.stem.startswith("_")
            )
        )

    def language_for(self, wanted: str | None) -> str:
        """The wanted language when templates exist for it (`es`, `es-MX` -> `es`), else English."""
        if wanted:
            code = wanted.strip().lower().replace("_", "-").split("-")[0]
            if code in self.languages():
                return code
        return DEFAULT_LANGUAGE

    def exact_language(self, wanted: str) -> str:
        """`wanted` when templates exist for it, else UnknownLanguage naming those that do."""
        code = wanted.strip().lower()
        if code not in self.languages():
            raise UnknownLanguage(f"no notices in {wanted!r}: use one of {', '.join(self.languages())}")
        return code

    def render(
        self, notice: str, language: str, context: Mapping[str, Any], time_zone: str = "UTC"
    ) -> Rendered:
        """`notice` in `language`, amounts and times in its format, times in `time_zone`."""
        language = self.language_for(language)
        name = f"{language}/{notice}.j2"
        if not (self._template_dir / name).is_file():
            raise TemplateMissing(f"no template {name}")
        values = {
            "language": language,
            "colour": COLOURS[TONES.get(notice, "grey")],
            "emoji": EMOJIS[TONES.get(notice, "grey")],
            "bar": _bar(context.get("percent")),
            **localize(context, language, time_zone),
            "why": causes_text(context.get("causes"), language),
        }
        subject = one_line(self._block(self._text.get_template(name), "subject", values))
        slack_text = self._slack.get_template(name).render(
            layout="_layouts/slack.json.j2", **_escape_strings({**values, "headline": subject})
        )
        return Rendered(
            language=language,
            subject=subject,
            text=self._text.get_template(name).render(layout="_layouts/email.txt.j2", **values).strip()
            + "\n",
            html=self._html.get_template(name).render(layout="_layouts/email.html.j2", **values),
            sms=self._sms(name, values),
            slack=json.loads(slack_text, strict=False),
        )

    def _block(self, template: Template, block: str, values: Mapping[str, Any]) -> str:
        context = template.new_context({"layout": "_layouts/sms.txt.j2", **values})
        return "".join(template.blocks[block](context))

    def _sms(self, name: str, values: Mapping[str, Any]) -> str:
        """One segment: the scope (the only long part) is shortened in the middle until it fits."""
        template = self._text.get_template(name)
        scope = str(values.get("scope") or "")
        for keep in range(len(scope), -1, -1):
            text = " ".join(
                template.render(
                    layout="_layouts/sms.txt.j2", **{**values, "scope": _shorten(scope, keep)}
                ).split()
            )
            if fits_one_segment(text):
                return text
        limit = sms_segment_limit(text)
        return text[: limit - 3] + "..."


def one_line(text: str) -> str:
    """The subject as one line (an e-mail header holds no line breaks)."""
    return re.sub(r"\s+", " ", text).strip()


def _bar(percent: Any) -> int | None:
    """The usage bar's width in percent of the limit, 0 to 100."""
    if percent is None:
        return None
    try:
        return max(0, min(100, int(float(str(percent)))))
    except ValueError:
        return None


@cache
def default_renderer() -> Renderer:
    return Renderer()
