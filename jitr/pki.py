"""Certificate authorities, device certificates and revocation lists, made with ``cryptography``.

Used by the ``jitr ca``, ``jitr device`` and ``jitr crl`` commands, the demo and the tests;
what it writes is what ``openssl verify`` and AWS IoT accept for a CA, a verification
certificate and a device certificate.

A CA lives in a directory:

``ca.pem``
    the CA certificate (basicConstraints CA:TRUE, keyUsage keyCertSign and cRLSign,
    subject and authority key identifiers).
``ca.key``
    its private key, PKCS#8 PEM, mode 0600, encrypted when a passphrase is given.
``chain.pem``
    the CA certificate followed by its issuers up to the root (a root CA: itself); device
    bundles end with it.
``crl.pem``, ``crl.der``
    the CA's certificate revocation list (the same CRL, PEM and DER), with a CRL number and
    ``nextUpdate``; the CRL is the record of what the CA revoked.
``ca.json``
    metadata: common name, key type, certificate id, CRL number and lifetime, and the ARNs
    the CA was registered as. A directory holding only ``ca.pem`` and ``ca.key`` (a CA made
    elsewhere) is a CA directory too.

Device certificates are written as ``<name>.key`` (0600), ``<name>.pem`` and
``<name>.bundle.pem`` (the device certificate followed by ``chain.pem``, what a device
presents for JITR), and listed in ``manifest.csv`` beside them.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jitr_core.certificates import (
    ThingNameSource,
    certificate_id,
    check_thing_name,
    derive_thing_name,
    serial_hex,
)
from jitr_core.errors import RegistrationRejected

KeyType = Literal["ec-p256", "rsa-2048", "rsa-3072"]
KEY_TYPES: tuple[KeyType, ...] = get_args(KeyType)
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CA_CHAIN = "chain.pem"
CA_CRL_PEM = "crl.pem"
CA_CRL_DER = "crl.der"
CA_METADATA = "ca.json"
MANIFEST = "manifest.csv"

SERIAL_BITS = 128
MAX_COMMON_NAME = 64
"""X.509's upper bound for a CN (ub-common-name); a thing name may be longer."""
CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start this long before now, so a device whose clock lags still accepts them."""
DEFAULT_CRL_DAYS = 30
SUPPORTED_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MIN_RSA_BITS = 2048


class PkiError(ValueError):
    """A CA, key, certificate or CSR that cannot be used; the message says which file and why."""


class PassphraseRequired(PkiError):
    """The private key is encrypted and no passphrase was given."""


class WrongPassphrase(PkiError):
    """The private key is encrypted and the passphrase does not open it."""


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
        return private_key_pem(self.key)


# --- keys ------------------------------------------------------------------------------------


def generate_key(key_type: KeyType = "ec-p256") -> PrivateKey:
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    bits = {"rsa-2048": 2048, "rsa-3072": 3072}[key_type]
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def key_type_of(key: PrivateKey) -> str:
    """``ec-p256``-style name of a key (``ec-secp384r1`` and ``rsa-4096`` for others)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ec-p256" if key.curve.name == "secp256r1" else f"ec-{key.curve.name}"
    return f"rsa-{key.key_size}"


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when ``passphrase`` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Read an EC or RSA private key (PEM); every failure is a ``PkiError`` naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_private_key(data, path, passphrase)


def parse_private_key(data: bytes, source: Path | str, passphrase: bytes | None = None) -> PrivateKey:
    """A PEM private key; ``source`` names it in errors."""
    encrypted = b"ENCRYPTED" in data.split(b"\n", 1)[0] or b"Proc-Type: 4,ENCRYPTED" in data
    if encrypted and not passphrase:
        raise PassphraseRequired(f"{source} is encrypted and no passphrase was given")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except TypeError:
        raise PassphraseRequired(f"{source} is encrypted and no passphrase was given") from None
    except ValueError:
        if encrypted:
            raise WrongPassphrase(f"the passphrase does not decrypt {source}") from None
        raise PkiError(f"{source} is not a PEM private key (corrupt, or not a key); restore it from a backup") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"{source} holds a {type(key).__name__}; jitr uses EC and RSA keys only")
    return key


def public_key_der(key: CertificatePublicKeyTypes) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches(certificate: x509.Certificate, key: PrivateKey) -> bool:
    """Whether ``key`` is the private half of the certificate's public key."""
    return public_key_der(certificate.public_key()) == public_key_der(key.public_key())


