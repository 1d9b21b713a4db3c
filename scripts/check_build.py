"""Import every built handler, and every module of the layer, from .aws-sam/build in a clean
interpreter, as Lambda would.

Each function runs in a fresh `python3.12 -I -S` (the Lambda runtime's version, no site-packages,
no venv) with only its code directory and its layers' `python/` folders on the path, so a missing
dependency or a layer laid out wrongly fails here instead of in AWS.

Compiled packages (msgspec) are built for the functions' architecture (arm64): their extension
modules must say so (`...-aarch64-linux-gnu.so`, CPython 3.12), and where this machine is another
one they are imported from this venv's build of the very version the layer holds, placed ahead of
the layer, so the import of everything else still comes from the build.
"""

from __future__ import annotations

import glob
import json
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from devkit.harness.template import load_template, resources_of_type

BUILD_DIR = Path(".aws-sam/build")
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}  # Lambda's architecture names -> extension tags

IMPORT_PROBE = """
import importlib, json, os, sys
sys.path[:0] = json.loads(os.environ["PROBE_PATH"])
module_name, attribute = os.environ["PROBE_HANDLER"].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attribute)
assert callable(handler), f"{attribute} is not callable"
# Every module of the layer imports from the build, not only those this handler reaches: a package
# left out of the layer, or a module importing what the layer does not ship, fails here.
import pkgutil, budgetkeeper
for module in pkgutil.walk_packages(budgetkeeper.__path__, "budgetkeeper."):
    importlib.import_module(module.name)
from budgetkeeper.pricing.table import PriceTable
assert len(PriceTable.bundled()), "the bundled price table is not in the layer"
if "budgetkeeper.notify.render" in sys.modules:
    # The notifier's templates are data in the layer: each language renders there too.
    from budgetkeeper.notify.render import default_renderer
    from budgetkeeper.notify.notices import notice_for
    from budgetkeeper.notify import NotificationEvent
    event = NotificationEvent("suspended", "user:a", "daily", "d", "2", "1", "9", None, "x", None, None, "t")
    notice = notice_for(event)
    languages = default_renderer().languages()
    assert languages, "no notice templates in the layer"
    for language in languages:
        default_renderer().render(notice.template, language, notice.context)
"""


def runtime_python() -> str:
    candidates = sorted(glob.glob("/root/.pyenv/versions/3.12*/bin/python3.12"))
    if not candidates:
        sys.exit("check_build: no python3.12 found; the Lambda runtime is python3.12")
    return candidates[-1]


def layer_paths(template: dict, function: dict, globals_layers: list) -> list[str]:
    paths = []
    for layer in function["Properties"].get("Layers", globals_layers):
        name = layer["Ref"]
        content = BUILD_DIR / template["Resources"][name]["Properties"]["ContentUri"]
        paths.append(str((content / "python").resolve()))
    return paths


def compiled_distributions(layer: Path, machine: str) -> tuple[dict[str, str], list[str]]:
    """The layer's distributions with extension modules ({name: version}), and what is wrong with
    them: an extension module not built for CPython 3.12 on `machine`, a file of theirs missing
    (this machine's build imported in their place must not hide it)."""
    compiled, wrong = {}, []
    for info in layer.glob("*.dist-info"):
        name, version = info.name.removesuffix(".dist-info").rsplit("-", 1)
        records = (info / "RECORD").read_text().splitlines() if (info / "RECORD").exists() else []
        files = [line.split(",")[0] for line in records if line]
        extensions = [file for file in files if file.endswith(".so")]
        if not extensions:
            continue
        compiled[name] = version
        wrong += [
            f"{e} is not built for CPython 3.12 on {machine}"
            for e in extensions
            if f"cpython-312-{machine}-linux-gnu" not in e
        ]
        wrong += [f"{file} of {name} is missing" for file in files if not (layer / file).exists()]
    return compiled, wrong


def host_builds(compiled: dict[str, str], into: Path) -> list[str]:
    """This venv's build of each compiled distribution, copied into `into`; problems, if any."""
    problems = []
    for name, version in compiled.items():
        try:
            installed = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name} {version} is in the layer but not in this venv")
            continue
        if installed.version != version:
            problems.append(f"{name}: the layer holds {version}, this venv {installed.version}")
            continue
        for file in installed.files or []:
            source = Path(installed.locate_file(file))
            if source.is_file() and ".dist-info" not in str(file):
                target = into / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
    return problems


def main() -> int:
    template = load_template(BUILD_DIR / "template.yaml")
    globals_function = template.get("Globals", {}).get("Function", {})
    globals_layers = globals_function.get("Layers", [])
    functions = resources_of_type(template, "AWS::Serverless::Function")
    python = runtime_python()
    failures = 0
    host_dir = Path(tempfile.mkdtemp(prefix="check_build_host_"))
    for name, function in sorted(functions.items()):
        code_dir = (BUILD_DIR / function["Properties"]["CodeUri"]).resolve()
        layers = layer_paths(template, function, globals_layers)
        architecture = (function["Properties"].get("Architectures") or globals_function["Architectures"])[0]
        machine = MACHINES[architecture]
        compiled: dict[str, str] = {}
        for layer in layers:
            found, wrong = compiled_distributions(Path(layer), machine)
            compiled.update(found)
            for problem in wrong:
                failures += 1
                print(f"FAILED {name}: {problem}")
        ahead = []
        if compiled and platform.machine() != machine:
            problems = host_builds(compiled, host_dir)
            for problem in problems:
                failures += 1
                print(f"FAILED {name}: {problem}")
            ahead = [str(host_dir)]
            built = ", ".join(f"{n} {v}" for n, v in sorted(compiled.items()))
            print(
                f"       {name}: {built} built for {architecture}; imported with {platform.machine()} builds"
            )
        probe_path = [str(code_dir), *ahead, *layers]
        environment = {
            "PROBE_PATH": json.dumps(probe_path),
            "PROBE_HANDLER": function["Properties"]["Handler"],
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "budgetkeeper",
        }
        result = subprocess.run(
            [python, "-I", "-S", "-c", IMPORT_PROBE], env=environment, capture_output=True, text=True
        )
        status = "ok" if result.returncode == 0 else "FAILED"
        print(f"{status:6} {name}: {function['Properties']['Handler']}")
        if result.returncode != 0:
            failures += 1
            print(result.stderr.strip())
    shutil.rmtree(host_dir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
