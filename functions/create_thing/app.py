"""CreateThing: create the device's thing, or adopt the one that already has its name.

A re-flashed device or a rotated certificate finds its thing already there: the new
certificate is attached to it, and the thing is never changed or, later, deleted. A new
thing gets the certificate's serial number, CA id and registration time as attributes, and
the configured thing type and thing group.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from jitr_core.aws import AwsClients, error_code
from jitr_core.handler import workflow_step
from jitr_core.models import CertificateInfo, DeviceIdentity, StepInput, ThingRef, parse_state
from jitr_core.settings import env_str

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

logger = Logger()
tracer = Tracer()
clients = AwsClients()


class CreateThingInput(StepInput):
    certificate: CertificateInfo
    device: DeviceIdentity


def thing_attributes(certificate: CertificateInfo) -> dict[str, str]:
    """Three attributes: what a thing without a type may hold and what identifies its certificate.

    Derived from the certificate only, so that duplicate events create identical things.
    """
    return {
        "serialNumber": certificate.serial_number,
        "caCertificateId": certificate.ca_certificate_id,
        "registeredAt": certificate.registered_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def thing_arn(certificate_arn: str, thing_name: str) -> str:
    """The thing's ARN, in the certificate's partition, region and account."""
    prefix = certificate_arn.split(":cert/", 1)[0]
    return f"{prefix}:thing/{thing_name}"


def create_or_adopt_thing(
    iot: IoTClient, certificate: CertificateInfo, thing_name: str, thing_type: str, thing_group: str
) -> ThingRef:
    request: dict[str, Any] = {
        "thingName": thing_name,
        "attributePayload": {"attributes": thing_attributes(certificate)},
    }
    if thing_type:
        request["thingTypeName"] = thing_type
    try:
        iot.create_thing(**request)
    except ClientError as exc:
        if error_code(exc) != "ResourceAlreadyExistsException":
            raise
        logger.info("thing already exists; attaching the certificate to it", extra={"thingName": thing_name})
        return ThingRef(
            thing_name=thing_name, thing_arn=thing_arn(certificate.certificate_arn, thing_name), created=False
        )
    if thing_group:
        try:
            iot.add_thing_to_thing_group(thingGroupName=thing_group, thingName=thing_name)
        except Exception:
            # The step failed, so compensation will not know of the thing: undo it here.
            iot.delete_thing(thingName=thing_name)
            raise
    return ThingRef(thing_name=thing_name, thing_arn=thing_arn(certificate.certificate_arn, thing_name), created=True)


@workflow_step(logger, tracer)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(event, CreateThingInput)
    thing = create_or_adopt_thing(
        clients.iot(),
        state.certificate,
        state.device.thing_name,
        env_str("THING_TYPE_NAME", ""),
        env_str("THING_GROUP_NAME", ""),
    )
    logger.info("thing ready", extra={"thingName": thing.thing_name, "thingCreated": thing.created})
    return thing.to_state()
