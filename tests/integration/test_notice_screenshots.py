"""Every notice kind, in both languages, as a mail reader shows it: headless Chromium renders each
sample notice's HTML e-mail and keeps a screenshot in build/test-artifacts/notices/<kind>.<language>.png
(the HTML, text and SMS are kept beside them by tests/unit/notify/test_notice_words.py).

Under CI=true a missing browser fails the run (tests/conftest.py).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from budgetkeeper.core import clock as product_clock
from budgetkeeper.notify.notices import OWNER_NOTICES, notice_for
from budgetkeeper.notify.render import Renderer
from budgetkeeper.notify.samples import sample_events, sample_summary

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "notices"
RENDERER = Renderer()
MAIL_WINDOW = (900, 1400)  # a mail client's reading pane


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """A PNG's width, height and its decoded scanlines (each with its filter byte), by hand."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width = height = 0
    compressed = b""
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            compressed += body
        offset += 12 + length
    return width, height, zlib.decompress(compressed)


@pytest.mark.browser
def test_every_notice_kind_in_both_languages_is_kept_as_a_screenshot(browser, tmp_path) -> None:
    # Given every notice kind's sample event, as owners read it (operators for operators' notices)
    events = sample_events(product_clock.now())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(*MAIL_WINDOW)
    shots = []
    for name, event in events.items():
        notice = notice_for(
            event,
            operator=name not in OWNER_NOTICES,
            summary=sample_summary() if name == "daily_summary" else None,
        )
        for language in RENDERER.languages():
            # When Chromium shows its HTML e-mail
            page = tmp_path / f"{name}.{language}.html"
            page.write_text(RENDERER.render(notice.template, language, notice.context).html, encoding="utf-8")
            browser.get(page.as_uri())
            shot = ARTIFACTS / f"{name}.{language}.png"
            shot.unlink(missing_ok=True)
            browser.save_screenshot(str(shot))
            shots.append(shot)
    # Then each kind has a PNG per language, of the reading pane, with more than a blank page in it
    assert set(events) == set(RENDERER.notices()) and len(shots) == len(events) * len(RENDERER.languages())
    for shot in shots:
        width, height, scanlines = png_pixels(shot)
        assert width >= 800 and height >= 600, (shot.name, width, height)
        assert len(scanlines) >= height * (1 + width * 3), shot.name  # RGB(A) rows, decoded in full
        row = len(scanlines) // height
        distinct_rows = {scanlines[y * row + 1 : (y + 1) * row] for y in range(0, height, 4)}
        assert len(distinct_rows) > 20, (shot.name, "mostly blank")
