"""bench/bench_soak.py at a small count (4 batches of 500): every user's spend and calls exact after the soak.

The soak runs the usage calculator handler in its own process against `python -m moto.server` in
another, and exits 1 when a total read back differs from the sum of the records it generated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Among the longest tests (subprocesses, real workflows on moto): `-m 'not slow'` skips them.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def test_a_soak_of_2000_records_keeps_every_total_exact():
    environment = {**os.environ, "BENCH_SOAK_RECORDS": "2000"}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_soak.py"), "--batch", "500"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Firehose results: {'Ok': 80}" in done.stdout
    assert "totals exact: 40 users, 2,000 calls" in done.stdout
