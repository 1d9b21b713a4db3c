"""Reliability tests drive the real handlers on moto, with the integration tests' stack fixtures, and
inject faults where AWS produces them (tests/reliability/faults.py)."""

from tests.integration.conftest import deny_book, settings, stack  # noqa: F401  (fixtures, used by name)
from tests.reliability.faults import faults  # noqa: F401
