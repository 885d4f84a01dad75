"""The MQTT endpoint of `jitr local up`: devices connect over mutual TLS and AWS IoT's JITR happens."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from cryptography.hazmat.primitives.serialization import Encoding
from paho.mqtt.client import Client, MQTTMessage, MQTTv311
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from jitr import pki
from jitr.local.server import LocalEndpoint

Aws = Callable[[str], Any]
WAIT_SECONDS = 15.0
NOT_AUTHORISED = "Not authorized"
REFUSED = "refused"


@dataclass(frozen=True)
class DeviceFiles:
    """A device's certificate bundle (leaf then CA) and key, as a device keeps them."""

    name: str
    certificate_id: str
    bundle: Path
    key: Path


def device_files(tmp: Path, ca: pki.Issued, name: str) -> DeviceFiles:
    device = pki.issue_device_certificate(ca, name)
    bundle, key = tmp / f"{name}-bundle.pem", tmp / f"{name}.key"
    bundle.write_text(device.cert_pem + ca.cert_pem)
    key.write_bytes(device.key_pem)
    cert_id = hashlib.sha256(device.certificate.public_bytes(Encoding.DER)).hexdigest()
    return DeviceFiles(name, cert_id, bundle, key)


def register_ca(aws: Aws, ca: pki.Issued, *, auto_registration: bool = True) -> str:
    iot = aws("iot")
    return str(
        iot.register_ca_certificate(
            caCertificate=ca.cert_pem, setAsActive=True, allowAutoRegistration=auto_registration
        )["certificateId"]
    )


class Device:
    """A paho-mqtt client with the device's certificate; every wait is bounded."""

    def __init__(
        self,
        endpoint: LocalEndpoint,
        files: DeviceFiles,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = MQTTv311,
    ) -> None:
        self.endpoint = endpoint
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or files.name,
            protocol=protocol,
            reconnect_on_failure=False,
        )
        self.client.tls_set(ca_certs=str(endpoint.cafile), certfile=str(files.bundle), keyfile=str(files.key))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.connack_properties: Properties | None = None
        self.message_properties: Properties | None = None

    def _on_connect(
        self, client: Client, userdata: Any, flags: Any, code: ReasonCode, props: Properties | None
    ) -> None:
        self.connack_properties = props
        self.events.put(("connect", code))

    def _on_publish(self, client: Client, userdata: Any, mid: int, code: ReasonCode, props: Any) -> None:
        self.events.put(("puback", code))

    def _on_disconnect(self, client: Client, userdata: Any, flags: Any, code: ReasonCode, props: Any) -> None:
        self.events.put(("disconnect", code))

    def _on_subscribe(self, client: Client, userdata: Any, mid: int, codes: list[ReasonCode], props: Any) -> None:
        self.events.put(("subscribe", [code.value for code in codes]))

    def _on_message(self, client: Client, userdata: Any, message: MQTTMessage) -> None:
        self.message_properties = message.properties
        self.events.put(("message", (message.topic, message.payload)))

    def next_event(self, kind: str) -> Any:
        deadline = time.monotonic() + WAIT_SECONDS
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got, value = self.events.get(timeout=remaining)
            except queue.Empty:
                break
            if got == kind:
                return value
            if got == "disconnect" and kind != "disconnect":
                return None
        pytest.fail(f"no {kind} within {WAIT_SECONDS}s")

    def connect(self) -> str:
        """``accepted``, the CONNACK's refusal, or ``refused`` when TLS or the connection failed first."""
        try:
            self.client.connect("127.0.0.1", self.endpoint.mqtt_port, keepalive=30)
        except OSError:  # ssl.SSLError included: the handshake failed
            return REFUSED
        self.client.loop_start()
        code = self.next_event("connect")
        if code is None:
            return REFUSED
        if code.is_failure:
            self.close()
            return str(code)
        return "accepted"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def connected() -> Iterator[list[Device]]:
    """Devices to close after the test."""
    devices: list[Device] = []
    yield devices
    for device in devices:
        device.close()


def wait_for(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what} not within {WAIT_SECONDS}s")


