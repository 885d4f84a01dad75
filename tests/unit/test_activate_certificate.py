"""ActivateCertificate: the last write, made only for the attachment of the device's own thing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from jitr_core.errors import InvalidStepInput

from jitr import pki
from tests.unit.registry import status_of

if TYPE_CHECKING:
    from tests.conftest import Registered
    from tests.unit.conftest import CallLog, Steps


@pytest.fixture
def registered(register: Callable[..., Registered], ca: pki.Issued) -> Registered:
    return register(pki.issue_device_certificate(ca, "device-aa-1"))


def test_certificate_is_active_after_activation(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "activate_certificate")
    assert state["activation"] == {"status": "ACTIVE"}
    assert status_of(iot, registered) == "ACTIVE"


def test_activating_twice_is_harmless(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "attach_principal")
    steps.run("activate_certificate", state)
    assert steps.run("activate_certificate", state) == {"status": "ACTIVE"}
    assert status_of(iot, registered) == "ACTIVE"


def test_attachment_for_another_thing_is_refused_and_the_certificate_stays_pending(
    steps: Steps, registered: Registered, iot: Any, record_calls: Callable[[Any], CallLog]
) -> None:
    state = steps.through(registered, "attach_principal")
    state["attachment"] = {**state["attachment"], "thingName": "someone-else"}
    calls = record_calls(steps.module("activate_certificate").clients.iot())
    with pytest.raises(InvalidStepInput, match="someone-else"):
        steps.run("activate_certificate", state)
    assert calls.operations == []
    assert status_of(iot, registered) == "PENDING_ACTIVATION"


def test_activation_without_an_attachment_is_invalid_step_input(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "create_thing")
    with pytest.raises(InvalidStepInput, match="attachment"):
        steps.run("activate_certificate", state)
    assert status_of(iot, registered) == "PENDING_ACTIVATION"
