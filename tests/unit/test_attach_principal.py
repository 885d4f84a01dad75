"""AttachPrincipal: attach the device policy and the thing to the certificate, once each."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest
from jitr_core.errors import InvalidStepInput

from jitr import pki
from tests.unit.registry import POLICY, attached_policies, attached_things, status_of

if TYPE_CHECKING:
    from tests.conftest import Registered
    from tests.unit.conftest import Steps


@pytest.fixture
def registered(register: Callable[..., Registered], ca: pki.Issued) -> Registered:
    return register(pki.issue_device_certificate(ca, "device-aa-1"))


def test_policy_and_thing_are_attached_to_the_certificate(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "create_thing")
    assert steps.run("attach_principal", state) == {"policyName": POLICY, "thingName": "device-aa-1"}
    assert attached_policies(iot, registered) == [POLICY]
    assert attached_things(iot, registered) == ["device-aa-1"]
    assert iot.list_thing_principals(thingName="device-aa-1")["principals"] == [registered.certificate_arn]


def test_attaching_twice_leaves_one_of_each(steps: Steps, registered: Registered, iot: Any) -> None:
    state = steps.through(registered, "create_thing")
    first = steps.run("attach_principal", state)
    assert steps.run("attach_principal", state) == first
    assert attached_policies(iot, registered) == [POLICY]
    assert attached_things(iot, registered) == ["device-aa-1"]


def test_attach_leaves_the_certificate_pending(steps: Steps, registered: Registered, iot: Any) -> None:
    steps.through(registered, "attach_principal")
    assert status_of(iot, registered) == "PENDING_ACTIVATION"


def test_attach_without_the_thing_in_the_state_is_invalid_step_input(
    steps: Steps, registered: Registered, iot: Any
) -> None:
    state = steps.through(registered, "create_thing")
    del state["thing"]
    with pytest.raises(InvalidStepInput, match="thing"):
        steps.run("attach_principal", state)
    assert attached_policies(iot, registered) == []
