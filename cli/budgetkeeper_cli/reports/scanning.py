"""Metering every line of the sources (`Meter.meter`, the usage calculator Lambda's parsing,
attribution and pricing), counting what could not be metered, and the summary for stderr."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Iterable
from typing import TextIO

from botocore.exceptions import BotoCoreError, ClientError

from budgetkeeper.domain.log_records import MalformedEvent
from budgetkeeper.metering.meter import Meter, Metered
from budgetkeeper_cli.rendering import counted
from budgetkeeper_cli.reports.filters import RecordFilter
from budgetkeeper_cli.reports.sources import LogSource, ScanStats, client_error_text, iter_lines

MALFORMED_SHOWN = 10  # malformed lines listed one by one; the rest are counted
_PROGRESS_INTERVAL_S = 0.2


# --- scanning ----------------------------------------------------------------------------------


class Progress:
    """One updating line on a terminal: files, records and elapsed time; silent elsewhere."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._start = time.monotonic()
        self._next = self._start + _PROGRESS_INTERVAL_S
        self._shown = False

    def update(self, stats: ScanStats, *, force: bool = False) -> None:
        now = time.monotonic()
        if now < self._next and not force:
            return
        self._next = now + _PROGRESS_INTERVAL_S
        self._stream.write(
            f"\rmetering: {counted(stats.files, 'file')}, "
            f"{counted(stats.records + stats.malformed, 'record')}, {now - self._start:.1f}s\x1b[K"
        )
        self._stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


def progress_for(stream: TextIO) -> Progress | None:
    """A progress line only when `stream` is a terminal: never in pipes, files or CI logs."""
    isatty = getattr(stream, "isatty", None)
    return Progress(stream) if isatty is not None and isatty() else None


_READ_ERRORS = (OSError, EOFError, zlib.error, BotoCoreError, ClientError)


def scan(
    sources: Iterable[LogSource],
    meter: Meter,
    sink: Callable[[Metered], None],
    *,
    record_filter: RecordFilter | None = None,
    stats: ScanStats | None = None,
    progress: Progress | None = None,
) -> ScanStats:
    """Meter every line of every source; records the filter keeps go to `sink`.

    Malformed lines are counted (the first few kept with file and line) and never stop the scan. A
    file that cannot be read (bad gzip, S3 error) is recorded in `stats.unreadable` and the scan
    goes on with the next one; records read from it before the error stay counted.
    """
    stats = stats if stats is not None else ScanStats()
    keep = record_filter.matches if record_filter is not None and record_filter.is_active else None
    shown = stats.malformed_shown
    for source in sources:
        stats.files += 1
        try:
            with source.open() as stream:
                for where, line in iter_lines(stream):
                    try:
                        metered = meter.meter(line)
                    except MalformedEvent as error:
                        stats.malformed += 1
                        if len(shown) < MALFORMED_SHOWN:
                            shown.append((f"{source.name}:{where}", error.reason))
                        continue
                    stats.records += 1
                    if progress is not None and not stats.records & 0xFF:
                        progress.update(stats)
                    if keep is not None and not keep(metered):
                        continue
                    stats.matched += 1
                    stats.count_price(metered)
                    sink(metered)
        except _READ_ERRORS as error:
            stats.unreadable.append((source.name, _read_error_text(error)))
        if progress is not None:
            progress.update(stats)
    if progress is not None:
        progress.close()
    return stats


def _read_error_text(error: BaseException) -> str:
    if isinstance(error, ClientError):
        return client_error_text(error)
    if isinstance(error, EOFError):
        return "the gzip data ends early (truncated file)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def summary_lines(stats: ScanStats, *, price_version: str, filtered: bool) -> list[str]:
    """What was read and what could not be metered, for stderr."""
    lines = [f"malformed: {where}: {reason}" for where, reason in stats.malformed_shown]
    if stats.malformed > len(stats.malformed_shown):
        lines.append(
            f"malformed: ... and {stats.malformed - len(stats.malformed_shown):,} more malformed lines"
        )
    lines += [f"unreadable: {name}: {reason}" for name, reason in stats.unreadable]
    lines += [f"note: no invocation log files in {name}" for name in stats.empty_inputs]
    skipped = (
        f" ({stats.skipped_files:,} skipped: data/ bodies or not log files)" if stats.skipped_files else ""
    )
    parts = [
        f"read {counted(stats.files, 'file')}{skipped}",
        counted(stats.records, "record") + (f" ({stats.matched:,} matched the filters)" if filtered else ""),
        f"{stats.malformed:,} malformed",
    ]
    parts += [*stats.price_notes(), f"prices {price_version}"]
    lines.append("summary: " + ", ".join(parts))
    return lines
