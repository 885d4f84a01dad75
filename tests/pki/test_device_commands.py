"""``jitr device``: issuing one device or a fleet (resumable), signing CSRs, revoking."""

from __future__ import annotations

import csv
import errno
import fcntl
import json
import os
import signal
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jitr_core.certificates import certificate_id
from jitr_core.crl import load_crl, verify_crl

from jitr import pki
from jitr.commands.device import IssueSpec, run_issuance
from tests.pki.conftest import assert_one_line_error, jitr


def manifest_rows(out: Path) -> list[dict[str, str]]:
    with (out / "manifest.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


# --- one device -------------------------------------------------------------------------------


def test_issue_one_device(ca_dir: Path, out: Path) -> None:
    run = jitr("device", "issue", "--ca", ca_dir, "--cn", "device-001", "--out", out, "--json")

    assert run.exit_code == 0, run.stderr
    [row] = json.loads(run.stdout)["devices"]
    cert = certificate(out / "device-001.pem")
    assert row["certificate_id"] == certificate_id(cert)
    assert row["serial"] == format(cert.serial_number, "x")
    assert stat.S_IMODE((out / "device-001.key").stat().st_mode) == 0o600
    key = serialization.load_pem_private_key((out / "device-001.key").read_bytes(), None)
    assert pki.key_matches(cert, key)  # type: ignore[arg-type]
    bundle = x509.load_pem_x509_certificates((out / "device-001.bundle.pem").read_bytes())
    assert bundle == [cert, pki.open_ca_directory(ca_dir, with_key=False).certificate]
    assert manifest_rows(out) == [row]
    assert "PRIVATE KEY" not in run.stdout


def test_issue_one_device_again_is_a_no_op_unless_forced(ca_dir: Path, out: Path) -> None:
    jitr("device", "issue", "--ca", ca_dir, "--cn", "device-001", "--out", out)
    first = (out / "device-001.pem").read_bytes()

    again = jitr("device", "issue", "--ca", ca_dir, "--cn", "device-001", "--out", out)
    forced = jitr("device", "issue", "--ca", ca_dir, "--cn", "device-001", "--out", out, "--force")

    assert again.exit_code == 0
    assert "already issued" in again.stdout
    assert forced.exit_code == 0
    assert (out / "device-001.pem").read_bytes() != first
    [row] = manifest_rows(out)
    assert row["certificate_id"] == certificate_id(certificate(out / "device-001.pem"))


def test_issue_rsa_device_with_an_encrypted_key(ca_dir: Path, out: Path) -> None:
    env = {"DEVICE_PASS": "pw"}

    run = jitr(
        "device",
        "issue",
        "--ca",
        ca_dir,
        "--cn",
        "device-rsa",
        "--out",
        out,
        "--key-type",
        "rsa-2048",
        "--key-passphrase-env",
        "DEVICE_PASS",
        env=env,
    )

    assert run.exit_code == 0, run.stderr
    key = pki.load_private_key(out / "device-rsa.key", b"pw")
    assert isinstance(key, rsa.RSAPrivateKey)
    assert pki.key_matches(certificate(out / "device-rsa.pem"), key)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cn", "device-*"], "ThingNameWildcard"),
        (["--cn", "dt/device"], "ThingNameTopicCharacter"),
        (["--cn", "d" * 65], "at most 64"),
        (["--cn", "device-1", "--thing-name-pattern", "^sensor-.*$"], "ThingNamePatternMismatch"),
        (["--cn", "device-1", "--thing-name-pattern", "("], "not a valid regular expression"),
        (["--cn", "device-1", "--prefix", "d-", "--count", "2"], "not both"),
        (["--prefix", "d-"], "--prefix PREFIX --count N"),
        (["--prefix", "bad/", "--count", "2"], "ThingNameTopicCharacter"),
    ],
)
def test_issue_usage_errors(ca_dir: Path, out: Path, args: list[str], message: str) -> None:
    run = jitr("device", "issue", "--ca", ca_dir, "--out", out, *args)

    assert_one_line_error(run, message)
    assert not out.exists()