def check_device_public_key(key: CertificatePublicKeyTypes, source: str) -> None:
    """AWS IoT accepts RSA keys of 2048 bits and more and ECDSA keys on P-256, P-384 and P-521."""
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise PkiError(f"{source} has a {key.key_size}-bit RSA key; AWS IoT needs at least {MIN_RSA_BITS} bits")
        return
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in SUPPORTED_CURVES:
            raise PkiError(f"{source} uses curve {key.curve.name}; AWS IoT accepts P-256, P-384 and P-521")
        return
    raise PkiError(f"{source} has a {type(key).__name__}; AWS IoT accepts RSA and ECDSA device keys")


# --- names, serials, extensions --------------------------------------------------------------


def random_serial() -> int:
    """A positive serial number of 128 random bits (RFC 5280 asks for at least 64)."""
    while True:
        serial = secrets.randbits(SERIAL_BITS)
        if serial:
            return serial


def check_common_name(name: str, what: str) -> str:
    if not name.strip():
        raise PkiError(f"the {what} common name is empty")
    if len(name) > MAX_COMMON_NAME:
        raise PkiError(
            f"the {what} common name {name[:20]!r}… has {len(name)} characters; a CN holds at most {MAX_COMMON_NAME}"
        )
    return name


def _name(common_names: Iterable[str], organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)] if organization else []
    attributes += [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in common_names]
    return x509.Name(attributes)


def _signing_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256:
    return hashes.SHA256()


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The issuer's own subject key identifier when it has one, so chains link however it was made."""
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _validity(start: datetime | None, days: int, limit: datetime | None) -> tuple[datetime, datetime]:
    """``days`` from ``start`` (default: now less the clock skew), never past ``limit`` (the issuer's end)."""
    begin = start or datetime.now(UTC) - CLOCK_SKEW
    end = begin + timedelta(days=days)
    return begin, min(end, limit) if limit else end


# --- certificate authorities -----------------------------------------------------------------


def create_ca(
    common_name: str,
    *,
    key_type: KeyType = "ec-p256",
    days: int = 3650,
    issuer: Issued | None = None,
    not_before: datetime | None = None,
    organization: str | None = "jitr",
) -> Issued:
    """A root CA, or an intermediate CA (path length 0) when ``issuer`` is given.

    An intermediate never outlives its issuer: its notAfter is the issuer's when ``days``
    would carry it further.
    """
    key = generate_key(key_type)
    start, end = _validity(not_before, days, issuer.certificate.not_valid_after_utc if issuer else None)
    subject = _name([check_common_name(common_name, "CA")], organization=organization)
    signer_key: CertificateIssuerPrivateKeyTypes = issuer.key if issuer else key
    aki = (
        authority_key_identifier(issuer.certificate)
        if issuer
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None if issuer is None else 0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
    )
    return Issued(builder.sign(signer_key, _signing_hash(signer_key)), key)


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def can_sign_certificates(certificate: x509.Certificate) -> bool:
    """A CA certificate without keyUsage may sign; with it, keyCertSign must be set."""
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
    except x509.ExtensionNotFound:
        return True


def check_ca_certificate(certificate: x509.Certificate, source: str, *, now: datetime | None = None) -> None:
    """Refuse a certificate that is not a CA, may not sign certificates, or is outside its validity."""
    if not is_ca(certificate):
        raise PkiError(f"{source} is not a CA certificate (no basicConstraints CA:TRUE); pass a CA's directory")
    if not can_sign_certificates(certificate):
        raise PkiError(f"{source} may not sign certificates (its keyUsage lacks keyCertSign)")
    check_ca_validity(certificate, source, now=now)


def check_ca_validity(certificate: x509.Certificate, source: str, *, now: datetime | None = None) -> None:
    moment = now or datetime.now(UTC)
    if moment > certificate.not_valid_after_utc:
        raise PkiError(
            f"the CA certificate {source} expired on {certificate.not_valid_after_utc:%Y-%m-%d}; "
            "create a new CA (devices signed by an expired CA cannot connect)"
        )
    if moment < certificate.not_valid_before_utc:
        raise PkiError(
            f"the CA certificate {source} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
            "check this machine's clock"
        )


def create_verification_certificate(ca: Issued, registration_code: str, *, days: int = 1) -> x509.Certificate:
    """The proof of possession AWS IoT asks for when a CA is registered.

    Its CN is the account's registration code and it is signed by the CA's key; its own key
    is thrown away, since AWS IoT only checks the signature.
    """
    key = generate_key("ec-p256")
    start, end = _validity(None, days, ca.certificate.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name([check_common_name(registration_code, "registration code")]))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(random_serial())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(authority_key_identifier(ca.certificate), critical=False)
    )
    return builder.sign(ca.key, _signing_hash(ca.key))


