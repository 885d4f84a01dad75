"""Compensate: undo what this execution did, and leave the certificate unusable.

Runs when any step failed. In order: the certificate leaves PENDING_ACTIVATION/ACTIVE for
INACTIVE (REVOKED when the CRL named it), so no device connects with a half-made
registration; then the policy and thing attachments this execution may have made are
detached; then the thing is deleted, only when this execution created it and no other
certificate uses it. A failure before the certificate was read (a malformed event, an unknown
certificate) writes nothing. The result's ``outcome`` picks the execution's final state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from jitr_core.aws import AwsClients, error_code
from jitr_core.errors import CertificateRevoked, is_rejection
from jitr_core.handler import workflow_step
from jitr_core.models import (
    CertificateInfo,
    CompensationResult,
    Model,
    PolicyRef,
    StepError,
    ThingRef,
    parse_state,
)
from jitr_core.registry import is_fully_registered
from jitr_core.settings import env_str

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()

# Statuses compensation moves away from; any other status (INACTIVE, REVOKED...) is left alone.
LIVE_STATUSES = frozenset({"PENDING_ACTIVATION", "ACTIVE"})


class CompensateInput(Model):
    """Whatever state the failed step left; a malformed event must still be compensated (with nothing)."""

    error: StepError
    certificate: CertificateInfo | None = None
    policy: PolicyRef | None = None
    thing: ThingRef | None = None


def _ignoring_not_found(call: Any, **kwargs: Any) -> bool:
    """Run an undo call; False when there was nothing to undo."""
    try:
        call(**kwargs)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return False
        raise
    return True


def disable_certificate(iot: IoTClient, certificate_id: str, revoked: bool) -> str:
    """Move a live certificate to INACTIVE or REVOKED; never downgrade REVOKED."""
    status = str(iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["status"])
    target = "REVOKED" if revoked else "INACTIVE"
    if status in LIVE_STATUSES or (revoked and status == "INACTIVE"):
        iot.update_certificate(certificateId=certificate_id, newStatus=target)  # type: ignore[arg-type]
        return target
    return status


def registration_complete(iot: IoTClient, certificate: CertificateInfo, policy_name: str) -> bool:
    """True when the certificate is ACTIVE with its thing and policy, whoever finished it.

    A duplicate execution may have completed the registration while this one was failing
    (AWS IoT repeats the event while a device retries), or this execution's own activation
    went through before its Lambda failed. Either way, undoing it would lock the device out:
    no new event comes for an INACTIVE certificate.
    """
    status = iot.describe_certificate(certificateId=certificate.certificate_id)["certificateDescription"]["status"]
    return status == "ACTIVE" and is_fully_registered(iot, certificate.certificate_arn, policy_name)


def compensate(iot: IoTClient, state: CompensateInput, policy_name: str) -> CompensationResult:
    error_name = state.error.Error
    outcome: Literal["REJECTED", "FAILED"] = "REJECTED" if is_rejection(error_name) else "FAILED"
    if state.certificate is None:
        return CompensationResult(outcome=outcome, certificate_status=None, undone=[])
    certificate = state.certificate
    revoked = error_name == CertificateRevoked.__name__
    if not revoked and registration_complete(iot, certificate, policy_name):
        return CompensationResult(
            outcome=outcome,
            certificate_status="ACTIVE",
            undone=["nothing: the registration is complete (ACTIVE with its thing and policy)"],
        )
    undone: list[str] = []
    status = disable_certificate(iot, certificate.certificate_id, revoked=revoked)
    undone.append(f"certificate {status}")
    # A thing in the state means CreateThing finished: the failed step was AttachPrincipal or
    # ActivateCertificate, and either attachment may exist.
    if state.thing is not None:
        if state.policy is not None and _ignoring_not_found(
            iot.detach_policy, policyName=state.policy.policy_name, target=certificate.certificate_arn
        ):
            undone.append(f"policy {state.policy.policy_name} detached")
        if _ignoring_not_found(
            iot.detach_thing_principal, thingName=state.thing.thing_name, principal=certificate.certificate_arn
        ):
            undone.append(f"thing {state.thing.thing_name} detached")
        if state.thing.created:
            undone.extend(delete_thing_if_unused(iot, state.thing.thing_name, certificate.certificate_arn))
    return CompensationResult(outcome=outcome, certificate_status=status, undone=undone)


def delete_thing_if_unused(iot: IoTClient, thing_name: str, own_certificate_arn: str) -> list[str]:
    """Delete a thing this execution created, unless another certificate has been attached to it.

    Detaching is asynchronous on AWS: the listing may still show this execution's own
    certificate for a while, which does not count as another user of the thing.
    """
    try:
        principals = iot.list_thing_principals(thingName=thing_name)["principals"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return []
        raise
    if [p for p in principals if p != own_certificate_arn]:
        logger.warning("thing kept: other certificates are attached", extra={"thingName": thing_name})
        return []
    iot.delete_thing(thingName=thing_name)
    return [f"thing {thing_name} deleted"]


@workflow_step(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(event, CompensateInput)
    result = compensate(clients.iot(), state, env_str("DEVICE_POLICY_NAME"))
    if result.outcome == "REJECTED":
        metrics.add_metric(name="RegistrationsRejected", unit=MetricUnit.Count, value=1)
        with single_metric(
            name="RegistrationsRejectedByReason",
            unit=MetricUnit.Count,
            value=1,
            default_dimensions=metrics.default_dimensions,
        ) as by_reason:
            by_reason.add_dimension(name="reason", value=state.error.Error)
    else:
        metrics.add_metric(name="RegistrationsFailed", unit=MetricUnit.Count, value=1)
    logger.info(
        "registration undone",
        extra={"error": state.error.Error, "cause": state.error.Cause, **result.to_state()},
    )
    return result.to_state()
