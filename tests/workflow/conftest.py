"""Fixtures for the path tests: the real template, ASL and handlers on the local stack."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from jitr import pki
from jitr.local.registration import LocalIot, RegistrationResult
from jitr.local.stack import LocalStack

pytestmark = pytest.mark.workflow


class Workflow:
    """A local stack plus the helpers a path test needs."""

    def __init__(self, stack: LocalStack, ca: pki.Issued) -> None:
        self.stack = stack
        self.ca = ca
        self.local = LocalIot(stack)
        self.iot: Any = stack.client("iot")

    def register(self, device: pki.Issued, ca: pki.Issued | None = None) -> RegistrationResult:
        return self.local.register(device.cert_pem, (ca or self.ca).cert_pem)

    def device(self, cn: str | None = None, **kwargs: Any) -> pki.Issued:
        return pki.issue_device_certificate(self.ca, cn or f"device-{uuid.uuid4().hex[:8]}", **kwargs)

    def history(self, result: RegistrationResult) -> list[dict[str, Any]]:
        return self.local.history(result.execution_arn)

    def task_failures(self, result: RegistrationResult) -> list[str]:
        """The error name of every TaskFailed event, in order."""
        return [e["taskFailedEventDetails"]["error"] for e in self.history(result) if e["type"] == "TaskFailed"]

    def thing_names(self) -> list[str]:
        return [t["thingName"] for t in self.iot.list_things()["things"]]

    def writes(self) -> list[str]:
        """Every mutating AWS call the handlers made, as service:Operation."""
        read_prefixes = ("Describe", "Get", "List")
        return [f"{c.service}:{c.operation}" for c in self.stack.api_calls if not c.operation.startswith(read_prefixes)]


@pytest.fixture
def start_workflow(ca: pki.Issued) -> Iterator[Callable[..., Workflow]]:
    stacks: list[LocalStack] = []

    def start(**overrides: str) -> Workflow:
        stack = LocalStack(parameter_overrides=overrides)
        stack.start()
        stacks.append(stack)
        return Workflow(stack, ca)

    yield start
    for stack in stacks:
        stack.stop()


@pytest.fixture
def workflow(start_workflow: Callable[..., Workflow]) -> Workflow:
    return start_workflow()
