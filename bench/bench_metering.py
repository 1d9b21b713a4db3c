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
Caches (checked values, identity ARNs, attributions, price matches) are warm after the first run, as
in a warm Lambda. Times are the thread's CPU time (`time.thread_time`): on this shared 2-core machine
wall time also counts the moments the process waits for a core, which blurred the ratios.

Below the ratios, where the time goes: each stage alone, and the two floors no change to the meter's
own code can go under while every rule holds (decoding with the duplicate-key proof, and building
the four frozen records every record becomes).

Run from the repository root: .venv/bin/python bench/bench_metering.py [--repeats N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import operator
import os
import platform
import pstats
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from importlib.metadata import version
from pathlib import Path
from typing import Any

import msgspec
import orjson

from budgetkeeper.domain import record_rules
from budgetkeeper.domain.log_records import MalformedEvent, parse_invocation
from budgetkeeper.domain.record_rules import decode_message
from budgetkeeper.domain.usage import Invocation, TokenCounts
from budgetkeeper.metering.meter import Meter, Metered
from budgetkeeper.pricing.profiles import InferenceProfiles
from budgetkeeper.pricing.rates import Priced, price_invocation
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
            started = time.thread_time()
            run()
            best[name] = min(best[name], time.thread_time() - started)
    return best


def outcomes(meter: Meter, lines: Sequence[bytes]) -> tuple[list[Metered | str], int]:
    """What `meter` makes of each line: its Metered, or the reason it was refused; and how many were."""
    results: list[Metered | str] = []
    for line in lines:
        try:
            results.append(meter.meter(line))
        except MalformedEvent as error:
            results.append(error.reason)
    return results, sum(isinstance(result, str) for result in results)


def fields(value: msgspec.Struct) -> tuple[Any, ...]:
    """A Struct's field values, in order: what its constructor takes."""
    return msgspec.structs.astuple(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="runs of each path; the best counts")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of Meter.meter anyway")
    arguments = parser.parse_args()

    records = generate_day(DAY, records=RECORDS, seed=SEED)
    lines = [log_message(record).encode() for record in records]
    total_bytes = sum(map(len, lines))
    meter = Meter(prices=PriceTable.bundled(), teams=demo_teams(), profiles=InferenceProfiles())

    def meter_all() -> None:
        metered = meter.meter
        for line in lines:
            metered(line)

    @contextmanager
    def strict_only() -> Iterator[None]:
        """Meter.meter with the strict decoder alone (json.loads and its duplicate-key hook)."""
        fast, record_rules.decode_unambiguous = record_rules.decode_unambiguous, lambda message: None
        try:
            yield
        finally:
            record_rules.decode_unambiguous = fast

    def meter_strict() -> None:
        with strict_only():
            meter_all()

    # Same records: the fast path and the strict decoder meter every line alike (or refuse it alike).
    fast_results, malformed = outcomes(meter, lines)
    with strict_only():
        strict_results, _ = outcomes(
            Meter(prices=meter.prices, teams=meter.teams, profiles=meter.profiles), lines
        )
    same = sum(map(operator.eq, fast_results, strict_results))
    if same != len(lines):
        raise SystemExit(f"bench_metering: the fast path metered {len(lines) - same} lines differently")

    def loads_all() -> None:
        loads = json.loads
        for line in lines:
            loads(line)

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
    metered = [result for result in fast_results if isinstance(result, Metered)]
    invocations = [result.invocation for result in metered]
    profiles = meter.profiles

    def parse_all() -> None:
        for line in lines:
            parse_invocation(line)

    def attribute_all() -> None:
        for invocation in invocations:
            meter.attribute(invocation)

    def price_all() -> None:
        prices = meter.prices
        for invocation in invocations:
            price_invocation(
                prices,
                invocation.model_id,
                invocation.region,
                invocation.tokens,
                profiles,
                invocation.service_tier,
            )

    # The four frozen Structs each record becomes, built from fields already at hand.
    fields_of = [
        (fields(m.invocation.tokens), fields(m.invocation), fields(m.priced), fields(m)) for m in metered
    ]

    def build_all() -> None:
        for tokens, invocation, priced, result in fields_of:
            TokenCounts(*tokens)
            Invocation(*invocation)
            Priced(*priced)
            Metered(*result)

    stages = best_of(
        arguments.repeats,
        [
            ("json.loads", loads_all),
            (fastest, decode_all(orjson.loads if fastest == "orjson.loads" else msgspec.json.decode)),
            ("decode_message", decode_all(decode_message)),
            ("parse_invocation", parse_all),
            ("Meter.attribute", attribute_all),
            ("price_invocation", price_all),
            ("frozen records built", build_all),
        ],
    )
    stage_baseline = stages.pop("json.loads")
    stage_fastest = stages.pop(fastest)
    floor = stages["decode_message"] + stages["frozen records built"]

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
    print(f"same records: {same:,} of {len(lines):,} lines alike in (b) and (e): records, prices, errors")
    print(f"best of {arguments.repeats} runs, interleaved, each over every line, thread CPU time:")
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
        f"stages of (b), each alone over the same records, interleaved with json.loads "
        f"({stage_baseline:.4f} s this time) and {fastest} ({stage_fastest:.4f} s) again:"
    )
    for name, seconds in stages.items():
        print(
            f"  {name:<25}{seconds:>8.4f} s {seconds / len(lines) * 1e6:>8.2f} us/record "
            f"{seconds / stage_baseline:>6.2f} x json.loads {seconds / stage_fastest:>6.2f} x {fastest}"
        )
    print(
        f"  floor, every rule kept: decode_message (decode + duplicate-key proof) + the frozen records "
        f"= {floor / stage_baseline:.2f} x json.loads, {floor / stage_fastest:.2f} x {fastest}"
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
