"""`budgetkeeper meter` on a large local archive: records per second and the process's memory.

`.venv/bin/python bench/bench_meter_archive.py [--megabytes N]` (default $BENCH_METER_MB or 1024)

- Writes a gzipped archive in a temporary directory, in Bedrock's layout (one file per hour of
  AWSLogs/<account>/BedrockModelInvocationLogs/<region>/YYYY/MM/DD/HH/), of N MB of JSON lines
  uncompressed: realistic records (devkit.demo_data.generate_day, a pool of 5,000 written over and
  over, each with its own requestId).
- Runs `budgetkeeper meter <dir> --group-by principal --format json` in a subprocess and samples
  its RSS from /proc every 0.2 s; prints records/s and MB/s (uncompressed), records per second of
  the process's CPU time (user + system, from wait4), RSS after 10% of the run and at its end, and
  the peak (VmHWM), so growth with the archive's size shows.
- Checks the report's calls against the records written (exits 1 if they differ).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devkit.demo_data import DEMO_ACCOUNT, generate_day  # noqa: E402
from devkit.harness.logs import log_message  # noqa: E402

DAY = date(2026, 11, 23)
POOL = 5_000
FILE_BYTES = 64 * 1024**2  # uncompressed bytes a file, about what an hour of a busy account writes
MB = 1024**2
METER = "import sys; from budgetkeeper_cli.main import main; sys.exit(main())"


def write_archive(root: Path, target_bytes: int) -> tuple[int, int, int]:
    """(records, uncompressed bytes, files) written under root."""
    pool = generate_day(DAY, records=POOL, seed=7)
    records = written = files = 0
    while written < target_bytes:
        hour = files % 24
        folder = root / f"AWSLogs/{DEMO_ACCOUNT}/BedrockModelInvocationLogs/us-east-1/2026/11/23/{hour:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        with gzip.open(folder / f"part-{files:05d}.json.gz", "wt", compresslevel=1, encoding="utf-8") as out:
            in_file = 0
            while in_file < FILE_BYTES and written < target_bytes:
                record = pool[records % POOL]
                line = log_message({**record, "requestId": f"soak-{records:012d}"}) + "\n"
                out.write(line)
                size = len(line.encode())
                in_file += size
                written += size
                records += 1
        files += 1
    return records, written, files


def status_kib(pid: int, field: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=int(os.environ.get("BENCH_METER_MB", 1024)))
    arguments = parser.parse_args()
    print("bench_meter_archive: `budgetkeeper meter` on a local gzipped archive, in a subprocess")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    with tempfile.TemporaryDirectory(prefix="bench-meter-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        records, written, files = write_archive(root, arguments.megabytes * MB)
        packed = sum(p.stat().st_size for p in root.rglob("*.json.gz"))
        print(
            f"archive: {records:,} records, {written / MB:,.0f} MB of JSON lines in {files} gzipped files "
            f"({packed / MB:,.0f} MB on disk), written in {time.perf_counter() - started:.0f} s"
        )
        words = [
            sys.executable,
            "-c",
            METER,
            "meter",
            str(root),
            "--group-by",
            "principal",
            "--format",
            "json",
        ]
        paths = [str(REPO / "layers" / "shared" / "python"), str(REPO / "cli"), str(REPO)]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        samples: list[tuple[float, int]] = []
        peak = 0
        with tempfile.TemporaryFile("w+") as report, tempfile.TemporaryFile("w+") as errors:
            started = time.perf_counter()
            child = subprocess.Popen(words, stdout=report, stderr=errors, env=environment)
            while True:
                samples.append((time.perf_counter() - started, status_kib(child.pid, "VmRSS")))
                peak = max(peak, status_kib(child.pid, "VmHWM"))
                pid, status, usage = os.wait4(child.pid, os.WNOHANG)
                if pid:
                    break
                time.sleep(0.2)
            seconds = time.perf_counter() - started
            child.returncode = os.waitstatus_to_exitcode(status)
            cpu_seconds = usage.ru_utime + usage.ru_stime
            report.seek(0)
            output = report.read()
            errors.seek(0)
            if child.returncode != 0:
                print(f"meter exited {child.returncode}:\n{errors.read()[-3000:]}")
                return 1
    rows = json.loads(output)
    rows = rows["rows"] if isinstance(rows, dict) else rows
    calls = sum(int(row["calls"]) for row in rows)
    samples = [(at, rss) for at, rss in samples if rss]
    at_tenth = next(rss for at, rss in samples if at >= seconds / 10)
    print(
        f"meter: {seconds:.1f} s -> {records / seconds:,.0f} records/s, {written / MB / seconds:,.1f} MB/s "
        "of JSON lines (gunzip + parse + attribute + price + report)"
    )
    print(
        f"meter process CPU time: {cpu_seconds:.1f} s -> {records / cpu_seconds:,.0f} records per CPU second "
        "(what a loaded machine does not blur)"
    )
    print(
        f"meter process RSS: {at_tenth / 1024:,.1f} MB after 10% of the run, {samples[-1][1] / 1024:,.1f} MB "
        f"at its end; peak {peak / 1024:,.1f} MB ({len(samples)} samples)"
    )
    if calls != records:
        print(f"calls in the report {calls:,} != records written {records:,}")
        return 1
    print(f"calls in the report: {calls:,} = records written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
