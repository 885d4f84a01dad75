"""The MQTT endpoint of ``jitr local up``: MQTT 3.1.1 and 5 over mutual TLS, deciding as AWS IoT does.

A small MQTT server on asyncio (CONNECT/CONNACK, PUBLISH QoS 0 and 1 with PUBACK,
SUBSCRIBE/SUBACK, UNSUBSCRIBE/UNSUBACK, PINGREQ/PINGRESP, DISCONNECT), listening on
``127.0.0.1:<mqtt-port>`` in a thread of its own. Each connection is upgraded to TLS with a
context trusting the CA certificates registered at that moment (:mod:`jitr.local.tls`);
the client's leaf certificate and client id then go to the :class:`Authorizer`, which
answers as AWS IoT would:

* a refused CONNECT gets CONNACK "not authorised" (3.1.1: return code 5, MQTT 5: 0x87) and
  the connection closes;
* a second connection with the same client id disconnects the first;
* a PUBLISH the policies deny disconnects the client (AWS IoT does not drop it silently);
  an allowed one is delivered to the subscribers allowed to receive it, and, when its payload
  is JSON, to the template's IoT rules (``stack.rules.publish``), so the telemetry rule archives it;
* a SUBSCRIBE filter the policies deny gets a failure code in the SUBACK (3.1.1: 0x80, MQTT 5: 0x87);
* a certificate that stops being ``ACTIVE`` (deactivated, revoked) ends its open sessions.

MQTT 5 clients get reason codes and a DISCONNECT packet saying why the server ends their
session (not authorised, session taken over, keep-alive timeout, protocol error, shutting
down, administrative action); their CONNACK announces what the endpoint serves (maximum QoS 1,
no retained messages, topic aliases up to 8, no shared subscriptions or subscription
identifiers), message properties travel to MQTT 5 subscribers, and No Local is honoured.

QoS 2, retained messages, wills and persistent sessions are not served: AWS IoT does not
support QoS 2, and the registration workflow needs none of the others. A QoS 2 PUBLISH closes
the connection; a 3.1.1 retained PUBLISH is delivered as an ordinary message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from jitr.local.authorizer import ACTIVE, Authorization, Authorizer
from jitr.local.errors import LocalRuntimeError
from jitr.local.mqtt_packets import (
    ACCEPTED,
    AUTH,
    CONNECT,
    DISCONNECT,
    FORWARDED_PROPERTIES,
    IDENTIFIER_REJECTED,
    MAX_PACKET_BYTES,
    MQTT_5,
    NOT_AUTHORISED,
    PINGREQ,
    PINGRESP,
    PUBACK,
    PUBLISH,
    SUBACK,
    SUBSCRIBE,
    SUBSCRIBE_FAILURE,
    UNACCEPTABLE_PROTOCOL,
    UNSUBACK,
    UNSUBSCRIBE,
    Connect,
    Disconnect,
    Packet,
    Prop,
    ProtocolError,
    Publish,
    Reason,
    ack_packet,
    codes_packet,
    connack_packet,
    disconnect_packet,
    packet,
    parse_connect,
    parse_publish,
    parse_subscribe,
    parse_unsubscribe,
    property_block,
    publish_packet,
    read_packet,
)
from jitr.local.rules import topic_matches
from jitr.local.tls import ClientTrust, send_handshake_alerts

logger = logging.getLogger(__name__)
T = TypeVar("T")

HANDSHAKE_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 10.0
START_TIMEOUT_SECONDS = 10.0
STATUS_CHECK_SECONDS = 1.0  # how often open sessions' certificates are checked for ACTIVE
TOPIC_ALIAS_MAXIMUM = 8  # AWS IoT's limit
SHARED_SUBSCRIPTION_PREFIX = "$share/"
# What an MQTT 5 CONNACK tells the client the endpoint serves.
CONNACK_PROPERTIES = property_block(
    (Prop.MAXIMUM_QOS, 1),
    (Prop.RETAIN_AVAILABLE, 0),
    (Prop.TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS_MAXIMUM),
    (Prop.MAXIMUM_PACKET_SIZE, MAX_PACKET_BYTES),
    (Prop.SUBSCRIPTION_IDENTIFIER_AVAILABLE, 0),
    (Prop.SHARED_SUBSCRIPTION_AVAILABLE, 0),
)


# The 3.1.1 CONNACK return codes the endpoint sends, as MQTT 5 reason codes.
MQTT5_CONNACK_REASONS = {
    ACCEPTED: Reason.SUCCESS,
    IDENTIFIER_REJECTED: Reason.CLIENT_IDENTIFIER_NOT_VALID,
    NOT_AUTHORISED: Reason.NOT_AUTHORIZED,
}


@dataclass(frozen=True)
class Grant:
    """A subscription a session holds: the QoS granted and MQTT 5's No Local option."""

    qos: int
    no_local: bool = False


