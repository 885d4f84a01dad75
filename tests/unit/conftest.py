"""Helpers for the handler tests: run the steps in order on moto, and record the AWS calls a client makes."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import boto3
import pytest

# Each step and the key its result is stored under (the state machine's ResultPath).
STEPS: tuple[tuple[str, str], ...] = (
    ("parse_certificate", "certificate"),
    ("validate_certificate", "device"),
    ("ensure_policy", "policy"),
    ("create_thing", "thing"),
    ("attach_principal", "attachment"),
    ("activate_certificate", "activation"),
)

READ_PREFIXES = ("Describe", "Get", "List")


@pytest.fixture(autouse=True)
def _quiet_empty_metrics() -> None:
    """Powertools warns when a handler adds no metric, as most handlers under test here do not."""
    warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)


@pytest.fixture(scope="session")
def shared_boto3_session() -> boto3.Session:
    """One boto3 session for the whole run, so that service models are loaded once (moto resets the default)."""
    return boto3.Session()


@pytest.fixture
def aws(aws: None, shared_boto3_session: boto3.Session) -> None:
    """The suite's moto fixture, with clients made from the shared session (moto restores the default on exit)."""
    boto3.DEFAULT_SESSION = shared_boto3_session


class Steps:
    """The workflow's steps run by hand, each handler loaded once (as a warm function would be)."""

    def __init__(self, load_function: Callable[[str], ModuleType], context: Any) -> None:
        self._load_function = load_function
        self._context = context
        self._modules: dict[str, ModuleType] = {}

    def module(self, name: str) -> ModuleType:
        if name not in self._modules:
            self._modules[name] = self._load_function(name)
        return self._modules[name]

    def run(self, name: str, state: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.module(name).lambda_handler(state, self._context)
        return result

    def through(self, registered: Any, last: str) -> dict[str, Any]:
        """The state after every step up to and including ``last``, as the state machine builds it."""
        state: dict[str, Any] = registered.event()
        for name, key in STEPS:
            state = {**state, key: self.run(name, state)}
            if name == last:
                return state
        raise ValueError(f"no step named {last!r}")


@pytest.fixture
def steps(load_function: Callable[[str], ModuleType], lambda_context: Any) -> Steps:
    return Steps(load_function, lambda_context)


@pytest.fixture
def other_steps(load_function: Callable[[str], ModuleType], lambda_context: Any) -> Steps:
    """A second set of function instances, as a concurrent execution would get."""
    return Steps(load_function, lambda_context)


@dataclass
class CallLog:
    """The operations a boto3 client called, in order."""

    operations: list[str] = field(default_factory=list)

    @property
    def writes(self) -> list[str]:
        return [op for op in self.operations if not op.startswith(READ_PREFIXES)]


@pytest.fixture
def record_calls() -> Callable[[Any], CallLog]:
    """Start recording the operations a boto3 client calls."""

    def record(client: Any) -> CallLog:
        log = CallLog()

        def on_call(model: Any, **_: Any) -> None:
            log.operations.append(model.name)

        client.meta.events.register(f"before-call.{client.meta.service_model.service_id.hyphenize()}", on_call)
        return log

    return record
