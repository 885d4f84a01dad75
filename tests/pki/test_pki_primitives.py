"""jitr.pki: the certificates it makes, keys and passphrases, CRLs, files and the manifest."""

from __future__ import annotations

import hashlib
import os
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jitr_core.certificates import DEFAULT_THING_NAME_PATTERN, certificate_id
from jitr_core.crl import verify_crl

from jitr import pki

PATTERN = re.compile(DEFAULT_THING_NAME_PATTERN)


E = TypeVar("E", bound=x509.ExtensionType)


def extension(cert: x509.Certificate, kind: type[E]) -> E:
    return cert.extensions.get_extension_for_class(kind).value


def critical(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> bool:
    return cert.extensions.get_extension_for_class(kind).critical


def test_root_ca_has_the_extensions_aws_iot_and_openssl_expect(ca: pki.Issued) -> None:
    cert = ca.certificate
    assert critical(cert, x509.BasicConstraints)
    assert extension(cert, x509.BasicConstraints).ca is True
    assert critical(cert, x509.KeyUsage)
    usage = extension(cert, x509.KeyUsage)
    assert usage.key_cert_sign
    assert usage.crl_sign
    assert not usage.digital_signature
    ski = extension(cert, x509.SubjectKeyIdentifier)
    aki = extension(cert, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == ski.digest
    assert cert.version is x509.Version.v3
    assert cert.issuer == cert.subject


def test_intermediate_links_to_its_issuer_and_never_outlives_it(ca: pki.Issued, intermediate: pki.Issued) -> None:
    cert = intermediate.certificate
    assert cert.issuer == ca.certificate.subject
    assert extension(cert, x509.BasicConstraints).path_length == 0
    root_ski = extension(ca.certificate, x509.SubjectKeyIdentifier).digest
    assert extension(cert, x509.AuthorityKeyIdentifier).key_identifier == root_ski
    cert.verify_directly_issued_by(ca.certificate)
    long_lived = pki.create_ca("Long", issuer=ca, days=100_000)
    assert long_lived.certificate.not_valid_after_utc == ca.certificate.not_valid_after_utc


def test_verification_certificate_carries_the_registration_code_and_the_ca_signature(ca: pki.Issued) -> None:
    code = hashlib.sha256(b"account").hexdigest()  # registration codes are 64 hex characters

    cert = pki.create_verification_certificate(ca, code)

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == code
    cert.verify_directly_issued_by(ca.certificate)
    assert extension(cert, x509.BasicConstraints).ca is False
    assert cert.not_valid_before_utc <= datetime.now(UTC) <= cert.not_valid_after_utc


def test_device_certificate_profile(ca: pki.Issued) -> None:
    issued = pki.issue_device_certificate(ca, "device-001")
    cert = issued.certificate

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "device-001"
    assert list(extension(cert, x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert extension(cert, x509.BasicConstraints).ca is False
    assert extension(cert, x509.KeyUsage).digital_signature
    ca_ski = extension(ca.certificate, x509.SubjectKeyIdentifier).digest
    assert extension(cert, x509.AuthorityKeyIdentifier).key_identifier == ca_ski
    assert 0 < cert.serial_number < 2**128
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA256)
    cert.verify_directly_issued_by(ca.certificate)


def test_serials_are_random_128_bit_numbers() -> None:
    serials = [pki.random_serial() for _ in range(2000)]

    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**128 for s in serials)
    assert max(s.bit_length() for s in serials) == 128
    assert sum(s.bit_length() >= 120 for s in serials) > 1900  # a counter or a short serial would fail this


def test_device_certificate_never_outlives_its_ca() -> None:
    short_ca = pki.create_ca("Short-lived CA", days=30)

    cert = pki.issue_device_certificate(short_ca, "device-001", days=365).certificate

    assert cert.not_valid_after_utc == short_ca.certificate.not_valid_after_utc


def test_common_names_longer_than_x509_allows_are_refused(ca: pki.Issued) -> None:
    with pytest.raises(pki.PkiError, match="at most 64"):
        pki.create_ca("x" * 65)


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        ([], "CommonNameMissing"),
        (["a", "b"], "CommonNameAmbiguous"),
        (["device-*"], "ThingNameWildcard"),
        (["dev/1"], "ThingNameTopicCharacter"),
        (["${iot:ClientId}"], "ThingNamePolicyVariable"),
        (["dévice"], "ThingNameInvalid"),
    ],
)
def test_thing_name_rules_are_the_workflows(names: list[str], reason: str) -> None:
    with pytest.raises(pki.PkiError, match=reason):
        pki.device_thing_name(names, PATTERN, "the CSR")


def test_encrypted_keys_need_their_passphrase(tmp_path: Path) -> None:
    key = pki.generate_key()
    path = tmp_path / "k.key"
    pki.write_private_key(path, pki.private_key_pem(key, b"s3cret"))

    assert b"ENCRYPTED PRIVATE KEY" in path.read_bytes()
    assert pki.key_matches(pki.issue_device_certificate(pki.create_ca("c"), "d", key=key).certificate, key)
    with pytest.raises(pki.PassphraseRequired):
        pki.load_private_key(path)
    with pytest.raises(pki.WrongPassphrase):
        pki.load_private_key(path, b"wrong")
    loaded = pki.load_private_key(path, b"s3cret")
    assert pki.public_key_der(loaded.public_key()) == pki.public_key_der(key.public_key())


def test_corrupt_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")

    with pytest.raises(pki.PkiError, match=r"k\.key is not a PEM private key"):
        pki.load_private_key(path)


