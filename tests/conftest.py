"""Fixtures shared by the whole suite: fake AWS credentials, a CA, device certificates, moto."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import pytest
from jitr_core.certificates import certificate_id
from moto import mock_aws

from jitr import pki
from jitr.local import moto_fixes

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ROOT / "functions"
EVENTS = ROOT / "events"


@pytest.fixture(autouse=True)
def aws_environment() -> Iterator[None]:
    """No test may reach AWS: fake credentials, a fixed region, tracing off."""
    values = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "jitr-registration",
        "POWERTOOLS_METRICS_NAMESPACE": "Jitr",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "DEVICE_POLICY_NAME": "jitr-device-policy",
    }
    with mock.patch.dict(os.environ, values):
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL"):
            os.environ.pop(name, None)
        yield


@pytest.fixture(scope="session")
def ca() -> pki.Issued:
    return pki.create_ca("jitr Test CA")


@pytest.fixture(scope="session")
def other_ca() -> pki.Issued:
    return pki.create_ca("Some Other CA")


@pytest.fixture
def device(ca: pki.Issued) -> pki.Issued:
    return pki.issue_device_certificate(ca, f"device-{uuid.uuid4().hex[:8]}")


@dataclass
class LambdaContext:
    function_name: str = "test"
    memory_limit_in_mb: int = 128
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test"
    aws_request_id: str = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> LambdaContext:
    return LambdaContext()


@pytest.fixture
def load_function() -> Iterator[Callable[[str], ModuleType]]:
    """Import ``functions/<name>/app.py`` fresh, so warm-function state starts cold in each test."""
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        module_name = f"functions.{name}.app_{uuid.uuid4().hex[:6]}"
        spec = importlib.util.spec_from_file_location(module_name, FUNCTIONS / name / "app.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        loaded.append(module_name)
        return module

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)


@pytest.fixture
def aws() -> Iterator[None]:
    """moto, with AWS IoT behaving as AWS does where the workflow depends on it."""
    from contextlib import ExitStack

    with mock_aws(config={"iot": {"use_valid_cert": True}}), ExitStack() as fixes:
        moto_fixes.apply(fixes)
        yield


@pytest.fixture
def iot(aws: None) -> Any:
    return boto3.client("iot", region_name="us-east-1")


@pytest.fixture
def s3(aws: None) -> Any:
    return boto3.client("s3", region_name="us-east-1")


@dataclass
class Registered:
    """A device certificate registered in moto as AWS IoT does on first CONNECT."""

    issued: pki.Issued
    certificate_id: str
    certificate_arn: str
    ca_certificate_id: str

    def event(self) -> dict[str, Any]:
        return {
            "certificateId": self.certificate_id,
            "caCertificateId": self.ca_certificate_id,
            "timestamp": 1700000000000,
            "certificateStatus": "PENDING_ACTIVATION",
            "awsAccountId": "123456789012",
            "certificateRegistrationTimestamp": None,
        }


@pytest.fixture
def register(iot: Any, ca: pki.Issued) -> Callable[..., Registered]:
    """Register a CA (once) and a device certificate as PENDING_ACTIVATION."""

    def do_register(issued: pki.Issued, issuer: pki.Issued | None = None, ca_status: str = "ACTIVE") -> Registered:
        issuer = issuer or ca
        ca_id = certificate_id(issuer.certificate)
        try:
            iot.describe_ca_certificate(certificateId=ca_id)
        except iot.exceptions.ResourceNotFoundException:
            iot.register_ca_certificate(caCertificate=issuer.cert_pem, setAsActive=True, allowAutoRegistration=True)
        iot.update_ca_certificate(certificateId=ca_id, newStatus=ca_status)
        response = iot.register_certificate(
            certificatePem=issued.cert_pem, caCertificatePem=issuer.cert_pem, status="PENDING_ACTIVATION"
        )
        return Registered(issued, response["certificateId"], response["certificateArn"], ca_id)

    return do_register


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event
