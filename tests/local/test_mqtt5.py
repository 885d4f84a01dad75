"""MQTT 5 clients of the local endpoint: the JITR loop, reason codes, properties and server DISCONNECTs."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from paho.mqtt.client import MQTTv5, MQTTv311
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from jitr import pki
from jitr.local.mqtt_packets import CONNACK, DISCONNECT, SUBACK, Reader, encode_varint, packet, text
from jitr.local.server import LocalEndpoint
from tests.local.test_mqtt import (
    WAIT_SECONDS,
    Aws,
    Device,
    DeviceFiles,
    certificate_status,
    device_files,
    register_ca,
    wait_for,
)

NOT_AUTHORIZED = 0x87


@dataclass(frozen=True)
class Fleet:
    """Two devices of one auto-registering CA, both activated by the workflow; the first CONNECTs' codes."""

    first: DeviceFiles
    second: DeviceFiles
    first_connect: str


def activate(endpoint: LocalEndpoint, files: DeviceFiles, protocol: MQTTProtocolVersion = MQTTv5) -> str:
    """CONNECT once (JITR registers the certificate), wait for the workflow; the first CONNECT's answer."""
    device = Device(endpoint, files, protocol=protocol)
    answer = device.connect()
    aws = endpoint.stack.client
    wait_for(lambda: certificate_status(aws, files.certificate_id) == "ACTIVE", f"{files.name} ACTIVE")
    return answer