def test_a_file_not_written_by_jitr_is_never_overwritten(ca_dir: Path, out: Path) -> None:
    out.mkdir()
    (out / "device-001.pem").write_text("mine")

    run = jitr("device", "issue", "--ca", ca_dir, "--cn", "device-001", "--out", out)

    assert_one_line_error(run, "device-001.pem exists without device-001.key", "--force")
    assert (out / "device-001.pem").read_text() == "mine"


# --- a fleet ----------------------------------------------------------------------------------


def test_bulk_issue_on_every_core(ca_dir: Path, out: Path) -> None:
    run = jitr(
        "device",
        "issue",
        "--ca",
        ca_dir,
        "--prefix",
        "sensor-",
        "--count",
        "40",
        "--out",
        out,
        "--workers",
        "2",
        "--json",
    )

    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["issued"] == 40
    assert report["workers"] == 2
    rows = manifest_rows(out)
    assert [r["name"] for r in sorted(rows, key=lambda r: r["name"])] == [f"sensor-{i:02d}" for i in range(1, 41)]
    assert len({r["serial"] for r in rows}) == 40
    for row in rows[:5]:
        cert = certificate(out / row["certificate"])
        assert row["certificate_id"] == certificate_id(cert)
        assert pki.common_names_of(cert.subject) == [row["name"]]
        assert stat.S_IMODE((out / row["key"]).stat().st_mode) == 0o600


def test_bulk_issue_shows_progress_and_a_summary(ca_dir: Path, out: Path) -> None:
    run = jitr(
        "device",
        "issue",
        "--ca",
        ca_dir,
        "--prefix",
        "d-",
        "--count",
        "5",
        "--start",
        "0",
        "--digits",
        "3",
        "--out",
        out,
    )

    assert run.exit_code == 0, run.stderr
    assert "issuing" in run.stderr
    assert "5/5" in run.stderr
    assert "Issued 5 device certificates" in run.stdout
    assert sorted(p.name for p in out.glob("*.pem") if ".bundle" not in p.name) == [f"d-{i:03d}.pem" for i in range(5)]


def test_bulk_rerun_completes_an_interrupted_run_without_duplicates(ca_dir: Path, out: Path) -> None:
    """A run killed mid-way leaves listed devices, unlisted complete devices, and a lone key."""
    assert jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "10", "--out", out).exit_code == 0
    rows = manifest_rows(out)
    listed = {r["name"]: r for r in rows[:6]}
    with (out / "manifest.csv").open("w", newline="") as handle:  # the last four never made it to the manifest
        writer = csv.DictWriter(handle, fieldnames=pki.MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(listed.values())
    unlisted = [r["name"] for r in rows[6:]]
    (out / f"{unlisted[0]}.pem").unlink()  # killed between the key and the certificate
    (out / f"{unlisted[0]}.bundle.pem").unlink()
    (out / f"{unlisted[1]}.bundle.pem").unlink()  # killed before the bundle
    lone_key = (out / f"{unlisted[0]}.key").read_bytes()
    kept = {name: (out / f"{name}.pem").read_bytes() for name in unlisted[1:]}

    again = jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "12", "--out", out, "--json")

    assert again.exit_code == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["skipped"], report["recovered"], report["issued"]) == (6, 4, 2)
    final = manifest_rows(out)
    assert sorted(r["name"] for r in final) == [f"d-{i:02d}" for i in range(1, 13)]
    assert all(r == listed[r["name"]] for r in final if r["name"] in listed)
    for name, pem in kept.items():
        assert (out / f"{name}.pem").read_bytes() == pem  # adopted, not issued again
        assert (out / f"{name}.bundle.pem").exists()
    assert (out / f"{unlisted[0]}.key").read_bytes() == lone_key
    assert pki.key_matches(certificate(out / f"{unlisted[0]}.pem"), pki.load_private_key(out / f"{unlisted[0]}.key"))

    third = json.loads(
        jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "12", "--out", out, "--json").stdout
    )
    assert (third["skipped"], third["issued"]) == (12, 0)
    assert len(manifest_rows(out)) == 12


