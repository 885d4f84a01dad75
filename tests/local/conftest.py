"""Fixtures for `jitr local`: the stack behind a local AWS API endpoint, on a free port of 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest

from jitr.local.server import LocalEndpoint

pytestmark = pytest.mark.workflow


@pytest.fixture(scope="module")
def endpoint() -> Iterator[LocalEndpoint]:
    """One endpoint per test module (port 0: the system picks a free one), stopped after it."""
    with LocalEndpoint(api_port=0, mqtt_port=0) as running:
        yield running


@pytest.fixture
def aws(endpoint: LocalEndpoint) -> Callable[[str], Any]:
    """boto3 clients of the endpoint, as any other process would make them."""

    def client(service: str) -> Any:
        return boto3.client(service, region_name="us-east-1", endpoint_url=endpoint.stack.api_url)  # type: ignore[call-overload]

    return client