def certificate_status(aws: Aws, cert_id: str) -> str | None:
    iot = aws("iot")
    try:
        return str(iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"])
    except iot.exceptions.ResourceNotFoundException:
        return None


@dataclass(frozen=True)
class Activated:
    """A device after its first CONNECT and the workflow: what the first CONNECT got, and its files."""

    files: DeviceFiles
    first_connect: str
    status_after_first_connect: str | None


@pytest.fixture(scope="module")
def activated(endpoint: LocalEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Activated:
    """A CA registered with auto-registration, and one device registered by its first CONNECT."""
    aws = endpoint.stack.client
    ca = pki.create_ca("MQTT Test CA")
    register_ca(aws, ca)
    files = device_files(tmp_path_factory.mktemp("devices"), ca, "mqtt-device-1")
    device = Device(endpoint, files)
    first = device.connect()
    status = certificate_status(aws, files.certificate_id)
    wait_for(lambda: certificate_status(aws, files.certificate_id) == "ACTIVE", "the certificate ACTIVE")
    return Activated(files, first, status)


def test_first_connect_registers_the_certificate_and_the_workflow_activates_it(activated: Activated, aws: Aws) -> None:
    assert activated.first_connect == NOT_AUTHORISED
    assert activated.status_after_first_connect in {"PENDING_ACTIVATION", "ACTIVE"}
    cert = aws("iot").describe_certificate(certificateId=activated.files.certificate_id)["certificateDescription"]
    assert cert["status"] == "ACTIVE"
    assert aws("iot").list_principal_things(principal=cert["certificateArn"])["things"] == ["mqtt-device-1"]


def test_describe_endpoint_names_the_local_mqtt_host(aws: Aws) -> None:
    assert aws("iot").describe_endpoint(endpointType="iot:Data-ATS")["endpointAddress"] == "127.0.0.1"
    assert aws("iot").describe_endpoint(endpointType="iot:Jobs")["endpointAddress"].endswith(".amazonaws.com")


def telemetry_bucket(endpoint: LocalEndpoint) -> str:
    for rule in endpoint.stack.rules.rules:
        for action in rule.actions:
            if "S3" in action:
                return str(action["S3"]["BucketName"])
    pytest.fail("the template has no S3 rule action")


def test_an_active_device_connects_and_its_telemetry_is_archived(
    activated: Activated, endpoint: LocalEndpoint, aws: Aws, connected: list[Device]
) -> None:
    device = Device(endpoint, activated.files)
    connected.append(device)
    assert device.connect() == "accepted"
    topic = "dt/mqtt-device-1/1/telemetry"
    device.client.publish(topic, b'{"temperature": 21.5}', qos=1).wait_for_publish(WAIT_SECONDS)

    s3 = aws("s3")
    bucket = telemetry_bucket(endpoint)

    def archived() -> list[str]:
        return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{topic}/").get("Contents", [])]

    keys = wait_for(archived, "the archived message")
    body = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    assert body == b'{"temperature": 21.5}'


def test_subscriptions_follow_the_policy_and_messages_are_delivered(
    activated: Activated, endpoint: LocalEndpoint, connected: list[Device]
) -> None:
    device = Device(endpoint, activated.files)
    connected.append(device)
    assert device.connect() == "accepted"
    device.client.subscribe([("dt/mqtt-device-1/#", 1), ("dt/another-device/#", 1)])
    assert device.next_event("subscribe") == [1, 0x80]
    device.client.publish("dt/mqtt-device-1/1/status", b"on", qos=1)
    assert device.next_event("message") == ("dt/mqtt-device-1/1/status", b"on")


def test_a_publish_on_another_devices_topic_disconnects_the_client(
    activated: Activated, endpoint: LocalEndpoint, connected: list[Device]
) -> None:
    device = Device(endpoint, activated.files)
    connected.append(device)
    assert device.connect() == "accepted"
    device.client.publish("dt/another-device/1/telemetry", b"{}", qos=1)
    assert device.next_event("disconnect") is not None


def test_a_second_connection_with_the_same_client_id_disconnects_the_first(
    activated: Activated, endpoint: LocalEndpoint, connected: list[Device]
) -> None:
    first, second = Device(endpoint, activated.files), Device(endpoint, activated.files)
    connected.extend([first, second])
    assert first.connect() == "accepted"
    assert second.connect() == "accepted"
    assert first.next_event("disconnect") is not None


def test_a_client_id_other_than_the_thing_name_is_refused(
    activated: Activated, endpoint: LocalEndpoint, connected: list[Device]
) -> None:
    device = Device(endpoint, activated.files, client_id="someone-else")
    connected.append(device)
    assert device.connect() == NOT_AUTHORISED


def test_a_device_of_an_unregistered_ca_fails_the_tls_handshake(
    endpoint: LocalEndpoint, tmp_path: Path, connected: list[Device]
) -> None:
    files = device_files(tmp_path, pki.create_ca("Unregistered CA"), "stranger")
    device = Device(endpoint, files)
    connected.append(device)
    assert device.connect() == REFUSED


def test_a_client_without_a_certificate_gets_no_connack(endpoint: LocalEndpoint) -> None:
    context = ssl.create_default_context(cafile=str(endpoint.cafile))
    connect = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0])
    with socket.create_connection(("127.0.0.1", endpoint.mqtt_port), timeout=WAIT_SECONDS) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(connect)
                answer = tls.recv(4)
        except (ssl.SSLError, ConnectionError):
            answer = b""
    assert answer == b""


def test_a_ca_without_auto_registration_registers_nothing(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path, connected: list[Device]
) -> None:
    ca = pki.create_ca("No Auto-Registration CA")
    register_ca(aws, ca, auto_registration=False)
    files = device_files(tmp_path, ca, "not-auto")
    device = Device(endpoint, files)
    connected.append(device)
    assert device.connect() == NOT_AUTHORISED
    assert certificate_status(aws, files.certificate_id) is None


def registration_events(endpoint: LocalEndpoint, aws: Aws, cert_id: str) -> list[dict[str, Any]]:
    sfn = aws("stepfunctions")
    executions = sfn.list_executions(stateMachineArn=endpoint.stack.state_machine_arn)["executions"]
    inputs = [json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions]
    return [event for event in inputs if event.get("certificateId") == cert_id]