@pytest.fixture(scope="module")
def fleet(endpoint: LocalEndpoint, tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    ca = pki.create_ca("MQTT 5 CA")
    register_ca(endpoint.stack.client, ca)
    directory = tmp_path_factory.mktemp("mqtt5")
    first, second = device_files(directory, ca, "mqtt5-device-1"), device_files(directory, ca, "mqtt5-device-2")
    answer = activate(endpoint, first)
    activate(endpoint, second)
    return Fleet(first, second, answer)


@pytest.fixture
def devices(endpoint: LocalEndpoint) -> Iterator[list[Device]]:
    made: list[Device] = []
    yield made
    for device in made:
        device.close()


def connected(
    endpoint: LocalEndpoint, files: DeviceFiles, made: list[Device], protocol: MQTTProtocolVersion = MQTTv5
) -> Device:
    device = Device(endpoint, files, protocol=protocol)
    made.append(device)
    assert device.connect() == "accepted"
    return device


def test_the_first_connect_is_refused_not_authorized_then_the_device_is_in(
    fleet: Fleet, endpoint: LocalEndpoint, devices: list[Device]
) -> None:
    assert fleet.first_connect == "Not authorized"
    device = connected(endpoint, fleet.first, devices)
    assert device.connack_properties is not None
    announced = device.connack_properties.json()
    assert announced["MaximumQoS"] == 1
    assert announced["RetainAvailable"] == 0
    assert announced["TopicAliasMaximum"] == 8
    assert announced["SharedSubscriptionAvailable"] == 0
    assert announced["SubscriptionIdentifierAvailable"] == 0


def test_message_properties_reach_mqtt5_subscribers(
    fleet: Fleet, endpoint: LocalEndpoint, devices: list[Device]
) -> None:
    topic = f"dt/{fleet.first.name}/1/props"
    listener = connected(endpoint, fleet.first, devices)
    listener.client.subscribe(f"dt/{fleet.first.name}/#", qos=1)
    assert listener.next_event("subscribe") == [1]
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = "application/json"
    properties.UserProperty = [("site", "plant-7")]
    properties.ResponseTopic = f"dt/{fleet.first.name}/1/reply"
    listener.client.publish(topic, b'{"t": 1}', qos=1, properties=properties)
    assert listener.next_event("puback").value == 0
    assert listener.next_event("message") == (topic, b'{"t": 1}')
    assert listener.message_properties is not None
    received = listener.message_properties.json()
    assert received["ContentType"] == "application/json"
    assert received["UserProperty"] == [("site", "plant-7")]
    assert received["ResponseTopic"] == f"dt/{fleet.first.name}/1/reply"


def test_subscriptions_get_mqtt5_reason_codes(fleet: Fleet, endpoint: LocalEndpoint, devices: list[Device]) -> None:
    device = connected(endpoint, fleet.first, devices)
    device.client.subscribe(
        [
            (f"dt/{fleet.first.name}/1/+", SubscribeOptions(qos=2)),
            (f"dt/{fleet.second.name}/1/+", SubscribeOptions(qos=1)),
            (f"$share/group/dt/{fleet.first.name}/1/x", SubscribeOptions(qos=0)),
        ]
    )
    assert device.next_event("subscribe") == [1, NOT_AUTHORIZED, 0x9E]


def test_a_denied_publish_gets_puback_not_authorized_and_a_disconnect_saying_why(
    fleet: Fleet, endpoint: LocalEndpoint, devices: list[Device]
) -> None:
    device = connected(endpoint, fleet.first, devices)
    device.client.publish(f"dt/{fleet.second.name}/1/telemetry", b"{}", qos=1)
    assert device.next_event("puback").value == NOT_AUTHORIZED
    assert device.next_event("disconnect").value == NOT_AUTHORIZED


def test_a_second_connection_takes_the_session_over(
    fleet: Fleet, endpoint: LocalEndpoint, devices: list[Device]
) -> None:
    first = connected(endpoint, fleet.second, devices)
    connected(endpoint, fleet.second, devices)
    assert first.next_event("disconnect").value == 0x8E  # Session taken over


def test_no_local_keeps_a_clients_own_messages_from_it(
    fleet: Fleet, endpoint: LocalEndpoint, devices: list[Device]
) -> None:
    device = connected(endpoint, fleet.first, devices)
    device.client.subscribe(f"dt/{fleet.first.name}/1/echo", options=SubscribeOptions(qos=1, noLocal=True))
    device.client.subscribe(f"dt/{fleet.first.name}/1/loud", options=SubscribeOptions(qos=1))
    assert device.next_event("subscribe") == [1]
    assert device.next_event("subscribe") == [1]
    device.client.publish(f"dt/{fleet.first.name}/1/echo", b"quiet", qos=1)
    device.client.publish(f"dt/{fleet.first.name}/1/loud", b"heard", qos=1)
    assert device.next_event("message") == (f"dt/{fleet.first.name}/1/loud", b"heard")


def test_a_topic_alias_stands_for_its_topic(fleet: Fleet, endpoint: LocalEndpoint, devices: list[Device]) -> None:
    topic = f"dt/{fleet.first.name}/1/aliased"
    device = connected(endpoint, fleet.first, devices)
    device.client.subscribe(topic, qos=1)
    assert device.next_event("subscribe") == [1]
    alias = Properties(PacketTypes.PUBLISH)
    alias.TopicAlias = 3
    device.client.publish(topic, b"first", qos=1, properties=alias)
    assert device.next_event("message") == (topic, b"first")
    device.client.publish("", b"second", qos=1, properties=alias)
    assert device.next_event("message") == (topic, b"second")


def test_deactivating_a_connected_certificate_ends_its_sessions(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path, devices: list[Device]
) -> None:
    ca = pki.create_ca("Deactivating CA")
    register_ca(aws, ca)
    five, eleven = device_files(tmp_path, ca, "deactivated-5"), device_files(tmp_path, ca, "deactivated-311")
    activate(endpoint, five)
    activate(endpoint, eleven, MQTTv311)
    sessions = connected(endpoint, five, devices), connected(endpoint, eleven, devices, MQTTv311)
    aws("iot").update_certificate(certificateId=five.certificate_id, newStatus="REVOKED")
    aws("iot").update_certificate(certificateId=eleven.certificate_id, newStatus="INACTIVE")
    assert sessions[0].next_event("disconnect").value == 0x98  # Administrative action
    assert sessions[1].next_event("disconnect") is not None


# Raw MQTT 5 packets for what paho-mqtt will not send.


def connect_v5(client_id: str, keep_alive: int = 30) -> bytes:
    body = text("MQTT") + bytes([5, 0x02]) + struct.pack("!H", keep_alive) + encode_varint(0) + text(client_id)
    return packet(1, body)


def read_one(tls: ssl.SSLSocket) -> tuple[int, bytes]:
    """The next packet's type and body (the body of a remaining length below 128, which is all this test reads)."""
    header = tls.recv(2)
    if len(header) < 2:
        return 0, b""
    body = b""
    while len(body) < header[1]:
        body += tls.recv(header[1] - len(body))
    return header[0] >> 4, body


@contextmanager
def tls_connection(endpoint: LocalEndpoint, files: DeviceFiles) -> Iterator[ssl.SSLSocket]:
    context = ssl.create_default_context(cafile=str(endpoint.cafile))
    context.load_cert_chain(str(files.bundle), str(files.key))
    with (
        socket.create_connection(("127.0.0.1", endpoint.mqtt_port), timeout=WAIT_SECONDS) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        yield tls


@contextmanager
def raw_session(endpoint: LocalEndpoint, files: DeviceFiles, keep_alive: int = 30) -> Iterator[ssl.SSLSocket]:
    with tls_connection(endpoint, files) as tls:
        tls.sendall(connect_v5(files.name, keep_alive))
        kind, body = read_one(tls)
        assert (kind, body[:2]) == (CONNACK, bytes([0, 0]))
        yield tls


def disconnect_reason(tls: ssl.SSLSocket) -> int:
    kind, body = read_one(tls)
    assert kind == DISCONNECT
    return Reader(body).u8()


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        pytest.param(0x01, 0x9A, id="retained: retain not supported"),
        pytest.param(0x04, 0x9B, id="QoS 2: QoS not supported"),
    ],
)
def test_a_publish_the_endpoint_does_not_serve_is_answered_with_its_reason(
    fleet: Fleet, endpoint: LocalEndpoint, flags: int, reason: int
) -> None:
    with raw_session(endpoint, fleet.first) as tls:
        body = text(f"dt/{fleet.first.name}/1/x") + (b"\x00\x01" if flags & 0x06 else b"") + encode_varint(0) + b"{}"
        tls.sendall(packet(3, body, flags=flags))
        assert disconnect_reason(tls) == reason


