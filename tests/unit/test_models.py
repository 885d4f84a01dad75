"""jitr_core.models: the registration event and the state the steps pass on."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jitr_core.errors import InvalidRegistrationEvent, InvalidStepInput
from jitr_core.models import CertificateInfo, StepInput, parse_registration_event, parse_state

from tests.conftest import load_event

CERT_ID = "a" * 64


@pytest.fixture
def event() -> dict[str, Any]:
    return load_event("registration.json")


def test_sample_registration_event_is_accepted(event: dict[str, Any]) -> None:
    parsed = parse_registration_event(event)
    assert parsed.certificate_id == event["certificateId"]
    assert parsed.ca_certificate_id == event["caCertificateId"]
    assert parsed.timestamp == event["timestamp"]
    assert parsed.certificate_status == "PENDING_ACTIVATION"
    assert parsed.aws_account_id == "123456789012"


def test_unknown_keys_are_ignored(event: dict[str, Any]) -> None:
    assert parse_registration_event({**event, "somethingNew": 1}).certificate_id == event["certificateId"]


def test_registration_timestamp_may_be_a_string_or_number(event: dict[str, Any]) -> None:
    assert parse_registration_event({**event, "certificateRegistrationTimestamp": "1700000000"})
    assert parse_registration_event({**event, "certificateRegistrationTimestamp": 1700000000})


@pytest.mark.parametrize(
    "field", ["certificateId", "caCertificateId", "timestamp", "certificateStatus", "awsAccountId"]
)
def test_missing_field_is_rejected_by_name(event: dict[str, Any], field: str) -> None:
    del event[field]
    with pytest.raises(InvalidRegistrationEvent, match=f"{field}: Field required"):
        parse_registration_event(event)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("timestamp", "1700000000000", id="timestamp-as-string"),
        pytest.param("timestamp", 1.7e12, id="timestamp-as-float"),
        pytest.param("timestamp", True, id="timestamp-as-bool"),
        pytest.param("timestamp", -1, id="negative-timestamp"),
        pytest.param("certificateId", "A" * 64, id="uppercase-certificate-id"),
        pytest.param("certificateId", "a" * 63, id="short-certificate-id"),
        pytest.param("certificateId", "g" * 64, id="non-hex-certificate-id"),
        pytest.param("certificateId", 12345, id="numeric-certificate-id"),
        pytest.param("caCertificateId", "../" + "a" * 61, id="path-in-ca-certificate-id"),
        pytest.param("certificateStatus", "ACTIVE", id="active-status"),
        pytest.param("certificateStatus", "INACTIVE", id="inactive-status"),
        pytest.param("certificateStatus", "pending_activation", id="lowercase-status"),
        pytest.param("awsAccountId", "12345", id="short-account-id"),
    ],
)
def test_wrong_field_value_is_rejected_by_name(event: dict[str, Any], field: str, value: Any) -> None:
    event[field] = value
    with pytest.raises(InvalidRegistrationEvent, match=f"RegistrationEvent: {field}:"):
        parse_registration_event(event)


def test_every_bad_field_is_named(event: dict[str, Any]) -> None:
    event["timestamp"] = "soon"
    del event["awsAccountId"]
    with pytest.raises(InvalidRegistrationEvent) as caught:
        parse_registration_event(event)
    assert "timestamp" in str(caught.value)
    assert "awsAccountId" in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(None, id="none"),
        pytest.param([], id="list"),
        pytest.param(42, id="number"),
        pytest.param("not json", id="string"),
    ],
)
def test_non_object_event_is_rejected(value: Any) -> None:
    with pytest.raises(InvalidRegistrationEvent, match="RegistrationEvent: <root>"):
        parse_registration_event(value)


def test_json_string_is_not_a_registration_event(event: dict[str, Any]) -> None:
    with pytest.raises(InvalidRegistrationEvent):
        parse_registration_event(json.dumps(event))


def test_step_input_error_is_invalid_step_input() -> None:
    with pytest.raises(InvalidStepInput, match="StepInput: certificateId"):
        parse_state({"certificateId": "nope"}, StepInput)


def test_certificate_info_round_trips_through_the_state() -> None:
    state = load_event("validate_certificate.json")["certificate"]
    info = CertificateInfo.model_validate(state)
    assert info.common_names == ["device-001"]
    assert info.not_after.tzinfo is not None
    assert CertificateInfo.model_validate(info.to_state()) == info
    assert set(info.to_state()) == set(state)


def test_models_are_immutable(event: dict[str, Any]) -> None:
    parsed = parse_registration_event(event)
    with pytest.raises(ValueError, match="frozen"):
        parsed.certificate_id = CERT_ID
    assert parsed.certificate_id == event["certificateId"]
