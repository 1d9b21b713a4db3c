"""The environment for a test's subprocess: it imports this checkout's code, not the venv's install.

The venv's editable install (a .pth) points at one working tree; a test run in another checkout
(a worktree, a CI copy) must run its own code in the subprocess too, as pyproject's pythonpath
does for the tests themselves.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOTS = (ROOT / "layers" / "shared" / "python", ROOT / "cli", ROOT)


def checkout_env() -> dict[str, str]:
    """os.environ with this checkout's layer, CLI and root first on PYTHONPATH."""
    env = dict(os.environ)
    inherited = [env["PYTHONPATH"]] if env.get("PYTHONPATH") else []
    env["PYTHONPATH"] = os.pathsep.join([*(str(path) for path in SOURCE_ROOTS), *inherited])
    return env