def test_private_keys_are_0600_and_never_overwritten_without_force(tmp_path: Path) -> None:
    path = tmp_path / "device.key"
    pki.write_private_key(path, b"first")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    with pytest.raises(FileExistsError):
        pki.write_private_key(path, b"second")
    assert path.read_bytes() == b"first"

    path.chmod(0o644)
    pki.write_private_key(path, b"third", force=True)
    assert path.read_bytes() == b"third"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_symlink_in_place_of_a_key_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    (tmp_path / "device.key").symlink_to(target)

    with pytest.raises(OSError):  # noqa: PT011 (EEXIST, or ELOOP with force)
        pki.write_private_key(tmp_path / "device.key", b"key", force=True)
    assert target.read_bytes() == b"keep"


def test_device_public_keys_aws_iot_refuses() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(pki.PkiError, match="at least 2048"):
        pki.check_device_public_key(weak.public_key(), "the CSR")
    secp256k1 = ec.generate_private_key(ec.SECP256K1())
    with pytest.raises(pki.PkiError, match="P-256, P-384 and P-521"):
        pki.check_device_public_key(secp256k1.public_key(), "the CSR")
    pki.check_device_public_key(ec.generate_private_key(ec.SECP384R1()).public_key(), "the CSR")


def test_csr_whose_signature_does_not_verify_is_refused() -> None:
    key = pki.generate_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-001")]))
        .sign(key, hashes.SHA256())
    )
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0xFF  # inside the signature

    assert pki.load_csr(csr.public_bytes(serialization.Encoding.PEM), "ok.csr").subject == csr.subject
    with pytest.raises(pki.PkiError, match="does not verify"):
        pki.load_csr(bytes(der), "tampered.csr")
    with pytest.raises(pki.PkiError, match="not a PEM or DER certificate signing request"):
        pki.load_csr(b"garbage", "garbage.csr")


def test_crl_carries_number_reasons_and_next_update_and_the_workflow_accepts_it(ca: pki.Issued) -> None:
    now = datetime.now(UTC)
    entries = [
        pki.Revocation(0xABC, now, x509.ReasonFlags.key_compromise),
        pki.Revocation(0x123, now, None),
    ]

    crl = pki.sign_crl(ca, entries, number=7, days=10)

    assert pki.crl_number(crl) == 7
    assert crl.next_update_utc is not None
    assert crl.next_update_utc - crl.last_update_utc == timedelta(days=10)
    by_serial = {r.serial_number: r for r in pki.crl_revocations(crl)}
    assert by_serial[0xABC].reason is x509.ReasonFlags.key_compromise
    assert by_serial[0x123].reason is None
    assert verify_crl(crl, ca.certificate).is_revoked(0xABC)


def test_ca_directory_round_trip(tmp_path: Path, ca: pki.Issued) -> None:
    written = pki.write_ca_directory(tmp_path / "ca", ca, passphrase=b"pw", crl_days=3)

    store = pki.open_ca_directory(tmp_path / "ca", passphrase=b"pw")

    assert store.certificate == ca.certificate
    assert store.chain == [ca.certificate]
    assert store.metadata.certificate_id == certificate_id(ca.certificate) == written.certificate_id
    assert store.metadata.crl_days == 3
    assert store.metadata.crl_number == 1
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    crl = pki.read_crl(store)
    assert crl is not None
    assert len(crl) == 0


def test_resigning_keeps_entries_and_numbers_up(tmp_path: Path, ca: pki.Issued) -> None:
    store = pki.write_ca_directory(tmp_path / "ca", ca)
    first = pki.Revocation(5, datetime(2026, 1, 1, tzinfo=UTC), x509.ReasonFlags.superseded)

    pki.resign_crl(store, [first])
    crl = pki.resign_crl(store, [pki.Revocation(5, datetime.now(UTC), x509.ReasonFlags.key_compromise)])

    assert pki.crl_number(crl) == 3
    [entry] = pki.crl_revocations(crl)
    assert entry == first  # a serial already listed keeps its date and reason
    assert (tmp_path / "ca" / "crl.der").read_bytes() == pki.crl_bytes(crl, der=True)


def test_a_ca_directory_made_elsewhere_needs_only_cert_and_key(tmp_path: Path, ca: pki.Issued) -> None:
    pki.write_issued(ca, tmp_path, "ca")

    store = pki.open_ca_directory(tmp_path)

    assert store.chain == [ca.certificate]
    assert store.metadata.crl_number == 0
    assert pki.read_crl(store) is None


def test_manifest_appends_survive_a_line_cut_short(tmp_path: Path, ca: pki.Issued) -> None:
    path = tmp_path / "manifest.csv"
    files = pki.DeviceFiles.of(tmp_path, "a")
    row_a = pki.ManifestRow.of("a", pki.issue_device_certificate(ca, "a").certificate, files, with_key=True)
    row_b = pki.ManifestRow.of("b", pki.issue_device_certificate(ca, "b").certificate, files, with_key=False)
    pki.append_manifest(path, [row_a])
    with path.open("ab") as handle:
        handle.write(b"c,12,")  # a crash in the middle of a line

    pki.append_manifest(path, [row_b])

    assert pki.read_manifest(path) == {"a": row_a, "b": row_b}
    assert path.read_text().startswith(",".join(pki.MANIFEST_FIELDS) + "\n")


def test_atomic_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "ca.json"
    pki.write_atomically(path, b"one")
    pki.write_atomically(path, b"two")

    assert path.read_bytes() == b"two"
    assert os.listdir(tmp_path) == ["ca.json"]
