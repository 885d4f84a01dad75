"""``jitr ca``: creating CAs, registering them (moto), their lifecycle, and what goes wrong."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography import x509
from jitr_core.certificates import certificate_id
from moto.iot.models import IoTBackend
from moto.iot.responses import IoTResponse
from moto.server import ThreadedMotoServer

from jitr import pki
from tests.pki.conftest import assert_one_line_error, jitr


def test_create_writes_the_ca_directory(tmp_path: Path) -> None:
    run = jitr("ca", "create", "--cn", "Fleet CA", "--out", tmp_path / "ca", "--json")

    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    directory = tmp_path / "ca"
    assert sorted(os.listdir(directory)) == ["ca.json", "ca.key", "ca.pem", "chain.pem", "crl.der", "crl.pem"]
    assert stat.S_IMODE((directory / "ca.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    assert report["certificateId"] == certificate_id(cert)
    assert report["keyType"] == "ec-p256"
    assert "PRIVATE KEY" not in run.stdout + run.stderr
    metadata = json.loads((directory / "ca.json").read_text())
    assert metadata["common_name"] == "Fleet CA"
    assert metadata["crl_number"] == 1


def test_create_rsa_ca_for_the_given_days(tmp_path: Path) -> None:
    run = jitr("ca", "create", "--cn", "RSA CA", "--out", tmp_path, "--key-type", "rsa-2048", "--days", "30")

    assert run.exit_code == 0, run.stderr
    store = pki.open_ca_directory(tmp_path)
    assert store.metadata.key_type == "rsa-2048"
    lifetime = store.certificate.not_valid_after_utc - store.certificate.not_valid_before_utc
    assert lifetime.days == 30
    assert "Created root CA" in run.stdout


def test_create_never_overwrites_without_force(tmp_path: Path) -> None:
    jitr("ca", "create", "--cn", "First", "--out", tmp_path)
    first = (tmp_path / "ca.key").read_bytes()

    refused = jitr("ca", "create", "--cn", "Second", "--out", tmp_path)
    replaced = jitr("ca", "create", "--cn", "Third", "--out", tmp_path, "--force")

    assert_one_line_error(refused, "exists", "--force")
    assert replaced.exit_code == 0
    assert (tmp_path / "ca.key").read_bytes() != first
    assert "Third" in (tmp_path / "ca.json").read_text()


def test_passphrase_comes_from_the_environment_variable_named(tmp_path: Path) -> None:
    missing = jitr("ca", "create", "--cn", "C", "--out", tmp_path / "a", "--key-passphrase-env", "NOT_SET_ANYWHERE")
    assert_one_line_error(missing, "NOT_SET_ANYWHERE", "not set")
    assert not (tmp_path / "a").exists()

    env = {"CA_PASSPHRASE": "hunter2"}
    assert (
        jitr(
            "ca", "create", "--cn", "C", "--out", tmp_path / "b", "--key-passphrase-env", "CA_PASSPHRASE", env=env
        ).exit_code
        == 0
    )
    without = jitr("device", "issue", "--ca", tmp_path / "b", "--cn", "d-1", "--out", tmp_path / "d")
    wrong = jitr(
        "device",
        "issue",
        "--ca",
        tmp_path / "b",
        "--cn",
        "d-1",
        "--out",
        tmp_path / "d",
        "--ca-passphrase-env",
        "CA_PASSPHRASE",
        env={"CA_PASSPHRASE": "nope"},
    )
    right = jitr(
        "device",
        "issue",
        "--ca",
        tmp_path / "b",
        "--cn",
        "d-1",
        "--out",
        tmp_path / "d",
        "--ca-passphrase-env",
        "CA_PASSPHRASE",
        env=env,
    )

    assert_one_line_error(without, "ca.key is encrypted", "--ca-passphrase-env")
    assert_one_line_error(wrong, "passphrase does not decrypt")
    assert right.exit_code == 0, right.stderr
    assert "hunter2" not in without.stderr + wrong.stderr + right.stdout


def test_create_intermediate_chains_to_its_issuer(tmp_path: Path, ca_dir: Path) -> None:
    run = jitr(
        "ca",
        "create-intermediate",
        "--issuer",
        ca_dir,
        "--cn",
        "Fleet Intermediate",
        "--out",
        tmp_path / "int",
        "--json",
    )

    assert run.exit_code == 0, run.stderr
    store = pki.open_ca_directory(tmp_path / "int")
    root = pki.open_ca_directory(ca_dir, with_key=False)
    assert store.chain == [store.certificate, root.certificate]
    assert store.metadata.issuer_certificate_id == root.certificate_id
    store.certificate.verify_directly_issued_by(root.certificate)
    assert json.loads(run.stdout)["kind"] == "intermediate CA"


def test_create_intermediate_refuses_its_issuers_own_directory(ca_dir: Path) -> None:
    run = jitr("ca", "create-intermediate", "--issuer", ca_dir, "--cn", "X", "--out", ca_dir, "--force")

    assert_one_line_error(run, "issuer's own directory")


# --- bad CA directories, for every command that signs ------------------------------------------


def _non_ca_directory(tmp_path: Path, ca: pki.Issued) -> Path:
    pki.write_issued(pki.issue_device_certificate(ca, "device-001"), tmp_path / "not-a-ca", "ca")
    return tmp_path / "not-a-ca"


def _mismatched_key_directory(tmp_path: Path, ca: pki.Issued, other_ca: pki.Issued) -> Path:
    pki.write_ca_directory(tmp_path / "mismatch", ca)
    (tmp_path / "mismatch" / "ca.key").unlink()
    pki.write_private_key(tmp_path / "mismatch" / "ca.key", other_ca.key_pem)
    return tmp_path / "mismatch"


def _corrupt_pem_directory(tmp_path: Path, ca: pki.Issued) -> Path:
    pki.write_ca_directory(tmp_path / "corrupt", ca)
    pem = (tmp_path / "corrupt" / "ca.pem").read_text()
    (tmp_path / "corrupt" / "ca.pem").write_text(pem[:60] + "@@@" + pem[63:])
    return tmp_path / "corrupt"


def _expired_directory(tmp_path: Path, expired_ca: pki.Issued) -> Path:
    pki.write_ca_directory(tmp_path / "expired", expired_ca)
    return tmp_path / "expired"


@pytest.fixture(params=["not-a-ca", "mismatch", "corrupt", "expired", "missing"])
def bad_ca(
    request: pytest.FixtureRequest, tmp_path: Path, ca: pki.Issued, other_ca: pki.Issued, expired_ca: pki.Issued
) -> tuple[Path, str]:
    kind = request.param
    if kind == "not-a-ca":
        return _non_ca_directory(tmp_path, ca), "is not a CA certificate"
    if kind == "mismatch":
        return _mismatched_key_directory(tmp_path, ca, other_ca), "does not belong to"
    if kind == "corrupt":
        return _corrupt_pem_directory(tmp_path, ca), "is not a PEM or DER X.509 certificate"
    if kind == "expired":
        return _expired_directory(tmp_path, expired_ca), "expired on"
    return tmp_path / "nowhere", "does not exist"


@pytest.mark.parametrize(
    "command",
    [
        ["device", "issue", "--cn", "device-001", "--out", "{tmp}/devices"],
        ["device", "issue", "--prefix", "d-", "--count", "3", "--out", "{tmp}/devices"],
        ["ca", "create-intermediate", "--cn", "I", "--out", "{tmp}/int"],
        ["ca", "register"],
    ],
    ids=["issue", "bulk", "intermediate", "register"],
)
def test_bad_ca_directories_are_one_line_usage_errors(
    bad_ca: tuple[Path, str], command: list[str], tmp_path: Path, aws: None
) -> None:
    directory, message = bad_ca
    option = "--issuer" if "create-intermediate" in command else "--ca"
    args = [part.format(tmp=tmp_path) for part in command]

    run = jitr(*args, option, directory)

    assert_one_line_error(run, message)
    assert not (tmp_path / "devices").exists() or not any((tmp_path / "devices").glob("*.pem"))


# --- registration with AWS IoT (moto) ----------------------------------------------------------


def _ca_id(directory: Path) -> str:
    return pki.open_ca_directory(directory, with_key=False).certificate_id


def test_register_creates_an_active_auto_registering_ca(ca_dir: Path, iot: Any) -> None:
    run = jitr("ca", "register", "--ca", ca_dir, "--json")

    assert run.exit_code == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["created"] is True
    assert report["certificateId"] == _ca_id(ca_dir)
    description = iot.describe_ca_certificate(certificateId=report["certificateId"])["certificateDescription"]
    assert description["status"] == "ACTIVE"
    assert json.loads((ca_dir / "ca.json").read_text())["registered_arns"] == [report["certificateArn"]]


def test_register_sends_a_verification_certificate_signed_by_the_ca(
    ca_dir: Path, iot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verification certificate that reached the API is the one the registration code asked for."""
    sent: dict[str, Any] = {}
    original = IoTResponse.register_ca_certificate

    def spy(self: IoTResponse) -> Any:
        sent.update(json.loads(self.body))
        sent.update({name: values[0] for name, values in self.querystring.items()})  # the flags travel in the URL
        return original(self)

    monkeypatch.setattr(IoTResponse, "register_ca_certificate", spy)
    monkeypatch.setattr(IoTBackend, "get_registration_code", lambda self: "c0de" * 16)

    assert jitr("ca", "register", "--ca", ca_dir).exit_code == 0

    verification = x509.load_pem_x509_certificate(sent["verificationCertificate"].encode())
    ca_cert = x509.load_pem_x509_certificate(sent["caCertificate"].encode())
    assert pki.common_names_of(verification.subject) == ["c0de" * 16]
    assert ca_cert == pki.open_ca_directory(ca_dir, with_key=False).certificate
    verification.verify_directly_issued_by(ca_cert)
    assert sent["setAsActive"] == "true"
    assert sent["allowAutoRegistration"] == "true"


