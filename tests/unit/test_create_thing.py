"""CreateThing: create the device's thing, or adopt the one that already has its name."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError
from jitr_core.certificates import certificate_id

from jitr import pki

if TYPE_CHECKING:
    from tests.conftest import Registered
    from tests.unit.conftest import CallLog, Steps


@pytest.fixture
def state(steps: Steps, register: Callable[..., Registered], ca: pki.Issued) -> dict[str, Any]:
    """CreateThing's input for a new device named device-ct-1."""
    device = pki.issue_device_certificate(ca, "device-ct-1", serial_number=0xBEEF01)
    return steps.through(register(device), "ensure_policy")


def test_new_thing_is_created_with_the_certificates_attributes(
    steps: Steps, state: dict[str, Any], iot: Any, ca: pki.Issued
) -> None:
    result = steps.run("create_thing", state)

    described = iot.describe_thing(thingName="device-ct-1")
    assert result == {"thingName": "device-ct-1", "thingArn": described["thingArn"], "created": True}
    registered_at = datetime.fromisoformat(state["certificate"]["registeredAt"])
    assert described["attributes"] == {
        "serialNumber": "beef01",
        "caCertificateId": certificate_id(ca.certificate),
        "registeredAt": registered_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", described["attributes"]["registeredAt"])
    assert "thingTypeName" not in described


def test_existing_thing_is_adopted_and_left_unchanged(steps: Steps, state: dict[str, Any], iot: Any) -> None:
    iot.create_thing(thingName="device-ct-1", attributePayload={"attributes": {"owner": "factory"}})
    before = iot.describe_thing(thingName="device-ct-1")

    result = steps.run("create_thing", state)

    assert result == {"thingName": "device-ct-1", "thingArn": before["thingArn"], "created": False}
    after = iot.describe_thing(thingName="device-ct-1")
    assert after["attributes"] == {"owner": "factory"}
    assert after["version"] == before["version"]


def test_thing_arn_is_in_the_certificates_account_and_region(steps: Steps, state: dict[str, Any]) -> None:
    result = steps.run("create_thing", state)
    assert result["thingArn"] == "arn:aws:iot:us-east-1:123456789012:thing/device-ct-1"


def test_repeated_step_creates_one_thing(steps: Steps, state: dict[str, Any], iot: Any) -> None:
    steps.run("create_thing", state)
    steps.run("create_thing", state)
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["device-ct-1"]


def test_configured_thing_type_is_given_to_a_new_thing(
    steps: Steps, state: dict[str, Any], iot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    iot.create_thing_type(thingTypeName="sensor")
    monkeypatch.setenv("THING_TYPE_NAME", "sensor")
    assert steps.run("create_thing", state)["created"] is True
    assert iot.describe_thing(thingName="device-ct-1")["thingTypeName"] == "sensor"


def test_configured_thing_group_gets_the_new_thing(
    steps: Steps, state: dict[str, Any], iot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    iot.create_thing_group(thingGroupName="fleet")
    monkeypatch.setenv("THING_GROUP_NAME", "fleet")
    steps.run("create_thing", state)
    assert iot.list_things_in_thing_group(thingGroupName="fleet")["things"] == ["device-ct-1"]


def test_adopted_thing_is_not_moved_into_the_group(
    steps: Steps,
    state: dict[str, Any],
    iot: Any,
    monkeypatch: pytest.MonkeyPatch,
    record_calls: Callable[[Any], CallLog],
) -> None:
    iot.create_thing_group(thingGroupName="fleet")
    iot.create_thing(thingName="device-ct-1", attributePayload={"attributes": {"owner": "factory"}})
    monkeypatch.setenv("THING_GROUP_NAME", "fleet")
    calls = record_calls(steps.module("create_thing").clients.iot())
    assert steps.run("create_thing", state)["created"] is False
    assert iot.list_things_in_thing_group(thingGroupName="fleet")["things"] == []
    assert calls.operations == ["CreateThing"]


def test_missing_thing_group_fails_and_the_new_thing_is_removed(
    steps: Steps, state: dict[str, Any], iot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THING_GROUP_NAME", "no-such-group")
    with pytest.raises(ClientError) as caught:
        steps.run("create_thing", state)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert iot.list_things()["things"] == []


def test_missing_thing_type_fails_without_a_thing(
    steps: Steps, state: dict[str, Any], iot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THING_TYPE_NAME", "no-such-type")
    with pytest.raises(ClientError):
        steps.run("create_thing", state)
    assert iot.list_things()["things"] == []