# --- device certificates ---------------------------------------------------------------------


class DeviceSigner:
    """Signs device certificates for one CA; what is the same for every device is computed once.

    A device certificate: the thing name as CN, a random 128-bit serial, basicConstraints
    CA:FALSE, keyUsage digitalSignature, extendedKeyUsage clientAuth, subject and authority
    key identifiers; it never outlives its CA.
    """

    def __init__(self, ca: Issued, *, days: int = 365) -> None:
        self._key = ca.key
        self._hash = _signing_hash(ca.key)
        self._issuer = ca.certificate.subject
        self._limit = ca.certificate.not_valid_after_utc
        self._days = days
        self._basic = x509.BasicConstraints(ca=False, path_length=None)
        self._usage = _key_usage(digital_signature=True)
        self._eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        self._aki = authority_key_identifier(ca.certificate)

    def sign(
        self,
        common_names: Sequence[str],
        public_key: CertificatePublicKeyTypes,
        *,
        not_before: datetime | None = None,
        not_after: datetime | None = None,
        serial_number: int | None = None,
    ) -> x509.Certificate:
        start, end = _validity(not_before, self._days, self._limit)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_names))
            .issuer_name(self._issuer)
            .public_key(public_key)
            .serial_number(serial_number or random_serial())
            .not_valid_before(start)
            .not_valid_after(not_after or end)
            .add_extension(self._basic, critical=True)
            .add_extension(self._usage, critical=True)
            .add_extension(self._eku, critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki, critical=False)
        )
        return builder.sign(self._key, self._hash)


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
    """A device (client) certificate signed by ``ca``; ``common_names`` may be several or none.

    ``not_after`` is taken as given (tests make expired certificates); without it the
    certificate ends ``days`` after it starts, or with the CA if that is sooner.
    """
    names = [common_names] if isinstance(common_names, str) else list(common_names or [])
    key = key or generate_key(key_type)
    signer = DeviceSigner(ca, days=days)
    certificate = signer.sign(
        names, key.public_key(), not_before=not_before, not_after=not_after, serial_number=serial_number
    )
    return Issued(certificate, key)


def device_thing_name(common_names: Sequence[str], pattern: Any, source: str) -> str:
    """The thing name a certificate with these CNs registers as, or ``PkiError`` with the rule it breaks."""
    try:
        name = derive_thing_name(list(common_names), "", ThingNameSource.COMMON_NAME)
        return check_thing_name(name, pattern)
    except RegistrationRejected as exc:
        raise PkiError(f"{source}: {exc} ({exc.reason})") from None


def load_csr(data: bytes, source: str) -> x509.CertificateSigningRequest:
    """A PEM or DER certificate signing request whose signature verifies."""
    try:
        csr = x509.load_pem_x509_csr(data) if data.lstrip().startswith(b"-----BEGIN") else x509.load_der_x509_csr(data)
    except ValueError:
        raise PkiError(f"{source} is not a PEM or DER certificate signing request") from None
    try:
        valid = csr.is_signature_valid
    except (ValueError, TypeError, x509.UnsupportedGeneralNameType):
        valid = False
    if not valid:
        raise PkiError(f"the signature of {source} does not verify; make the CSR again on the device")
    return csr


def common_names_of(name: x509.Name) -> list[str]:
    return [str(attribute.value) for attribute in name.get_attributes_for_oid(NameOID.COMMON_NAME)]


def check_issued_by(certificate: x509.Certificate, ca: x509.Certificate, source: str) -> None:
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise PkiError(f"{source} was not issued by the CA {ca.subject.rfc4514_string()!r}") from None


# --- revocation lists ------------------------------------------------------------------------


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


@dataclass(frozen=True)
class Revocation:
    """One entry of a CRL."""

    serial_number: int
    revoked_at: datetime
    reason: x509.ReasonFlags | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "serial": format(self.serial_number, "x"),
            "revokedAt": self.revoked_at.isoformat(),
            "reason": self.reason.value if self.reason else None,
        }


