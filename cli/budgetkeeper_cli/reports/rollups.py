"""Usage reports from the rollups table: the window, the window before it, and the usage lines.

The usage calculator keeps one usage line per hour, model, region, caller and attribution under the
day's partition of the rollups table (`budgetkeeper.metering.writer`). A report over a window reads
the partitions of the days it covers, one query each, and never the raw logs; the lines go through
the same `UsageReport` as `budgetkeeper meter`, so both give the same rows for the same records.

The rollups are hourly, so a window starts and ends on the hour (UTC). Without `--since` a report
covers the current month so far: from its first midnight (UTC) to the end of the current hour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from budgetkeeper.core.windows import iso_utc
from budgetkeeper.metering.usage_lines import HOUR, hour_start, usage_lines
from budgetkeeper.storage.tables import RollupItem
from budgetkeeper_cli.errors import UsageError
from budgetkeeper_cli.reports.aggregation import UsageReport
from budgetkeeper_cli.reports.filters import RecordFilter, parse_time_bound


@dataclass(frozen=True, slots=True)
class ReportWindow:
    """`since <= hour < until`, both on the hour, UTC."""

    since: datetime
    until: datetime

    def __str__(self) -> str:
        return f"{iso_utc(self.since)} to {iso_utc(self.until)}"

    def previous(self) -> ReportWindow:
        """The window before this one, for `--compare previous`.

        A window that starts at a month's first midnight (a calendar month, or the month so far) is
        compared with the same stretch of the month(s) before: June 1-10 with May 1-10, a whole
        June with a whole May, March 1-31 10:00 with February 1-28 10:00 (a day past the month's
        end is its last day). Any other window is compared with the window of the same length
        that ends where it starts.
        """
        since = self.since
        if (since.day, since.hour) == (1, 0):
            months = _months_between(since, self.until)
            return ReportWindow(_add_months(since, -months), _add_months(self.until, -months))
        return ReportWindow(since - (self.until - since), since)

    def hours(self) -> int:
        return int((self.until - self.since) / HOUR)


def _months_between(start: datetime, end: datetime) -> int:
    """Whole or started months from `start` (a month's first midnight) to `end`: at least 1."""
    months = (end.year - start.year) * 12 + end.month - start.month
    if _add_months(start, months) < end:
        months += 1
    return max(months, 1)


def _add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    next_month = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    last_day = (next_month - timedelta(days=1)).day
    return moment.replace(year=year, month=month, day=min(moment.day, last_day))


def _on_the_hour(moment: datetime, option: str, text: str) -> datetime:
    if moment.minute or moment.second or moment.microsecond:
        raise UsageError(
            f"{option} {text} is not on the hour: the rollups are hourly (UTC), so a report window "
            f"starts and ends on an hour; type e.g. {option} {moment.strftime('%Y-%m-%dT%H')}:00:00Z"
        )
    return moment


def report_window(since: str | None, until: str | None, now: datetime) -> ReportWindow:
    """The window `--since`/`--until` name (a date for --until includes that day), on the hour.

    Default: the current month so far (its first midnight to the end of the current hour).
    """
    end = (
        _on_the_hour(parse_time_bound(until, "--until", end_of_day=True), "--until", until)
        if until is not None
        else now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + HOUR
    )
    if since is not None:
        start = _on_the_hour(parse_time_bound(since, "--since"), "--since", since)
    else:
        reference = end - HOUR
        start = datetime(reference.year, reference.month, 1, tzinfo=UTC)
    if start >= end:
        raise UsageError(
            f"--since {iso_utc(start)} is not before --until {iso_utc(end)}: nothing could match "
            "(a date for --until includes that whole day)"
        )
    return ReportWindow(start, end)


def fill(
    reports: list[UsageReport],
    window: ReportWindow,
    arn_pattern: str | None,
    line_filter: Callable[[RollupItem], bool] | None = None,
) -> int:
    """Add every usage line of the window that the ARN pattern (and `line_filter`, e.g. the console's
    scope, team or model) keeps to each report; the line count."""
    keep = RecordFilter(arn_pattern, window.since, window.until)
    count = 0
    for line in usage_lines(window.since, window.until):
        if not keep.keeps(str(line.identity_arn), hour_start(line)):
            continue
        if line_filter is not None and not line_filter(line):
            continue
        count += 1
        for report in reports:
            report.add_line(line)
    return count
