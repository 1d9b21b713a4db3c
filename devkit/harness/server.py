"""A local AWS: moto's ThreadedMotoServer on 127.0.0.1, configured to run state machines for real."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import requests
from moto.server import ThreadedMotoServer

from devkit.harness.lean_moto import lean
from devkit.harness.stack import FAKE_CREDENTIALS

# Step Functions executes the ASL; Lambda never needs Docker (tasks go to the real handlers).
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def local_aws() -> Iterator[str]:
    """Start moto on a free loopback port; yield its endpoint with the environment pointing at it."""
    lean()
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    saved = dict(os.environ)
    # MOTO_PORT: the state machine executor calls this server for its own aws-sdk tasks.
    os.environ.update({**FAKE_CREDENTIALS, "AWS_ENDPOINT_URL": endpoint, "MOTO_PORT": str(port)})
    try:
        requests.post(f"{endpoint}/moto-api/config", json=MOTO_CONFIG, timeout=10).raise_for_status()
        yield endpoint
    finally:
        server.stop()
        os.environ.clear()
        os.environ.update(saved)
