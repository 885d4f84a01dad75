"""MQTT 3.1.1 and 5 control packets as the local endpoint reads and writes them.

Reading: :func:`read_packet` frames a packet; :class:`Reader` takes its fields in order;
:func:`parse_connect`, :func:`parse_publish` and :func:`parse_subscribe` decode what the
server needs from the client. Writing: :func:`packet` frames a body, and the ``*_packet``
functions build the server's packets for the protocol level of the session (4 or 5).

MQTT 5 properties are read as :class:`Properties`: each property keeps its encoded bytes, so
the ones a message carries (content type, user properties, response topic…) are forwarded
to MQTT 5 subscribers unchanged.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT, AUTH = 12, 13, 14, 15

MQTT_311, MQTT_5 = 4, 5
PROTOCOL_LEVELS = {("MQTT", MQTT_311), ("MQTT", MQTT_5), ("MQIsdp", 3)}
MAX_PACKET_BYTES = 128 * 1024  # AWS IoT's message size limit

# MQTT 3.1.1 CONNACK return codes.
ACCEPTED, UNACCEPTABLE_PROTOCOL, IDENTIFIER_REJECTED, NOT_AUTHORISED = 0, 1, 2, 5
SUBSCRIBE_FAILURE = 0x80


class Reason:
    """MQTT 5 reason codes the endpoint sends (the subset AWS IoT documents)."""

    SUCCESS = 0x00
    NO_SUBSCRIPTION_EXISTED = 0x11
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    NOT_AUTHORIZED = 0x87
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    ADMINISTRATIVE_ACTION = 0x98
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1


class Prop:
    """MQTT 5 property identifiers."""

    PAYLOAD_FORMAT = 0x01
    MESSAGE_EXPIRY = 0x02
    CONTENT_TYPE = 0x03
    RESPONSE_TOPIC = 0x08
    CORRELATION_DATA = 0x09
    SUBSCRIPTION_IDENTIFIER = 0x0B
    SESSION_EXPIRY = 0x11
    AUTHENTICATION_METHOD = 0x15
    REASON_STRING = 0x1F
    TOPIC_ALIAS_MAXIMUM = 0x22
    TOPIC_ALIAS = 0x23
    MAXIMUM_QOS = 0x24
    RETAIN_AVAILABLE = 0x25
    USER_PROPERTY = 0x26
    MAXIMUM_PACKET_SIZE = 0x27
    WILDCARD_AVAILABLE = 0x28
    SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
    SHARED_SUBSCRIPTION_AVAILABLE = 0x2A


# How each property's value is encoded: a byte, 2 or 4 byte integers, a variable byte integer,
# a UTF-8 string, binary data, or a pair of strings.
BYTE, U16, U32, VARINT, STRING, BINARY, PAIR = range(7)
PROPERTY_TYPES: dict[int, int] = {
    0x01: BYTE,
    0x02: U32,
    0x03: STRING,
    0x08: STRING,
    0x09: BINARY,
    0x0B: VARINT,
    0x11: U32,
    0x12: STRING,
    0x13: U16,
    0x15: STRING,
    0x16: BINARY,
    0x17: BYTE,
    0x18: U32,
    0x19: BYTE,
    0x1A: STRING,
    0x1C: STRING,
    0x1F: STRING,
    0x21: U16,
    0x22: U16,
    0x23: U16,
    0x24: BYTE,
    0x25: BYTE,
    0x26: PAIR,
    0x27: U32,
    0x28: BYTE,
    0x29: BYTE,
    0x2A: BYTE,
}
# The properties of a PUBLISH that travel with the message to its subscribers.
FORWARDED_PROPERTIES = frozenset(
    {
        Prop.PAYLOAD_FORMAT,
        Prop.MESSAGE_EXPIRY,
        Prop.CONTENT_TYPE,
        Prop.RESPONSE_TOPIC,
        Prop.CORRELATION_DATA,
        Prop.USER_PROPERTY,
    }
)


class Disconnect(Exception):
    """The server ends the connection; an MQTT 5 client is told ``reason`` in a DISCONNECT first."""

    def __init__(self, message: str, reason: int) -> None:
        super().__init__(message)
        self.reason = reason


class ProtocolError(Disconnect):
    """A packet this server does not accept."""

    def __init__(self, message: str, reason: int = Reason.PROTOCOL_ERROR) -> None:
        super().__init__(message, reason)


def malformed(message: str) -> ProtocolError:
    return ProtocolError(message, Reason.MALFORMED_PACKET)


@dataclass(frozen=True)
class Packet:
    """One MQTT control packet: its type, the flags of its first byte, and its body."""

    kind: int
    flags: int
    body: bytes


@dataclass(frozen=True)
class Properties:
    """The properties of an MQTT 5 packet: ``(identifier, value, encoded bytes)`` in the order received."""

    items: tuple[tuple[int, object, bytes], ...] = ()

    def get(self, identifier: int) -> object | None:
        return next((value for key, value, _ in self.items if key == identifier), None)

    def has(self, identifier: int) -> bool:
        return any(key == identifier for key, _, _ in self.items)

    def encoded(self, keep: Iterable[int] | None = None) -> bytes:
        """The property block (length and properties), with only the identifiers in ``keep`` when given."""
        kept = set(keep) if keep is not None else None
        data = b"".join(raw for key, _, raw in self.items if kept is None or key in kept)
        return encode_varint(len(data)) + data


NO_PROPERTIES = Properties()


class Reader:
    """Reads the fields of a packet body in order."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.offset = 0

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.body):
            raise malformed("truncated packet")
        data = self.body[self.offset : self.offset + count]
        self.offset += count
        return data

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def u32(self) -> int:
        return int(struct.unpack("!I", self.take(4))[0])

    def varint(self) -> int:
        value, multiplier = 0, 1
        for _ in range(4):
            digit = self.u8()
            value += (digit & 0x7F) * multiplier
            if not digit & 0x80:
                return value
            multiplier *= 128
        raise malformed("malformed variable byte integer")

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            return self.binary().decode()
        except UnicodeDecodeError:
            raise malformed("a string is not UTF-8") from None

    def properties(self) -> Properties:
        """An MQTT 5 property block; an unknown identifier is a malformed packet."""
        end = self.varint() + self.offset
        if end > len(self.body):
            raise malformed("truncated properties")
        found: list[tuple[int, object, bytes]] = []
        while self.offset < end:
            start = self.offset
            identifier = self.varint()
            kind = PROPERTY_TYPES.get(identifier)
            if kind is None:
                raise malformed(f"unknown property 0x{identifier:02x}")
            value = self._value(kind)
            found.append((identifier, value, self.body[start : self.offset]))
        if self.offset != end:
            raise malformed("a property overruns its block")
        return Properties(tuple(found))

    def _value(self, kind: int) -> object:
        readers = {
            BYTE: self.u8,
            U16: self.u16,
            U32: self.u32,
            VARINT: self.varint,
            STRING: self.text,
            BINARY: self.binary,
        }
        if kind == PAIR:
            return (self.text(), self.text())
        return readers[kind]()

    def rest(self) -> bytes:
        return self.take(len(self.body) - self.offset)

    def done(self) -> bool:
        return self.offset >= len(self.body)


