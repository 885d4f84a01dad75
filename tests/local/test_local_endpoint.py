"""The AWS API endpoint of `jitr local up`: the services answer, the template is deployed, AWS IoT behaves as AWS."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.serialization import Encoding
from moto.iot.models import iot_backends

from jitr import pki
from jitr.local.server import LocalEndpoint

Aws = Callable[[str], Any]


def der_id(issued: pki.Issued) -> str:
    return hashlib.sha256(issued.certificate.public_bytes(Encoding.DER)).hexdigest()


def register_ca(aws: Aws, ca: pki.Issued, **kwargs: Any) -> str:
    return str(
        aws("iot").register_ca_certificate(caCertificate=ca.cert_pem, setAsActive=True, **kwargs)["certificateId"]
    )


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_ready_line_lists_the_endpoints(endpoint: LocalEndpoint) -> None:
    assert endpoint.ready_line() == (
        f"jitr local ready api=http://127.0.0.1:{endpoint.stack.api_port}"
        f" mqtt=127.0.0.1:{endpoint.mqtt_port} cafile={endpoint.state_dir / 'server-ca.pem'}"
    )
    assert endpoint.stack.api_port > 0
    assert endpoint.mqtt_port > 0
    assert endpoint.state_dir.is_dir()


def test_the_services_answer(aws: Aws) -> None:
    assert aws("sts").get_caller_identity()["Account"] == "123456789012"
    assert "certificates" in aws("iot").list_certificates()
    assert aws("stepfunctions").list_state_machines()["stateMachines"]
    assert aws("lambda").list_functions()["Functions"]
    assert aws("iam").list_roles()["Roles"]
    aws("sqs").create_queue(QueueName="local-probe")
    assert any(url.endswith("/local-probe") for url in aws("sqs").list_queues()["QueueUrls"])
    aws("s3").create_bucket(Bucket="local-probe")
    assert "local-probe" in [b["Name"] for b in aws("s3").list_buckets()["Buckets"]]


def test_the_template_is_deployed(endpoint: LocalEndpoint, aws: Aws) -> None:
    template = endpoint.stack.template
    machine = template.state_machine()
    functions = {f["FunctionName"]: f for f in aws("lambda").list_functions()["Functions"]}
    assert set(functions) == {spec.name for spec in template.functions.values()}
    for spec in template.functions.values():
        assert functions[spec.name]["Handler"] == spec.handler
        assert functions[spec.name]["Environment"]["Variables"] == spec.environment

    sfn = aws("stepfunctions")
    described = sfn.describe_state_machine(stateMachineArn=endpoint.stack.state_machine_arn)
    assert described["name"] == machine.name
    assert json.loads(described["definition"]) == machine.definition
    rules = {r["ruleName"]: r for r in aws("iot").list_topic_rules()["rules"]}
    assert set(rules) == {rule.name for rule in template.topic_rules.values()}
    assert rules["jitr_RegistrationRule"]["topicPattern"] == "$aws/events/certificates/registered/+"


def test_certificate_ids_are_the_sha256_of_the_der(aws: Aws) -> None:
    ca = pki.create_ca("Local DER CA")
    device = pki.issue_device_certificate(ca, "der-device")
    assert register_ca(aws, ca) == der_id(ca)
    registered = aws("iot").register_certificate(
        certificatePem=device.cert_pem, caCertificatePem=ca.cert_pem, status="PENDING_ACTIVATION"
    )
    assert registered["certificateId"] == der_id(device)
    description = aws("iot").describe_certificate(certificateId=der_id(device))["certificateDescription"]
    assert description["caCertificateId"] == der_id(ca)
    assert description["status"] == "PENDING_ACTIVATION"


def test_auto_registration_status_is_stored_and_returned(aws: Aws) -> None:
    iot = aws("iot")
    ca_id = register_ca(aws, pki.create_ca("Local Auto CA"), allowAutoRegistration=True)

    def auto_registration() -> str:
        return str(iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["autoRegistrationStatus"])

    assert auto_registration() == "ENABLE"
    iot.update_ca_certificate(certificateId=ca_id, newAutoRegistrationStatus="DISABLE")
    assert auto_registration() == "DISABLE"
    iot.update_ca_certificate(certificateId=ca_id, newAutoRegistrationStatus="ENABLE", newStatus="INACTIVE")
    description = iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
    assert (description["autoRegistrationStatus"], description["status"]) == ("ENABLE", "INACTIVE")
    without = register_ca(aws, pki.create_ca("Local Manual CA"))
    assert iot.describe_ca_certificate(certificateId=without)["certificateDescription"]["autoRegistrationStatus"] == (
        "DISABLE"
    )


def test_list_ca_certificates(aws: Aws) -> None:
    ca_id = register_ca(aws, pki.create_ca("Local Listed CA"))
    listed = {c["certificateId"]: c for c in aws("iot").list_ca_certificates()["certificates"]}
    assert listed[ca_id]["status"] == "ACTIVE"
    assert listed[ca_id]["certificateArn"].endswith(f"/{ca_id}")


def test_the_verification_certificate_is_checked(aws: Aws) -> None:
    iot = aws("iot")
    code = iot.get_registration_code()["registrationCode"]
    assert iot.get_registration_code()["registrationCode"] == code  # the account's code, not a new one per call
    ca = pki.create_ca("Local Verified CA")
    impostor = pki.create_ca("Local Verified CA")  # the same name, another key

    def register(verification: Any) -> Any:
        return iot.register_ca_certificate(
            caCertificate=ca.cert_pem,
            verificationCertificate=pki.certificate_pem(verification).decode(),
            setAsActive=True,
        )

    with pytest.raises(ClientError) as wrong_code:
        register(pki.create_verification_certificate(ca, "not-the-registration-code"))
    assert error_code(wrong_code) == "RegistrationCodeValidationException"
    with pytest.raises(ClientError) as wrong_key:
        register(pki.create_verification_certificate(impostor, code))
    assert error_code(wrong_key) == "CertificateValidationException"
    assert der_id(ca) not in [c["certificateId"] for c in iot.list_ca_certificates()["certificates"]]

    assert register(pki.create_verification_certificate(ca, code))["certificateId"] == der_id(ca)


@pytest.mark.parametrize(
    ("operation", "arguments"),
    [
        ("update_ca_certificate", {"newStatus": "PENDING_ACTIVATION"}),
        ("update_ca_certificate", {"newAutoRegistrationStatus": "SOMETIMES"}),
        ("update_certificate", {"newStatus": "BOGUS"}),
        ("update_certificate", {"newStatus": "PENDING_ACTIVATION"}),
    ],
)
def test_invalid_statuses_are_refused(aws: Aws, operation: str, arguments: dict[str, str]) -> None:
    iot = aws("iot")
    ca = pki.create_ca("Local Status CA")
    ca_id = register_ca(aws, ca)
    device = pki.issue_device_certificate(ca, "status-device")
    iot.register_certificate(certificatePem=device.cert_pem, caCertificatePem=ca.cert_pem, status="PENDING_ACTIVATION")
    target = ca_id if operation == "update_ca_certificate" else der_id(device)

    with pytest.raises(ClientError) as refused:
        getattr(iot, operation)(certificateId=target, **arguments)
    assert error_code(refused) == "InvalidRequestException"


def test_descriptions_carry_the_certificates_validity_and_last_modification(aws: Aws) -> None:
    iot = aws("iot")
    ca = pki.create_ca("Local Validity CA", days=400)
    ca_id = register_ca(aws, ca)
    device = pki.issue_device_certificate(ca, "validity-device")
    cert_id = iot.register_certificate(certificatePem=device.cert_pem, caCertificatePem=ca.cert_pem)["certificateId"]
    for described, issued in (
        (iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"], ca),
        (iot.describe_certificate(certificateId=cert_id)["certificateDescription"], device),
    ):
        assert described["validity"]["notBefore"] == issued.certificate.not_valid_before_utc.astimezone()
        assert described["validity"]["notAfter"] == issued.certificate.not_valid_after_utc.astimezone()
    time.sleep(1.1)  # the API's dates are whole seconds
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    iot.update_certificate(certificateId=cert_id, newStatus="ACTIVE")
    for described in (
        iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"],
        iot.describe_certificate(certificateId=cert_id)["certificateDescription"],
    ):
        assert described["lastModifiedDate"] > described["creationDate"]


class RegistryBeingWritten(OrderedDict[str, Any]):
    """The certificate registry as another request sees it while registering one: iterating it fails."""

    def values(self) -> Any:
        raise RuntimeError("OrderedDict mutated during iteration")

    def __iter__(self) -> Any:
        raise RuntimeError("OrderedDict mutated during iteration")


def test_describing_a_certificate_does_not_walk_the_registry(endpoint: LocalEndpoint, aws: Aws) -> None:
    """Devices register while the workflow describes theirs: the lookup must not iterate the registry."""
    iot = aws("iot")
    ca = pki.create_ca("Local Lookup CA")
    register_ca(aws, ca)
    device = pki.issue_device_certificate(ca, "lookup-device")
    cert_id = iot.register_certificate(certificatePem=device.cert_pem, caCertificatePem=ca.cert_pem)["certificateId"]
    backend = iot_backends[endpoint.stack.account_id][endpoint.stack.region]
    registry = backend.certificates
    backend.certificates = RegistryBeingWritten(registry)
    try:
        described = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    finally:
        backend.certificates = registry
    assert described["certificateId"] == cert_id
