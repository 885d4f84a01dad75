"""``jitr crl``: showing the CA's CRL, signing it again, and refusing a CRL that is not the CA's."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from jitr import pki
from tests.pki.conftest import assert_one_line_error, jitr


def test_show_lists_entries_and_validity(ca_dir: Path) -> None:
    jitr("device", "revoke", "--ca", ca_dir, "--serial", "c0ffee", "--reason", "superseded")
    jitr("device", "revoke", "--ca", ca_dir, "--serial", "beef")

    shown = jitr("crl", "show", "--ca", ca_dir, "--json")
    table = jitr("crl", "show", "--ca", ca_dir)

    assert shown.exit_code == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["number"] == 3
    assert report["current"] is True
    assert report["entries"] == 2
    assert {(r["serial"], r["reason"]) for r in report["revoked"]} == {("c0ffee", "superseded"), ("beef", None)}
    assert "c0ffee" in table.stdout
    assert "2 revoked" in table.stdout
    assert "(current)" in table.stdout


def test_show_flags_a_stale_crl(ca_dir: Path, ca: pki.Issued) -> None:
    store = pki.open_ca_directory(ca_dir)
    stale = pki.sign_crl(ca, [], number=5, days=1, last_update=datetime.now(UTC) - timedelta(days=3))
    pki.save_crl(store, stale)

    shown = jitr("crl", "show", "--ca", ca_dir)

    assert shown.exit_code == 0
    assert "STALE" in shown.stdout
    assert "jitr crl renew" in shown.stdout


def test_renew_keeps_entries_with_a_new_number_and_next_update(ca_dir: Path) -> None:
    jitr("device", "revoke", "--ca", ca_dir, "--serial", "42")
    before = x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())

    run = jitr("crl", "renew", "--ca", ca_dir, "--days", "90", "--json")

    assert run.exit_code == 0, run.stderr
    after = x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())
    assert pki.crl_number(after) == pki.crl_number(before) + 1  # type: ignore[operator]
    assert [r.serial_number for r in after] == [0x42]
    assert after.next_update_utc is not None
    assert after.next_update_utc - after.last_update_utc == timedelta(days=90)
    assert json.loads((ca_dir / "ca.json").read_text())["crl_days"] == 90


def test_a_crl_the_ca_did_not_sign_is_refused(ca_dir: Path, other_ca: pki.Issued, ca: pki.Issued) -> None:
    forged = pki.create_crl(ca, [1], signing_key=other_ca.key)
    (ca_dir / "crl.pem").write_bytes(pki.crl_bytes(forged))

    assert_one_line_error(jitr("crl", "show", "--ca", ca_dir), "was not signed by")
    assert_one_line_error(jitr("crl", "renew", "--ca", ca_dir), "was not signed by")
    assert_one_line_error(jitr("device", "revoke", "--ca", ca_dir, "--serial", "2"), "was not signed by")


def test_corrupt_or_missing_crl(ca_dir: Path) -> None:
    (ca_dir / "crl.pem").write_text("-----BEGIN X509 CRL-----\nnope\n-----END X509 CRL-----\n")
    assert_one_line_error(jitr("crl", "show", "--ca", ca_dir), "crl.pem is not a PEM CRL")

    (ca_dir / "crl.pem").unlink()
    assert_one_line_error(jitr("crl", "show", "--ca", ca_dir), "has no crl.pem", "jitr crl renew")
    assert jitr("crl", "renew", "--ca", ca_dir).exit_code == 0
    assert jitr("crl", "show", "--ca", ca_dir).exit_code == 0


def test_crl_work_goes_on_for_an_expired_ca(tmp_path: Path, expired_ca: pki.Issued) -> None:
    """An expired CA signs no new certificate, but its CRL can still be read and signed."""
    pki.write_ca_directory(tmp_path / "expired", expired_ca)

    assert jitr("crl", "renew", "--ca", tmp_path / "expired").exit_code == 0
    assert jitr("crl", "show", "--ca", tmp_path / "expired").exit_code == 0
