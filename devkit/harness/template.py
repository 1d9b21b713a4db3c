"""Reads template.yaml so the local stack is created from the same definitions `sam deploy` uses."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from cfnlint.decode import cfn_yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"


@cache
def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data; short-form intrinsics (`!Ref`) come back in their long form."""
    return _plain(cfn_yaml.load(str(path)))


def _plain(node: Any) -> Any:
    # cfn-lint's decoder returns dict/str subclasses that remember line numbers; drop them.
    if isinstance(node, dict):
        return {str(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)
    return node


def resources_of_type(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }
