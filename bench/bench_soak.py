"""Soak: N invocation records through the usage calculator handler against moto in another process.

`.venv/bin/python bench/bench_soak.py [RECORDS] [--batch N]` (RECORDS: default $BENCH_SOAK_RECORDS
or 1,000,000, in batches of 8,000 (what the 3 MB processor buffer holds at a million calls an
hour): about 6 minutes on 2 shared cores)

- moto runs as moto.server (devkit/harness/lean_moto.py: moto without its instance tracking and
  whole-table copies per transaction, which grew it to 2.7 GB over 20,000 records) in a separate
  process on a free loopback port, so its memory (every item written) is not the handler's; this
  process runs the real handler (functions/usage_calculator/app.py through devkit.harness) as a warm
  Lambda container would.
- Records are generated batch by batch (none kept): 40 users, Nova Pro and Nova Lite, random
  tokens, 25 events a CloudWatch Logs payload, `--batch` invocations a Firehose batch (default
  8,000); each batch in its own minute, the clock moving a minute per batch.
- Printed: records per second, this process's RSS after 10% of the batches and at the end, and its
  peak (VmHWM), so growth with the number of batches shows; then every user's spend and calls, read
  back from the daily window totals and the hourly rollups, checked exactly against a sum kept here
  from the generated tokens and unit prices written by hand (never the pricing module). A mismatch
  exits 1.
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "layers" / "shared" / "python"))

from aws_lambda_powertools.utilities import parameters  # noqa: E402
from bench_calculator import quiet_stdout  # noqa: E402

from budgetkeeper.core import clock  # noqa: E402
from budgetkeeper.core.windows import iso_utc  # noqa: E402
from budgetkeeper.storage.readers import scope_rollups  # noqa: E402
from budgetkeeper.storage.tables import TotalItem  # noqa: E402
from devkit.harness.clock import ManualClock  # noqa: E402
from devkit.harness.lambdas import invoke  # noqa: E402
from devkit.harness.logs import cloudwatch_payload, converse_message, firehose_event  # noqa: E402
from devkit.harness.server import moto_process  # noqa: E402
from devkit.harness.stack import FAKE_CREDENTIALS, LocalStack  # noqa: E402

DEFAULT_RECORDS = 1_000_000
# What the 3 MB processor buffer holds at a million calls an hour (bench_calculator: about 7,900).
DEFAULT_BATCH = 8_000
ACCOUNT = "111122223333"
USERS = 40
# USD per 1M tokens (input, output), AWS's on-demand list prices, written by hand
UNIT_PRICES = {
    "amazon.nova-pro-v1:0": (Decimal("0.80"), Decimal("3.20")),
    "amazon.nova-lite-v1:0": (Decimal("0.06"), Decimal("0.24")),
}
EVENTS_PER_PAYLOAD = 25
CONFIG = {"stepfunctions": {"execute_state_machine": False}, "lambda": {"use_docker": False}}
START = datetime(2026, 3, 2, 0, 0, 30, tzinfo=UTC)


def rss_kib(field: str = "VmRSS", pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


class Expected:
    """The spend and calls of each user, summed from the generated records."""

    def __init__(self) -> None:
        self.spent: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    def add(self, user: str, model: str, input_tokens: int, output_tokens: int) -> None:
        price_in, price_out = UNIT_PRICES[model]
        self.spent[user] += (input_tokens * price_in + output_tokens * price_out) / Decimal(1_000_000)
        self.calls[user] += 1


def batch_messages(rng: random.Random, count: int, minute: datetime, expected: Expected) -> list[str]:
    messages = []
    for i in range(count):
        user = f"soak{rng.randrange(USERS):02d}"
        model = rng.choice(list(UNIT_PRICES))
        input_tokens, output_tokens = rng.randint(10, 4000), rng.randint(0, 1500)
        expected.add(user, model, input_tokens, output_tokens)
        at = minute + timedelta(seconds=i * 59 // count)
        arn = f"arn:aws:iam::{ACCOUNT}:user/{user}"
        messages.append(
            converse_message(arn, model, input_tokens, output_tokens, account=ACCOUNT, timestamp=iso_utc(at))
        )
    return messages


def check(expected: Expected) -> list[str]:
    """Every user's spend and calls in the daily totals and in the hourly rollups, against `expected`."""
    wrong = []
    for user in sorted(expected.spent):
        scope = f"user:{user}"
        totals = list(TotalItem.query(f"{scope}|daily", consistent_read=True))
        rollups = list(scope_rollups(scope))
        for what, items in (("daily totals", totals), ("hourly rollups", rollups)):
            spent = sum(
                (item.spent_usd if what == "daily totals" else item.cost_usd for item in items), Decimal(0)
            )
            calls = sum(int(item.calls) for item in items)
            if spent != expected.spent[user] or calls != expected.calls[user]:
                wrong.append(
                    f"{scope} {what}: {spent} USD, {calls} calls; generated {expected.spent[user]} USD, "
                    f"{expected.calls[user]} calls"
                )
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "records", nargs="?", type=int, default=int(os.environ.get("BENCH_SOAK_RECORDS", DEFAULT_RECORDS))
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        help=f"invocations a Firehose batch (default {DEFAULT_BATCH:,})",
    )
    arguments = parser.parse_args()
    os.environ.update(FAKE_CREDENTIALS)
    os.environ.pop("AWS_PROFILE", None)
    records, per_batch = arguments.records, arguments.batch
    batches = -(-records // per_batch)
    print("bench_soak: functions/usage_calculator/app.py in this process, moto.server in another")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"records: {records:,} invocations of {USERS} users, 2 models, {EVENTS_PER_PAYLOAD} a CloudWatch "
        f"Logs payload, {per_batch} a Firehose batch ({batches:,} batches, one a minute)"
    )
    rng = random.Random(19)
    expected = Expected()
    ticking = ManualClock(START)
    results: Counter[str] = Counter()
    rss_at_tenth = 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the server is stopped on the way out
    with moto_process(CONFIG) as (endpoint, server_pid), clock.use(ticking):
        parameters.clear_caches()
        stack = LocalStack(endpoint_url=endpoint).create()
        with stack.activated():
            started = time.perf_counter()
            for index in range(batches):
                minute = START.replace(second=0) + timedelta(minutes=index)
                ticking.set(minute + timedelta(seconds=59))
                count = min(per_batch, records - index * per_batch)
                messages = batch_messages(rng, count, minute, expected)
                payloads = [
                    cloudwatch_payload(messages[i : i + EVENTS_PER_PAYLOAD])
                    for i in range(0, count, EVENTS_PER_PAYLOAD)
                ]
                with quiet_stdout():
                    response = invoke(
                        "UsageCalculatorFunction", firehose_event(payloads, invocation_id=f"soak-{index}")
                    )
                results.update(record["result"] for record in response["records"])
                if index + 1 == max(1, batches // 10):
                    rss_at_tenth = rss_kib()
                if (index + 1) % max(1, batches // 10) == 0:
                    done = min(records, (index + 1) * per_batch)
                    print(
                        f"  {done:>9,} records  {time.perf_counter() - started:7.1f} s  "
                        f"{done / (time.perf_counter() - started):6,.0f} records/s  handler RSS "
                        f"{rss_kib() / 1024:6,.1f} MB  (moto.server's, not ours: "
                        f"{rss_kib(pid=server_pid) / 1024:,.0f} MB)",
                        flush=True,
                    )
            seconds = time.perf_counter() - started
            rss_end, peak = rss_kib(), rss_kib("VmHWM")
            wrong = check(expected)
        parameters.clear_caches()
    print(f"Firehose results: {dict(results)}")
    print(
        f"time {seconds:,.1f} s -> {records / seconds:,.0f} records/s through the handler "
        "(moto.server over HTTP)"
    )
    print(
        f"handler process RSS: {rss_at_tenth / 1024:,.1f} MB after {max(1, batches // 10):,} batches (10%), "
        f"{rss_end / 1024:,.1f} MB after {batches:,}; peak {peak / 1024:,.1f} MB"
    )
    total = sum(expected.spent.values(), Decimal(0))
    if wrong:
        print("totals WRONG:\n  " + "\n  ".join(wrong))
        return 1
    print(
        f"totals exact: {len(expected.spent)} users, {sum(expected.calls.values()):,} calls, {total} USD, "
        "in the daily totals and the hourly rollups, against the sum of the generated records"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
