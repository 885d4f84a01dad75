"""What every step's handler promises the state machine: its error names and the keys of its result."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from unittest import mock

import pytest
from botocore.exceptions import ClientError
from jitr_core.errors import AwsThrottled, AwsUnavailable

from jitr import pki
from tests.conftest import load_event

if TYPE_CHECKING:
    from tests.conftest import LambdaContext, Registered
    from tests.unit.conftest import Steps

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "registration.asl.json"

# Each step, its state name in the definition, and the sample input recorded from a real execution.
STEP_STATES = [
    ("parse_certificate", "ParseCertificate", "registration.json"),
    ("validate_certificate", "ValidateCertificate", "validate_certificate.json"),
    ("ensure_policy", "EnsurePolicy", "ensure_policy.json"),
    ("create_thing", "CreateThing", "create_thing.json"),
    ("attach_principal", "AttachPrincipal", "attach_principal.json"),
    ("activate_certificate", "ActivateCertificate", "activate_certificate.json"),
    ("compensate", "Compensate", "compensate.json"),
]


def aws_error(code: str, status: int) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "test"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "AnyOperation")


def selected_fields(state_name: str) -> set[str]:
    """The fields of the function's result that the state's ResultSelector reads ($.Payload.<field>)."""
    selector: dict[str, str] = json.loads(ASL.read_text())["States"][state_name]["ResultSelector"]
    fields = {path.removeprefix("$.Payload.") for path in selector.values()}
    assert all("." not in f and "$" not in f for f in fields), fields
    return fields


@pytest.mark.parametrize(
    ("error", "translated"),
    [
        pytest.param(aws_error("ThrottlingException", 400), AwsThrottled, id="throttled"),
        pytest.param(aws_error("ServiceUnavailableException", 503), AwsUnavailable, id="unavailable"),
    ],
)
@pytest.mark.parametrize(
    ("step", "event_file"), [(s, e) for s, _, e in STEP_STATES], ids=[s for s, _, _ in STEP_STATES]
)
def test_every_step_reports_transient_aws_errors_by_their_retryable_name(
    load_function: Callable[[str], ModuleType],
    lambda_context: LambdaContext,
    aws: None,
    step: str,
    event_file: str,
    error: ClientError,
    translated: type[Exception],
) -> None:
    module = load_function(step)
    with (
        mock.patch.object(module.clients.iot(), "_make_api_call", side_effect=error) as api,
        pytest.raises(translated),
    ):
        module.lambda_handler(load_event(event_file), lambda_context)
    assert api.called


def test_every_result_carries_the_keys_the_state_machine_selects(
    steps: Steps, register: Callable[..., Registered], ca: pki.Issued
) -> None:
    state = steps.through(register(pki.issue_device_certificate(ca, "device-keys-1")), "activate_certificate")
    results = {
        "ParseCertificate": state["certificate"],
        "ValidateCertificate": state["device"],
        "EnsurePolicy": state["policy"],
        "CreateThing": state["thing"],
        "AttachPrincipal": state["attachment"],
        "ActivateCertificate": state["activation"],
        "Compensate": steps.run("compensate", {**state, "error": {"Error": "States.Timeout", "Cause": None}}),
    }
    for state_name, result in results.items():
        assert selected_fields(state_name) <= set(result), state_name


def test_compensation_result_carries_the_outcome_the_choice_reads(
    steps: Steps, register: Callable[..., Registered], ca: pki.Issued
) -> None:
    definition = json.loads(ASL.read_text())
    (choice,) = definition["States"]["RejectedOrFailed"]["Choices"]
    assert choice["Variable"] == "$.compensation.outcome"
    state = steps.through(register(pki.issue_device_certificate(ca, "dev*")), "parse_certificate")
    result = steps.run("compensate", {**state, "error": {"Error": "ThingNameWildcard", "Cause": None}})
    assert result["outcome"] == choice["StringEquals"]


def test_two_interleaved_executions_both_succeed_with_one_thing_and_one_attachment_each(
    steps: Steps, other_steps: Steps, register: Callable[..., Registered], ca: pki.Issued, iot: Any
) -> None:
    registered = register(pki.issue_device_certificate(ca, "device-twice"))
    first: dict[str, Any] = registered.event()
    second: dict[str, Any] = registered.event()
    for name, key in (
        ("parse_certificate", "certificate"),
        ("validate_certificate", "device"),
        ("ensure_policy", "policy"),
        ("create_thing", "thing"),
        ("attach_principal", "attachment"),
        ("activate_certificate", "activation"),
    ):
        first = {**first, key: steps.run(name, first)}
        second = {**second, key: other_steps.run(name, second)}

    assert first["activation"] == second["activation"] == {"status": "ACTIVE"}
    assert [t["thingName"] for t in iot.list_things()["things"]] == ["device-twice"]
    assert iot.list_principal_things(principal=registered.certificate_arn)["things"] == ["device-twice"]
    policies = iot.list_attached_policies(target=registered.certificate_arn)["policies"]
    assert [p["policyName"] for p in policies] == ["jitr-device-policy"]
    assert len(iot.list_policy_versions(policyName="jitr-device-policy")["policyVersions"]) == 1
