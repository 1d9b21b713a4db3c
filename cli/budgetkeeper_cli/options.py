"""Reading what operators type: scopes, money, percents, durations, windows, time zones, addresses.

Every reader raises `UsageError` (exit 2) with a message that names the option, says what is wrong
and shows what to type instead. Nothing here touches AWS, so every argument is checked before the
first request.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

from budgetkeeper.budgets.rules import MANUAL_WINDOW
from budgetkeeper.core.windows import InvalidWindow, parse_time_zone, parse_window
from budgetkeeper.domain.scopes import SCOPE_KINDS, InvalidScope, parse_scope
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.reports.filters import parse_time_bound

# Step Functions Standard runs last at most a year, and so can a wait inside one.
MAX_DURATION_SECONDS = 365 * 86_400
MONEY_PLACES = 9  # money is kept to the nano-dollar
DURATION_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_DURATION_PART = re.compile(r"(\d+)\s*([smhd])")
_DURATION = re.compile(r"(?:\d+\s*[smhd]\s*)+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# A BCP 47 language tag, as far as notifications need one: `en`, `fr`, `pt-BR`, `zh-Hant`.
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*")


def scope(text: str) -> str:
    """`user:alice` as typed, checked: kind:name with a known kind."""
    try:
        return str(parse_scope(text))
    except InvalidScope as error:
        raise UsageError(str(error)) from None


def scope_kind(text: str, option: str = "--kind") -> str:
    """One of the scope kinds: user, apikey, role, session, app, team, account."""
    kind = text.strip().removesuffix(":").lower()
    if kind not in SCOPE_KINDS:
        raise UsageError(f"unknown scope kind {text!r}: use {option} with one of {', '.join(SCOPE_KINDS)}")
    return kind


def limit_usd(text: str, option: str = "--limit") -> Decimal:
    """US dollars, zero or more, to the nano-dollar: `25`, `12.50`, `0.001`."""
    cleaned = text.strip().removeprefix("$").replace(",", "").replace("_", "")
    example = f"type e.g. {option} 25 or {option} 12.50 (US dollars)"
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise UsageError(f"{option} {text!r} is not an amount: {example}") from None
    if not value.is_finite():
        raise UsageError(f"{option} {text!r} is not an amount: {example}")
    if value < 0:
        raise UsageError(f"{option} {text} is negative: a limit is 0 or more US dollars; {example}")
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MONEY_PLACES:
        raise UsageError(
            f"{option} {text} has more than {MONEY_PLACES} decimal places (money is kept to the "
            f"nano-dollar): {example}"
        )
    return value


def percent(text: str, option: str) -> Decimal:
    """A threshold in percent of the limit, above 0 and below 100 (100% is the limit itself)."""
    cleaned = text.strip().removesuffix("%")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite():
        raise UsageError(f"{option} {text!r} is not a number: type e.g. {option} 80")
    if not 0 < value < 100:
        raise UsageError(
            f"{option} {text} is out of range: a threshold is a percent of the limit above 0 and "
            f"below 100 (reaching 100% is exceeding the limit); type e.g. {option} 80"
        )
    return value


def thresholds(warning: Decimal, critical: Decimal) -> None:
    """Warning comes before critical."""
    if warning >= critical:
        raise UsageError(
            f"the warning threshold ({warning}%) must be below the critical one ({critical}%): "
            f"type e.g. --warning-percent 70 --critical-percent 90"
        )


def duration_seconds(text: str, option: str, *, allow_zero: bool = True) -> int:
    """`90s`, `15m`, `2h`, `1d`, `1h30m`, or bare seconds (`900`)."""
    cleaned = text.strip().lower()
    example = f"type e.g. {option} 90s, 15m, 2h, 1d or 1h30m (a bare number is seconds)"
    if cleaned.isdigit():
        seconds = int(cleaned)
    elif _DURATION.fullmatch(cleaned):
        seconds = sum(int(count) * DURATION_UNITS[unit] for count, unit in _DURATION_PART.findall(cleaned))
    elif cleaned.startswith("-"):
        raise UsageError(f"{option} {text} is negative: {example}")
    else:
        raise UsageError(f"{option} {text!r} is not a duration: {example}")
    if seconds == 0 and not allow_zero:
        raise UsageError(f"{option} {text} is no time at all: {example}")
    if seconds > MAX_DURATION_SECONDS:
        raise UsageError(
            f"{option} {text} is longer than a year, the longest a workflow run can wait: {example}"
        )
    return seconds


def duration_text(seconds: int) -> str:
    """900 -> `15m`, 5400 -> `1h30m`, 0 -> `0s`: how durations are shown back."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in sorted(DURATION_UNITS.items(), key=lambda item: -item[1]):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def window(text: str, option: str = "--window") -> str:
    """`daily`, `weekly`, `monthly` or `days:N@YYYY-MM-DD`, in its canonical spelling."""
    if text.strip().lower() == MANUAL_WINDOW:
        raise UsageError(
            f"{option} {MANUAL_WINDOW} is an operator's suspension, not a budget window: "
            "use daily, weekly, monthly or days:N@YYYY-MM-DD (restore ends a manual suspension)"
        )
    try:
        return str(parse_window(text))
    except InvalidWindow as error:
        raise UsageError(f"{option}: {error}") from None


def operator_window(text: str, option: str = "--window") -> str:
    """A window an operator action may name: a budget window, or `manual` (an operator's suspension)."""
    if text.strip().lower() == MANUAL_WINDOW:
        return MANUAL_WINDOW
    return window(text, option)


def time_zone(text: str, option: str = "--time-zone") -> str:
    """An IANA time zone name, e.g. Europe/Paris or UTC."""
    try:
        return str(parse_time_zone(text).key)
    except InvalidWindow as error:
        raise UsageError(f"{option}: {error}") from None


def email(text: str, option: str = "--owner") -> str:
    cleaned = text.strip()
    if not _EMAIL.fullmatch(cleaned):
        raise UsageError(f"{option} {text!r} is not an email address: type e.g. {option} alice@example.com")
    return cleaned


def language(text: str, option: str = "--language") -> str:
    cleaned = text.strip()
    if not _LANGUAGE.fullmatch(cleaned):
        raise UsageError(
            f"{option} {text!r} is not a language tag: type e.g. {option} en, {option} fr or {option} pt-BR"
        )
    return cleaned


def reason(text: str | None, action: str) -> str:
    cleaned = (text or "").strip()
    if not cleaned:
        raise UsageError(f"{action} needs a reason for the audit: type e.g. --reason 'runaway batch job'")
    return cleaned


def since(text: str) -> datetime:
    """A date (midnight UTC) or an ISO date and time (UTC when it names no zone)."""
    return parse_time_bound(text, "--since")