def test_a_wildcard_topic_name_is_topic_name_invalid(fleet: Fleet, endpoint: LocalEndpoint) -> None:
    with raw_session(endpoint, fleet.first) as tls:
        tls.sendall(packet(3, text(f"dt/{fleet.first.name}/+") + encode_varint(0) + b"{}"))
        assert disconnect_reason(tls) == 0x90


def test_a_silent_client_is_told_keep_alive_timeout(fleet: Fleet, endpoint: LocalEndpoint) -> None:
    with raw_session(endpoint, fleet.second, keep_alive=1) as tls:
        assert disconnect_reason(tls) == 0x8D


def test_enhanced_authentication_is_refused_with_bad_authentication_method(
    fleet: Fleet, endpoint: LocalEndpoint
) -> None:
    method = bytes([0x15]) + text("SCRAM-SHA-1")
    body = (text("MQTT") + bytes([5, 0x02]) + struct.pack("!H", 30) + encode_varint(len(method)) + method) + text(
        fleet.first.name
    )
    with tls_connection(endpoint, fleet.first) as tls:
        tls.sendall(packet(1, body))
        kind, answer = read_one(tls)
    assert (kind, answer[:2]) == (CONNACK, bytes([0, 0x8C]))


def test_an_invalid_topic_filter_is_topic_filter_invalid(fleet: Fleet, endpoint: LocalEndpoint) -> None:
    with raw_session(endpoint, fleet.first) as tls:
        entry = text(f"dt/{fleet.first.name}/a#") + bytes([1])
        tls.sendall(packet(8, struct.pack("!H", 5) + encode_varint(0) + entry, flags=0x02))
        kind, body = read_one(tls)
    assert kind == SUBACK
    assert body == struct.pack("!H", 5) + encode_varint(0) + bytes([0x8F])
