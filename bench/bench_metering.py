"""Metering throughput: `Meter.meter` (parse + attribute + price) against a bare `json.loads`.

DESIGN.md "Measuring": a ratio measured in one run (our path against `json.loads` of the same bytes)
holds on a noisy machine; absolute seconds do not. Targets (issue 31): `Meter.meter` costs at most
1.0x `json.loads`, and at most 1.5x the fastest decoder on PyPI (orjson's `loads` and msgspec's
generic `json.decode` are measured; the faster counts) decoding the same lines into Python objects.

The lines are 10,000 realistic invocation log records (demo_data.generate_day: 21 principals, the
demo's model mix, bodies of a few KB) as Bedrock writes them into CloudWatch Logs: compact JSON, one
per line, as bytes. The meter is wired as the usage calculator wires it: the bundled price table,
the demo's team mapping, an InferenceProfiles resolver (never called: the demo has no application
profiles). Both paths run over every line, alternately, several times; the best run of each counts.
Caches (identity ARNs, attributions, price matches) are warm after the first run, as in a warm Lambda.

Run from the repository root: .venv/bin/python bench/bench_metering.py [--repeats N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
import orjson

from budgetkeeper.domain import record_rules
from budgetkeeper.domain.log_records import MalformedEvent, parse_invocation
from budgetkeeper.domain.record_rules import decode_message
from budgetkeeper.domain.scopes import attribute
from budgetkeeper.metering.meter import Meter
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import price_invocation
from budgetkeeper.pricing.table import PriceTable
from devkit.demo_data import generate_day
from devkit.demo_data import teams as demo_teams
from devkit.harness.logs import log_message

REPO = Path(__file__).resolve().parents[1]
RECORDS = 10_000
DAY = date(2026, 11, 23)
SEED = 7
TARGET_RATIO = 1.0  # Meter.meter against json.loads
TARGET_FASTEST_RATIO = 1.5  # Meter.meter against the fastest decoder
DECODERS = ("json.loads", "orjson.loads", "msgspec.json.decode")


def command() -> str:
    """How this run was started, with paths relative to the repository root when they are inside it."""
    words = [sys.executable, *sys.argv]
    return shlex.join(os.path.relpath(w, REPO) if w.startswith(str(REPO)) else w for w in words)


def best_of(repeats: int, runs: Sequence[tuple[str, Callable[[], Any]]]) -> dict[str, float]:
    """Best wall time of each run, the runs interleaved so drift on the machine hits them alike."""
    best = {name: float("inf") for name, _ in runs}
    for _ in range(repeats):
        for name, run in runs:
            gc.collect()
            started = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each path; the best counts")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of Meter.meter anyway")
    arguments = parser.parse_args()

    records = generate_day(DAY, records=RECORDS, seed=SEED)
    lines = [log_message(record).encode() for record in records]
    total_bytes = sum(map(len, lines))
    meter = Meter(prices=PriceTable.bundled(), teams=demo_teams(), profiles=InferenceProfiles())

    malformed = 0
    for line in lines:
        try:
            meter.meter(line)
        except MalformedEvent:
            malformed += 1

    def loads_all() -> None:
        loads = json.loads
        for line in lines:
            loads(line)

    def meter_all() -> None:
        metered = meter.meter
        for line in lines:
            metered(line)

    def meter_strict() -> None:
        """Meter.meter with the strict decoder alone (json.loads and its duplicate-key hook)."""
        fast, record_rules.decode_unambiguous = record_rules.decode_unambiguous, lambda message: None
        try:
            meter_all()
        finally:
            record_rules.decode_unambiguous = fast

    def decode_all(decode: Callable[[bytes], Any]) -> Callable[[], None]:
        def run() -> None:
            for line in lines:
                decode(line)

        return run

    best = best_of(
        arguments.repeats,
        [
            ("json.loads", loads_all),
            ("orjson.loads", decode_all(orjson.loads)),
            ("msgspec.json.decode", decode_all(msgspec.json.decode)),
            ("Meter.meter", meter_all),
            ("Meter.meter, strict decoder", meter_strict),
        ],
    )
    ratio = best["Meter.meter"] / best["json.loads"]
    fastest = min(DECODERS[1:], key=best.__getitem__)
    fastest_ratio = best["Meter.meter"] / best[fastest]

    # Where Meter.meter's time goes: each stage alone, over the same lines (best of the same repeats).
    invocations = [parse_invocation(line) for line in lines]
    profiles = meter.profiles
    tags_for = profiles.tags_for if profiles is not None else None

    def parse_all() -> None:
        for line in lines:
            parse_invocation(line)

    def attribute_all() -> None:
        for invocation in invocations:
            attribute(invocation, teams=meter.teams, profile_tags=tags_for)

    def price_all() -> None:
        prices = meter.prices
        for invocation in invocations:
            price_invocation(prices, invocation.model_id, invocation.region, invocation.tokens, profiles)

    stages = best_of(
        arguments.repeats,
        [
            ("json.loads", loads_all),
            ("decode_message", decode_all(decode_message)),
            ("parse_invocation", parse_all),
            ("attribute", attribute_all),
            ("price_invocation", price_all),
        ],
    )
    stage_baseline = stages.pop("json.loads")

    principals = {record["identity"]["arn"] for record in records}
    models = {record["modelId"] for record in records}
    print(
        "bench_metering: Meter.meter (parse + attribute + price) against a bare json.loads of the same lines"
    )
    print(f"command: {command()}")
    print(f"python {platform.python_version()} ({platform.python_implementation()}, {platform.machine()})")
    print(
        f"records: devkit.demo_data.generate_day({DAY}, records={RECORDS}, seed={SEED}): "
        f"{len(principals)} principals, {len(models)} model ids, {malformed} malformed"
    )
    print(f"decoders: orjson {version('orjson')}, msgspec {version('msgspec')}")
    print(
        f"input: {len(lines):,} compact JSON lines (bytes), {total_bytes:,} bytes "
        f"({total_bytes / len(lines):,.0f} mean, {max(map(len, lines)):,} max per line)"
    )
    print(f"best of {arguments.repeats} runs, interleaved, each over every line:")
    labels = (
        "(a) json.loads",
        "(c) orjson.loads",
        "(d) msgspec.json.decode",
        "(b) Meter.meter",
        "(e) (b), strict only",
    )
    for label, name in zip(labels, (*DECODERS, "Meter.meter", "Meter.meter, strict decoder"), strict=True):
        seconds = best[name]
        print(
            f"  {label:<25}{seconds:>8.4f} s {len(lines) / seconds:>12,.0f} records/s "
            f"{total_bytes / seconds / 1e6:>8.1f} MB/s {seconds / best['json.loads']:>6.2f} x json.loads"
        )
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"  ratio (b)/(a)            {ratio:>8.2f} x  (target: at most {TARGET_RATIO:g}x: {verdict})")
    verdict = "met" if fastest_ratio <= TARGET_FASTEST_RATIO else "NOT met"
    print(
        f"  ratio (b)/{fastest:<15}{fastest_ratio:>8.2f} x  (the fastest decoder; target: at most "
        f"{TARGET_FASTEST_RATIO:g}x: {verdict})"
    )
    print(
        f"stages of (b), each alone over the same records, interleaved with json.loads again "
        f"({stage_baseline:.4f} s this time):"
    )
    for name, seconds in stages.items():
        print(
            f"  {name:<25}{seconds:>8.4f} s {len(lines) / seconds:>12,.0f} records/s "
            f"{seconds / stage_baseline:>6.2f} x json.loads"
        )

    if arguments.profile:
        profiler = cProfile.Profile()
        profiler.runcall(meter_all)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print("cProfile of one Meter.meter run over every line, by own time:")
        print(out.getvalue().rstrip())


if __name__ == "__main__":
    main()
