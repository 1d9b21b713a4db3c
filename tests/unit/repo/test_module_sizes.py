"""No module of the layer or the CLI grows past 500 lines (issue 27): one that does holds several
concepts and is split along its seams (docs/architecture.md, "What `make lint` and the tests hold
the code to")."""

from __future__ import annotations

from tests.checkout import ROOT

MAX_LINES = 500
PACKAGES = ("layers/shared/python/budgetkeeper", "cli/budgetkeeper_cli")


def test_no_module_of_the_layer_or_the_cli_is_over_500_lines():
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    assert len(sizes) > 100  # the packages were found
    too_long = {path: lines for path, lines in sizes.items() if lines > MAX_LINES}
    assert not too_long, f"split these along their seams: {too_long}"
