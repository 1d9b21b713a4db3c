"""A test's subprocess runs this checkout's code, wherever the venv's editable install points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.checkout import ROOT, checkout_env


def test_a_subprocess_imports_the_checkout_under_test(tmp_path):
    # Given a subprocess started away from the checkout, with the environment the tests give it
    probe = (
        "import json, budgetkeeper, budgetkeeper_cli, devkit;"
        " print(json.dumps([m.__file__ for m in (budgetkeeper, budgetkeeper_cli, devkit)]))"
    )
    # When it imports the layer, the CLI and the devkit
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=checkout_env(),
        check=True,
    )
    # Then each comes from this checkout
    for imported in json.loads(result.stdout):
        assert Path(imported).is_relative_to(ROOT), imported
