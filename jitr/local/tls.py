"""TLS of the local MQTT endpoint: its server certificate, and the device CAs it trusts.

AWS IoT presents a server certificate chaining to AmazonRootCA1 and asks every device for
a client certificate issued by a CA registered in the account. Locally, a server CA made
when the endpoint starts stands in for AmazonRootCA1 (written to ``<state-dir>/server-ca.pem``,
the file devices pass as their CA file), and the trusted client CAs are the CA certificates
registered in the local AWS IoT at the moment a device connects: a device whose CA is not
registered, or that presents no certificate, fails the TLS handshake.
"""

from __future__ import annotations

import asyncio.sslproto
import contextlib
import ipaddress
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from jitr import pki

SERVER_CA_FILE = "server-ca.pem"
SERVER_CERT_FILE = "server-cert.pem"
SERVER_KEY_FILE = "server-key.pem"
SERVER_CA_NAME = "jitr local server CA"
SERVER_NAME = "localhost"
SERVER_IP = "127.0.0.1"
SERVER_DAYS = 30


@dataclass(frozen=True)
class ServerFiles:
    """Where the endpoint's server CA, certificate and key are written."""

    ca: Path
    certificate: Path
    key: Path


def issue_server_certificate(ca: pki.Issued, *, days: int = SERVER_DAYS) -> pki.Issued:
    """A TLS server certificate for ``localhost`` and ``127.0.0.1``, signed by ``ca``."""
    key = pki.generate_key()
    start = datetime.now(UTC) - timedelta(minutes=5)
    san = x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME), x509.IPAddress(ipaddress.ip_address(SERVER_IP))])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, SERVER_NAME)]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(pki.random_serial())
        .not_valid_before(start)
        .not_valid_after(min(start + timedelta(days=days), ca.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(san, critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(pki.authority_key_identifier(ca.certificate), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return pki.Issued(certificate, key)


def write_server_files(state_dir: Path) -> ServerFiles:
    """Make a server CA and a server certificate, and write them (key files readable by the owner only)."""
    ca = pki.create_ca(SERVER_CA_NAME, days=SERVER_DAYS)
    server = issue_server_certificate(ca)
    files = ServerFiles(state_dir / SERVER_CA_FILE, state_dir / SERVER_CERT_FILE, state_dir / SERVER_KEY_FILE)
    files.ca.write_text(ca.cert_pem)
    files.certificate.write_text(server.cert_pem)
    files.key.touch(mode=0o600)
    files.key.write_bytes(server.key_pem)
    return files


class ClientTrust:
    """Server-side TLS contexts trusting the device CAs registered right now.

    ``registered_cas`` returns the PEMs of the registered CA certificates; a context is built
    once per distinct set and reused while the set does not change.
    """

    def __init__(self, files: ServerFiles, registered_cas: Callable[[], Iterable[str]]) -> None:
        self.files = files
        self.registered_cas = registered_cas
        self._cached: tuple[frozenset[str], ssl.SSLContext] | None = None

    def context(self) -> ssl.SSLContext:
        """The context for the next handshake: client certificate required, issued by a registered CA."""
        cas = frozenset(self.registered_cas())
        if self._cached is None or self._cached[0] != cas:
            self._cached = (cas, self._build(cas))
        return self._cached[1]

    def _build(self, cas: frozenset[str]) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(self.files.certificate, self.files.key)
        if cas:
            context.load_verify_locations(cadata="\n".join(sorted(cas)))
        return context


def send_handshake_alerts() -> None:
    """Make asyncio send the TLS alert of a failed server handshake before it closes the connection.

    asyncio's SSL transport closes the socket as soon as the handshake fails, dropping the
    alert OpenSSL has just written ("unknown ca", "certificate required"): a device then sees
    only a lost connection, where AWS IoT tells it why. The alert is flushed to the socket
    first. Idempotent; a Python whose SSL transport lacks the hook is left as it is.
    """
    protocol = asyncio.sslproto.SSLProtocol
    original = getattr(protocol, "_on_handshake_complete", None)
    if original is None or not hasattr(protocol, "_process_outgoing") or getattr(original, "sends_alerts", False):
        return

    def on_handshake_complete(self: Any, handshake_exc: BaseException | None) -> None:
        if handshake_exc is not None:
            with contextlib.suppress(Exception):
                self._process_outgoing()
        original(self, handshake_exc)

    on_handshake_complete.sends_alerts = True  # type: ignore[attr-defined]
    setattr(protocol, "_on_handshake_complete", on_handshake_complete)  # noqa: B010 (a method of a class not ours)
