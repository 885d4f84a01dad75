"""The MQTT endpoint of ``jitr local up``: MQTT 3.1.1 over mutual TLS, deciding as AWS IoT does.

A small MQTT 3.1.1 server on asyncio (CONNECT/CONNACK, PUBLISH QoS 0 and 1 with PUBACK,
SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, PINGREQ/PINGRESP, DISCONNECT), listening on
``127.0.0.1:<mqtt-port>`` in a thread of its own. Each connection is upgraded to TLS with a
context trusting the CA certificates registered at that moment (:mod:`jitr.local.tls`);
the client's leaf certificate and client id then go to the :class:`Authorizer`, which
answers as AWS IoT would:

* a refused CONNECT gets CONNACK return code 5 (not authorised) and the connection closes;
* a second connection with the same client id disconnects the first;
* a PUBLISH the policies deny disconnects the client (AWS IoT does not drop it silently);
  an allowed one is delivered to the subscribers allowed to receive it, and, when its payload
  is JSON, to the template's IoT rules (``stack.rules.publish``), so the telemetry rule archives it;
* a SUBSCRIBE filter the policies deny gets the failure code 0x80 in the SUBACK.

QoS 2, retained messages, wills and persistent sessions are not served: AWS IoT does not
support QoS 2, and the registration workflow needs none of the others. A QoS 2 PUBLISH closes
the connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jitr.local.authorizer import Authorization, Authorizer
from jitr.local.errors import LocalRuntimeError
from jitr.local.rules import topic_matches
from jitr.local.tls import ClientTrust

logger = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK = 8, 9, 10, 11
PINGREQ, PINGRESP, DISCONNECT = 12, 13, 14
ACCEPTED, UNACCEPTABLE_PROTOCOL, IDENTIFIER_REJECTED, NOT_AUTHORISED = 0, 1, 2, 5
SUBSCRIBE_FAILURE = 0x80
PROTOCOL_LEVELS = {("MQTT", 4), ("MQIsdp", 3)}
HANDSHAKE_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
START_TIMEOUT_SECONDS = 10.0
MAX_PACKET_BYTES = 128 * 1024  # AWS IoT's message size limit


class ProtocolError(Exception):
    """A packet this server does not accept; the connection is closed."""


@dataclass(frozen=True)
class Packet:
    """One MQTT control packet: its type, the flags of its first byte, and its body."""

    kind: int
    flags: int
    body: bytes


@dataclass(frozen=True)
class Connect:
    """What a CONNECT packet says."""

    protocol: str
    level: int
    keep_alive: int
    client_id: str


class Reader:
    """Reads the fields of a packet body in order."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.offset = 0

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.body):
            raise ProtocolError("truncated packet")
        data = self.body[self.offset : self.offset + count]
        self.offset += count
        return data

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("!H", self.take(2))[0])

    def binary(self) -> bytes:
        return self.take(self.u16())

    def text(self) -> str:
        try:
            return self.binary().decode()
        except UnicodeDecodeError:
            raise ProtocolError("a string is not UTF-8") from None

    def rest(self) -> bytes:
        return self.take(len(self.body) - self.offset)

    def done(self) -> bool:
        return self.offset >= len(self.body)


def encode_length(length: int) -> bytes:
    """MQTT's variable-length remaining length."""
    out = bytearray()
    while True:
        digit, length = length % 128, length // 128
        out.append(digit | (0x80 if length else 0))
        if not length:
            return bytes(out)


def packet(kind: int, body: bytes, flags: int = 0) -> bytes:
    return bytes([(kind << 4) | flags]) + encode_length(len(body)) + body


def text(value: str) -> bytes:
    data = value.encode()
    return struct.pack("!H", len(data)) + data


def publish_packet(topic: str, payload: bytes, qos: int, packet_id: int) -> bytes:
    header = text(topic) + (struct.pack("!H", packet_id) if qos else b"")
    return packet(PUBLISH, header + payload, flags=qos << 1)


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
        raise ProtocolError("malformed remaining length")
    if length > MAX_PACKET_BYTES:
        raise ProtocolError(f"packet of {length} bytes is larger than {MAX_PACKET_BYTES}")
    return Packet(first >> 4, first & 0x0F, await reader.readexactly(length))


def parse_connect(body: bytes) -> Connect:
    fields = Reader(body)
    protocol, level, flags, keep_alive = fields.text(), fields.u8(), fields.u8(), fields.u16()
    client_id = fields.text()
    if flags & 0x04:  # will topic and message
        fields.text()
        fields.binary()
    if flags & 0x80:
        fields.text()
    if flags & 0x40:
        fields.binary()
    return Connect(protocol, level, keep_alive, client_id)


