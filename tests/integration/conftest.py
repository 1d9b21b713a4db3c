"""Integration fixtures: moto in-process, the stack created from template.yaml."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_lambda_powertools.utilities import parameters
from moto import mock_aws

from budgetkeeper.core.settings import Settings
from budgetkeeper.enforcement.denies import DenyBook
from budgetkeeper.enforcement.iam_denies import IamDenies
from budgetkeeper.enforcement.identity_center import IdentityCenterConnection
from devkit.harness.stack import LocalStack
from devkit.harness.workflow import WaitControl, real_handlers

MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


@pytest.fixture
def stack(aws_env: None) -> Iterator[LocalStack]:
    with mock_aws(config=MOTO_CONFIG):
        parameters.clear_caches()  # Powertools' cache outlives a mock_aws context
        yield LocalStack().create()
        parameters.clear_caches()


@pytest.fixture
def settings(stack: LocalStack) -> Iterator[Settings]:
    with stack.activated() as active:
        yield active


@pytest.fixture
def deny_book(stack: LocalStack, settings: Settings) -> DenyBook:
    """The deny records and IAM, as the DenyFunction keeps them (Identity Center not connected)."""
    return DenyBook(
        IamDenies(
            stack.client("iam"),
            stack.physical_ids["BedrockDenyPolicy"],
            lambda: IdentityCenterConnection(None, "Identity Center is not connected in this test"),
        )
    )


@pytest.fixture
def workflow(stack: LocalStack, settings: Settings) -> Iterator[WaitControl]:
    """The real state machines and handlers; a test sets how long their waits last."""
    with real_handlers(stack) as waits:
        yield waits
