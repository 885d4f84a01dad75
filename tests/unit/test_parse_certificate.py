"""ParseCertificate: read the registered certificate and spot a registration that is already done."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from jitr_core.certificates import certificate_id
from jitr_core.errors import CertificateNotFound, CertificateNotPending, InvalidRegistrationEvent

from jitr import pki
from tests.conftest import load_event

if TYPE_CHECKING:
    from tests.conftest import LambdaContext, Registered
    from tests.unit.conftest import CallLog

POLICY = "jitr-device-policy"


@pytest.fixture
def parse(load_function: Callable[[str], ModuleType], aws: None) -> ModuleType:
    return load_function("parse_certificate")


@pytest.fixture
def registered(register: Callable[..., Registered], device: pki.Issued) -> Registered:
    return register(device)


def set_status(registered: Registered, status: str) -> None:
    """Set any status, as AWS IoT itself may (UpdateCertificate refuses PENDING_TRANSFER)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iot.models import iot_backends

    backend = iot_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    backend.certificates[registered.certificate_id].status = status


def make_fully_registered(iot: Any, registered: Registered, thing_name: str, policy: str = POLICY) -> None:
    iot.update_certificate(certificateId=registered.certificate_id, newStatus="ACTIVE")
    iot.create_thing(thingName=thing_name)
    iot.attach_thing_principal(thingName=thing_name, principal=registered.certificate_arn)
    iot.create_policy(policyName=policy, policyDocument='{"Version": "2012-10-17", "Statement": []}')
    iot.attach_policy(policyName=policy, target=registered.certificate_arn)


def test_registered_certificate_is_read(
    parse: ModuleType, register: Callable[..., Registered], lambda_context: LambdaContext, ca: pki.Issued
) -> None:
    device = pki.issue_device_certificate(ca, "device-parse-1", serial_number=0x1F2E3D)
    registered = register(device)

    info = parse.lambda_handler(registered.event(), lambda_context)

    assert info["certificateId"] == registered.certificate_id
    assert info["certificateArn"] == registered.certificate_arn
    assert info["caCertificateId"] == certificate_id(ca.certificate)
    assert info["status"] == "PENDING_ACTIVATION"
    assert info["pem"] == device.cert_pem
    assert info["serialNumber"] == "1f2e3d"
    assert info["commonNames"] == ["device-parse-1"]
    assert datetime.fromisoformat(info["notBefore"]) == device.certificate.not_valid_before_utc
    assert datetime.fromisoformat(info["notAfter"]) == device.certificate.not_valid_after_utc
    assert datetime.fromisoformat(info["registeredAt"]).tzinfo is not None
    assert info["alreadyRegistered"] is False


def test_every_common_name_is_reported(
    parse: ModuleType, register: Callable[..., Registered], lambda_context: LambdaContext, ca: pki.Issued
) -> None:
    registered = register(pki.issue_device_certificate(ca, ["cn-a", "cn-b"]))
    assert parse.lambda_handler(registered.event(), lambda_context)["commonNames"] == ["cn-a", "cn-b"]


def test_unknown_certificate_is_not_found_and_nothing_is_written(
    parse: ModuleType,
    register: Callable[..., Registered],
    device: pki.Issued,
    lambda_context: LambdaContext,
    record_calls: Callable[[Any], CallLog],
) -> None:
    registered = register(device)
    calls = record_calls(parse.clients.iot())
    event = {**registered.event(), "certificateId": "0" * 64}

    with pytest.raises(CertificateNotFound, match="0" * 64):
        parse.lambda_handler(event, lambda_context)
    assert calls.operations == ["DescribeCertificate"]
    assert calls.writes == []


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda e: e.pop("certificateId"), id="no-certificate-id"),
        pytest.param(lambda e: e.update(certificateStatus="ACTIVE"), id="status-not-pending"),
        pytest.param(lambda e: e.update(timestamp="now"), id="timestamp-as-string"),
    ],
)
def test_malformed_event_is_rejected_before_any_call(
    parse: ModuleType,
    lambda_context: LambdaContext,
    record_calls: Callable[[Any], CallLog],
    change: Callable[[dict[str, Any]], object],
) -> None:
    event = load_event("registration.json")
    change(event)
    calls = record_calls(parse.clients.iot())
    with pytest.raises(InvalidRegistrationEvent):
        parse.lambda_handler(event, lambda_context)
    assert calls.operations == []