@dataclass
class Session:
    """One accepted MQTT connection: its client id, policies, subscriptions and writer."""

    client_id: str
    authorization: Authorization
    writer: asyncio.StreamWriter
    keep_alive: int = 0
    subscriptions: dict[str, int] = field(default_factory=dict)
    next_packet_id: int = 0

    def packet_id(self) -> int:
        self.next_packet_id = self.next_packet_id % 0xFFFF + 1
        return self.next_packet_id

    def close(self) -> None:
        self.writer.close()


class MqttBroker:
    """The MQTT endpoint on ``127.0.0.1:<port>`` (0: any free port), in its own thread until ``stop``."""

    def __init__(
        self,
        authorizer: Authorizer,
        trust: ClientTrust,
        *,
        host: str = "127.0.0.1",
        port: int = 8883,
        publish_to_rules: Callable[[str, Any], object] | None = None,
    ) -> None:
        self.authorizer = authorizer
        self.trust = trust
        self.host = host
        self.port = port
        self.publish_to_rules = publish_to_rules or authorizer.stack.rules.publish
        self.sessions: dict[str, Session] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._calls: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> int:
        """Listen, and return the port in use; a port that cannot be bound is a ``LocalRuntimeError``."""
        self._thread = threading.Thread(target=self._run, daemon=True, name="jitr-local-mqtt")
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_SECONDS):
            raise LocalRuntimeError(f"the MQTT endpoint did not start within {START_TIMEOUT_SECONDS:.0f}s")
        if self._error is not None:
            raise LocalRuntimeError(f"cannot listen on {self.host}:{self.port}: {self._error}")
        return self.port

    def stop(self) -> None:
        """Close every connection, stop listening and release the port."""
        loop = self._loop
        if loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        self._thread.join(START_TIMEOUT_SECONDS)
        self._loop = None

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            self._server = loop.run_until_complete(asyncio.start_server(self._serve, self.host, self.port))
        except OSError as exc:
            self._error = exc.strerror or str(exc)
            self._started.set()
            loop.close()
            return
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._loop = loop
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions.values()):
            session.close()
        self.sessions.clear()
        if self._calls:  # registrations and rule actions under way finish before the stack stops
            await asyncio.wait(list(self._calls), timeout=START_TIMEOUT_SECONDS)
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=START_TIMEOUT_SECONDS)
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), START_TIMEOUT_SECONDS)
        asyncio.get_running_loop().stop()

    async def _in_thread(self, function: Callable[..., T], *args: Any) -> T:
        """Run a call to the local AWS off the event loop; ``stop`` waits for it even if the client goes."""
        call = asyncio.ensure_future(asyncio.to_thread(function, *args))
        self._calls.add(call)
        call.add_done_callback(self._calls.discard)
        return await asyncio.shield(call)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session: Session | None = None
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await writer.start_tls(self.trust.context(), ssl_handshake_timeout=HANDSHAKE_TIMEOUT_SECONDS)
            session = await self._accept(reader, writer)
            if session is not None:
                await self._session_loop(session, reader)
        except (ProtocolError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            logger.debug("MQTT connection closed: %s", exc)
        except Exception:  # the local AWS failed while deciding: this connection ends, the endpoint serves on
            logger.exception("MQTT connection closed on an error")
        finally:
            if session is not None and self.sessions.get(session.client_id) is session:
                del self.sessions[session.client_id]
            writer.close()
            if task is not None:
                self._connections.discard(task)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Session | None:
        first = await asyncio.wait_for(read_packet(reader), CONNECT_TIMEOUT_SECONDS)
        if first.kind != CONNECT:
            raise ProtocolError("the first packet is not CONNECT")
        connect = parse_connect(first.body)
        if (connect.protocol, connect.level) not in PROTOCOL_LEVELS:
            await self._connack(writer, UNACCEPTABLE_PROTOCOL)
            return None
        if not connect.client_id:
            await self._connack(writer, IDENTIFIER_REJECTED)
            return None
        ssl_object = writer.get_extra_info("ssl_object")
        leaf = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not leaf:
            raise ProtocolError("no client certificate")
        decision = await self._in_thread(self.authorizer.connect, leaf, connect.client_id)
        if not decision.accepted or decision.policies is None:
            logger.info("CONNECT %s refused: %s", connect.client_id, decision.reason)
            await self._connack(writer, NOT_AUTHORISED)
            return None
        previous = self.sessions.get(connect.client_id)
        if previous is not None:
            previous.close()
        authorization = self.authorizer.authorization(decision.policies)
        session = Session(connect.client_id, authorization, writer, keep_alive=connect.keep_alive)
        self.sessions[connect.client_id] = session
        await self._connack(writer, ACCEPTED)
        return session

    @staticmethod
    async def _connack(writer: asyncio.StreamWriter, code: int) -> None:
        writer.write(packet(CONNACK, bytes([0, code])))
        await writer.drain()

    async def _session_loop(self, session: Session, reader: asyncio.StreamReader) -> None:
        handlers: dict[int, Callable[[Session, Packet], Awaitable[bool]]] = {
            PUBLISH: self._on_publish,
            SUBSCRIBE: self._on_subscribe,
            UNSUBSCRIBE: self._on_unsubscribe,
            PINGREQ: self._on_ping,
            PUBACK: self._on_puback,
        }
        keep_alive = session_timeout(session.keep_alive)
        while True:
            received = await asyncio.wait_for(read_packet(reader), keep_alive)
            if received.kind == DISCONNECT:
                return
            handler = handlers.get(received.kind)
            if handler is None:
                raise ProtocolError(f"unexpected packet type {received.kind}")
            if not await handler(session, received):
                return

    async def _on_publish(self, session: Session, received: Packet) -> bool:
        qos = (received.flags >> 1) & 0x03
        if qos > 1:
            raise ProtocolError("QoS 2 is not supported")
        fields = Reader(received.body)
        topic = fields.text()
        packet_id = fields.u16() if qos else 0
        payload = fields.rest()
        if not session.authorization.may_publish(topic):
            logger.info("PUBLISH by %s on %s denied: disconnecting", session.client_id, topic)
            return False
        if qos:
            session.writer.write(packet(PUBACK, struct.pack("!H", packet_id)))
        self._deliver(topic, payload, qos)
        await session.writer.drain()
        message = json_payload(payload)
        if message is not None:
            await self._in_thread(self._to_rules, topic, message)
        return True

    def _to_rules(self, topic: str, message: Any) -> None:
        """Hand a message to the IoT rules; a failing action is logged, as AWS IoT reports it, not the device's error."""
        try:
            self.publish_to_rules(topic, message)
        except Exception:
            logger.exception("IoT rules failed on a message on %s", topic)

    def _deliver(self, topic: str, payload: bytes, qos: int) -> None:
        for subscriber in list(self.sessions.values()):
            granted = [q for f, q in subscriber.subscriptions.items() if topic_matches(f, topic)]
            if not granted or not subscriber.authorization.may_receive(topic):
                continue
            delivered_qos = min(qos, max(granted))
            packet_id = subscriber.packet_id() if delivered_qos else 0
            subscriber.writer.write(publish_packet(topic, payload, delivered_qos, packet_id))

    async def _on_subscribe(self, session: Session, received: Packet) -> bool:
        fields = Reader(received.body)
        packet_id = fields.u16()
        codes = bytearray()
        while not fields.done():
            topic_filter, requested = fields.text(), fields.u8() & 0x03
            if valid_filter(topic_filter) and session.authorization.may_subscribe(topic_filter):
                granted = min(requested, 1)
                session.subscriptions[topic_filter] = granted
                codes.append(granted)
            else:
                codes.append(SUBSCRIBE_FAILURE)
        session.writer.write(packet(SUBACK, struct.pack("!H", packet_id) + bytes(codes)))
        await session.writer.drain()
        return True

    async def _on_unsubscribe(self, session: Session, received: Packet) -> bool:
        fields = Reader(received.body)
        packet_id = fields.u16()
        while not fields.done():
            session.subscriptions.pop(fields.text(), None)
        session.writer.write(packet(UNSUBACK, struct.pack("!H", packet_id)))
        await session.writer.drain()
        return True

    @staticmethod
    async def _on_ping(session: Session, received: Packet) -> bool:
        session.writer.write(packet(PINGRESP, b""))
        await session.writer.drain()
        return True

    @staticmethod
    async def _on_puback(session: Session, received: Packet) -> bool:
        return True


def session_timeout(keep_alive: int) -> float | None:
    """How long a connection may stay silent: one and a half keep-alive periods (none when 0)."""
    return keep_alive * 1.5 if keep_alive else None


def valid_filter(topic_filter: str) -> bool:
    """An MQTT topic filter: not empty, ``#`` only as the last level, wildcards only as whole levels."""
    if not topic_filter:
        return False
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def json_payload(payload: bytes) -> Any | None:
    """The payload as JSON, or None when it is not JSON (the IoT rules receive JSON messages only)."""
    try:
        return json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
