"""The MQTT packet codec of the local endpoint: properties, PUBLISH for each protocol level, malformed input."""

from __future__ import annotations

import struct

import pytest

from jitr.local.mqtt_packets import (
    FORWARDED_PROPERTIES,
    MQTT_5,
    MQTT_311,
    PUBLISH,
    Packet,
    Prop,
    ProtocolError,
    Reader,
    Reason,
    encode_varint,
    parse_connect,
    parse_publish,
    parse_subscribe,
    publish_packet,
    text,
)


def prop_string(identifier: int, value: str) -> bytes:
    return encode_varint(identifier) + text(value)


def v5_publish(topic: str, properties: bytes, payload: bytes, qos: int = 1) -> Packet:
    body = text(topic) + (struct.pack("!H", 7) if qos else b"") + encode_varint(len(properties)) + properties
    return Packet(PUBLISH, qos << 1, body + payload)


def reparse(data: bytes) -> Packet:
    """A packet the server wrote, read back (single-byte remaining length only)."""
    return Packet(data[0] >> 4, data[0] & 0x0F, data[2:])


USER = encode_varint(Prop.USER_PROPERTY) + text("site") + text("plant-7")
CONTENT_TYPE = prop_string(Prop.CONTENT_TYPE, "application/json")
ALIAS = encode_varint(Prop.TOPIC_ALIAS) + struct.pack("!H", 2)


def test_a_v5_publish_is_read_with_its_properties() -> None:
    publish = parse_publish(v5_publish("dt/a/1", USER + ALIAS + CONTENT_TYPE, b"{}"), MQTT_5)
    assert (publish.topic, publish.qos, publish.packet_id, publish.payload) == ("dt/a/1", 1, 7, b"{}")
    assert publish.properties.get(Prop.USER_PROPERTY) == ("site", "plant-7")
    assert publish.properties.get(Prop.TOPIC_ALIAS) == 2
    assert publish.properties.get(Prop.CONTENT_TYPE) == "application/json"


def test_forwarding_keeps_message_properties_and_drops_the_topic_alias() -> None:
    publish = parse_publish(v5_publish("dt/a/1", USER + ALIAS + CONTENT_TYPE, b"{}"), MQTT_5)
    forwarded = publish_packet("dt/a/1", b"{}", 1, 9, publish.properties.encoded(FORWARDED_PROPERTIES))
    again = parse_publish(reparse(forwarded), MQTT_5)
    assert [key for key, _, _ in again.properties.items] == [Prop.USER_PROPERTY, Prop.CONTENT_TYPE]
    assert (again.topic, again.packet_id, again.payload) == ("dt/a/1", 9, b"{}")


def test_a_311_subscriber_gets_the_message_without_properties() -> None:
    delivered = publish_packet("dt/a/1", b"{}", 1, 9, None)
    again = parse_publish(reparse(delivered), MQTT_311)
    assert (again.topic, again.packet_id, again.payload) == ("dt/a/1", 9, b"{}")


def test_an_unknown_property_is_a_malformed_packet() -> None:
    with pytest.raises(ProtocolError) as raised:
        parse_publish(v5_publish("dt/a/1", bytes([0x7F, 0]), b"{}"), MQTT_5)
    assert raised.value.reason == Reason.MALFORMED_PACKET


def test_a_truncated_property_block_is_a_malformed_packet() -> None:
    with pytest.raises(ProtocolError) as raised:
        Reader(encode_varint(10) + CONTENT_TYPE[:3]).properties()
    assert raised.value.reason == Reason.MALFORMED_PACKET


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 268_435_455])
def test_variable_byte_integers_round_trip(value: int) -> None:
    assert Reader(encode_varint(value)).varint() == value


def test_a_v5_connect_with_a_will_is_read_to_its_client_id() -> None:
    will = encode_varint(0) + text("dt/a/will") + text("gone")
    properties = encode_varint(Prop.SESSION_EXPIRY) + struct.pack("!I", 60)
    body = text("MQTT") + bytes([5, 0x06]) + struct.pack("!H", 30) + encode_varint(len(properties)) + properties
    connect = parse_connect(body + text("device-1") + will)
    assert (connect.level, connect.client_id, connect.keep_alive, connect.supported) == (5, "device-1", 30, True)
    assert connect.properties.get(Prop.SESSION_EXPIRY) == 60


def test_an_unsupported_level_is_read_no_further() -> None:
    connect = parse_connect(text("MQTT") + bytes([6, 0]) + struct.pack("!H", 30) + b"\xff")
    assert (connect.level, connect.supported) == (6, False)


def test_subscribe_options_are_read_per_level() -> None:
    body = struct.pack("!H", 3) + encode_varint(0) + text("dt/a/#") + bytes([0x05])
    (subscription,) = parse_subscribe(Packet(8, 2, body), MQTT_5).subscriptions
    assert (subscription.topic_filter, subscription.qos, subscription.no_local) == ("dt/a/#", 1, True)
    with pytest.raises(ProtocolError):  # No Local does not exist in 3.1.1
        parse_subscribe(Packet(8, 2, struct.pack("!H", 3) + text("dt/a/#") + bytes([0x05])), MQTT_311)
