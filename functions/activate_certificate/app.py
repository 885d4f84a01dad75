"""ActivateCertificate: the workflow's last write, made only once thing and policy are attached."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from jitr_core.aws import AwsClients
from jitr_core.errors import InvalidStepInput
from jitr_core.handler import workflow_step
from jitr_core.models import Attachment, CertificateInfo, DeviceIdentity, StepInput, parse_state

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()


class ActivateInput(StepInput):
    certificate: CertificateInfo
    device: DeviceIdentity
    attachment: Attachment


def activate(iot: IoTClient, state: ActivateInput) -> str:
    """Set the certificate ACTIVE; refuse when the attachment is not the device's own."""
    if state.attachment.thing_name != state.device.thing_name:
        raise InvalidStepInput(
            f"attachment is for thing {state.attachment.thing_name!r}, the device is {state.device.thing_name!r}"
        )
    iot.update_certificate(certificateId=state.certificate.certificate_id, newStatus="ACTIVE")
    return "ACTIVE"


@workflow_step(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(event, ActivateInput)
    status = activate(clients.iot(), state)
    metrics.add_metric(name="RegistrationsActivated", unit=MetricUnit.Count, value=1)
    logger.info("certificate activated", extra={"thingName": state.device.thing_name})
    return {"status": status}
