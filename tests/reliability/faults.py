"""Faults injected where AWS produces them: in the answer to one API call, under botocore's retries.

`FaultInjector.fail("dynamodb", "TransactWriteItems", ...)` makes the n-th call of that operation (each
attempt counts: botocore's own retries are calls too) answer with an AWS error instead of reaching
moto, or, with `after=True`, reach moto (the write is applied) and then answer with the error, as when
a response is lost. Every boto3 and pynamodb client in the process is affected, the real handlers'
included, and botocore's retry handlers see the error exactly as they would see AWS's: a throttling
code or a 5xx is retried by botocore first, and only reaches the product once its attempts are spent.
Backoff sleeps are recorded, not slept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore import endpoint
from botocore.awsrequest import AWSResponse


class _EmptyBody:
    def stream(self, **_: Any) -> Any:
        return iter([b""])


@dataclass
class Fault:
    service: str  # botocore's hyphenated service id: dynamodb, iam, sns, ssm
    operation: str  # the API name: TransactWriteItems, AttachUserPolicy, Publish
    code: str
    status: int
    first: int  # the first call (1-based) that fails
    times: int  # how many calls in a row fail
    after: bool  # the call is applied, then its answer is the error
    calls: int = 0
    injected: int = 0

    def hits(self) -> bool:
        self.calls += 1
        return self.first <= self.calls < self.first + self.times

    def answer(self) -> tuple[tuple[AWSResponse, dict[str, Any]], None]:
        self.injected += 1
        http = AWSResponse("https://injected.fault/", self.status, {}, _EmptyBody())
        parsed = {
            "Error": {"Code": self.code, "Message": f"injected fault: {self.code}"},
            "ResponseMetadata": {"HTTPStatusCode": self.status, "HTTPHeaders": {}},
        }
        return (http, parsed), None


@dataclass
class FaultInjector:
    faults: list[Fault] = field(default_factory=list)
    backoffs: list[float] = field(default_factory=list)
    actions: list[tuple[str, str, Callable[[], None]]] = field(default_factory=list)

    def fail(
        self,
        service: str,
        operation: str,
        code: str,
        *,
        status: int = 400,
        first: int = 1,
        times: int = 1,
        after: bool = False,
    ) -> Fault:
        fault = Fault(service, operation, code, status, first, times, after)
        self.faults.append(fault)
        return fault

    def call_after(self, service: str, operation: str, action: Callable[[], None]) -> None:
        """Run `action` once, right after the first call of that operation is applied (a concurrent
        change by someone else, such as an administrator deleting a user)."""
        self.actions.append((service, operation, action))

    def clear(self) -> None:
        self.faults.clear()

    def _matching(self, service: str, operation: str) -> Fault | None:
        hit = None
        for fault in self.faults:
            if (fault.service, fault.operation) == (service, operation) and fault.hits():
                hit = hit or fault
        return hit


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> FaultInjector:
    injector = FaultInjector()
    real = endpoint.Endpoint._do_get_response

    def with_faults(self: Any, request: Any, operation_model: Any, context: Any) -> Any:
        service = operation_model.service_model.service_id.hyphenize()
        fault = injector._matching(service, operation_model.name)
        if fault is None:
            answer = real(self, request, operation_model, context)
            for action in [a for a in injector.actions if a[:2] == (service, operation_model.name)]:
                injector.actions.remove(action)
                action[2]()
            return answer
        if fault.after:
            real(self, request, operation_model, context)
        return fault.answer()

    class NoSleep:
        @staticmethod
        def sleep(seconds: float) -> None:
            injector.backoffs.append(seconds)

    monkeypatch.setattr(endpoint.Endpoint, "_do_get_response", with_faults)
    monkeypatch.setattr(endpoint, "time", NoSleep)
    return injector