def encode_varint(value: int) -> bytes:
    """MQTT's variable byte integer (the remaining length, property lengths)."""
    out = bytearray()
    while True:
        digit, value = value % 128, value // 128
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packet(kind: int, body: bytes, flags: int = 0) -> bytes:
    return bytes([(kind << 4) | flags]) + encode_varint(len(body)) + body


def text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def property_block(*properties: tuple[int, int]) -> bytes:
    """A property block of byte, 2-byte and 4-byte integer properties, encoded by their identifier's type."""
    data = bytearray()
    for identifier, value in properties:
        width = {BYTE: "!B", U16: "!H", U32: "!I"}[PROPERTY_TYPES[identifier]]
        data += encode_varint(identifier) + struct.pack(width, value)
    return encode_varint(len(data)) + bytes(data)


async def read_packet(reader: asyncio.StreamReader) -> Packet:
    first = (await reader.readexactly(1))[0]
    length, multiplier = 0, 1
    for _ in range(4):
        digit = (await reader.readexactly(1))[0]
        length += (digit & 0x7F) * multiplier
        if not digit & 0x80:
            break
        multiplier *= 128
    else:
        raise malformed("malformed remaining length")
    if length > MAX_PACKET_BYTES:
        raise ProtocolError(f"packet of {length} bytes is larger than {MAX_PACKET_BYTES}", Reason.PACKET_TOO_LARGE)
    return Packet(first >> 4, first & 0x0F, await reader.readexactly(length))


@dataclass(frozen=True)
class Connect:
    """What a CONNECT packet says."""

    protocol: str
    level: int
    keep_alive: int
    client_id: str
    properties: Properties = NO_PROPERTIES

    @property
    def supported(self) -> bool:
        return (self.protocol, self.level) in PROTOCOL_LEVELS


