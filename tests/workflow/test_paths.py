"""One test per path through the state machine, on the real ASL, template and handlers."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from jitr_core.certificates import certificate_id

from jitr import pki
from jitr.local.registration import LocalIot
from tests.workflow.conftest import Workflow

pytestmark = pytest.mark.workflow

HAPPY_PATH = [
    "ParseCertificate",
    "IsAlreadyRegistered",
    "ValidateCertificate",
    "EnsurePolicy",
    "CreateThing",
    "AttachPrincipal",
    "ActivateCertificate",
    "Registered",
]
REJECTED_AFTER_VALIDATION = [
    "ParseCertificate",
    "IsAlreadyRegistered",
    "ValidateCertificate",
    "Compensate",
    "RejectedOrFailed",
    "RegistrationRejected",
]


def test_valid_certificate_is_activated_with_its_thing_and_policy(workflow: Workflow) -> None:
    device = workflow.device("sensor-42")

    result = workflow.register(device)

    assert result.outcome == "ACTIVATED"
    assert result.states == HAPPY_PATH
    assert result.certificate_status == "ACTIVE"
    assert result.thing_name == "sensor-42"
    assert result.policies == ["jitr-device-policy"]
    attributes = workflow.iot.describe_thing(thingName="sensor-42")["attributes"]
    assert attributes["serialNumber"] == format(device.certificate.serial_number, "x")
    assert attributes["caCertificateId"] == certificate_id(workflow.ca.certificate)
    assert workflow.task_failures(result) == []


def test_happy_path_stays_within_eight_state_transitions(workflow: Workflow) -> None:
    result = workflow.register(workflow.device())

    assert result.state_transitions <= 8


def test_warm_registration_makes_exactly_the_five_iot_calls(workflow: Workflow) -> None:
    workflow.register(workflow.device())  # cold: reads the CA and ensures the policy
    workflow.stack.api_calls.clear()

    result = workflow.register(workflow.device())

    assert result.outcome == "ACTIVATED"
    assert sorted(workflow.stack.api_call_counts().elements()) == [
        "iot:AttachPolicy",
        "iot:AttachThingPrincipal",
        "iot:CreateThing",
        "iot:DescribeCertificate",
        "iot:UpdateCertificate",
    ]


@pytest.mark.parametrize(
    ("common_name", "error"),
    [
        ("device-*", "ThingNameWildcard"),
        ("dev-${iot:ClientId}", "ThingNamePolicyVariable"),
        ("fleet/device-1", "ThingNameTopicCharacter"),
        ("device#1", "ThingNameTopicCharacter"),
        ("device 1", "ThingNameInvalid"),
    ],
)
def test_illegal_common_name_is_rejected_and_left_inactive(workflow: Workflow, common_name: str, error: str) -> None:
    result = workflow.register(workflow.device(common_name))

    assert result.outcome == "REJECTED"
    assert result.states == REJECTED_AFTER_VALIDATION
    assert result.error is not None
    assert result.error["Error"] == error
    assert result.certificate_status == "INACTIVE"
    assert result.thing_name is None
    assert result.policies == []
    assert workflow.thing_names() == []


def test_certificate_without_common_name_is_rejected(workflow: Workflow) -> None:
    result = workflow.register(pki.issue_device_certificate(workflow.ca, None))

    assert result.outcome == "REJECTED"
    assert result.error is not None
    assert result.error["Error"] == "CommonNameMissing"


def test_certificate_with_two_common_names_is_rejected(workflow: Workflow) -> None:
    result = workflow.register(pki.issue_device_certificate(workflow.ca, ["device-a", "device-b"]))

    assert result.error is not None
    assert result.error["Error"] == "CommonNameAmbiguous"


def test_rejection_is_never_retried(workflow: Workflow) -> None:
    result = workflow.register(workflow.device("device-*"))

    scheduled = [e for e in workflow.history(result) if e["type"] == "TaskScheduled"]
    assert workflow.task_failures(result) == ["ThingNameWildcard"]
    assert len(scheduled) == 3  # ParseCertificate, ValidateCertificate, Compensate


def test_expired_certificate_is_rejected(workflow: Workflow) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    result = workflow.register(workflow.device(not_before=past, not_after=past + timedelta(days=1)))

    assert result.outcome == "REJECTED"
    assert result.error is not None
    assert result.error["Error"] == "CertificateExpired"
    assert result.certificate_status == "INACTIVE"


def test_not_yet_valid_certificate_is_rejected(workflow: Workflow) -> None:
    result = workflow.register(workflow.device(not_before=datetime.now(UTC) + timedelta(days=1)))

    assert result.error is not None
    assert result.error["Error"] == "CertificateNotYetValid"


def test_ca_outside_the_allow_list_is_rejected(start_workflow: Callable[..., Workflow], other_ca: pki.Issued) -> None:
    workflow = start_workflow(AllowedCaCertificateIds=certificate_id(other_ca.certificate))

    result = workflow.register(workflow.device())

    assert result.outcome == "REJECTED"
    assert result.error is not None
    assert result.error["Error"] == "CaNotAllowed"


def test_ca_on_the_allow_list_is_accepted(start_workflow: Callable[..., Workflow], ca: pki.Issued) -> None:
    workflow = start_workflow(AllowedCaCertificateIds=certificate_id(ca.certificate))

    assert workflow.register(workflow.device()).outcome == "ACTIVATED"


def test_inactive_ca_is_rejected(workflow: Workflow) -> None:
    device = workflow.device()
    ca_id = workflow.local.register_ca(workflow.ca.cert_pem)
    workflow.iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")

    result = workflow.register(device)

    assert result.error is not None
    assert result.error["Error"] == "CaNotActive"
    assert result.certificate_status == "INACTIVE"


def test_certificate_not_signed_by_its_ca_is_rejected(workflow: Workflow, other_ca: pki.Issued) -> None:
    impostor = pki.Issued(workflow.ca.certificate, other_ca.key)  # the CA's name, another key
    result = workflow.register(pki.issue_device_certificate(impostor, "device-impostor"))

    assert result.outcome == "REJECTED"
    assert result.error is not None
    assert result.error["Error"] == "SignatureInvalid"


def _workflow_with_crl(start: Callable[..., Workflow], crl: bytes | None, **overrides: str) -> Workflow:
    workflow = start(CrlBucket="crl-bucket", **overrides)
    s3 = workflow.stack.client("s3")
    s3.create_bucket(Bucket="crl-bucket")
    if crl is not None:
        s3.put_object(Bucket="crl-bucket", Key="crl.pem", Body=crl)
    return workflow


def test_revoked_certificate_is_set_revoked(start_workflow: Callable[..., Workflow], ca: pki.Issued) -> None:
    device = pki.issue_device_certificate(ca, "device-revoked")
    workflow = _workflow_with_crl(start_workflow, pki.crl_bytes(pki.create_crl(ca, [device.certificate.serial_number])))

    result = workflow.register(device)

    assert result.outcome == "REJECTED"
    assert result.states == REJECTED_AFTER_VALIDATION
    assert result.error is not None
    assert result.error["Error"] == "CertificateRevoked"
    assert result.certificate_status == "REVOKED"


def test_certificate_absent_from_a_der_crl_is_activated(
    start_workflow: Callable[..., Workflow], ca: pki.Issued
) -> None:
    workflow = _workflow_with_crl(start_workflow, pki.crl_bytes(pki.create_crl(ca, [12345]), der=True))

    assert workflow.register(workflow.device()).outcome == "ACTIVATED"


def test_unreachable_crl_fails_closed(start_workflow: Callable[..., Workflow]) -> None:
    workflow = _workflow_with_crl(start_workflow, None)

    result = workflow.register(workflow.device())

    assert result.outcome == "REJECTED"
    assert result.error is not None
    assert result.error["Error"] == "CrlUnavailable"
    assert result.certificate_status == "INACTIVE"


def test_unreachable_crl_fails_open_when_configured(start_workflow: Callable[..., Workflow]) -> None:
    workflow = _workflow_with_crl(start_workflow, None, CrlFailOpen="true")

    assert workflow.register(workflow.device()).outcome == "ACTIVATED"


def test_crl_signed_by_another_key_is_rejected(
    start_workflow: Callable[..., Workflow], ca: pki.Issued, other_ca: pki.Issued
) -> None:
    forged = pki.crl_bytes(pki.create_crl(ca, [], signing_key=other_ca.key))
    workflow = _workflow_with_crl(start_workflow, forged)

    result = workflow.register(workflow.device())

    assert result.error is not None
    assert result.error["Error"] == "CrlInvalid"


def test_crl_is_fetched_once_per_warm_function(start_workflow: Callable[..., Workflow], ca: pki.Issued) -> None:
    workflow = _workflow_with_crl(start_workflow, pki.crl_bytes(pki.create_crl(ca, [])))

    for _ in range(3):
        assert workflow.register(workflow.device()).outcome == "ACTIVATED"

    counts = workflow.stack.api_call_counts()
    assert counts["s3:GetObject"] == 1
    assert counts["iot:DescribeCACertificate"] == 1


def test_serial_number_can_name_the_thing(start_workflow: Callable[..., Workflow]) -> None:
    workflow = start_workflow(ThingNameSource="SerialNumber")
    device = workflow.device("not a valid thing name")

    result = workflow.register(device)

    assert result.outcome == "ACTIVATED"
    assert result.thing_name == format(device.certificate.serial_number, "x")


def test_thing_name_pattern_is_enforced(start_workflow: Callable[..., Workflow]) -> None:
    workflow = start_workflow(ThingNamePattern="^fleet-a-[0-9]+$")

    accepted = workflow.register(workflow.device("fleet-a-17"))
    rejected = workflow.register(workflow.device("fleet-b-17"))

    assert accepted.outcome == "ACTIVATED"
    assert rejected.error is not None
    assert rejected.error["Error"] == "ThingNamePatternMismatch"


def test_thing_group_parameter_puts_new_things_in_the_group(start_workflow: Callable[..., Workflow]) -> None:
    workflow = start_workflow(ThingGroupName="sensors")
    workflow.iot.create_thing_group(thingGroupName="sensors")

    result = workflow.register(workflow.device("grouped-1"))

    assert result.outcome == "ACTIVATED"
    groups = workflow.iot.list_thing_groups_for_thing(thingName="grouped-1")["thingGroups"]
    assert [g["groupName"] for g in groups] == ["sensors"]


@pytest.mark.parametrize(
    ("service", "operation", "failed_state"),
    [
        ("iot", "CreatePolicy", "EnsurePolicy"),
        ("iot", "CreateThing", "CreateThing"),
        ("iot", "AttachThingPrincipal", "AttachPrincipal"),
        ("iot", "UpdateCertificate", "ActivateCertificate"),
    ],
)
def test_failure_at_a_write_step_is_compensated(
    workflow: Workflow, service: str, operation: str, failed_state: str
) -> None:
    workflow.stack.inject_fault(service, operation, "AccessDeniedException")

    result = workflow.register(workflow.device("device-undone"))

    assert result.outcome == "FAILED"
    assert result.states[-4:] == [failed_state, "Compensate", "RejectedOrFailed", "RegistrationFailed"]
    assert result.error is not None
    assert result.error["Error"] == "ClientError"
    assert "AccessDeniedException" in result.error["Cause"]
    assert result.certificate_status == "INACTIVE"
    assert result.policies == []
    assert result.thing_name is None
    assert workflow.thing_names() == []


def test_throttled_call_is_retried_then_succeeds(workflow: Workflow) -> None:
    workflow.stack.inject_fault("iot", "CreateThing", "ThrottlingException")

    result = workflow.register(workflow.device())

    assert result.outcome == "ACTIVATED"
    assert workflow.task_failures(result) == ["AwsThrottled"]
    assert result.states.count("CreateThing") == 1  # a retry stays within the state


def test_lambda_service_error_is_retried(workflow: Workflow) -> None:
    workflow.stack.inject_fault("iot", "DescribeCertificate", "ServiceUnavailableException")

    result = workflow.register(workflow.device())

    assert result.outcome == "ACTIVATED"
    assert workflow.task_failures(result) == ["AwsUnavailable"]


def test_duplicate_event_after_activation_changes_nothing(workflow: Workflow) -> None:
    device = workflow.device("device-dup")
    first = workflow.register(device)
    workflow.stack.api_calls.clear()

    second = workflow.register(device)

    assert first.outcome == second.outcome == "ACTIVATED"
    assert second.states == ["ParseCertificate", "IsAlreadyRegistered", "AlreadyRegistered"]
    assert workflow.writes() == []
    assert workflow.thing_names() == ["device-dup"]


def test_concurrent_duplicate_events_end_with_one_registration(workflow: Workflow) -> None:
    device = workflow.device("device-race")
    local: LocalIot = workflow.local
    ca_id = local.register_ca(workflow.ca.cert_pem)
    cert_id = local.register_device_certificate(device.cert_pem, workflow.ca.cert_pem)
    event = local.registration_event(cert_id, ca_id)

    arns: list[str] = []
    starters = [threading.Thread(target=lambda: arns.append(local.start_registration(event))) for _ in range(2)]
    for starter in starters:
        starter.start()
    for starter in starters:
        starter.join()
    results = [local.result(cert_id, arn) for arn in arns]

    assert [r.outcome for r in results] == ["ACTIVATED", "ACTIVATED"]
    assert workflow.thing_names() == ["device-race"]
    assert len(workflow.iot.list_thing_principals(thingName="device-race")["principals"]) == 1
    assert results[-1].policies == ["jitr-device-policy"]
    assert results[-1].certificate_status == "ACTIVE"


def test_existing_thing_is_adopted_not_duplicated(workflow: Workflow) -> None:
    old = workflow.register(workflow.device("device-reflashed"))
    attributes_before = workflow.iot.describe_thing(thingName="device-reflashed")["attributes"]

    new = workflow.register(workflow.device("device-reflashed"))

    assert old.outcome == new.outcome == "ACTIVATED"
    assert workflow.thing_names() == ["device-reflashed"]
    assert workflow.iot.describe_thing(thingName="device-reflashed")["attributes"] == attributes_before
    assert len(workflow.iot.list_thing_principals(thingName="device-reflashed")["principals"]) == 2


def test_failed_registration_never_deletes_a_thing_it_did_not_create(workflow: Workflow) -> None:
    old = workflow.register(workflow.device("device-kept"))
    workflow.stack.inject_fault("iot", "UpdateCertificate", "AccessDeniedException")

    new = workflow.register(workflow.device("device-kept"))

    assert new.outcome == "FAILED"
    assert new.certificate_status == "INACTIVE"
    assert workflow.thing_names() == ["device-kept"]
    principals = workflow.iot.list_thing_principals(thingName="device-kept")["principals"]
    old_arn = workflow.iot.describe_certificate(certificateId=old.certificate_id)["certificateDescription"][
        "certificateArn"
    ]
    assert principals == [old_arn]


def test_failed_compensation_fails_loudly_and_never_activates(workflow: Workflow) -> None:
    workflow.stack.inject_fault("iot", "UpdateCertificate", "AccessDeniedException", times=2)

    result = workflow.register(workflow.device())

    assert result.outcome == "FAILED"
    assert result.states[-2:] == ["Compensate", "CompensationFailed"]
    assert result.error is not None
    assert result.error["Error"] == "CompensationFailed"
    assert result.certificate_status != "ACTIVE"


def test_malformed_event_fails_with_a_named_error_and_writes_nothing(workflow: Workflow) -> None:
    arn = workflow.local.start_registration({"certificateId": "not-an-id", "timestamp": "yesterday"})

    description = workflow.local.wait(arn)

    assert description["status"] == "FAILED"
    assert description["error"] == "InvalidRegistrationEvent"
    assert "caCertificateId" in description["cause"]
    assert workflow.writes() == []


def test_unknown_certificate_fails_with_a_named_error_and_writes_nothing(workflow: Workflow) -> None:
    event = LocalIot.registration_event("ab" * 32, "cd" * 32)

    description = workflow.local.wait(workflow.local.start_registration(event))

    assert description["status"] == "FAILED"
    assert description["error"] == "CertificateNotFound"
    assert workflow.writes() == []


def test_late_event_for_an_inactive_certificate_is_rejected_without_writes(workflow: Workflow) -> None:
    rejected = workflow.register(workflow.device("device-*"))
    assert rejected.certificate_status == "INACTIVE"
    workflow.stack.api_calls.clear()
    cert_pem = workflow.iot.describe_certificate(certificateId=rejected.certificate_id)["certificateDescription"]
    event = LocalIot.registration_event(rejected.certificate_id, certificate_id(workflow.ca.certificate))

    description = workflow.local.wait(workflow.local.start_registration(event))

    assert cert_pem["status"] == "INACTIVE"
    assert description["error"] == "CertificateNotPending"
    assert workflow.writes() == []


def test_fail_state_carries_the_original_error_and_cause(workflow: Workflow) -> None:
    result = workflow.register(workflow.device("device-*"))

    assert result.error is not None
    cause = json.loads(result.error["Cause"])
    assert cause["errorType"] == "ThingNameWildcard"
    assert "wildcard" in cause["errorMessage"]


def granted_actions(logical_id: str) -> set[str]:
    from jitr.local.template import load_template
    from tests.workflow.test_definition import ROOT, _as_list, _statements

    function = load_template(ROOT / "template.yaml")["Resources"][logical_id]
    return {
        action
        for policy in function["Properties"]["Policies"]
        for statement in _statements(policy)
        for action in _as_list(statement.get("Action", []))
    }


def test_each_function_is_granted_every_call_it_makes(start_workflow: Callable[..., Workflow], ca: pki.Issued) -> None:
    workflow = _workflow_with_crl(start_workflow, pki.crl_bytes(pki.create_crl(ca, [])), ThingGroupName="group")
    workflow.iot.create_thing_group(thingGroupName="group")
    device = workflow.device("device-iam")
    workflow.register(device)
    workflow.register(device)  # the duplicate check's reads
    workflow.stack.inject_fault("iot", "UpdateCertificate", "AccessDeniedException")
    workflow.register(workflow.device("device-iam-2"))  # compensation of a created, attached thing

    for function in {call.function for call in workflow.stack.api_calls}:
        called = {f"{c.service}:{c.operation}" for c in workflow.stack.api_calls if c.function == function}
        assert called <= granted_actions(function), function