def test_a_listed_device_whose_certificate_vanished_is_not_issued_twice(ca_dir: Path, out: Path) -> None:
    jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "3", "--out", out)
    (out / "d-2.pem").unlink()

    refused = jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "3", "--out", out)
    forced = jitr(
        "device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "3", "--out", out, "--force", "--json"
    )

    assert_one_line_error(refused, "d-2 is in", "d-2.pem is missing or empty", "--force")
    assert json.loads(forced.stdout)["issued"] == 3
    rows = manifest_rows(out)
    assert sorted(r["name"] for r in rows) == ["d-1", "d-2", "d-3"]


def test_keys_of_provisioned_devices_may_be_removed(ca_dir: Path, out: Path) -> None:
    jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "2", "--out", out)
    (out / "d-1.key").unlink()  # copied onto the device and shredded

    again = json.loads(
        jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "2", "--out", out, "--json").stdout
    )

    assert (again["skipped"], again["issued"]) == (2, 0)


def _ctrl_c() -> None:
    raise KeyboardInterrupt


def _sigterm() -> None:
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize("stop", [_ctrl_c, _sigterm], ids=["ctrl-c", "sigterm"])
def test_a_stopped_run_lets_running_chunks_finish_and_lists_them(
    ca: pki.Issued, tmp_path: Path, stop: Callable[[], None]
) -> None:
    store = pki.write_ca_directory(tmp_path / "ca", ca)
    out = tmp_path / "devices"
    out.mkdir()
    spec = IssueSpec.of(store, out)
    names = [f"d-{i:03d}" for i in range(400)]

    @contextmanager
    def interrupted_after_first_chunk(total: int) -> Iterator[Any]:
        def advance(count: int) -> None:
            stop()

        yield advance

    result = run_issuance(spec, names, out / "manifest.csv", workers=2, track=interrupted_after_first_chunk)

    assert result.interrupted
    listed = pki.read_manifest(out / "manifest.csv")
    assert 0 < len(listed) < len(names)
    on_disk = {p.name.removesuffix(".pem") for p in out.glob("*.pem") if not p.name.endswith(".bundle.pem")}
    assert set(listed) == on_disk  # every certificate written is listed: nothing to recover

    rerun = run_issuance(spec, [n for n in names if n not in listed], out / "manifest.csv", workers=2)
    assert len(pki.read_manifest(out / "manifest.csv")) == len(names)
    assert not rerun.error
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the run's handler is gone


def test_empty_files_a_killed_run_left_are_completed(ca_dir: Path, out: Path) -> None:
    jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "3", "--out", out)
    rows = manifest_rows(out)
    with (out / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=pki.MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(r for r in rows if r["name"] == "d-1")
    key_before = (out / "d-2.key").read_bytes()
    (out / "d-2.pem").write_bytes(b"")  # killed after creating the certificate file, before writing it
    (out / "d-2.bundle.pem").unlink()
    (out / "d-3.key").write_bytes(b"")  # killed right after creating the key file
    for path in ("d-3.pem", "d-3.bundle.pem"):
        (out / path).unlink()

    again = jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "3", "--out", out, "--json")

    assert again.exit_code == 0, again.stderr
    report = json.loads(again.stdout)
    assert (report["skipped"], report["recovered"], report["issued"]) == (1, 1, 1)
    assert (out / "d-2.key").read_bytes() == key_before
    for name in ("d-2", "d-3"):
        assert pki.key_matches(certificate(out / f"{name}.pem"), pki.load_private_key(out / f"{name}.key"))


def test_one_issuing_command_at_a_time_per_directory(ca_dir: Path, out: Path) -> None:
    out.mkdir()
    with (out / ".jitr.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)

        run = jitr("device", "issue", "--ca", ca_dir, "--cn", "device-001", "--out", out)

    assert_one_line_error(run, "another jitr command is issuing into")
    assert not (out / "device-001.pem").exists()


# --- signing a CSR ----------------------------------------------------------------------------


def make_csr(path: Path, *names: str, key: Any = None) -> Path:
    key = key or pki.generate_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, n) for n in names])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    return path


