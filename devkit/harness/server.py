"""A local AWS: moto's ThreadedMotoServer on 127.0.0.1, configured to run state machines for real."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def moto_process(config: Mapping[str, Any]) -> Iterator[tuple[str, int]]:
    """moto.server with lean_moto's changes in a process of its own, on a free loopback port and
    configured with `config`: its endpoint and process id (a bench's memory stays apart from moto's)."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "devkit.harness.lean_moto", "-H", "127.0.0.1", "-p", str(port)],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                requests.post(f"{endpoint}/moto-api/config", json=config, timeout=5).raise_for_status()
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        else:
            raise RuntimeError("moto.server did not start")
        yield endpoint, server.pid
    finally:
        server.kill()  # moto busy in a request may not answer SIGTERM for a while
        server.wait(timeout=30)
