"""AWS's JITR guide, typed as an operator would: the aws CLI, openssl and mosquitto_pub against the local endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jitr.local.server import LocalEndpoint
from tests.local.test_mqtt import Aws, certificate_status, telemetry_bucket, wait_for

CLI_SECONDS = 60.0
MQTT_SECONDS = 15.0
THING = "guide-device-1"
TELEMETRY = b'{"temperature": 21}'
INSTALL = {
    "aws": 'pip install -e ".[dev]" (the aws CLI, awscli, is a dev dependency)',
    "openssl": "make test-tools, or apt-get install openssl (Debian/Ubuntu), brew install openssl (macOS)",
    "mosquitto_pub": "make test-tools, or apt-get install mosquitto-clients (Debian/Ubuntu), brew install mosquitto (macOS)",
}


def missing_tool(name: str) -> str:
    return f"{name} is not installed: {INSTALL[name]}"


def aws_executable() -> str | None:
    """The aws CLI of this virtual environment, else the one on PATH."""
    own = Path(sys.executable).parent / "aws"
    return str(own) if own.exists() else shutil.which("aws")


def located(name: str) -> str | None:
    return aws_executable() if name == "aws" else shutil.which(name)


def tool(name: str) -> str:
    """The path of a command-line tool; the test fails, saying how to install it, when it is missing."""
    path = located(name)
    if path is None:
        pytest.fail(missing_tool(name))
    return path


def cli_environment() -> dict[str, str]:
    """This process's environment without its AWS settings: dummy credentials, us-east-1, no config files."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    return environment | {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }


def aws_cli(endpoint: LocalEndpoint, *args: str) -> dict[str, Any]:
    """`aws --endpoint-url <api> ... --output json`'s answer; the test fails with the CLI's stderr when it exits nonzero."""
    command = [tool("aws"), "--endpoint-url", endpoint.stack.api_url, "--region", "us-east-1", "--output", "json"]
    result = subprocess.run(
        [*command, *args], env=cli_environment(), capture_output=True, text=True, timeout=CLI_SECONDS, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"aws {' '.join(args)} exited {result.returncode}: {result.stderr}")
    answer: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
    return answer


def openssl(*args: str, cwd: Path) -> str:
    """openssl's stdout, run in the operator's working directory; the test fails with its stderr on an error."""
    result = subprocess.run(
        [tool("openssl"), *args], cwd=cwd, capture_output=True, text=True, timeout=CLI_SECONDS, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"openssl {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result.stdout


def certificate_id_of(pem: Path) -> str:
    """AWS IoT's id of a certificate: the SHA-256 fingerprint of its DER, lowercase hex."""
    fingerprint = openssl("x509", "-in", pem.name, "-noout", "-fingerprint", "-sha256", cwd=pem.parent)
    return fingerprint.strip().split("=", 1)[1].replace(":", "").lower()


def issue(directory: Path, name: str, common_name: str, certificate: str) -> None:
    """`name.key`, `name.csr` with the given CN, and the certificate rootCA signs for it, as the guide makes them."""
    openssl("genrsa", "-out", f"{name}.key", "2048", cwd=directory)
    openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={common_name}", "-out", f"{name}.csr", cwd=directory)
    openssl(
        *("x509", "-req", "-in", f"{name}.csr", "-CA", "rootCA.pem", "-CAkey", "rootCA.key", "-CAcreateserial"),
        *("-out", certificate, "-days", "500", "-sha256"),
        cwd=directory,
    )


def create_root_ca(directory: Path) -> None:
    """rootCA.key and a self-signed rootCA.pem with the v3_ca extensions a CA needs."""
    openssl("genrsa", "-out", "rootCA.key", "2048", cwd=directory)
    openssl(
        *("req", "-x509", "-new", "-nodes", "-key", "rootCA.key", "-sha256", "-days", "1024"),
        *("-subj", "/CN=Guide Root CA", "-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", "rootCA.pem"),
        cwd=directory,
    )


def mosquitto_pub(
    endpoint: LocalEndpoint, directory: Path, topic: str, message: bytes
) -> subprocess.CompletedProcess[str]:
    """One QoS 1 publish as the guide's device, with its debug log (-d) on stdout and its errors on stderr."""
    command = [
        *(tool("mosquitto_pub"), "--cafile", str(endpoint.cafile), "--cert", "deviceAndCACert.crt"),
        *("--key", "deviceCert.key", "-h", "127.0.0.1", "-p", str(endpoint.mqtt_port), "-q", "1"),
        *("-t", topic, "-i", THING, "-m", message.decode(), "-d"),
    ]
    return subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=MQTT_SECONDS, check=False)


