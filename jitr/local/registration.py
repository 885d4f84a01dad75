"""Register a device certificate on the local stack as AWS IoT would, and report what the workflow did."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509
from jitr_core.certificates import certificate_id

from jitr.local import executions
from jitr.local.errors import LocalRuntimeError, TemplateError
from jitr.local.stack import ACCOUNT_ID, LocalStack

REGISTRATION_TOPIC_PREFIX = "$aws/events/certificates/registered/"
EXECUTION_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class RegistrationResult:
    """What one registration ended with, as ``jitr simulate`` prints it."""

    outcome: str  # ACTIVATED | REJECTED | FAILED
    certificate_id: str
    certificate_status: str
    thing_name: str | None
    policies: list[str]
    states: list[str]
    error: dict[str, str] | None
    execution_arn: str
    state_transitions: int

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {
            "outcome": data["outcome"],
            "certificateId": data["certificate_id"],
            "certificateStatus": data["certificate_status"],
            "thingName": data["thing_name"],
            "policies": data["policies"],
            "states": data["states"],
            "error": data["error"],
            "executionArn": data["execution_arn"],
            "stateTransitions": data["state_transitions"],
        }


class LocalIot:
    """What AWS IoT does around a registration, on a ``LocalStack``."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.iot = stack.client("iot")
        self.sfn = stack.client("stepfunctions")

    def register_ca(self, ca_pem: str) -> str:
        """Register a CA as ACTIVE with auto-registration on (what the operator does once)."""
        existing = certificate_id(x509.load_pem_x509_certificate(ca_pem.encode()))
        try:
            self.iot.describe_ca_certificate(certificateId=existing)
        except self.iot.exceptions.ResourceNotFoundException:
            return str(
                self.iot.register_ca_certificate(caCertificate=ca_pem, setAsActive=True, allowAutoRegistration=True)[
                    "certificateId"
                ]
            )
        return existing

    def register_device_certificate(self, cert_pem: str, ca_pem: str) -> str:
        """What AWS IoT does on the first CONNECT: register the certificate as PENDING_ACTIVATION."""
        cert_id = certificate_id(x509.load_pem_x509_certificate(cert_pem.encode()))
        try:
            self.iot.describe_certificate(certificateId=cert_id)
        except self.iot.exceptions.ResourceNotFoundException:
            self.iot.register_certificate(certificatePem=cert_pem, caCertificatePem=ca_pem, status="PENDING_ACTIVATION")
        return cert_id

    @staticmethod
    def registration_event(cert_id: str, ca_id: str) -> dict[str, Any]:
        """The event AWS IoT publishes on ``$aws/events/certificates/registered/<caId>``."""
        return {
            "certificateId": cert_id,
            "caCertificateId": ca_id,
            "timestamp": int(time.time() * 1000),
            "certificateStatus": "PENDING_ACTIVATION",
            "awsAccountId": ACCOUNT_ID,
            "certificateRegistrationTimestamp": None,
        }

    def start_registration(self, event: dict[str, Any]) -> str:
        """Publish the registration event as AWS IoT does; the template's rule starts the workflow."""
        topic = f"{REGISTRATION_TOPIC_PREFIX}{event.get('caCertificateId') or ''}"
        for delivery in self.stack.rules.publish(topic, event):
            if delivery.action == "StepFunctions":
                return delivery.target
        raise TemplateError(f"the template has no rule on {topic} with a StepFunctions action")

    def wait(self, execution_arn: str, timeout: float = EXECUTION_TIMEOUT_SECONDS) -> dict[str, Any]:
        """Wait for an execution to end; a bounded wait, never a hang."""
        deadline = time.monotonic() + timeout
        while True:
            description: dict[str, Any] = self.sfn.describe_execution(executionArn=execution_arn)
            if description["status"] != "RUNNING":
                return description
            if time.monotonic() > deadline:
                raise LocalRuntimeError(f"execution {execution_arn} still running after {timeout:.0f}s")
            time.sleep(0.02)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        return executions.history(self.sfn, execution_arn)

    def result(self, cert_id: str, execution_arn: str) -> RegistrationResult:
        description = self.wait(execution_arn)
        events = self.history(execution_arn)
        states = executions.execution_path(events)
        cert = self.iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
        things = self.iot.list_principal_things(principal=cert["certificateArn"])["things"]
        policies = [p["policyName"] for p in self.iot.list_attached_policies(target=cert["certificateArn"])["policies"]]
        error = None
        if description["status"] != "SUCCEEDED":
            error = {"Error": description.get("error", description["status"]), "Cause": description.get("cause", "")}
        return RegistrationResult(
            outcome=_outcome(description["status"], states),
            certificate_id=cert_id,
            certificate_status=cert["status"],
            thing_name=things[0] if things else None,
            policies=sorted(policies),
            states=states,
            error=error,
            execution_arn=execution_arn,
            state_transitions=len(states),
        )

    def register(self, cert_pem: str, ca_pem: str) -> RegistrationResult:
        """Everything from the device's first CONNECT to the workflow's end."""
        ca_id = self.register_ca(ca_pem)
        cert_id = self.register_device_certificate(cert_pem, ca_pem)
        execution_arn = self.start_registration(self.registration_event(cert_id, ca_id))
        return self.result(cert_id, execution_arn)


def _outcome(status: str, states: list[str]) -> str:
    if status == "SUCCEEDED":
        return "ACTIVATED"
    if states and states[-1] == "RegistrationRejected":
        return "REJECTED"
    return "FAILED"