def sign_crl(
    ca: Issued,
    revocations: Iterable[Revocation],
    *,
    number: int,
    days: int = DEFAULT_CRL_DAYS,
    last_update: datetime | None = None,
) -> x509.CertificateRevocationList:
    """The CA's CRL: its entries (with reason codes), CRL number, authority key id, nextUpdate."""
    last = last_update or datetime.now(UTC) - CLOCK_SKEW
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(last)
        .next_update(last + timedelta(days=days))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(authority_key_identifier(ca.certificate), critical=False)
    )
    for entry in sorted(revocations, key=lambda r: r.serial_number):
        revoked = x509.RevokedCertificateBuilder().serial_number(entry.serial_number).revocation_date(entry.revoked_at)
        if entry.reason and entry.reason is not x509.ReasonFlags.unspecified:
            revoked = revoked.add_extension(x509.CRLReason(entry.reason), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(ca.key, _signing_hash(ca.key))


def crl_revocations(crl: x509.CertificateRevocationList) -> list[Revocation]:
    entries = []
    for revoked in crl:
        try:
            reason: x509.ReasonFlags | None = revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            reason = None
        entries.append(Revocation(revoked.serial_number, revoked.revocation_date_utc, reason))
    return entries


def crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return None


def crl_bytes(crl: x509.CertificateRevocationList, *, der: bool = False) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)


# --- files -----------------------------------------------------------------------------------


def write_private_key(path: Path, key_pem: bytes, *, force: bool = False) -> None:
    """Write a private key readable by its owner only (0600); refuse to overwrite unless ``force``.

    The mode is set before the key is written, so no other user can read it even for a moment,
    and a symbolic link in its place is refused rather than followed.
    """
    _write_file(path, key_pem, force=force, mode=0o600)