def archived(aws: Aws, bucket: str, prefix: str) -> list[bytes]:
    """The payloads the telemetry archive holds under a topic prefix."""
    s3 = aws("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return [s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys]


@dataclass(frozen=True)
class GuideCa:
    """The operator's directory (rootCA.pem, rootCA.key) and the CA's id in AWS IoT."""

    directory: Path
    certificate_id: str


@dataclass(frozen=True)
class GuideDevice:
    """The device's certificate id, what its first publish got, and the certificate's status afterwards."""

    certificate_id: str
    first_publish: subprocess.CompletedProcess[str]
    status_after_first_publish: str | None


@pytest.fixture(scope="module")
def ca(endpoint: LocalEndpoint, tmp_path_factory: pytest.TempPathFactory) -> GuideCa:
    """A root CA registered as the guide does: proof of possession, active, auto-registration enabled."""
    directory = tmp_path_factory.mktemp("guide")
    create_root_ca(directory)
    code = aws_cli(endpoint, "iot", "get-registration-code")["registrationCode"]
    issue(directory, "verificationCert", code, "verificationCert.pem")
    registered = aws_cli(
        endpoint,
        *("iot", "register-ca-certificate", "--ca-certificate", f"file://{directory / 'rootCA.pem'}"),
        *("--verification-cert", f"file://{directory / 'verificationCert.pem'}"),
        *("--set-as-active", "--allow-auto-registration"),
    )
    certificate_id = str(registered["certificateId"])
    aws_cli(
        endpoint,
        *("iot", "update-ca-certificate", "--certificate-id", certificate_id),
        *("--new-auto-registration-status", "ENABLE"),
    )
    return GuideCa(directory, certificate_id)


@pytest.fixture(scope="module")
def device(endpoint: LocalEndpoint, ca: GuideCa) -> GuideDevice:
    """The guide's device certificate (CN = thing name) and bundle, after its first publish and the workflow."""
    issue(ca.directory, "deviceCert", THING, "deviceCert.crt")
    bundle = (ca.directory / "deviceCert.crt").read_bytes() + (ca.directory / "rootCA.pem").read_bytes()
    (ca.directory / "deviceAndCACert.crt").write_bytes(bundle)
    certificate_id = certificate_id_of(ca.directory / "deviceCert.crt")
    first = mosquitto_pub(endpoint, ca.directory, f"dt/{THING}/1/telemetry", TELEMETRY)
    aws = endpoint.stack.client
    status = certificate_status(aws, certificate_id)
    wait_for(lambda: certificate_status(aws, certificate_id) == "ACTIVE", "the device certificate ACTIVE")
    return GuideDevice(certificate_id, first, status)


def test_aws_openssl_and_mosquitto_pub_are_installed() -> None:
    missing = [missing_tool(name) for name in INSTALL if located(name) is None]
    assert not missing, "\n".join(missing)


def test_the_ca_is_registered_active_with_auto_registration_enabled(endpoint: LocalEndpoint, ca: GuideCa) -> None:
    assert ca.certificate_id == certificate_id_of(ca.directory / "rootCA.pem")
    described = aws_cli(endpoint, "iot", "describe-ca-certificate", "--certificate-id", ca.certificate_id)
    description = described["certificateDescription"]
    assert (description["status"], description["autoRegistrationStatus"]) == ("ACTIVE", "ENABLE")
    assert description["certificatePem"].strip() == (ca.directory / "rootCA.pem").read_text().strip()


def test_the_first_publish_is_refused_not_authorised_and_registers_the_certificate(device: GuideDevice) -> None:
    assert device.first_publish.returncode == 5, device.first_publish.stdout + device.first_publish.stderr
    assert "received CONNACK (5)" in device.first_publish.stdout
    assert "Connection Refused: not authorised." in device.first_publish.stderr
    assert device.status_after_first_publish in {"PENDING_ACTIVATION", "ACTIVE"}


def test_once_active_the_same_publish_is_acknowledged_and_archived(
    endpoint: LocalEndpoint, aws: Aws, ca: GuideCa, device: GuideDevice
) -> None:
    described = aws_cli(endpoint, "iot", "describe-certificate", "--certificate-id", device.certificate_id)
    assert described["certificateDescription"]["status"] == "ACTIVE"
    topic = f"dt/{THING}/1/telemetry"
    second = mosquitto_pub(endpoint, ca.directory, topic, TELEMETRY)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "received CONNACK (0)" in second.stdout
    assert "received PUBACK" in second.stdout
    bucket = telemetry_bucket(endpoint)
    assert wait_for(lambda: archived(aws, bucket, f"{topic}/"), "the archived message") == [TELEMETRY]


def test_a_publish_on_another_devices_topic_disconnects_the_device_and_is_not_archived(
    endpoint: LocalEndpoint, aws: Aws, ca: GuideCa, device: GuideDevice
) -> None:
    denied = mosquitto_pub(endpoint, ca.directory, "dt/someone-else/1/telemetry", b'{"temperature": 99}')
    assert denied.returncode == 7, denied.stdout + denied.stderr  # MOSQ_ERR_CONN_LOST
    assert "received CONNACK (0)" in denied.stdout
    assert "received PUBACK" not in denied.stdout
    assert "The connection was lost." in denied.stderr
    allowed = mosquitto_pub(endpoint, ca.directory, f"dt/{THING}/2/telemetry", b'{"after": "denied"}')
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    bucket = telemetry_bucket(endpoint)
    wait_for(lambda: archived(aws, bucket, f"dt/{THING}/2/telemetry/"), "the message published after the denied one")
    assert archived(aws, bucket, "dt/someone-else/") == []


def test_describe_endpoint_names_the_local_mqtt_host(endpoint: LocalEndpoint) -> None:
    described = aws_cli(endpoint, "iot", "describe-endpoint", "--endpoint-type", "iot:Data-ATS")
    assert described == {"endpointAddress": "127.0.0.1"}


def test_the_device_certificate_is_the_ca_s_one_active_certificate_attached_to_its_thing(
    endpoint: LocalEndpoint, ca: GuideCa, device: GuideDevice
) -> None:
    listed = aws_cli(endpoint, "iot", "list-certificates-by-ca", "--ca-certificate-id", ca.certificate_id)
    certificates = [(c["certificateId"], c["status"]) for c in listed["certificates"]]
    assert certificates == [(device.certificate_id, "ACTIVE")]
    principal = listed["certificates"][0]["certificateArn"]
    assert aws_cli(endpoint, "iot", "list-principal-things", "--principal", principal)["things"] == [THING]


def test_the_registration_workflow_succeeded_for_the_device(endpoint: LocalEndpoint, device: GuideDevice) -> None:
    machines = aws_cli(endpoint, "stepfunctions", "list-state-machines")["stateMachines"]
    (arn,) = [m["stateMachineArn"] for m in machines if m["name"].endswith("RegistrationStateMachine")]
    executions = aws_cli(endpoint, "stepfunctions", "list-executions", "--state-machine-arn", arn)["executions"]
    succeeded = [e["executionArn"] for e in executions if e["status"] == "SUCCEEDED"]
    inputs = [
        json.loads(aws_cli(endpoint, "stepfunctions", "describe-execution", "--execution-arn", execution)["input"])
        for execution in succeeded
    ]
    assert [event["certificateId"] for event in inputs] == [device.certificate_id]
