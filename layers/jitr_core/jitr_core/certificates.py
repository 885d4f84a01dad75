"""X.509 facts and rules the workflow applies to a device certificate."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from jitr_core.errors import (
    CertificateExpired,
    CertificateNotYetValid,
    CommonNameAmbiguous,
    CommonNameMissing,
    ConfigurationError,
    SignatureInvalid,
    ThingNameInvalid,
    ThingNamePatternMismatch,
    ThingNamePolicyVariable,
    ThingNameTopicCharacter,
    ThingNameWildcard,
)

THING_NAME_RULE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
"""AWS IoT's own rule for thing names."""

DEFAULT_THING_NAME_PATTERN = r"^[a-zA-Z0-9:_-]{1,128}$"


class ThingNameSource(StrEnum):
    """Where the thing name comes from."""

    COMMON_NAME = "CommonName"
    SERIAL_NUMBER = "SerialNumber"


def load_pem_certificate(pem: str | bytes) -> x509.Certificate:
    """Load one PEM certificate; ``ValueError`` when it is not one."""
    data = pem.encode() if isinstance(pem, str) else pem
    return x509.load_pem_x509_certificate(data)


def certificate_id(cert: x509.Certificate) -> str:
    """AWS IoT's certificate id: the lowercase hex SHA-256 of the DER encoding."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as lowercase hex without separators (how CRL tools print it)."""
    return format(cert.serial_number, "x")


def common_names(cert: x509.Certificate) -> list[str]:
    """Every CN of the subject, in order (a subject may carry several)."""
    return [str(attr.value) for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def derive_thing_name(names: list[str], serial_number: str, source: ThingNameSource) -> str:
    """Pick the thing name: the single CN, or the serial number."""
    if source is ThingNameSource.SERIAL_NUMBER:
        return serial_number
    if not names or not names[0].strip():
        raise CommonNameMissing("the certificate subject has no common name (CN) to name the thing after")
    if len(names) > 1:
        raise CommonNameAmbiguous(f"the certificate subject has {len(names)} common names: {names!r}; expected one")
    return names[0]


def check_thing_name(name: str, pattern: re.Pattern[str]) -> str:
    """Apply the naming rules, most specific first, so the reason says what is wrong."""
    if "*" in name or "?" in name:
        raise ThingNameWildcard(f"thing name {name!r} contains a wildcard character")
    if "${" in name:
        raise ThingNamePolicyVariable(f"thing name {name!r} contains policy-variable syntax '${{'")
    bad_topic_chars = sorted({c for c in name if c in "/+#"})
    if bad_topic_chars:
        raise ThingNameTopicCharacter(
            f"thing name {name!r} contains MQTT topic characters {''.join(bad_topic_chars)!r}"
        )
    if not THING_NAME_RULE.fullmatch(name):
        raise ThingNameInvalid(f"thing name {name!r} is not 1-128 characters of [a-zA-Z0-9:_-]")
    if not pattern.fullmatch(name):
        raise ThingNamePatternMismatch(f"thing name {name!r} does not match the required pattern {pattern.pattern!r}")
    return name


def compile_thing_name_pattern(pattern: str) -> re.Pattern[str]:
    """Compile the configured pattern; a bad one is a configuration error, not a rejection."""
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigurationError(f"THING_NAME_PATTERN {pattern!r} is not a valid regular expression: {exc}") from None


def check_validity(not_before: datetime, not_after: datetime, now: datetime | None = None) -> None:
    """Reject a certificate outside its validity period."""
    now = now or datetime.now(UTC)
    if now < not_before:
        raise CertificateNotYetValid(
            f"the certificate is valid from {not_before.isoformat()}, it is now {now.isoformat()}"
        )
    if now > not_after:
        raise CertificateExpired(f"the certificate expired at {not_after.isoformat()}, it is now {now.isoformat()}")


def verify_issued_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> None:
    """Check the device certificate's issuer name and signature against the CA certificate."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature) as exc:
        reason = "the signature does not verify" if isinstance(exc, InvalidSignature) else str(exc)
        raise SignatureInvalid(
            f"the certificate was not issued by CA {ca_cert.subject.rfc4514_string()!r}: {reason}"
        ) from None
