"""Unit tests touch no network: sockets are blocked for every test in this folder."""

import aws_xray_sdk.core  # noqa: F401  its global recorder opens a UDP socket on import (it sends nothing)
import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network():
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()