def test_register_again_reports_the_existing_ca_and_reactivates_it(ca_dir: Path, iot: Any) -> None:
    first = json.loads(jitr("ca", "register", "--ca", ca_dir, "--json").stdout)
    iot.update_ca_certificate(certificateId=first["certificateId"], newStatus="INACTIVE")

    again = jitr("ca", "register", "--ca", ca_dir)
    as_json = json.loads(jitr("ca", "register", "--ca", ca_dir, "--json").stdout)

    assert again.exit_code == 0, again.stderr
    assert "Already registered" in again.stdout
    assert first["certificateId"] in again.stdout
    assert "status INACTIVE → ACTIVE" in again.stdout
    assert as_json["created"] is False
    assert as_json["certificateId"] == first["certificateId"]
    status = iot.describe_ca_certificate(certificateId=first["certificateId"])["certificateDescription"]["status"]
    assert status == "ACTIVE"


def test_lifecycle_commands_change_the_ca_in_aws_iot(ca_dir: Path, iot: Any) -> None:
    ca_id = json.loads(jitr("ca", "register", "--ca", ca_dir, "--json").stdout)["certificateId"]

    def status() -> str:
        return str(iot.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["status"])

    deactivated = jitr("ca", "deactivate", "--ca", ca_dir)
    assert deactivated.exit_code == 0, deactivated.stderr
    assert "registers no new device" in deactivated.stdout
    assert status() == "INACTIVE"
    assert json.loads(jitr("ca", "status", "--ca-id", ca_id, "--json").stdout)["status"] == "INACTIVE"

    assert jitr("ca", "activate", "--ca-id", ca_id).exit_code == 0
    assert status() == "ACTIVE"

    disabled = jitr("ca", "disable-auto-registration", "--ca", ca_dir, "--json")
    assert json.loads(disabled.stdout)["newAutoRegistrationStatus"] == "DISABLE"
    assert jitr("ca", "enable-auto-registration", "--ca", ca_dir).exit_code == 0

    shown = jitr("ca", "status", "--ca", ca_dir)
    assert shown.exit_code == 0
    assert "ACTIVE" in shown.stdout


