"""`jitr simulate` and `jitr demo` as a user runs them: output, exit status, usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from jitr import pki
from jitr.cli import main

pytestmark = pytest.mark.workflow


@pytest.fixture
def fleet(tmp_path: Path, ca: pki.Issued) -> Path:
    """The three devices of the demo: valid, illegal CN, revoked in the CRL."""
    pki.write_issued(ca, tmp_path, "ca")
    revoked = pki.issue_device_certificate(ca, "device-003")
    for stem, issued in (
        ("valid", pki.issue_device_certificate(ca, "device-001")),
        ("illegal", pki.issue_device_certificate(ca, "device-*")),
        ("revoked", revoked),
    ):
        pki.write_issued(issued, tmp_path, stem)
    (tmp_path / "crl.pem").write_bytes(pki.crl_bytes(pki.create_crl(ca, [revoked.certificate.serial_number])))
    return tmp_path


def runner() -> CliRunner:
    """stdout and stderr apart (click 8.1 needs asking; 8.2 always does it)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return CliRunner()


def simulate(*args: str) -> tuple[int, str, str]:
    result = runner().invoke(main, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("stem", "exit_code", "outcome", "status", "error"),
    [
        ("valid", 0, "ACTIVATED", "ACTIVE", None),
        ("illegal", 3, "REJECTED", "INACTIVE", "ThingNameWildcard"),
        ("revoked", 3, "REJECTED", "REVOKED", "CertificateRevoked"),
    ],
)
def test_simulate_json_reports_each_outcome(
    fleet: Path, stem: str, exit_code: int, outcome: str, status: str, error: str | None
) -> None:
    code, out, _ = simulate(
        str(fleet / f"{stem}.pem"), "--ca", str(fleet / "ca.pem"), "--crl", str(fleet / "crl.pem"), "--json"
    )

    report = json.loads(out)
    assert code == exit_code
    assert report["outcome"] == outcome
    assert report["certificateStatus"] == status
    assert (report["error"] or {}).get("Error") == error
    assert report["states"][0] == "ParseCertificate"
    assert set(report) >= {"outcome", "certificateStatus", "thingName", "policies", "states", "error"}
    if outcome == "ACTIVATED":
        assert report["thingName"] == "device-001"
        assert report["policies"] == ["jitr-device-policy"]
        assert report["error"] is None


def test_simulate_prints_a_readable_report(fleet: Path) -> None:
    code, out, _ = simulate(str(fleet / "illegal.pem"), "--ca", str(fleet / "ca.pem"))

    assert code == 3
    assert "REJECTED" in out
    assert "ValidateCertificate → Compensate" in out
    assert "ThingNameWildcard" in out


def test_simulate_accepts_parameter_overrides(fleet: Path) -> None:
    code, out, _ = simulate(
        str(fleet / "valid.pem"),
        "--ca",
        str(fleet / "ca.pem"),
        "--parameter-overrides",
        "DevicePolicyName=custom",
        "--json",
    )

    assert code == 0
    assert json.loads(out)["policies"] == ["custom"]


def test_simulate_reads_a_device_bundle(fleet: Path) -> None:
    bundle = fleet / "bundle.pem"
    bundle.write_text((fleet / "valid.pem").read_text() + (fleet / "ca.pem").read_text())

    code, out, _ = simulate(str(bundle), "--ca", str(fleet / "ca.pem"), "--json")

    assert code == 0
    assert json.loads(out)["thingName"] == "device-001"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.pem", "--ca", "ca.pem"], "cannot read device certificate"),
        (["valid.key", "--ca", "ca.pem"], "is not a PEM or DER X.509 certificate"),
        (["valid.pem", "--ca", "valid.pem"], "is not a CA certificate"),
        (["valid.pem", "--ca", "ca.pem", "--crl", "nothing.crl"], "cannot read CRL"),
        (["valid.pem", "--ca", "ca.pem", "--parameter-overrides", "NoSuchParameter=1"], "unknown parameter"),
        (["valid.pem", "--ca", "ca.pem", "--parameter-overrides", "WorkflowType=FAST"], "is not one of"),
        (["valid.pem", "--ca", "ca.pem", "--parameter-overrides", "novalue"], "expects Key=Value"),
    ],
)
def test_usage_errors_are_one_line_with_exit_status_2(
    fleet: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], message: str
) -> None:
    monkeypatch.chdir(fleet)

    code, out, err = simulate(*args)

    assert code == 2
    assert out == ""
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
