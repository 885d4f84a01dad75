"""Compensate: undo what a failed execution did, and leave the certificate unusable."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from jitr_core.errors import InvalidStepInput

from jitr import pki
from tests.unit.registry import POLICY, status_of

if TYPE_CHECKING:
    from tests.conftest import Registered
    from tests.unit.conftest import CallLog, Steps


@pytest.fixture
def registered(register: Callable[..., Registered], ca: pki.Issued) -> Registered:
    return register(pki.issue_device_certificate(ca, "device-cp-1"))


def failed(state: dict[str, Any], error: str) -> dict[str, Any]:
    """The state as a Catch (ResultPath $.error) hands it to Compensate."""
    cause = json.dumps({"errorType": error, "errorMessage": "test"})
    return {**state, "error": {"Error": error, "Cause": cause}}


def thing_names(iot: Any) -> list[str]:
    return [t["thingName"] for t in iot.list_things()["things"]]


@pytest.fixture
def compensate_calls(steps: Steps, record_calls: Callable[[Any], CallLog], aws: None) -> CallLog:
    return record_calls(steps.module("compensate").clients.iot())


# ---------------------------------------------------------------- before the certificate was read


@pytest.mark.parametrize("error", ["InvalidRegistrationEvent", "CertificateNotFound", "AwsThrottled", "States.Timeout"])
def test_failure_before_the_certificate_was_read_writes_nothing(
    steps: Steps, registered: Registered, iot: Any, compensate_calls: CallLog, error: str
) -> None:
    result = steps.run("compensate", failed(registered.event(), error))
    assert result == {"outcome": "FAILED", "certificateStatus": None, "undone": []}
    assert compensate_calls.operations == []
    assert status_of(iot, registered) == "PENDING_ACTIVATION"


def test_late_event_for_a_certificate_no_longer_pending_is_rejected_without_writes(
    steps: Steps, registered: Registered, iot: Any, compensate_calls: CallLog
) -> None:
    # ParseCertificate raised CertificateNotPending: the certificate was never read into the state.
    iot.update_certificate(certificateId=registered.certificate_id, newStatus="INACTIVE")
    result = steps.run("compensate", failed(registered.event(), "CertificateNotPending"))
    assert result == {"outcome": "REJECTED", "certificateStatus": None, "undone": []}
    assert compensate_calls.operations == []
    assert status_of(iot, registered) == "INACTIVE"


def test_state_without_an_error_is_invalid_step_input(steps: Steps, registered: Registered) -> None:
    with pytest.raises(InvalidStepInput, match="error"):
        steps.run("compensate", registered.event())


# ---------------------------------------------------------------- rejected by validation


@pytest.mark.parametrize("error", ["ThingNameWildcard", "CrlUnavailable"])
def test_rejected_certificate_is_made_inactive(
    steps: Steps, registered: Registered, iot: Any, compensate_calls: CallLog, error: str
) -> None:
    state = steps.through(registered, "parse_certificate")
    result = steps.run("compensate", failed(state, error))
    assert result == {"outcome": "REJECTED", "certificateStatus": "INACTIVE", "undone": ["certificate INACTIVE"]}
    assert status_of(iot, registered) == "INACTIVE"
    assert compensate_calls.writes == ["UpdateCertificate"]


def test_revoked_certificate_is_made_revoked(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "parse_certificate")
    result = steps.run("compensate", failed(state, "CertificateRevoked"))
    assert result["outcome"] == "REJECTED"
    assert result["certificateStatus"] == "REVOKED"
    assert status_of(iot, registered) == "REVOKED"


def test_revocation_overrides_an_earlier_deactivation(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "parse_certificate")
    iot.update_certificate(certificateId=registered.certificate_id, newStatus="INACTIVE")
    assert steps.run("compensate", failed(state, "CertificateRevoked"))["certificateStatus"] == "REVOKED"
    assert status_of(iot, registered) == "REVOKED"


def test_revoked_certificate_is_never_downgraded_to_inactive(
    steps: Steps, registered: Registered, iot: Any, compensate_calls: CallLog
) -> None:
    state = steps.through(registered, "parse_certificate")
    iot.update_certificate(certificateId=registered.certificate_id, newStatus="REVOKED")
    result = steps.run("compensate", failed(state, "ThingNameWildcard"))
    assert result["certificateStatus"] == "REVOKED"
    assert status_of(iot, registered) == "REVOKED"
    assert compensate_calls.writes == []


# ---------------------------------------------------------------- failed after the thing was made


def test_failure_after_attach_undoes_everything_this_execution_did(
    steps: Steps, registered: Registered, iot: Any
) -> None:
    state = steps.through(registered, "attach_principal")
    assert state["thing"]["created"] is True

    result = steps.run("compensate", failed(state, "AwsUnavailable"))

    assert result["outcome"] == "FAILED"
    assert result["certificateStatus"] == "INACTIVE"
    assert result["undone"] == [
        "certificate INACTIVE",
        f"policy {POLICY} detached",
        "thing device-cp-1 detached",
        "thing device-cp-1 deleted",
    ]
    assert status_of(iot, registered) == "INACTIVE"
    assert iot.list_attached_policies(target=registered.certificate_arn)["policies"] == []
    assert iot.list_principal_things(principal=registered.certificate_arn)["things"] == []
    assert thing_names(iot) == []


def test_failure_after_activation_keeps_the_completed_registration(
    steps: Steps, registered: Registered, iot: Any
) -> None:
    # The activation went through and the Lambda then timed out: ACTIVE with thing and policy is a
    # complete registration, and disabling it would lock the device out (no new event comes).
    state = steps.through(registered, "activate_certificate")
    assert status_of(iot, registered) == "ACTIVE"
    result = steps.run("compensate", failed(state, "States.Timeout"))
    assert result["outcome"] == "FAILED"
    assert result["undone"] == ["nothing: the registration is complete (ACTIVE with its thing and policy)"]
    assert status_of(iot, registered) == "ACTIVE"
    assert thing_names(iot) == ["device-cp-1"]


def test_failure_before_attach_deletes_the_new_thing(steps: Steps, registered: Registered, iot: Any) -> None:
    # AttachPrincipal failed before attaching anything: there is nothing to detach, the thing still goes.
    state = steps.through(registered, "create_thing")
    result = steps.run("compensate", failed(state, "AwsThrottled"))
    assert result["undone"] == ["certificate INACTIVE", "thing device-cp-1 deleted"]
    assert thing_names(iot) == []


def test_adopted_thing_and_its_other_certificates_are_kept(
    steps: Steps, register: Callable[..., Registered], registered: Registered, ca: pki.Issued, iot: Any
) -> None:
    # The device's previous certificate already uses the thing.
    previous = register(pki.issue_device_certificate(ca, "device-cp-1"))
    iot.update_certificate(certificateId=previous.certificate_id, newStatus="ACTIVE")
    iot.create_thing(thingName="device-cp-1", attributePayload={"attributes": {"owner": "factory"}})
    iot.attach_thing_principal(thingName="device-cp-1", principal=previous.certificate_arn)

    state = steps.through(registered, "attach_principal")
    assert state["thing"]["created"] is False
    steps.run("compensate", failed(state, "AwsUnavailable"))

    assert thing_names(iot) == ["device-cp-1"]
    assert iot.list_thing_principals(thingName="device-cp-1")["principals"] == [previous.certificate_arn]
    assert iot.describe_thing(thingName="device-cp-1")["attributes"] == {"owner": "factory"}
    assert status_of(iot, previous) == "ACTIVE"
    assert status_of(iot, registered) == "INACTIVE"


def test_adopted_thing_without_other_certificates_is_kept(steps: Steps, registered: Registered, iot: Any) -> None:
    # A thing provisioned ahead of the device, with no certificate yet: this execution only adopted it.
    iot.create_thing(thingName="device-cp-1", attributePayload={"attributes": {"batch": "7"}})
    state = steps.through(registered, "attach_principal")
    assert state["thing"]["created"] is False

    result = steps.run("compensate", failed(state, "AwsUnavailable"))

    assert "thing device-cp-1 deleted" not in result["undone"]
    assert iot.describe_thing(thingName="device-cp-1")["attributes"] == {"batch": "7"}
    assert iot.list_thing_principals(thingName="device-cp-1")["principals"] == []


def test_new_thing_is_kept_when_another_certificate_was_attached_meanwhile(
    steps: Steps, register: Callable[..., Registered], registered: Registered, ca: pki.Issued, iot: Any
) -> None:
    state = steps.through(registered, "attach_principal")
    other = register(pki.issue_device_certificate(ca, "device-cp-1"))
    iot.attach_thing_principal(thingName="device-cp-1", principal=other.certificate_arn)

    result = steps.run("compensate", failed(state, "AwsUnavailable"))

    assert "thing device-cp-1 deleted" not in result["undone"]
    assert iot.list_thing_principals(thingName="device-cp-1")["principals"] == [other.certificate_arn]


def test_new_thing_is_deleted_while_its_own_detachment_is_still_propagating(
    steps: Steps, registered: Registered, iot: Any
) -> None:
    state = steps.through(registered, "attach_principal")

    def still_listed(parsed: dict[str, Any], **_: Any) -> None:
        parsed["principals"] = [*parsed.get("principals", []), registered.certificate_arn]

    steps.module("compensate").clients.iot().meta.events.register("after-call.iot.ListThingPrincipals", still_listed)
    steps.run("compensate", failed(state, "AwsUnavailable"))

    assert thing_names(iot) == []


def test_thing_already_deleted_is_not_an_error(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "create_thing")
    iot.delete_thing(thingName="device-cp-1")
    result = steps.run("compensate", failed(state, "AwsUnavailable"))
    assert result["undone"] == ["certificate INACTIVE"]


# ---------------------------------------------------------------- idempotence


def test_compensating_twice_is_harmless(
    steps: Steps, registered: Registered, iot: Any, compensate_calls: CallLog
) -> None:
    state = failed(steps.through(registered, "attach_principal"), "AwsUnavailable")
    first = steps.run("compensate", state)
    writes_after_first = list(compensate_calls.writes)

    second = steps.run("compensate", state)

    assert second["outcome"] == first["outcome"] == "FAILED"
    assert second == {"outcome": "FAILED", "certificateStatus": "INACTIVE", "undone": ["certificate INACTIVE"]}
    # The detaches find nothing to detach; the status and the thing are not touched again.
    second_writes = compensate_calls.writes[len(writes_after_first) :]
    assert "UpdateCertificate" not in second_writes
    assert "DeleteThing" not in second_writes
    assert status_of(iot, registered) == "INACTIVE"
    assert thing_names(iot) == []


def test_compensating_a_revocation_twice_keeps_it_revoked(steps: Steps, registered: Registered, iot: Any) -> None:
    state = failed(steps.through(registered, "parse_certificate"), "CertificateRevoked")
    steps.run("compensate", state)
    assert steps.run("compensate", state)["certificateStatus"] == "REVOKED"
    assert status_of(iot, registered) == "REVOKED"


# ---------------------------------------------------------------- duplicate executions


def test_failing_duplicate_execution_leaves_a_completed_registration_alone(
    steps: Steps, registered: Registered, iot: Any
) -> None:
    # Execution B reads the certificate while it is still pending...
    duplicate = steps.through(registered, "parse_certificate")
    # ...execution A, started by an earlier copy of the event, completes the registration...
    steps.through(registered, "activate_certificate")
    # ...and B's CRL read fails (fail closed), so B compensates.
    steps.run("compensate", failed(duplicate, "CrlUnavailable"))

    assert status_of(iot, registered) == "ACTIVE"
    assert iot.list_principal_things(principal=registered.certificate_arn)["things"] == ["device-cp-1"]