def test_lifecycle_usage_errors(ca_dir: Path, aws: None) -> None:
    assert_one_line_error(jitr("ca", "status"), "--ca DIR or --ca-id ID")
    assert_one_line_error(jitr("ca", "status", "--ca", ca_dir, "--ca-id", "ab"), "--ca DIR or --ca-id ID")
    assert_one_line_error(jitr("ca", "deactivate", "--ca", ca_dir), "is not registered in AWS IoT", "jitr ca register")


def test_no_region_is_a_usage_error(ca_dir: Path, monkeypatch: pytest.MonkeyPatch, aws: None) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    assert_one_line_error(jitr("ca", "status", "--ca", ca_dir), "no AWS region", "--region")


def test_unknown_profile_is_a_usage_error(ca_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")

    assert_one_line_error(jitr("ca", "status", "--ca", ca_dir, "--profile", "nobody"), "nobody")


# --- any endpoint that speaks the AWS IoT API --------------------------------------------------


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _server_iot(url: str) -> Any:
    return boto3.client("iot", region_name="us-east-1", endpoint_url=url)


def test_endpoint_url_option_sends_every_call_there(ca_dir: Path, moto_server: str) -> None:
    run = jitr("ca", "register", "--ca", ca_dir, "--endpoint-url", moto_server, "--region", "eu-west-1", "--json")

    assert run.exit_code == 0, run.stderr
    ca_id = json.loads(run.stdout)["certificateId"]
    server = boto3.client("iot", region_name="eu-west-1", endpoint_url=moto_server)
    assert server.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]["status"] == "ACTIVE"


def test_aws_endpoint_url_is_honoured_and_the_option_wins(
    tmp_path: Path, ca_dir: Path, moto_server: str, monkeypatch: pytest.MonkeyPatch, other_ca: pki.Issued
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    by_environment = jitr("ca", "register", "--ca", ca_dir, "--json")
    assert by_environment.exit_code == 0, by_environment.stderr
    ca_id = json.loads(by_environment.stdout)["certificateId"]
    assert _server_iot(moto_server).describe_ca_certificate(certificateId=ca_id)

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # fail fast rather than retry
    pki.write_ca_directory(tmp_path / "other", other_ca)
    by_option = jitr("ca", "register", "--ca", tmp_path / "other", "--endpoint-url", moto_server)
    unreachable = jitr("ca", "status", "--ca", ca_dir)

    assert by_option.exit_code == 0, by_option.stderr
    assert_one_line_error(unreachable, "cannot reach http://127.0.0.1:9", exit_code=1)
