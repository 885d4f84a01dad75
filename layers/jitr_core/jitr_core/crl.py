"""Certificate revocation lists: fetch (S3 or HTTP(S)), verify against the CA, look up serials."""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from botocore.exceptions import BotoCoreError, ClientError
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes

from jitr_core.errors import ConfigurationError, CrlInvalid, CrlStale, CrlUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MAX_CRL_BYTES = 16 * 1024 * 1024
FETCH_TIMEOUT_SECONDS = 5
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class RevocationList:
    """A CRL whose signature and freshness were checked, indexed for O(1) lookups."""

    issuer: x509.Name
    revoked_serials: frozenset[int]
    last_update: datetime
    next_update: datetime | None

    def is_revoked(self, serial_number: int) -> bool:
        return serial_number in self.revoked_serials

    def seconds_until_stale(self, now: datetime | None = None) -> float | None:
        if self.next_update is None:
            return None
        return (self.next_update - (now or datetime.now(UTC))).total_seconds()


def check_location(location: str) -> str:
    """Accept ``s3://bucket/key`` or an ``https://`` / ``http://`` URL."""
    parsed = urlparse(location)
    if parsed.scheme == "s3" and parsed.netloc and parsed.path.strip("/"):
        return location
    if parsed.scheme in {"https", "http"} and parsed.netloc:
        return location
    raise ConfigurationError(f"CRL_LOCATION {location!r} must be s3://bucket/key or an https:// URL")


def fetch_crl(location: str, s3: S3Client) -> bytes:
    """Read the CRL's bytes; any failure to read is ``CrlUnavailable``."""
    parsed = urlparse(check_location(location))
    try:
        if parsed.scheme == "s3":
            body = s3.get_object(Bucket=parsed.netloc, Key=parsed.path.lstrip("/"))["Body"]
            data = body.read(MAX_CRL_BYTES + 1)
        else:
            request = urllib.request.Request(location, headers={"User-Agent": "jitr-crl-fetch"})  # noqa: S310 (scheme checked)
            with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_SECONDS) as response:  # noqa: S310
                data = response.read(MAX_CRL_BYTES + 1)
    except (ClientError, BotoCoreError, urllib.error.URLError, OSError) as exc:
        raise CrlUnavailable(f"could not read the CRL at {location}: {exc}") from None
    if len(data) > MAX_CRL_BYTES:
        raise CrlInvalid(f"the CRL at {location} is larger than {MAX_CRL_BYTES} bytes")
    return bytes(data)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """Parse a PEM or DER X.509 CRL."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError as exc:
        raise CrlInvalid(f"the CRL is not a PEM or DER X.509 CRL: {exc}") from None


def verify_crl(
    crl: x509.CertificateRevocationList, ca_cert: x509.Certificate, now: datetime | None = None
) -> RevocationList:
    """Check that ``ca_cert`` issued and signed the CRL and that it is current."""
    now = now or datetime.now(UTC)
    if crl.issuer != ca_cert.subject:
        raise CrlInvalid(
            f"the CRL was issued by {crl.issuer.rfc4514_string()!r}, not by the CA {ca_cert.subject.rfc4514_string()!r}"
        )
    public_key: CertificateIssuerPublicKeyTypes = ca_cert.public_key()  # type: ignore[assignment]
    if not crl.is_signature_valid(public_key):
        raise CrlInvalid("the CRL's signature does not verify with the CA's public key")
    last_update = crl.last_update_utc
    next_update = crl.next_update_utc
    if last_update > now + CLOCK_SKEW:
        raise CrlInvalid(f"the CRL's lastUpdate {last_update.isoformat()} is in the future")
    if next_update is not None and next_update < now:
        raise CrlStale(f"the CRL is stale: its nextUpdate {next_update.isoformat()} has passed")
    return RevocationList(
        issuer=crl.issuer,
        revoked_serials=frozenset(entry.serial_number for entry in crl),
        last_update=last_update,
        next_update=next_update,
    )