def test_event_naming_another_ca_is_rejected(
    parse: ModuleType,
    register: Callable[..., Registered],
    device: pki.Issued,
    other_ca: pki.Issued,
    lambda_context: LambdaContext,
) -> None:
    event = {**register(device).event(), "caCertificateId": certificate_id(other_ca.certificate)}
    with pytest.raises(InvalidRegistrationEvent, match="belongs to CA"):
        parse.lambda_handler(event, lambda_context)


@pytest.mark.parametrize("status", ["INACTIVE", "REVOKED", "PENDING_TRANSFER"])
def test_certificate_no_longer_pending_is_rejected_without_writes(
    parse: ModuleType,
    registered: Registered,
    lambda_context: LambdaContext,
    record_calls: Callable[[Any], CallLog],
    status: str,
) -> None:
    set_status(registered, status)
    calls = record_calls(parse.clients.iot())
    with pytest.raises(CertificateNotPending, match=status):
        parse.lambda_handler(registered.event(), lambda_context)
    assert calls.writes == []


def test_active_certificate_with_thing_and_device_policy_is_already_registered(
    parse: ModuleType, register: Callable[..., Registered], device: pki.Issued, iot: Any, lambda_context: LambdaContext
) -> None:
    registered = register(device)
    make_fully_registered(iot, registered, "device-done")
    info = parse.lambda_handler(registered.event(), lambda_context)
    assert info["status"] == "ACTIVE"
    assert info["alreadyRegistered"] is True


def test_active_certificate_without_thing_or_policy_is_not_already_registered(
    parse: ModuleType, register: Callable[..., Registered], device: pki.Issued, iot: Any, lambda_context: LambdaContext
) -> None:
    registered = register(device)
    iot.update_certificate(certificateId=registered.certificate_id, newStatus="ACTIVE")
    info = parse.lambda_handler(registered.event(), lambda_context)
    assert info["status"] == "ACTIVE"
    assert info["alreadyRegistered"] is False


def test_active_certificate_with_thing_but_another_policy_is_not_already_registered(
    parse: ModuleType, register: Callable[..., Registered], device: pki.Issued, iot: Any, lambda_context: LambdaContext
) -> None:
    registered = register(device)
    make_fully_registered(iot, registered, "device-other-policy", policy="some-other-policy")
    assert parse.lambda_handler(registered.event(), lambda_context)["alreadyRegistered"] is False


def test_active_certificate_with_policy_but_no_thing_is_not_already_registered(
    parse: ModuleType, register: Callable[..., Registered], device: pki.Issued, iot: Any, lambda_context: LambdaContext
) -> None:
    registered = register(device)
    make_fully_registered(iot, registered, "device-no-thing")
    iot.detach_thing_principal(thingName="device-no-thing", principal=registered.certificate_arn)
    assert parse.lambda_handler(registered.event(), lambda_context)["alreadyRegistered"] is False


def test_pending_certificate_with_attachments_is_not_already_registered(
    parse: ModuleType, register: Callable[..., Registered], device: pki.Issued, iot: Any, lambda_context: LambdaContext
) -> None:
    # A half-finished earlier execution: thing and policy attached, certificate never activated.
    registered = register(device)
    iot.create_thing(thingName="device-half-done")
    iot.attach_thing_principal(thingName="device-half-done", principal=registered.certificate_arn)
    iot.create_policy(policyName=POLICY, policyDocument='{"Version": "2012-10-17", "Statement": []}')
    iot.attach_policy(policyName=POLICY, target=registered.certificate_arn)
    info = parse.lambda_handler(registered.event(), lambda_context)
    assert info["status"] == "PENDING_ACTIVATION"
    assert info["alreadyRegistered"] is False


@pytest.mark.parametrize("event", [None, [], "certificate", 7], ids=["none", "list", "string", "number"])
def test_event_that_is_not_an_object_is_rejected(parse: ModuleType, lambda_context: LambdaContext, event: Any) -> None:
    with pytest.raises(InvalidRegistrationEvent, match="<root>"):
        parse.lambda_handler(event, lambda_context)
