"""Reliability tests drive the real handlers on moto, with the integration tests' stack fixtures."""

from tests.integration.conftest import settings, stack  # noqa: F401  (fixtures, used by name)