def write_new_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Create ``path``; an existing file is an error (``FileExistsError``) unless ``force``."""
    _write_file(path, data, force=force, mode=0o644)


def _write_file(path: Path, data: bytes, *, force: bool, mode: int) -> None:
    # os.open/os.write rather than open(): bulk issuance writes three files per device.
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_TRUNC if force else os.O_EXCL)
    fd = os.open(path, flags, mode)
    try:
        if force:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` in one step: readers see the old file or the new one."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def write_issued(issued: Issued, directory: Path, stem: str, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``<stem>.pem`` (certificate) and ``<stem>.key`` (0600) under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    if cert_path.exists() and not force:
        raise FileExistsError(f"{cert_path} exists; pass --force to overwrite it")
    write_private_key(key_path, issued.key_pem, force=force)
    cert_path.write_text(issued.cert_pem, encoding="utf-8")
    return cert_path, key_path


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def read_certificates(path: Path, what: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file (or the one of a DER file), or ``PkiError``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PkiError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        pass
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        raise PkiError(f"{path} is not a PEM or DER X.509 certificate ({what}); it may be corrupt") from None


# --- a CA directory --------------------------------------------------------------------------


@dataclass
class CaMetadata:
    """``ca.json``: what the certificate and key files do not say."""

    common_name: str = ""
    key_type: str = ""
    certificate_id: str = ""
    issuer_certificate_id: str | None = None
    crl_number: int = 0
    crl_days: int = DEFAULT_CRL_DAYS
    registered_arns: list[str] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaMetadata:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class CaDirectory:
    """A CA read from its directory: certificate, chain, metadata, and the key when it was asked for."""

    path: Path
    certificate: x509.Certificate
    chain: list[x509.Certificate]
    metadata: CaMetadata
    key: PrivateKey | None = None

    @property
    def issued(self) -> Issued:
        if self.key is None:
            raise PkiError(f"{self.path / CA_KEY} was not loaded")
        return Issued(self.certificate, self.key)

    @property
    def certificate_id(self) -> str:
        return certificate_id(self.certificate)

    @property
    def chain_pem(self) -> bytes:
        return b"".join(certificate_pem(c) for c in self.chain)

    def file(self, name: str) -> Path:
        return self.path / name


def ca_files(directory: Path) -> list[Path]:
    return [directory / name for name in (CA_KEY, CA_CERT, CA_CHAIN, CA_CRL_PEM, CA_CRL_DER, CA_METADATA)]


def write_ca_directory(
    directory: Path,
    ca: Issued,
    *,
    issuer_chain: Sequence[x509.Certificate] = (),
    passphrase: bytes | None = None,
    crl_days: int = DEFAULT_CRL_DAYS,
    force: bool = False,
) -> CaDirectory:
    """Write a new CA directory: key (0600), certificate, chain, an empty CRL, metadata.

    Nothing is written when any of its files exists, unless ``force``.
    """
    existing = [path for path in ca_files(directory) if path.exists()]
    if existing and not force:
        raise PkiError(f"{existing[0]} exists; pass --force to replace the CA in {directory}")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    chain = [ca.certificate, *issuer_chain]
    metadata = CaMetadata(
        common_name=", ".join(common_names_of(ca.certificate.subject)),
        key_type=key_type_of(ca.key),
        certificate_id=certificate_id(ca.certificate),
        issuer_certificate_id=certificate_id(issuer_chain[0]) if issuer_chain else None,
        crl_days=crl_days,
    )
    write_private_key(directory / CA_KEY, private_key_pem(ca.key, passphrase), force=force)
    write_new_file(directory / CA_CERT, certificate_pem(ca.certificate), force=force)
    write_new_file(directory / CA_CHAIN, b"".join(certificate_pem(c) for c in chain), force=force)
    store = CaDirectory(directory, ca.certificate, chain, metadata, ca.key)
    save_crl(store, sign_crl(ca, [], number=1, days=crl_days))
    return store


def open_ca_directory(
    directory: Path,
    *,
    passphrase: bytes | None = None,
    with_key: bool = True,
    for_signing: bool = True,
) -> CaDirectory:
    """Read and check a CA directory.

    ``for_signing`` also refuses a CA outside its validity period; ``with_key`` reads the key
    and checks that it belongs to the certificate.
    """
    if not directory.is_dir():
        raise PkiError(f"CA directory {directory} does not exist; make one with `jitr ca create --out {directory}`")
    cert_path = directory / CA_CERT
    if not cert_path.exists():
        raise PkiError(f"{directory} has no {CA_CERT}; it is not a CA directory (make one with `jitr ca create`)")
    certificate = read_certificates(cert_path, "CA certificate")[0]
    if for_signing:
        check_ca_certificate(certificate, str(cert_path))
    elif not is_ca(certificate):
        raise PkiError(f"{cert_path} is not a CA certificate (no basicConstraints CA:TRUE); pass a CA's directory")
    store = CaDirectory(directory, certificate, _read_chain(directory, certificate), _read_metadata(directory))
    if not with_key:
        return store
    key_path = directory / CA_KEY
    if not key_path.exists():
        raise PkiError(f"{directory} has no {CA_KEY}; signing needs the CA's private key")
    key = load_private_key(key_path, passphrase)
    if not key_matches(certificate, key):
        raise PkiError(f"{key_path} does not belong to {cert_path} (their public keys differ); restore the CA's key")
    return CaDirectory(directory, certificate, store.chain, store.metadata, key)


def _read_chain(directory: Path, certificate: x509.Certificate) -> list[x509.Certificate]:
    path = directory / CA_CHAIN
    if not path.exists():
        return [certificate]
    chain = read_certificates(path, "CA chain")
    if chain[0] != certificate:
        raise PkiError(
            f"{path} does not start with {directory / CA_CERT}; rewrite it as the CA followed by its issuers"
        )
    return chain


def _read_metadata(directory: Path) -> CaMetadata:
    path = directory / CA_METADATA
    if not path.exists():
        return CaMetadata()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not an object")
        return CaMetadata.from_json(data)
    except (OSError, ValueError, TypeError) as exc:
        raise PkiError(f"{path} is not valid CA metadata ({exc}); fix or delete it") from None


def save_metadata(store: CaDirectory) -> None:
    data = json.dumps(asdict(store.metadata), indent=2) + "\n"
    write_atomically(store.file(CA_METADATA), data.encode())


def record_registration(store: CaDirectory, arn: str) -> None:
    if arn and arn not in store.metadata.registered_arns:
        store.metadata.registered_arns.append(arn)
        save_metadata(store)


def read_crl(store: CaDirectory) -> x509.CertificateRevocationList | None:
    """The CA's CRL, checked against the CA; ``None`` when the directory has none yet."""
    path = store.file(CA_CRL_PEM)
    if not path.exists():
        return None
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except (OSError, ValueError):
        raise PkiError(f"{path} is not a PEM CRL; restore it (it is the record of what this CA revoked)") from None
    if crl.issuer != store.certificate.subject or not crl.is_signature_valid(store.certificate.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"{path} was not signed by {store.file(CA_CERT)}; restore the CA's own CRL")
    return crl


def save_crl(store: CaDirectory, crl: x509.CertificateRevocationList) -> None:
    """Write ``crl.pem`` and ``crl.der`` (each replaced in one step) and the CRL number into ``ca.json``."""
    write_atomically(store.file(CA_CRL_PEM), crl_bytes(crl))
    write_atomically(store.file(CA_CRL_DER), crl_bytes(crl, der=True))
    store.metadata.crl_number = crl_number(crl) or store.metadata.crl_number
    save_metadata(store)


