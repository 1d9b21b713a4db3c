"""Run a command with the machine's clock starting at another moment (libfaketime), for `make test-clock`.

    python scripts/under_faketime.py '2027-02-28 23:57:00' -- pytest tests/integration

The clock starts at that UTC moment and runs on from there. libfaketime is preloaded from the pinned
`libfaketime` wheel (requirements-dev.txt) rather than Debian's `faketime` 0.9.10: under that one,
Python 3.12's thread waits never return when the monotonic clock is faked (sem_clockwait is not
intercepted), and time.sleep fails with EINVAL when it is not. Only the wall clock is moved here
(FAKETIME_DONT_FAKE_MONOTONIC), which is the clock the product could read by mistake. With the
monotonic clock real, libfaketime's "forced monotonic fix" for condition waits has nothing to fix
and only costs: it made every thread start about 80 times slower (16 ms against 0.2 ms), and the
moto server starts a thread per request, so it is turned off (FAKETIME_FORCE_MONOTONIC_FIX=0).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def library() -> Path:
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("libfaketime is not installed: run `make venv` (it is in requirements-dev.txt)")
    return Path(spec.submodule_search_locations[0]) / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        raise SystemExit("usage: under_faketime.py 'YYYY-MM-DD HH:MM:SS' -- COMMAND [ARG ...]")
    start, command = argv[0], argv[2:]
    environment = {
        **os.environ,
        "LD_PRELOAD": str(library()),
        "FAKETIME": f"@{start}",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        "FAKETIME_FORCE_MONOTONIC_FIX": "0",
        "TZ": "UTC",
    }
    shown = subprocess.run(
        [sys.executable, "-c", "import datetime; print(datetime.datetime.now(datetime.UTC).isoformat())"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not shown.startswith(start[:16].replace(" ", "T")):
        raise SystemExit(f"libfaketime did not take: the clock reads {shown}, not {start}")
    print(f"under_faketime: the machine's clock now reads {shown} (started at {start} UTC)", flush=True)
    return subprocess.run(command, env=environment, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