def test_a_pending_certificate_is_refused_and_its_event_published_again(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path, connected: list[Device]
) -> None:
    ca = pki.create_ca("Pending CA")
    ca_id = register_ca(aws, ca, auto_registration=False)
    files = device_files(tmp_path, ca, "pending-device")
    aws("iot").register_certificate(
        certificatePem=leaf_pem(files), caCertificatePem=ca.cert_pem, status="PENDING_ACTIVATION"
    )
    device = Device(endpoint, files)
    connected.append(device)
    assert device.connect() == NOT_AUTHORISED
    (event,) = registration_events(endpoint, aws, files.certificate_id)
    assert set(event) == {
        "certificateId",
        "caCertificateId",
        "timestamp",
        "certificateStatus",
        "awsAccountId",
        "certificateRegistrationTimestamp",
    }
    assert event["caCertificateId"] == ca_id
    assert event["certificateStatus"] == "PENDING_ACTIVATION"
    assert event["awsAccountId"] == "123456789012"


def leaf_pem(files: DeviceFiles) -> str:
    return files.bundle.read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"


def test_a_revoked_certificate_is_refused(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path, connected: list[Device]
) -> None:
    ca = pki.create_ca("Revoking CA")
    register_ca(aws, ca, auto_registration=False)
    files = device_files(tmp_path, ca, "revoked-device")
    aws("iot").register_certificate(
        certificatePem=leaf_pem(files),
        caCertificatePem=ca.cert_pem,
        status="ACTIVE",
    )
    aws("iot").update_certificate(certificateId=files.certificate_id, newStatus="REVOKED")
    device = Device(endpoint, files)
    connected.append(device)
    assert device.connect() == NOT_AUTHORISED


@pytest.mark.parametrize(("version", "refused_status"), [("mqttv311", 5), ("mqttv5", 135)])
def test_mosquitto_pub_is_refused_then_accepted(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path, version: str, refused_status: int
) -> None:
    mosquitto_pub = shutil.which("mosquitto_pub")
    if mosquitto_pub is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto_pub is not installed (apt-get install mosquitto-clients)")
        pytest.skip("mosquitto_pub is not installed (apt-get install mosquitto-clients)")
    ca = pki.create_ca(f"Mosquitto {version} CA")
    register_ca(aws, ca)
    files = device_files(tmp_path, ca, f"mosquitto-{version}")
    command = [
        mosquitto_pub,
        "-V",
        version,
        "-h",
        "127.0.0.1",
        "-p",
        str(endpoint.mqtt_port),
        "--cafile",
        str(endpoint.cafile),
        "--cert",
        str(files.bundle),
        "--key",
        str(files.key),
        "-i",
        files.name,
        "-t",
        f"dt/{files.name}/1/telemetry",
        "-q",
        "1",
        "-m",
        '{"ok": true}',
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=WAIT_SECONDS, check=False)
    assert first.returncode == refused_status, first.stderr
    assert "not authori" in first.stderr.lower()
    wait_for(lambda: certificate_status(aws, files.certificate_id) == "ACTIVE", "the certificate ACTIVE")
    second = subprocess.run(command, capture_output=True, text=True, timeout=WAIT_SECONDS, check=False)
    assert second.returncode == 0, second.stderr
    s3, prefix = aws("s3"), f"dt/{files.name}/1/telemetry/"
    bucket = telemetry_bucket(endpoint)
    wait_for(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents"), "the archived message")


def test_the_endpoints_log_lines_carry_no_function_context(activated: Activated) -> None:
    """The functions' Powertools logger (named by the service) is not an ancestor of the endpoint's loggers."""
    formatters = []
    logger: logging.Logger | None = logging.getLogger("jitr.local.mqtt")
    while logger is not None:
        formatters += [type(handler.formatter) for handler in logger.handlers]
        logger = logger.parent if logger.propagate else None
    assert LambdaPowertoolsFormatter not in formatters


def send_connect(context: ssl.SSLContext, raw: socket.socket) -> bytes:
    """Handshake, send CONNECT and read the answer (under TLS 1.3 the server judges the certificate after this)."""
    with context.wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 2, 0, 30, 0, 0]))
        return tls.recv(4)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2], ids=["TLS 1.3", "TLS 1.2"])
def test_an_unknown_ca_gets_the_tls_alert_unknown_ca(endpoint: LocalEndpoint, tmp_path: Path, version: Any) -> None:
    files = device_files(tmp_path, pki.create_ca("Alerted CA"), "alerted-device")
    context = ssl.create_default_context(cafile=str(endpoint.cafile))
    context.minimum_version = context.maximum_version = version
    context.load_cert_chain(str(files.bundle), str(files.key))
    with (
        socket.create_connection(("127.0.0.1", endpoint.mqtt_port), timeout=WAIT_SECONDS) as raw,
        pytest.raises(ssl.SSLError) as raised,
    ):
        send_connect(context, raw)
    assert raised.value.reason == "TLSV1_ALERT_UNKNOWN_CA"