def test_sign_csr_keeps_the_key_on_the_device(tmp_path: Path, ca_dir: Path) -> None:
    key = pki.generate_key()
    csr = make_csr(tmp_path / "device-007.csr", "device-007", key=key)

    run = jitr("device", "sign-csr", "--ca", ca_dir, "--csr", csr, "--json")

    assert run.exit_code == 0, run.stderr
    row = json.loads(run.stdout)
    cert = certificate(tmp_path / "device-007.pem")
    assert pki.key_matches(cert, key)
    assert row["key"] == ""
    assert row["certificate_id"] == certificate_id(cert)
    assert not (tmp_path / "device-007.key").exists()
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert manifest_rows(tmp_path)[0]["name"] == "device-007"
    assert_one_line_error(jitr("device", "sign-csr", "--ca", ca_dir, "--csr", csr), "exists", "--force")


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["device-*"], "ThingNameWildcard"),
        (["a", "b"], "CommonNameAmbiguous"),
        ([], "CommonNameMissing"),
    ],
)
def test_sign_csr_refuses_names_the_workflow_would_reject(
    tmp_path: Path, ca_dir: Path, names: list[str], message: str
) -> None:
    csr = make_csr(tmp_path / "bad.csr", *names)

    assert_one_line_error(jitr("device", "sign-csr", "--ca", ca_dir, "--csr", csr), "bad.csr", message)
    assert not list(tmp_path.glob("*.pem"))


