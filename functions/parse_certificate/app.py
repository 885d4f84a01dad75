"""ParseCertificate: read the certificate AWS IoT just registered, and spot duplicate events.

The registration event carries no PEM, so DescribeCertificate is the one way to read the
subject. A device that keeps reconnecting repeats the event: when the certificate is already
ACTIVE with a thing and the device policy attached, the workflow ends without writing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from jitr_core.aws import AwsClients, error_code
from jitr_core.certificates import common_names, load_pem_certificate, serial_hex
from jitr_core.errors import CertificateNotFound, CertificateNotPending, InvalidRegistrationEvent
from jitr_core.handler import workflow_step
from jitr_core.models import CertificateInfo, RegistrationEvent, parse_registration_event
from jitr_core.registry import is_fully_registered
from jitr_core.settings import env_str

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

logger = Logger()
tracer = Tracer()
clients = AwsClients()

WORKABLE_STATUSES = frozenset({"PENDING_ACTIVATION", "ACTIVE"})


def describe_certificate(iot: IoTClient, certificate_id: str) -> dict[str, Any]:
    try:
        description: dict[str, Any] = dict(
            iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]
        )
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise CertificateNotFound(f"AWS IoT has no certificate with id {certificate_id}") from None
        raise
    return description


def read_certificate(iot: IoTClient, event: RegistrationEvent, policy_name: str) -> CertificateInfo:
    """DescribeCertificate, parse the PEM, and decide whether the registration is already done."""
    description = describe_certificate(iot, event.certificate_id)
    ca_id = description.get("caCertificateId") or event.ca_certificate_id
    if ca_id != event.ca_certificate_id:
        raise InvalidRegistrationEvent(
            f"the event names CA {event.ca_certificate_id} but certificate {event.certificate_id} belongs to CA {ca_id}"
        )
    status = str(description["status"])
    if status not in WORKABLE_STATUSES:
        raise CertificateNotPending(
            f"certificate {event.certificate_id} is {status}; only PENDING_ACTIVATION is registered"
        )
    cert = load_pem_certificate(description["certificatePem"])
    arn = str(description["certificateArn"])
    return CertificateInfo(
        certificate_id=event.certificate_id,
        certificate_arn=arn,
        ca_certificate_id=event.ca_certificate_id,
        status=status,
        pem=description["certificatePem"],
        serial_number=serial_hex(cert),
        common_names=common_names(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        registered_at=description["creationDate"],
        already_registered=status == "ACTIVE" and is_fully_registered(iot, arn, policy_name),
    )


@workflow_step(logger, tracer)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    registration = parse_registration_event(event)
    info = read_certificate(clients.iot(), registration, env_str("DEVICE_POLICY_NAME"))
    logger.info(
        "certificate read",
        extra={"status": info.status, "commonNames": info.common_names, "alreadyRegistered": info.already_registered},
    )
    return info.to_state()
