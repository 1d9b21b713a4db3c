"""Cold start: the import time of each Lambda handler in a clean interpreter (`python -I`).

`.venv/bin/python bench/bench_cold_start.py [--runs N]`

Each handler module is imported in a fresh `-I` subprocess (no PYTHONPATH, no user site, no current
directory), with the built artefacts on sys.path when `.aws-sam/build/<Function>/` exists, else
this checkout's layer and repository root, as Lambda puts `/opt/python` and the function code
first. Third-party packages come from the interpreter's own site-packages (the venv's). The best of
N runs counts; the figure is a ratio between handlers more than an absolute Lambda INIT time.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYER = REPO / "layers" / "shared" / "python"
BUILD = REPO / ".aws-sam" / "build"
PROBE = (
    "import sys, time\n"
    "sys.path[:0] = {paths!r}\n"
    "started = time.perf_counter()\n"
    "import {module}\n"
    "print(time.perf_counter() - started)\n"
)
ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_SERVICE_NAME": "budgetkeeper",
    "POWERTOOLS_METRICS_NAMESPACE": "Budgetkeeper",
    "PATH": "/usr/bin:/bin",
}


def import_seconds(module: str, paths: list[str]) -> float:
    probe = PROBE.format(paths=paths, module=module)
    done = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, env=ENVIRONMENT, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="imports per handler (default 5)")
    arguments = parser.parse_args()
    print("bench_cold_start: import time of each handler in a clean `python -I` subprocess")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"python {sys.version.split()[0]}; best of {arguments.runs} runs")
    for handler in sorted(REPO.glob("functions/*/app.py")):
        name = handler.parent.name
        built_name = name.replace("_", "") + "function"  # usage_calculator: UsageCalculatorFunction
        built = [p for p in BUILD.glob("*Function") if p.name.lower() == built_name]
        if built and (built[0] / "app.py").is_file():
            paths, module, source = [str(BUILD / "SharedLayer" / "python"), str(built[0])], "app", "built"
        else:
            paths, module, source = [str(LAYER), str(REPO)], f"functions.{name}.app", "source"
        best = min(import_seconds(module, paths) for _ in range(arguments.runs))
        print(f"  {name:<20} {best * 1000:8.0f} ms  ({source})")


if __name__ == "__main__":
    main()
