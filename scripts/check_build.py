"""Import every built handler from .aws-sam/build in a clean interpreter, as Lambda would.

Each function runs in a fresh `python3.12 -I -S` (the Lambda runtime's version, no site-packages,
no venv) with only its code directory and its layers' `python/` folders on the path, so a missing
dependency or a layer laid out wrongly fails here instead of in AWS.
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

from devkit.harness.template import load_template, resources_of_type

BUILD_DIR = Path(".aws-sam/build")

IMPORT_PROBE = """
import importlib, json, os, sys
sys.path[:0] = json.loads(os.environ["PROBE_PATH"])
module_name, attribute = os.environ["PROBE_HANDLER"].rsplit(".", 1)
handler = getattr(importlib.import_module(module_name), attribute)
assert callable(handler), f"{attribute} is not callable"
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


def main() -> int:
    template = load_template(BUILD_DIR / "template.yaml")
    globals_layers = template.get("Globals", {}).get("Function", {}).get("Layers", [])
    functions = resources_of_type(template, "AWS::Serverless::Function")
    python = runtime_python()
    failures = 0
    for name, function in sorted(functions.items()):
        code_dir = (BUILD_DIR / function["Properties"]["CodeUri"]).resolve()
        probe_path = [str(code_dir), *layer_paths(template, function, globals_layers)]
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
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
