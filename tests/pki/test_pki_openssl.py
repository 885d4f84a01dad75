"""What jitr writes, checked by the openssl binary: chains, CRLs, verification certificates, keys, CSRs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from jitr import pki
from tests.pki.conftest import jitr, openssl

pytestmark = pytest.mark.skipif(not Path("/usr/bin/openssl").exists(), reason="needs the openssl binary")


def test_openssl_verifies_a_device_issued_by_a_root_ca(ca_dir: Path, out: Path) -> None:
    assert jitr("device", "issue", "--ca", ca_dir, "--cn", "device-001", "--out", out).exit_code == 0

    result = openssl("verify", "-purpose", "sslclient", "-CAfile", ca_dir / "ca.pem", out / "device-001.pem")

    assert result.stdout.strip().endswith("OK")


def test_openssl_verifies_a_device_of_an_intermediate_through_its_bundle(
    ca_dir: Path, intermediate_dir: Path, out: Path
) -> None:
    assert jitr("device", "issue", "--ca", intermediate_dir, "--cn", "device-002", "--out", out).exit_code == 0
    bundle = out / "device-002.bundle.pem"

    # The device presents the bundle; the verifier trusts only the root.
    result = openssl("verify", "-purpose", "sslclient", "-CAfile", ca_dir / "ca.pem", "-untrusted", bundle, bundle)

    assert result.stdout.strip().endswith("OK")
    assert openssl("verify", "-CAfile", ca_dir / "ca.pem", intermediate_dir / "ca.pem").returncode == 0
    assert bundle.read_bytes().count(b"BEGIN CERTIFICATE") == 3  # device, intermediate, root


def test_openssl_refuses_a_device_against_another_ca(tmp_path: Path, ca_dir: Path, out: Path) -> None:
    other = tmp_path / "other"
    assert jitr("ca", "create", "--cn", "Other CA", "--out", other).exit_code == 0
    assert jitr("device", "issue", "--ca", other, "--cn", "device-003", "--out", out).exit_code == 0

    result = openssl("verify", "-CAfile", ca_dir / "ca.pem", out / "device-003.pem", check=False)

    assert result.returncode != 0


def test_openssl_reads_the_ca_as_aws_iot_requires_it(ca_dir: Path) -> None:
    text = openssl("x509", "-in", ca_dir / "ca.pem", "-noout", "-text").stdout

    assert "Version: 3 (0x2)" in text
    assert "CA:TRUE" in text
    assert "Certificate Sign, CRL Sign" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "X509v3 Authority Key Identifier" in text
    assert "ecdsa-with-SHA256" in text


def test_openssl_verifies_the_verification_certificate(tmp_path: Path, ca: pki.Issued, ca_dir: Path) -> None:
    code = hashlib.sha256(b"registration").hexdigest()
    path = tmp_path / "verification.pem"
    path.write_bytes(pki.certificate_pem(pki.create_verification_certificate(ca, code)))

    assert openssl("verify", "-CAfile", ca_dir / "ca.pem", path).stdout.strip().endswith("OK")
    subject = openssl("x509", "-in", path, "-noout", "-subject", "-nameopt", "RFC2253").stdout
    assert subject.strip() == f"subject=CN={code}"


def test_openssl_verifies_the_crl_pem_and_der(ca_dir: Path, out: Path) -> None:
    jitr("device", "issue", "--ca", ca_dir, "--cn", "device-004", "--out", out)
    revoked = jitr(
        "device", "revoke", "--ca", ca_dir, "--cert", out / "device-004.pem", "--reason", "keyCompromise", "--offline"
    )
    assert revoked.exit_code == 0, revoked.stderr

    pem = openssl("crl", "-in", ca_dir / "crl.pem", "-CAfile", ca_dir / "ca.pem", "-noout", "-verify")
    der = openssl("crl", "-inform", "DER", "-in", ca_dir / "crl.der", "-noout", "-text")
    serial = openssl("x509", "-in", out / "device-004.pem", "-noout", "-serial").stdout.split("=")[1].strip()

    assert "verify OK" in pem.stdout + pem.stderr
    assert "Next Update" in der.stdout
    assert "X509v3 CRL Number" in der.stdout
    assert f"SERIAL NUMBER: {serial}" in der.stdout.upper()
    assert "Key Compromise" in der.stdout
    chain = openssl(
        "verify",
        "-crl_check",
        "-CAfile",
        ca_dir / "ca.pem",
        "-CRLfile",
        ca_dir / "crl.pem",
        out / "device-004.pem",
        check=False,
    )
    assert chain.returncode != 0
    assert "certificate revoked" in chain.stdout + chain.stderr


def test_openssl_opens_an_encrypted_key_with_its_passphrase(tmp_path: Path) -> None:
    env = {**os.environ, "CA_PASS": "correct horse"}
    created = jitr(
        "ca", "create", "--cn", "Secret CA", "--out", tmp_path / "ca", "--key-passphrase-env", "CA_PASS", env=env
    )
    assert created.exit_code == 0, created.stderr
    key = tmp_path / "ca" / "ca.key"

    assert b"BEGIN ENCRYPTED PRIVATE KEY" in key.read_bytes()
    assert openssl("pkey", "-in", key, "-passin", "env:CA_PASS", "-noout", env=env).returncode == 0
    assert openssl("pkey", "-in", key, "-passin", "pass:wrong", "-noout", check=False).returncode != 0


def test_a_csr_made_by_openssl_on_the_device_is_signed(tmp_path: Path, ca_dir: Path) -> None:
    key, csr = tmp_path / "device.key", tmp_path / "device-005.csr"
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    openssl("req", "-new", "-key", key, "-subj", "/CN=device-005", "-out", csr)

    signed = jitr("device", "sign-csr", "--ca", ca_dir, "--csr", csr, "--out", tmp_path / "signed")

    assert signed.exit_code == 0, signed.stderr
    cert = tmp_path / "signed" / "device-005.pem"
    assert openssl("verify", "-purpose", "sslclient", "-CAfile", ca_dir / "ca.pem", cert).returncode == 0
    modulus_cert = openssl("x509", "-in", cert, "-noout", "-pubkey").stdout
    modulus_key = openssl("pkey", "-in", key, "-pubout").stdout
    assert modulus_cert == modulus_key
    assert not (tmp_path / "signed" / "device-005.key").exists()