def parse_connect(body: bytes) -> Connect:
    """A CONNECT of any protocol level: an unsupported level stops after the fixed fields."""
    fields = Reader(body)
    protocol, level, flags, keep_alive = fields.text(), fields.u8(), fields.u8(), fields.u16()
    if (protocol, level) not in PROTOCOL_LEVELS:
        return Connect(protocol, level, keep_alive, "")
    properties = fields.properties() if level == MQTT_5 else NO_PROPERTIES
    client_id = fields.text()
    if flags & 0x04:  # will: (MQTT 5) its properties, then topic and message
        if level == MQTT_5:
            fields.properties()
        fields.text()
        fields.binary()
    if flags & 0x80:
        fields.text()
    if flags & 0x40:
        fields.binary()
    return Connect(protocol, level, keep_alive, client_id, properties)


@dataclass(frozen=True)
class Publish:
    """What a PUBLISH packet says; ``topic`` is empty when an MQTT 5 topic alias stands for it."""

    topic: str
    qos: int
    retain: bool
    packet_id: int
    payload: bytes
    properties: Properties = NO_PROPERTIES


def parse_publish(received: Packet, level: int) -> Publish:
    qos, retain = (received.flags >> 1) & 0x03, bool(received.flags & 0x01)
    if qos == 3:
        raise malformed("PUBLISH with QoS 3")
    fields = Reader(received.body)
    topic = fields.text()
    packet_id = fields.u16() if qos else 0
    properties = fields.properties() if level == MQTT_5 else NO_PROPERTIES
    return Publish(topic, qos, retain, packet_id, fields.rest(), properties)


@dataclass(frozen=True)
class Subscription:
    """One topic filter of a SUBSCRIBE with its options (MQTT 5's No Local; QoS requested)."""

    topic_filter: str
    qos: int
    no_local: bool = False


@dataclass(frozen=True)
class Subscribe:
    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = NO_PROPERTIES


def parse_subscribe(received: Packet, level: int) -> Subscribe:
    fields = Reader(received.body)
    packet_id = fields.u16()
    properties = fields.properties() if level == MQTT_5 else NO_PROPERTIES
    subscriptions = []
    while not fields.done():
        topic_filter, options = fields.text(), fields.u8()
        if options & 0xC0 or options & 0x03 == 3 or (level != MQTT_5 and options & 0xFC):
            raise malformed(f"reserved subscription option bits set for {topic_filter!r}")
        subscriptions.append(Subscription(topic_filter, options & 0x03, bool(options & 0x04)))
    if not subscriptions:
        raise ProtocolError("SUBSCRIBE without a topic filter")
    return Subscribe(packet_id, subscriptions, properties)


def parse_unsubscribe(received: Packet, level: int) -> tuple[int, list[str]]:
    fields = Reader(received.body)
    packet_id = fields.u16()
    if level == MQTT_5:
        fields.properties()
    filters = []
    while not fields.done():
        filters.append(fields.text())
    return packet_id, filters


def connack_packet(level: int, code: int, properties: bytes = b"") -> bytes:
    """CONNACK with a 3.1.1 return code or an MQTT 5 reason code (and properties); never a present session."""
    if level == MQTT_5:
        return packet(CONNACK, bytes([0, code]) + (properties or encode_varint(0)))
    return packet(CONNACK, bytes([0, code]))


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int, properties: bytes | None = None) -> bytes:
    """PUBLISH to a subscriber; ``properties`` is the encoded block for an MQTT 5 subscriber, None for 3.1.1."""
    header = text(topic) + (struct.pack("!H", packet_id) if qos else b"")
    if properties is not None:
        header += properties
    return packet(PUBLISH, header + payload, flags=qos << 1)


def ack_packet(kind: int, level: int, packet_id: int, reason: int = Reason.SUCCESS) -> bytes:
    """PUBACK (or another acknowledgement of one packet id); MQTT 5 carries the reason code when not success."""
    body = struct.pack("!H", packet_id)
    if level == MQTT_5 and reason != Reason.SUCCESS:
        body += bytes([reason]) + encode_varint(0)
    return packet(kind, body)


def codes_packet(kind: int, level: int, packet_id: int, codes: Iterable[int]) -> bytes:
    """SUBACK or UNSUBACK: the packet id, (MQTT 5) empty properties, one code per filter (none in 3.1.1 UNSUBACK)."""
    body = struct.pack("!H", packet_id)
    if level == MQTT_5:
        body += encode_varint(0)
    if level == MQTT_5 or kind == SUBACK:
        body += bytes(codes)
    return packet(kind, body)


def disconnect_packet(reason: int) -> bytes:
    """The server's MQTT 5 DISCONNECT with its reason code."""
    return packet(DISCONNECT, bytes([reason]) + encode_varint(0))