def test_sign_csr_refuses_a_forged_csr(tmp_path: Path, ca_dir: Path) -> None:
    csr = make_csr(tmp_path / "device-008.csr", "device-008")
    der = bytearray(x509.load_pem_x509_csr(csr.read_bytes()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01
    csr.write_bytes(bytes(der))

    assert_one_line_error(jitr("device", "sign-csr", "--ca", ca_dir, "--csr", csr), "does not verify")


def test_sign_csr_refuses_a_weak_key_and_garbage(tmp_path: Path, ca_dir: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = make_csr(tmp_path / "weak.csr", "device-009", key=weak)
    garbage = tmp_path / "garbage.csr"
    garbage.write_text("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")

    assert_one_line_error(jitr("device", "sign-csr", "--ca", ca_dir, "--csr", csr), "at least 2048")
    assert_one_line_error(jitr("device", "sign-csr", "--ca", ca_dir, "--csr", garbage), "garbage.csr is not")
    assert_one_line_error(jitr("device", "sign-csr", "--ca", ca_dir, "--csr", tmp_path / "none.csr"), "cannot read")


# --- revocation -------------------------------------------------------------------------------


def current_crl(ca_dir: Path) -> x509.CertificateRevocationList:
    return x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())


def test_revoke_by_certificate_updates_the_crl_and_aws_iot(ca_dir: Path, out: Path, iot: Any) -> None:
    jitr("device", "issue", "--ca", ca_dir, "--cn", "device-010", "--out", out)
    ca_pem = (ca_dir / "ca.pem").read_text()
    iot.register_ca_certificate(caCertificate=ca_pem, setAsActive=True, allowAutoRegistration=True)
    registered = iot.register_certificate(
        certificatePem=(out / "device-010.pem").read_text(), caCertificatePem=ca_pem, status="ACTIVE"
    )

    run = jitr(
        "device",
        "revoke",
        "--ca",
        ca_dir,
        "--cert",
        out / "device-010.bundle.pem",
        "--reason",
        "keyCompromise",
        "--json",
    )

    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    cert = certificate(out / "device-010.pem")
    assert report["aws"] == {
        "certificateId": registered["certificateId"],
        "registered": True,
        "statusBefore": "ACTIVE",
        "status": "REVOKED",
    }
    assert (
        iot.describe_certificate(certificateId=registered["certificateId"])["certificateDescription"]["status"]
        == "REVOKED"
    )
    crl = current_crl(ca_dir)
    assert pki.crl_number(crl) == 2
    [entry] = pki.crl_revocations(crl)
    assert entry.serial_number == cert.serial_number
    assert entry.reason is x509.ReasonFlags.key_compromise
    ca_cert = pki.open_ca_directory(ca_dir, with_key=False).certificate
    assert verify_crl(load_crl((ca_dir / "crl.der").read_bytes()), ca_cert).is_revoked(cert.serial_number)


def test_revoke_an_unregistered_certificate_and_publish_the_crl(ca_dir: Path, out: Path, s3: Any) -> None:
    s3.create_bucket(Bucket="fleet-crl")
    jitr("device", "issue", "--ca", ca_dir, "--cn", "device-011", "--out", out)

    run = jitr(
        "device", "revoke", "--ca", ca_dir, "--cert", out / "device-011.pem", "--publish", "s3://fleet-crl/crl.pem"
    )

    assert run.exit_code == 0, run.stderr
    assert "not registered in AWS IoT" in run.stdout
    assert "Uploaded to s3://fleet-crl/crl.pem" in run.stdout
    assert s3.get_object(Bucket="fleet-crl", Key="crl.pem")["Body"].read() == (ca_dir / "crl.pem").read_bytes()

    der = jitr("crl", "renew", "--ca", ca_dir, "--publish", "s3://fleet-crl/ca.crl", "--json")
    assert json.loads(der.stdout)["published"]["encoding"] == "DER"
    assert s3.get_object(Bucket="fleet-crl", Key="ca.crl")["Body"].read() == (ca_dir / "crl.der").read_bytes()


def test_revoke_by_serial_is_idempotent_and_offline(ca_dir: Path) -> None:
    first = jitr("device", "revoke", "--ca", ca_dir, "--serial", "0xAB:CD", "--json")
    second = jitr("device", "revoke", "--ca", ca_dir, "--serial", "abcd", "--json")

    assert first.exit_code == 0, first.stderr
    assert json.loads(first.stdout)["alreadyRevoked"] is False
    assert json.loads(second.stdout)["alreadyRevoked"] is True
    assert "aws" not in json.loads(second.stdout)
    crl = current_crl(ca_dir)
    assert [r.serial_number for r in crl] == [0xABCD]
    assert pki.crl_number(crl) == 3


def test_revoke_usage_errors(tmp_path: Path, ca_dir: Path, other_ca: pki.Issued) -> None:
    foreign = tmp_path / "foreign.pem"
    foreign.write_bytes(pki.certificate_pem(pki.issue_device_certificate(other_ca, "device-x").certificate))

    assert_one_line_error(jitr("device", "revoke", "--ca", ca_dir), "--cert FILE or --serial HEX")
    assert_one_line_error(jitr("device", "revoke", "--ca", ca_dir, "--serial", "xyz"), "not a hexadecimal")
    assert_one_line_error(jitr("device", "revoke", "--ca", ca_dir, "--serial", "0"), "positive")
    assert_one_line_error(jitr("device", "revoke", "--ca", ca_dir, "--cert", foreign), "was not issued by")
    assert_one_line_error(
        jitr("device", "revoke", "--ca", ca_dir, "--serial", "1", "--publish", "https://x/y"), "s3://"
    )
    assert pki.crl_number(current_crl(ca_dir)) == 1  # nothing was signed


def test_revoke_reports_an_aws_failure_after_writing_the_crl(ca_dir: Path, out: Path, aws: None) -> None:
    jitr("device", "issue", "--ca", ca_dir, "--cn", "device-012", "--out", out)

    run = jitr(
        "device", "revoke", "--ca", ca_dir, "--cert", out / "device-012.pem", "--publish", "s3://no-such-bucket/crl.pem"
    )

    assert_one_line_error(
        run, "is updated, but uploading it to s3://no-such-bucket/crl.pem failed", "NoSuchBucket", exit_code=1
    )
    assert len(current_crl(ca_dir)) == 1


def test_a_failed_write_stops_the_run_in_one_line_and_keeps_what_was_issued(
    ca_dir: Path, out: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = 0
    original = pki.write_new_file

    def disk_fills_up(path: Path, data: bytes, *, force: bool = False) -> None:
        nonlocal written
        written += 1
        if written > 6:  # three devices' certificates and bundles, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        original(path, data, force=force)

    monkeypatch.setattr(pki, "write_new_file", disk_fills_up)

    run = jitr("device", "issue", "--ca", ca_dir, "--prefix", "d-", "--count", "5", "--out", out, "--workers", "1")

    assert run.exit_code == 1
    progress, error = run.stderr.strip().splitlines()  # the progress bar, then the error
    assert "3/5" in progress
    assert error.startswith("jitr: error: d-4: cannot write ")
    assert error.endswith(f"No space left on device (3 issued and listed in {out / 'manifest.csv'})")
    assert sorted(r["name"] for r in manifest_rows(out)) == ["d-1", "d-2", "d-3"]
