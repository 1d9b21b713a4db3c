"""Runs the real Lambda handlers in-process, found through template.yaml as SAM would find them."""

from __future__ import annotations

import importlib
import sys
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devkit.harness.template import REPO_ROOT, load_template, resources_of_type


@dataclass
class FakeLambdaContext:
    function_name: str
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_ms: int = 180_000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return self.timeout_ms


def handler_for(logical_id: str) -> Callable[[dict[str, Any], Any], Any]:
    """`functions/<name>/` with Handler `app.lambda_handler` is `functions.<name>.app.lambda_handler`."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.append(str(REPO_ROOT))  # `functions` is a package at the repository's root
    function = resources_of_type(load_template(), "AWS::Serverless::Function")[logical_id]
    code_uri = function["Properties"]["CodeUri"].strip("/").replace("/", ".")
    module_name, attribute = function["Properties"]["Handler"].rsplit(".", 1)
    module = importlib.import_module(f"{code_uri}.{module_name}")
    return getattr(module, attribute)


# In Lambda every function runs in processes of its own, one invocation at a time in each; here all
# handlers share one process and Powertools' module-level metrics and logger, which two threads
# (the test's and moto's Step Functions executor) would mutate at once: one invocation at a time.
_ONE_AT_A_TIME = threading.RLock()


def invoke(logical_id: str, event: dict[str, Any]) -> Any:
    with _ONE_AT_A_TIME:
        return handler_for(logical_id)(event, FakeLambdaContext(function_name=logical_id))
