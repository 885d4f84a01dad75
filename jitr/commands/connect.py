"""``jitr device connect``: a device that connects to AWS IoT as JITR expects, then publishes.

The first CONNECT of a new certificate is refused ("not authorised") while the workflow
registers and activates it; the device reconnects with exponential backoff and full jitter,
as AWS recommends, and publishes once it is in. TLS failures are not retried.
"""

from __future__ import annotations

import random
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import click
from paho.mqtt.client import MQTT_LOG_ERR, Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from jitr import pki
from jitr.commands.ca import passphrase_from_env, passphrase_option, print_json
from jitr.commands.common import read_certificate, usage_error

DEFAULT_ENDPOINT = "127.0.0.1:8883"
PROTOCOLS = {"3.1.1": MQTTProtocolVersion.MQTTv311, "5": MQTTProtocolVersion.MQTTv5}
KEEPALIVE_SECONDS = 30
STEP_SECONDS = 0.1


class ConnectFailed(click.ClickException):
    """The device never connected, or its message was not acknowledged: one line, exit status 1."""

    exit_code = 1

    def show(self, file: object = None) -> None:
        click.echo(f"jitr: error: {self.format_message()}", err=True)


class Outcome(StrEnum):
    CONNECTED = "connected"
    REFUSED = "refused"
    DROPPED = "dropped"
    TLS = "tls"


