"""`budgetkeeper notices preview TYPE|all --language LANG`: every notice as its readers get it.

Renders a sample event (budgetkeeper.notify.samples) through the notice templates, offline: no
stack, no AWS. For whoever edits a template or adds a language: the subject, the plain-text e-mail,
the SMS with its length in segment units, and optionally the HTML e-mail or the Slack message. With
--operator, the notice as operators get it (the restore command instead of the owner's next step).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from budgetkeeper.core import clock
from budgetkeeper.core.windows import InvalidWindow, parse_time_zone
from budgetkeeper.notify.notices import notice_for
from budgetkeeper.notify.render import (
    Rendered,
    UnknownLanguage,
    default_renderer,
    fits_one_segment,
    sms_length,
    sms_segment_limit,
)
from budgetkeeper.notify.samples import sample_events, sample_summary
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.parsers import add_action, add_actions, add_command, docstring_body

PARTS = ("text", "sms", "html", "slack")

EPILOG = """\
examples:
  budgetkeeper notices preview suspended --language es
  budgetkeeper notices preview forecast --language en --time-zone America/New_York
  budgetkeeper notices preview grace --language es --operator --part slack
  budgetkeeper notices preview all --language es --part sms
  budgetkeeper notices preview warning --part html --out /tmp/warning.html
"""


def register(subparsers: Any) -> None:
    parser = add_command(
        subparsers,
        "notices",
        "preview the notices (e-mail, SMS, Slack) in each language, from sample events",
        docstring_body(__doc__),
        EPILOG,
    )
    actions = add_actions(parser, "notices_action")
    preview = add_action(actions, "preview", "render one notice (or all) from a sample event", EPILOG)
    preview.add_argument("notice", metavar="TYPE", help="a notice (e.g. suspended, forecast) or all")
    preview.add_argument("--language", default="en", help="the reader's language (default en)")
    preview.add_argument("--time-zone", default="UTC", help="the reader's time zone (default UTC)")
    preview.add_argument(
        "--part", choices=PARTS, default=None, help="one part only (default: subject, text and SMS)"
    )
    preview.add_argument("--operator", action="store_true", help="as operators get it (Slack, SNS)")
    preview.add_argument("--out", type=Path, help="write to this file instead of standard output")
    preview.set_defaults(func=run_preview)


def run_preview(args: argparse.Namespace) -> int:
    renderer = default_renderer()
    try:
        language = renderer.exact_language(args.language)
        parse_time_zone(args.time_zone)
    except (UnknownLanguage, InvalidWindow) as error:
        raise UsageError(str(error).strip('"')) from None
    known = renderer.notices(language)
    if args.notice != "all" and args.notice not in known:
        raise UsageError(f"no notice {args.notice!r}: use all or one of {', '.join(known)}")
    events = sample_events(clock.now())
    chosen = known if args.notice == "all" else (args.notice,)
    pages = []
    for name in chosen:
        notice = notice_for(
            events[name],
            operator=args.operator,
            summary=sample_summary() if name == "daily_summary" else None,
            failed_channel="slack",
        )
        rendered = renderer.render(notice.template, language, notice.context, args.time_zone)
        pages.append(_page(name, rendered, args.part))
    output = "\n".join(pages)
    if args.out:
        args.out.write_text(output, encoding="utf-8")
        print(f"wrote {args.out}")  # noqa: T201
    else:
        sys.stdout.write(output)
    return 0


def _page(name: str, rendered: Rendered, part: str | None) -> str:
    if part == "html":
        return rendered.html
    if part == "slack":
        return json.dumps(rendered.slack, indent=2, ensure_ascii=False) + "\n"
    segments = "one segment" if fits_one_segment(rendered.sms) else "MORE THAN ONE SEGMENT"
    sms = (
        f"{rendered.sms}\n[{sms_length(rendered.sms)}/{sms_segment_limit(rendered.sms)} units: {segments}]\n"
    )
    if part == "sms":
        return f"== {name}\n{sms}"
    if part == "text":
        return rendered.text
    return f"== {name} ({rendered.language})\nSubject: {rendered.subject}\n\n{rendered.text}\n-- SMS\n{sms}"