def resign_crl(
    store: CaDirectory, add: Iterable[Revocation] = (), *, days: int | None = None
) -> x509.CertificateRevocationList:
    """Sign the CA's CRL again with the next CRL number, adding ``add`` (a serial already listed stays as it was)."""
    current = read_crl(store)
    entries = {r.serial_number: r for r in (crl_revocations(current) if current else [])}
    for revocation in add:
        entries.setdefault(revocation.serial_number, revocation)
    number = max(store.metadata.crl_number, (crl_number(current) if current else None) or 0) + 1
    if days is not None:
        store.metadata.crl_days = days
    crl = sign_crl(store.issued, entries.values(), number=number, days=store.metadata.crl_days)
    save_crl(store, crl)
    return crl


# --- device files and the manifest -----------------------------------------------------------


@dataclass(frozen=True)
class DeviceFiles:
    """Where a device's key, certificate and bundle are written."""

    key: Path
    certificate: Path
    bundle: Path

    @classmethod
    def of(cls, directory: Path, name: str) -> DeviceFiles:
        return cls(directory / f"{name}.key", directory / f"{name}.pem", directory / f"{name}.bundle.pem")


@dataclass(frozen=True)
class ManifestRow:
    """One line of ``manifest.csv``; paths are relative to the manifest's directory."""

    name: str
    serial: str
    certificate_id: str
    not_after: str
    certificate: str
    key: str
    bundle: str

    @classmethod
    def of(cls, name: str, certificate: x509.Certificate, files: DeviceFiles, *, with_key: bool) -> ManifestRow:
        return cls(
            name=name,
            serial=serial_hex(certificate),
            certificate_id=certificate_id(certificate),
            not_after=certificate.not_valid_after_utc.isoformat(),
            certificate=files.certificate.name,
            key=files.key.name if with_key else "",
            bundle=files.bundle.name,
        )

    def to_json(self) -> dict[str, str]:
        return dict(zip(MANIFEST_FIELDS, self.values(), strict=True))

    def values(self) -> tuple[str, ...]:
        return (self.name, self.serial, self.certificate_id, self.not_after, self.certificate, self.key, self.bundle)


MANIFEST_FIELDS = tuple(f.name for f in fields(ManifestRow))


def write_device_files(
    files: DeviceFiles,
    certificate: x509.Certificate,
    chain_pem: bytes,
    key_pem: bytes | None,
    *,
    force: bool = False,
) -> None:
    """Key first (0600), then certificate, then bundle: a certificate file never exists without its key."""
    if key_pem is not None:
        write_private_key(files.key, key_pem, force=force)
    cert = certificate_pem(certificate)
    write_new_file(files.certificate, cert, force=force)
    write_new_file(files.bundle, cert + chain_pem, force=force)


def read_manifest(path: Path) -> dict[str, ManifestRow]:
    """The manifest's rows by name (a later row for a name wins); incomplete rows are ignored."""
    if not path.exists():
        return {}
    rows: dict[str, ManifestRow] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            for record in csv.DictReader(handle):
                if all(record.get(name) is not None for name in MANIFEST_FIELDS) and record["certificate_id"]:
                    rows[record["name"]] = ManifestRow(**{name: record[name] for name in MANIFEST_FIELDS})
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise PkiError(f"cannot read the manifest {path}: {exc}") from None
    return rows


def _csv_text(rows: Iterable[ManifestRow], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(MANIFEST_FIELDS)
    writer.writerows(row.values() for row in rows)
    return buffer.getvalue()


def append_manifest(path: Path, rows: Sequence[ManifestRow]) -> None:
    """Append rows and make them durable (fsync) before returning: a re-run trusts what is listed."""
    if not rows:
        return
    new = not path.exists() or path.stat().st_size == 0
    with path.open("a+b") as handle:
        prefix = ""
        if not new:
            handle.seek(-1, os.SEEK_END)
            prefix = "" if handle.read(1) == b"\n" else "\n"  # a line cut short by a crash stays on its own
        handle.write((prefix + _csv_text(rows, header=new)).encode())
        handle.flush()
        os.fsync(handle.fileno())


def rewrite_manifest(path: Path, rows: Iterable[ManifestRow]) -> None:
    write_atomically(path, _csv_text(rows, header=True).encode())