@dataclass
class Session:
    """One accepted MQTT connection: its client id, certificate, policies, subscriptions and writer."""

    client_id: str
    authorization: Authorization
    writer: asyncio.StreamWriter
    level: int = 4
    certificate_id: str = ""
    keep_alive: int = 0
    max_packet_size: int | None = None
    subscriptions: dict[str, Grant] = field(default_factory=dict)
    topic_aliases: dict[int, str] = field(default_factory=dict)
    next_packet_id: int = 0

    @property
    def mqtt5(self) -> bool:
        return self.level == MQTT_5

    def packet_id(self) -> int:
        self.next_packet_id = self.next_packet_id % 0xFFFF + 1
        return self.next_packet_id

    def close(self, reason: int | None = None) -> None:
        """End the connection; an MQTT 5 client is first sent a DISCONNECT with ``reason``."""
        if reason is not None and self.mqtt5 and not self.writer.is_closing():
            self.writer.write(disconnect_packet(reason))
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
        self._status_check: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> int:
        """Listen, and return the port in use; a port that cannot be bound is a ``LocalRuntimeError``."""
        send_handshake_alerts()
        self._thread = threading.Thread(target=self._run, daemon=True, name="jitr-local-mqtt")
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_SECONDS):
            raise LocalRuntimeError(f"the MQTT endpoint did not start within {START_TIMEOUT_SECONDS:.0f}s")
        if self._error is not None:
            raise LocalRuntimeError(f"cannot listen on {self.host}:{self.port}: {self._error}")
        return self.port

    def stop(self) -> None:
        """Close every connection (MQTT 5: "server shutting down"), stop listening and release the port."""
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
        self._status_check = loop.create_task(self._end_sessions_of_inactive_certificates())
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _shutdown(self) -> None:
        if self._status_check is not None:
            self._status_check.cancel()
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions.values()):
            session.close(Reason.SERVER_SHUTTING_DOWN)
        self.sessions.clear()
        if self._calls:  # registrations and rule actions under way finish before the stack stops
            await asyncio.wait(list(self._calls), timeout=START_TIMEOUT_SECONDS)
        for call in list(self._calls):  # those still waiting for a thread never start
            call.cancel()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(list(self._connections), timeout=START_TIMEOUT_SECONDS)
        if self._server is not None:
            await asyncio.wait_for(self._server.wait_closed(), START_TIMEOUT_SECONDS)
        asyncio.get_running_loop().stop()

    async def _end_sessions_of_inactive_certificates(self) -> None:
        """As AWS IoT does, close the sessions whose certificate was deactivated or revoked since they connected."""
        while True:
            await asyncio.sleep(STATUS_CHECK_SECONDS)
            for session in list(self.sessions.values()):
                status = self.authorizer.certificate_status(session.certificate_id)
                if status != ACTIVE:
                    logger.info("certificate of %s is now %s: disconnecting", session.client_id, status)
                    session.close(Reason.ADMINISTRATIVE_ACTION)

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
        except Disconnect as exc:
            logger.info("MQTT connection closed: %s", exc)
            if session is not None:
                session.close(exc.reason)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
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
        refusal = self._refusal(connect)
        if refusal is not None:
            await self._connack(writer, connect.level, refusal)
            return None
        ssl_object = writer.get_extra_info("ssl_object")
        leaf = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not leaf:
            raise ProtocolError("no client certificate")
        decision = await self._in_thread(self.authorizer.connect, leaf, connect.client_id)
        if not decision.accepted or decision.policies is None:
            logger.info("CONNECT %s refused: %s", connect.client_id, decision.reason)
            await self._connack(writer, connect.level, NOT_AUTHORISED)
            return None
        previous = self.sessions.get(connect.client_id)
        if previous is not None:
            previous.close(Reason.SESSION_TAKEN_OVER)
        session = self._session(connect, writer, self.authorizer.authorization(decision.policies))
        session.certificate_id = decision.certificate_id
        self.sessions[connect.client_id] = session
        await self._connack(writer, connect.level, ACCEPTED)
        return session

    @staticmethod
    def _refusal(connect: Connect) -> int | None:
        """The CONNACK code of a CONNECT refused before its certificate is looked at, or None.

        A 3.1.1 return code (``_connack`` turns it into the MQTT 5 reason code), or a reason code
        only MQTT 5 has.
        """
        if not connect.supported:
            return UNACCEPTABLE_PROTOCOL
        if not connect.client_id:
            return IDENTIFIER_REJECTED
        if connect.properties.has(Prop.AUTHENTICATION_METHOD):  # MQTT 5 enhanced authentication
            return Reason.BAD_AUTHENTICATION_METHOD
        return None

    @staticmethod
    def _session(connect: Connect, writer: asyncio.StreamWriter, authorization: Authorization) -> Session:
        max_packet_size = connect.properties.get(Prop.MAXIMUM_PACKET_SIZE)
        return Session(
            connect.client_id,
            authorization,
            writer,
            level=connect.level,
            keep_alive=connect.keep_alive,
            max_packet_size=max_packet_size if isinstance(max_packet_size, int) else None,
        )

    @staticmethod
    async def _connack(writer: asyncio.StreamWriter, level: int, code: int) -> None:
        """CONNACK; a 3.1.1 return code is sent to an MQTT 5 client as its reason code."""
        if level == MQTT_5:
            code = MQTT5_CONNACK_REASONS.get(code, code)
            writer.write(connack_packet(level, code, CONNACK_PROPERTIES if code == Reason.SUCCESS else b""))
        else:
            writer.write(connack_packet(level, code))
        await writer.drain()

    async def _session_loop(self, session: Session, reader: asyncio.StreamReader) -> None:
        handlers: dict[int, Callable[[Session, Packet], Awaitable[None]]] = {
            PUBLISH: self._on_publish,
            SUBSCRIBE: self._on_subscribe,
            UNSUBSCRIBE: self._on_unsubscribe,
            PINGREQ: self._on_ping,
            PUBACK: self._on_puback,
        }
        keep_alive = session_timeout(session.keep_alive)
        while True:
            try:
                received = await asyncio.wait_for(read_packet(reader), keep_alive)
            except TimeoutError:
                raise Disconnect("keep-alive timeout", Reason.KEEP_ALIVE_TIMEOUT) from None
            if received.kind == DISCONNECT:
                return
            handler = handlers.get(received.kind)
            if handler is None:
                kind = "AUTH (enhanced authentication)" if received.kind == AUTH else str(received.kind)
                raise ProtocolError(f"unexpected packet type {kind}")
            await handler(session, received)

    async def _on_publish(self, session: Session, received: Packet) -> None:
        publish = parse_publish(received, session.level)
        if publish.qos > 1:
            raise ProtocolError("QoS 2 is not supported", Reason.QOS_NOT_SUPPORTED)
        if publish.retain and session.mqtt5:
            raise ProtocolError("retained messages are not supported", Reason.RETAIN_NOT_SUPPORTED)
        topic = self._topic_of(session, publish)
        if not session.authorization.may_publish(topic):
            if publish.qos and session.mqtt5:
                session.writer.write(ack_packet(PUBACK, session.level, publish.packet_id, Reason.NOT_AUTHORIZED))
            raise Disconnect(f"PUBLISH by {session.client_id} on {topic} denied", Reason.NOT_AUTHORIZED)
        if publish.qos:
            session.writer.write(ack_packet(PUBACK, session.level, publish.packet_id))
        self._deliver(session, topic, publish)
        await session.writer.drain()
        message = json_payload(publish.payload)
        if message is not None:
            await self._in_thread(self._to_rules, topic, message)

    @staticmethod
    def _topic_of(session: Session, publish: Publish) -> str:
        """The PUBLISH's topic name, resolving (and recording) an MQTT 5 topic alias; wildcards are refused."""
        topic = publish.topic
        alias = publish.properties.get(Prop.TOPIC_ALIAS)
        if isinstance(alias, int):
            if not 0 < alias <= TOPIC_ALIAS_MAXIMUM:
                raise ProtocolError(f"topic alias {alias} is out of range", Reason.TOPIC_ALIAS_INVALID)
            if topic:
                session.topic_aliases[alias] = topic
            elif alias in session.topic_aliases:
                topic = session.topic_aliases[alias]
            else:
                raise ProtocolError(f"topic alias {alias} was never set", Reason.TOPIC_ALIAS_INVALID)
        if not topic or "+" in topic or "#" in topic:
            raise ProtocolError(f"invalid topic name {topic!r}", Reason.TOPIC_NAME_INVALID)
        return topic

    def _to_rules(self, topic: str, message: Any) -> None:
        """Hand a message to the IoT rules; a failing action is logged, as AWS IoT reports it, not the device's error."""
        try:
            self.publish_to_rules(topic, message)
        except Exception:
            logger.exception("IoT rules failed on a message on %s", topic)

    def _deliver(self, sender: Session, topic: str, publish: Publish) -> None:
        for subscriber in list(self.sessions.values()):
            grants = [
                grant
                for topic_filter, grant in subscriber.subscriptions.items()
                if topic_matches(topic_filter, topic) and not (grant.no_local and subscriber is sender)
            ]
            if not grants or not subscriber.authorization.may_receive(topic):
                continue
            qos = min(publish.qos, max(grant.qos for grant in grants))
            properties = publish.properties.encoded(FORWARDED_PROPERTIES) if subscriber.mqtt5 else None
            outgoing = publish_packet(topic, publish.payload, qos, subscriber.packet_id() if qos else 0, properties)
            if subscriber.max_packet_size is not None and len(outgoing) > subscriber.max_packet_size:
                continue  # larger than the client accepts: MQTT 5 says the server discards it
            subscriber.writer.write(outgoing)

    async def _on_subscribe(self, session: Session, received: Packet) -> None:
        subscribe = parse_subscribe(received, session.level)
        if subscribe.properties.has(Prop.SUBSCRIPTION_IDENTIFIER):
            raise ProtocolError(
                "subscription identifiers are not supported", Reason.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED
            )
        codes = []
        for subscription in subscribe.subscriptions:
            code = self._subscription_refusal(session, subscription.topic_filter)
            if code is None:
                granted = min(subscription.qos, 1)
                session.subscriptions[subscription.topic_filter] = Grant(granted, subscription.no_local)
                code = granted
            codes.append(code)
        session.writer.write(codes_packet(SUBACK, session.level, subscribe.packet_id, codes))
        await session.writer.drain()

    @staticmethod
    def _subscription_refusal(session: Session, topic_filter: str) -> int | None:
        """The SUBACK failure code for a filter the session may not subscribe to, or None when it may."""
        if topic_filter.startswith(SHARED_SUBSCRIPTION_PREFIX):
            return Reason.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED if session.mqtt5 else SUBSCRIBE_FAILURE
        if not valid_filter(topic_filter):
            return Reason.TOPIC_FILTER_INVALID if session.mqtt5 else SUBSCRIBE_FAILURE
        if not session.authorization.may_subscribe(topic_filter):
            return Reason.NOT_AUTHORIZED if session.mqtt5 else SUBSCRIBE_FAILURE
        return None

    async def _on_unsubscribe(self, session: Session, received: Packet) -> None:
        packet_id, filters = parse_unsubscribe(received, session.level)
        codes = [
            Reason.SUCCESS if session.subscriptions.pop(topic_filter, None) else Reason.NO_SUBSCRIPTION_EXISTED
            for topic_filter in filters
        ]
        session.writer.write(codes_packet(UNSUBACK, session.level, packet_id, codes))
        await session.writer.drain()

    @staticmethod
    async def _on_ping(session: Session, received: Packet) -> None:
        session.writer.write(packet(PINGRESP, b""))
        await session.writer.drain()

    @staticmethod
    async def _on_puback(session: Session, received: Packet) -> None:
        return None


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
