"""AttachPrincipal: attach the device policy and the thing to the certificate.

Both calls are idempotent, so a retried step or a duplicate execution attaches each once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from jitr_core.aws import AwsClients
from jitr_core.handler import workflow_step
from jitr_core.models import Attachment, CertificateInfo, PolicyRef, StepInput, ThingRef, parse_state

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

logger = Logger()
tracer = Tracer()
clients = AwsClients()


class AttachInput(StepInput):
    certificate: CertificateInfo
    policy: PolicyRef
    thing: ThingRef


def attach(iot: IoTClient, certificate_arn: str, policy_name: str, thing_name: str) -> Attachment:
    iot.attach_policy(policyName=policy_name, target=certificate_arn)
    iot.attach_thing_principal(thingName=thing_name, principal=certificate_arn)
    return Attachment(policy_name=policy_name, thing_name=thing_name)


@workflow_step(logger, tracer)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(event, AttachInput)
    attachment = attach(
        clients.iot(), state.certificate.certificate_arn, state.policy.policy_name, state.thing.thing_name
    )
    logger.info("policy and thing attached", extra=attachment.to_state())
    return attachment.to_state()
