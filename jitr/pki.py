"""Certificate authorities, device certificates and revocation lists, made with ``cryptography``.

Used by the demo, the local runner's users and the tests; what it writes is what
``openssl verify`` and AWS IoT accept for a CA and a device certificate.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ec-p256", "rsa-2048", "rsa-3072"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key."""

    certificate: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def generate_key(key_type: KeyType = "ec-p256") -> PrivateKey:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    bits = {"rsa-2048": 2048, "rsa-3072": 3072}[key_type]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _name(common_names: Iterable[str], organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    attributes += [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names]
    return x509.Name(attributes)


def _signing_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256:
    return hashes.SHA256()


def create_ca(
    common_name: str,
    *,
    key_type: KeyType = "ec-p256",
    days: int = 3650,
    issuer: Issued | None = None,
    not_before: datetime | None = None,
) -> Issued:
    """A root CA, or an intermediate CA when ``issuer`` is given."""
    key = generate_key(key_type)
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    subject = _name([common_name], organization="jitr")
    signer_key: CertificateIssuerPrivateKeyTypes = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    return Issued(builder.sign(signer_key, _signing_hash(signer_key)), key)


def issue_device_certificate(
    ca: Issued,
    common_names: str | Iterable[str] | None,
    *,
    key_type: KeyType = "ec-p256",
    days: int = 365,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial_number: int | None = None,
    key: PrivateKey | None = None,
) -> Issued:
    """A device (client) certificate signed by ``ca``; ``common_names`` may be several or none."""
    names = [common_names] if isinstance(common_names, str) else list(common_names or [])
    key = key or generate_key(key_type)
    start = not_before or datetime.now(UTC) - timedelta(minutes=5)
    end = not_after or start + timedelta(days=days)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(serial_number or x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    return Issued(builder.sign(ca.key, _signing_hash(ca.key)), key)


def create_crl(
    ca: Issued,
    revoked_serials: Iterable[int] = (),
    *,
    last_update: datetime | None = None,
    next_update: datetime | None = None,
    signing_key: PrivateKey | None = None,
) -> x509.CertificateRevocationList:
    """A CRL of ``ca`` listing ``revoked_serials`` (signed by ``signing_key`` to make a forged one)."""
    now = datetime.now(UTC)
    last = last_update or now - timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(last)
        .next_update(next_update or last + timedelta(days=7))
    )
    for serial in revoked_serials:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last).build()
        )
    return builder.sign(signing_key or ca.key, hashes.SHA256())


def crl_bytes(crl: x509.CertificateRevocationList, *, der: bool = False) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


def write_private_key(path: Path, key_pem: bytes, *, force: bool = False) -> None:
    """Write a private key readable by its owner only (0600); refuse to overwrite unless ``force``."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key_pem)
    os.chmod(path, 0o600)


def write_issued(issued: Issued, directory: Path, stem: str, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``<stem>.pem`` (certificate) and ``<stem>.key`` (0600) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    if cert_path.exists() and not force:
        raise FileExistsError(f"{cert_path} exists; pass --force to overwrite it")
    write_private_key(key_path, issued.key_pem, force=force)
    cert_path.write_text(issued.cert_pem, encoding="utf-8")
    return cert_path, key_path