@dataclass(frozen=True)
class DeviceSettings:
    """How the device reaches its endpoint: address, TLS files and client id."""

    host: str
    port: int
    client_id: str
    cert: Path
    key: Path
    ca_bundle: Path | None
    timeout: float = 10.0
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv311
    key_passphrase: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter: attempt n waits uniform(0, min(cap, initial * 2**(n-1)))."""

    attempts: int = 8
    initial: float = 1.0
    cap: float = 30.0

    def delay(self, attempt: int, draw: Callable[[float, float], float] = random.uniform) -> float:
        return draw(0.0, min(self.cap, self.initial * 2 ** (attempt - 1)))


@dataclass
class AttemptResult:
    """What one CONNECT got; ``client`` is the connected client when it succeeded."""

    outcome: Outcome
    detail: str
    client: Client | None = None


@dataclass
class Session:
    """The record of one run, reported at the end."""

    attempts: int = 0
    connected: bool = False
    published: bool | None = None
    started: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "connected": self.connected,
            "published": self.published,
            "elapsed": round(time.monotonic() - self.started, 3),
        }


def parse_endpoint(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        usage_error(f"--endpoint expects HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def default_client_id(cert: Path) -> str:
    """The device certificate's CN: its thing name, the client id AWS IoT's policy expects."""
    names = pki.common_names_of(read_certificate(cert, "device certificate").subject)
    if not names:
        usage_error(f"{cert} has no CN; pass --client-id")
    return names[0]


def check_files(cert: Path, key: Path, ca_bundle: Path | None, passphrase: bytes | None = None) -> None:
    """Every file readable, the key decrypted when encrypted, and the private half of the (first) certificate."""
    certificate = read_certificate(cert, "device certificate")
    if ca_bundle is not None:
        read_certificate(ca_bundle, "server CA bundle")
    try:
        private_key = pki.load_private_key(key, passphrase)
    except pki.PassphraseRequired as exc:
        usage_error(f"{exc}: pass --key-passphrase-env VAR, VAR holding the passphrase")
    except pki.PkiError as exc:
        usage_error(str(exc))
    if not pki.key_matches(certificate, private_key):
        usage_error(f"{key} is not the key of the certificate in {cert}")


def new_client(settings: DeviceSettings, errors: list[str]) -> Client:
    """A paho-mqtt client over mutual TLS; socket errors it logs are collected in ``errors``."""
    client = Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=settings.client_id,
        protocol=settings.protocol,
        reconnect_on_failure=False,
    )
    ca = str(settings.ca_bundle) if settings.ca_bundle else None
    password = settings.key_passphrase.decode() if settings.key_passphrase else None
    try:
        client.tls_set(ca_certs=ca, certfile=str(settings.cert), keyfile=str(settings.key), keyfile_password=password)
    except (ssl.SSLError, OSError) as exc:
        usage_error(f"cannot use {settings.cert} and {settings.key} for TLS: {exc}")

    def log(client: Client, userdata: Any, level: int, message: str) -> None:
        if level == MQTT_LOG_ERR:
            errors.append(message)

    client.on_log = log
    return client


def is_tls_error(message: str) -> bool:
    return "[SSL" in message or "alert" in message.lower()


def connect_once(settings: DeviceSettings) -> AttemptResult:
    """One CONNECT, waited for at most ``settings.timeout`` seconds."""
    errors: list[str] = []
    client = new_client(settings, errors)
    state: dict[str, Any] = {}

    def on_connect(client: Client, userdata: Any, flags: Any, code: ReasonCode, props: Any) -> None:
        state["code"] = code

    def on_disconnect(client: Client, userdata: Any, flags: Any, code: ReasonCode, props: Any) -> None:
        state["dropped"] = True

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(settings.host, settings.port, keepalive=KEEPALIVE_SECONDS)
    except ssl.SSLError as exc:
        return AttemptResult(Outcome.TLS, str(exc.reason or exc))
    except OSError as exc:
        return AttemptResult(Outcome.DROPPED, exc.strerror or str(exc))
    deadline = time.monotonic() + settings.timeout
    while "code" not in state and "dropped" not in state and time.monotonic() < deadline:
        client.loop(timeout=STEP_SECONDS)
    code: ReasonCode | None = state.get("code")
    if code is not None and not code.is_failure:
        return AttemptResult(Outcome.CONNECTED, "connected", client)
    client.disconnect()
    return failure(settings, code, dropped="dropped" in state, errors=errors)


def failure(settings: DeviceSettings, code: ReasonCode | None, *, dropped: bool, errors: list[str]) -> AttemptResult:
    """Why a CONNECT did not get in: refused by CONNACK, rejected in TLS, or dropped."""
    if code is not None:
        return AttemptResult(Outcome.REFUSED, str(code).lower())
    tls = [message for message in errors if is_tls_error(message)]
    if tls:
        return AttemptResult(Outcome.TLS, tls[-1].removeprefix("failed to receive on socket: "))
    if dropped and (rejected := tls_rejection(settings)):
        return AttemptResult(Outcome.TLS, rejected)
    return AttemptResult(Outcome.DROPPED, "connection closed before CONNACK" if dropped else "no CONNACK in time")


def tls_rejection(settings: DeviceSettings) -> str | None:
    """Why the server rejects the device's certificate, if it does.

    Under TLS 1.3 the server checks the client certificate after the client has finished its
    handshake, so a rejection looks like a closed connection; a TLS 1.2 handshake (which AWS
    IoT also serves) fails in the handshake itself and tells the two apart.
    """
    context = ssl.create_default_context(cafile=str(settings.ca_bundle) if settings.ca_bundle else None)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(settings.cert), str(settings.key), settings.key_passphrase)
    try:
        with (
            socket.create_connection((settings.host, settings.port), timeout=settings.timeout) as raw,
            context.wrap_socket(raw, server_hostname=settings.host),
        ):
            return None
    except ssl.SSLEOFError:
        return "the server closed the handshake: the device certificate's CA is not registered (or not ACTIVE)"
    except ssl.SSLError as exc:
        return str(exc.reason or exc)
    except OSError:
        return None


def publish(client: Client, topic: str, message: str, timeout: float) -> str | None:
    """Publish with QoS 1 and wait (bounded) for the PUBACK: None when acknowledged, else why not.

    An MQTT 5 PUBACK can carry a failure (AWS IoT answers 0x87 "not authorized" before it
    disconnects the client): such a publish is not acknowledged. The client is disconnected afterwards.
    """
    answers: list[ReasonCode] = []

    def on_publish(client: Client, userdata: Any, mid: int, code: ReasonCode, props: Any) -> None:
        answers.append(code)

    client.on_publish = on_publish
    info = client.publish(topic, message.encode(), qos=1)
    deadline = time.monotonic() + timeout
    while not answers and client.is_connected() and time.monotonic() < deadline:
        client.loop(timeout=STEP_SECONDS)
    disconnect(client)
    if not answers or not info.is_published():
        return "no PUBACK"
    if answers[0].is_failure:
        return f"PUBACK {str(answers[0]).lower()}"
    return None


def disconnect(client: Client) -> None:
    """A clean DISCONNECT, flushed to the socket."""
    if client.is_connected():
        client.disconnect()
        client.loop(timeout=STEP_SECONDS)


Say = Callable[[str], None]


def connect_with_backoff(settings: DeviceSettings, backoff: Backoff, session: Session, say: Say) -> Client:
    """Connect, retrying refusals and dropped connections with backoff; a TLS failure ends it."""
    for attempt in range(1, backoff.attempts + 1):
        session.attempts = attempt
        result = connect_once(settings)
        if result.client is not None:
            session.connected = True
            say(f"attempt {attempt}: connected as {settings.client_id}")
            return result.client
        if result.outcome is Outcome.TLS:
            say(f"attempt {attempt}: TLS handshake failed ({result.detail})")
            raise ConnectFailed(f"TLS handshake with {settings.host}:{settings.port} failed: {result.detail}")
        if attempt == backoff.attempts:
            say(f"attempt {attempt}: {result.outcome} ({result.detail})")
            break
        delay = backoff.delay(attempt)
        say(f"attempt {attempt}: {result.outcome} ({result.detail}) — retrying in {delay:.1f} s")
        time.sleep(delay)
    raise ConnectFailed(f"not connected after {backoff.attempts} attempts")


EXISTING_FILE = click.Path(path_type=Path, dir_okay=False)


@click.command("connect")
@click.option("--cert", required=True, type=EXISTING_FILE, help="The device certificate, or its bundle (then its CA).")
@click.option("--key", required=True, type=EXISTING_FILE, help="The device's private key (PEM, encrypted or not).")
@passphrase_option("--key-passphrase-env", "an encrypted device key")
@click.option("--ca-bundle", type=EXISTING_FILE, default=None, help="The server CA (default: the system's).")
@click.option("--client-id", default=None, help="The MQTT client id (default: the certificate's CN).")
@click.option("--endpoint", default=DEFAULT_ENDPOINT, show_default=True, metavar="HOST:PORT")
@click.option(
    "--protocol", type=click.Choice(list(PROTOCOLS)), default="3.1.1", show_default=True, help="MQTT version."
)
@click.option("--publish", "topic", default=None, metavar="TOPIC", help="Publish once connected (QoS 1).")
@click.option("--message", default=None, metavar="TEXT", help="What to publish.")
@click.option("--attempts", type=click.IntRange(min=1), default=8, show_default=True, help="CONNECTs at most.")
@click.option("--initial-delay", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Seconds.")
@click.option("--max-delay", type=click.FloatRange(min=0), default=30.0, show_default=True, help="Seconds.")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Per wait.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object at the end.")
def connect(
    *,
    cert: Path,
    key: Path,
    key_passphrase_env: str | None,
    ca_bundle: Path | None,
    client_id: str | None,
    endpoint: str,
    protocol: str,
    topic: str | None,
    message: str | None,
    attempts: int,
    initial_delay: float,
    max_delay: float,
    timeout: float,
    as_json: bool,
) -> None:
    """Connect as a device (mutual TLS), retrying with backoff while JITR activates it; publish once in.

    Exit 0 when connected (and published, if asked), 1 when never connected or the publish
    was not acknowledged, 2 on a usage error.
    """
    if (topic is None) != (message is None):
        usage_error("pass --publish TOPIC and --message TEXT together")
    host, port = parse_endpoint(endpoint)
    passphrase = passphrase_from_env(key_passphrase_env, "--key-passphrase-env")
    check_files(cert, key, ca_bundle, passphrase)
    settings = DeviceSettings(
        host,
        port,
        client_id or default_client_id(cert),
        cert,
        key,
        ca_bundle,
        timeout,
        protocol=PROTOCOLS[protocol],
        key_passphrase=passphrase,
    )
    session = Session()

    def say(line: str) -> None:
        click.echo(line, err=as_json)

    try:
        client = connect_with_backoff(settings, Backoff(attempts, initial_delay, max_delay), session, say)
        if topic is not None and message is not None:
            refusal = publish(client, topic, message, timeout)
            session.published = refusal is None
            say(f"published to {topic}" if refusal is None else f"{refusal} for {topic}")
        else:
            disconnect(client)
    finally:
        if as_json:
            print_json(session.to_json())
    if session.published is False:
        raise ConnectFailed(f"the message to {topic} was not acknowledged")
