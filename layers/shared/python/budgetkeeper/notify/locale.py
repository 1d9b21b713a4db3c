"""Numbers, money, times and window names in the reader's language and time zone.

Events carry raw values (exact decimal strings, ISO UTC times, window specs); a notice turns them
into words here, once the reader's language is known, so no template and no workflow step ever
writes an amount or a window in one language for every reader. A new language adds one `Words`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from budgetkeeper.core.windows import InvalidWindow, parse_window

_CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class Words:
    """How one language writes numbers, money, times and budget windows."""

    decimal_mark: str
    group_mark: str
    money: str  # `{amount}` is the number with two decimals
    percent: str  # `{number}`
    moment: str  # strftime, then `{zone}`
    windows: Mapping[str, str]  # daily, weekly, monthly, and `days` with `{days}`
    statuses: Mapping[str, str]  # a budget's status, as the daily summary lists it
    calls: tuple[str, str]  # `{calls}` calls: one, then any other number
    until: str  # an operator's suspension, `{moment}`
    until_restore: str  # an operator's suspension with no end


WORDS = {
    "en": Words(
        decimal_mark=".",
        group_mark=",",
        money="${amount}",
        percent="{number}%",
        moment="%Y-%m-%d %H:%M {zone}",
        windows={"daily": "daily", "weekly": "weekly", "monthly": "monthly", "days": "every-{days}-day"},
        statuses={
            "warning": "warning",
            "critical": "critical",
            "grace": "grace",
            "suspended": "suspended",
            "restoring": "restoring",
        },
        calls=("{calls} call", "{calls} calls"),
        until="manual, until {moment}",
        until_restore="manual, until a restore",
    ),
    "es": Words(
        decimal_mark=",",
        group_mark=".",
        money="{amount} US$",
        percent="{number} %",
        moment="%d/%m/%Y %H:%M {zone}",
        windows={"daily": "diario", "weekly": "semanal", "monthly": "mensual", "days": "de {days} días"},
        statuses={
            "warning": "aviso",
            "critical": "crítico",
            "grace": "en gracia",
            "suspended": "suspendido",
            "restoring": "restaurándose",
        },
        calls=("{calls} llamada", "{calls} llamadas"),
        until="manual, hasta el {moment}",
        until_restore="manual, hasta que se restaure",
    ),
}

# Event fields that are amounts in USD, moments, percentages and windows.
MONEY_FIELDS = ("spent", "billed", "limit", "projected", "top_model_spent", "top_app_spent")
MOMENT_FIELDS = ("window_end", "suspend_at", "crosses_at")
SUMMARY_MONEY_FIELDS = ("today", "month", "total_today", "total_month")


def _number(value: Decimal, places: int, words: Words) -> str:
    text = f"{value:,.{places}f}"
    return text.replace(",", "\x00").replace(".", words.decimal_mark).replace("\x00", words.group_mark)


def money(value: Any, language: str) -> str | None:
    """`$1,234.56` / `1.234,56 US$`; a nonzero amount below a cent is `<$0.01`, never `$0.00`."""
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    words = WORDS[language]
    if amount and abs(amount) < _CENT:
        return ("-" if amount < 0 else "<") + words.money.format(amount=_number(_CENT, 2, words))
    return words.money.format(amount=_number(amount.quantize(_CENT, ROUND_HALF_UP), 2, words))


def percent(value: Any, language: str) -> str | None:
    """`108.8%` / `108,8 %`: whole from 10 % up, one decimal below."""
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    places = 0 if number >= 10 or number == number.to_integral() else 1
    words = WORDS[language]
    return words.percent.format(number=_number(number.quantize(Decimal(1).scaleb(-places)), places, words))


def moment(value: Any, language: str, time_zone: str = "UTC") -> str | None:
    """An ISO time in the reader's zone: `2026-06-11 02:00 CEST` / `11/06/2026 02:00 CEST`."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        zone = ZoneInfo(time_zone)
    except (ValueError, ZoneInfoNotFoundError):
        return str(value)
    local = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(zone)
    pattern = WORDS[language].moment
    return local.strftime(pattern.replace("{zone}", "%Z"))


def window_name(window: str | None, language: str) -> str | None:
    """`daily` -> `diario`, `days:7@2026-01-05` -> `de 7 días`; a window that is no spec, as it is."""
    if not window:
        return None
    try:
        spec = parse_window(window)
    except InvalidWindow:
        return window
    return WORDS[language].windows[spec.kind].format(days=spec.days)


def localize(context: Mapping[str, Any], language: str, time_zone: str = "UTC") -> dict[str, Any]:
    """The notice's variables with every amount, percentage, time and window in `language`."""
    values = dict(context)
    for name in MONEY_FIELDS:
        if name in values:
            values[name] = money(values[name], language)
    for name in MOMENT_FIELDS:
        if name in values:
            values[name] = moment(values[name], language, time_zone)
    if "percent" in values:
        values["percent"] = percent(values["percent"], language)
    if "window" in values:
        values["window"] = window_name(values["window"], language)
    summary = values.get("summary")
    if summary:
        values["summary"] = _localize_summary(summary, language, time_zone)
    return values


def _localize_summary(summary: Mapping[str, Any], language: str, time_zone: str) -> dict[str, Any]:
    """The summary's amounts in the reader's format, and each listed row's detail in its words."""
    words = WORDS[language]

    def row_detail(row: Mapping[str, Any]) -> str | None:
        if "window" in row:
            status = words.statuses.get(str(row.get("status")), row.get("status"))
            return ", ".join(filter(None, (window_name(row["window"], language), status)))
        if "until" in row:
            when = moment(row["until"], language, time_zone)
            return words.until.format(moment=when) if when else words.until_restore
        if "calls" in row:
            one, other = words.calls
            return (one if row["calls"] == 1 else other).format(calls=row["calls"])
        if "more" in row:
            return f"+{row['more']}"
        return row.get("detail")

    def localized(row: Mapping[str, Any]) -> dict[str, Any]:
        values = {
            key: money(item, language) if key in SUMMARY_MONEY_FIELDS else item for key, item in row.items()
        }
        return {**values, "detail": row_detail(row)}

    return {
        key: [localized(row) for row in item] if isinstance(item, list) else item
        for key, item in localized(summary).items()
    }
