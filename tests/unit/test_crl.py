"""jitr_core.crl: loading, verifying and fetching certificate revocation lists."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from jitr_core import crl as crl_module
from jitr_core.crl import RevocationList, check_location, fetch_crl, load_crl, verify_crl
from jitr_core.errors import ConfigurationError, CrlInvalid, CrlStale, CrlUnavailable

from jitr import pki

NOW = datetime.now(UTC)


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Local HTTP requests must not be sent to a proxy."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def http_files(no_proxy: None) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A local HTTP server on 127.0.0.1 serving the paths put in the returned dict (404 otherwise)."""
    files: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- loading


@pytest.mark.parametrize("der", [False, True], ids=["pem", "der"])
def test_pem_and_der_crls_load(ca: pki.Issued, der: bool) -> None:
    crl = pki.create_crl(ca, [1234])
    loaded = load_crl(pki.crl_bytes(crl, der=der))
    assert loaded.issuer == ca.certificate.subject
    assert loaded.get_revoked_certificate_by_serial_number(1234) is not None


def test_pem_crl_with_leading_whitespace_loads(ca: pki.Issued) -> None:
    loaded = load_crl(b"\n  " + pki.crl_bytes(pki.create_crl(ca, [7])))
    assert [entry.serial_number for entry in loaded] == [7]


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"this is not a CRL", id="garbage"),
        pytest.param(b"", id="empty"),
        pytest.param(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", id="pem-with-garbage-body"),
    ],
)
def test_garbage_crl_is_invalid(data: bytes) -> None:
    with pytest.raises(CrlInvalid, match="not a PEM or DER"):
        load_crl(data)


def test_certificate_is_not_a_crl(device: pki.Issued) -> None:
    with pytest.raises(CrlInvalid):
        load_crl(device.cert_pem.encode())


# ---------------------------------------------------------------- verifying


def test_crl_of_the_ca_verifies_and_lists_its_serials(ca: pki.Issued) -> None:
    revocations = verify_crl(pki.create_crl(ca, [11, 22]), ca.certificate)
    assert revocations.issuer == ca.certificate.subject
    assert revocations.revoked_serials == frozenset({11, 22})


def test_revoked_serials_are_a_frozenset(ca: pki.Issued) -> None:
    revocations = verify_crl(pki.create_crl(ca, [11, 22]), ca.certificate)
    assert type(revocations.revoked_serials) is frozenset


def test_is_revoked_says_whether_the_serial_is_listed(ca: pki.Issued) -> None:
    revocations = verify_crl(pki.create_crl(ca, [11, 22]), ca.certificate)
    assert revocations.is_revoked(11)
    assert revocations.is_revoked(22)
    assert not revocations.is_revoked(33)


def test_empty_crl_revokes_nothing(ca: pki.Issued, device: pki.Issued) -> None:
    revocations = verify_crl(pki.create_crl(ca), ca.certificate)
    assert not revocations.is_revoked(device.certificate.serial_number)


def test_crl_signed_by_another_key_is_invalid(ca: pki.Issued, other_ca: pki.Issued) -> None:
    forged = pki.create_crl(ca, [11], signing_key=other_ca.key)
    assert forged.issuer == ca.certificate.subject
    with pytest.raises(CrlInvalid, match="signature"):
        verify_crl(forged, ca.certificate)


def test_crl_of_another_issuer_is_invalid(ca: pki.Issued, other_ca: pki.Issued) -> None:
    with pytest.raises(CrlInvalid, match="issued by"):
        verify_crl(pki.create_crl(other_ca, [11]), ca.certificate)


def test_stale_crl_is_stale(ca: pki.Issued) -> None:
    stale = pki.create_crl(ca, last_update=NOW - timedelta(days=8), next_update=NOW - timedelta(minutes=1))
    with pytest.raises(CrlStale, match="stale"):
        verify_crl(stale, ca.certificate)


def test_crl_from_the_future_is_invalid(ca: pki.Issued) -> None:
    future = pki.create_crl(ca, last_update=NOW + timedelta(hours=1))
    with pytest.raises(CrlInvalid, match="future"):
        verify_crl(future, ca.certificate)


def test_crl_last_updated_within_the_clock_skew_is_accepted(ca: pki.Issued) -> None:
    slightly_ahead = pki.create_crl(ca, last_update=NOW + timedelta(minutes=2))
    assert verify_crl(slightly_ahead, ca.certificate, now=NOW).last_update > NOW


def test_seconds_until_stale_counts_down_to_next_update(ca: pki.Issued) -> None:
    revocations = verify_crl(
        pki.create_crl(ca, last_update=NOW - timedelta(hours=1), next_update=NOW + timedelta(hours=1)),
        ca.certificate,
        now=NOW,
    )
    assert revocations.seconds_until_stale(NOW) == pytest.approx(3600, abs=1)


def test_crl_without_next_update_never_goes_stale() -> None:
    revocations = RevocationList(issuer=x509.Name([]), revoked_serials=frozenset(), last_update=NOW, next_update=None)
    assert revocations.seconds_until_stale(NOW) is None


# ---------------------------------------------------------------- locations


@pytest.mark.parametrize(
    "location",
    ["s3://bucket/crl.pem", "s3://bucket/path/to/crl.der", "https://pki.example.com/ca.crl", "http://10.0.0.1/crl"],
)
def test_s3_and_http_locations_are_accepted(location: str) -> None:
    assert check_location(location) == location


@pytest.mark.parametrize(
    "location",
    ["ftp://x", "s3://bucket", "s3://bucket/", "s3:///crl.pem", "https://", "file:///etc/crl.pem", "crl.pem", ""],
)
def test_unusable_location_is_a_configuration_error(location: str) -> None:
    with pytest.raises(ConfigurationError, match="CRL_LOCATION"):
        check_location(location)


# ---------------------------------------------------------------- fetching


def test_crl_is_fetched_from_s3(s3: Any, ca: pki.Issued) -> None:
    data = pki.crl_bytes(pki.create_crl(ca, [5]))
    s3.create_bucket(Bucket="crls")
    s3.put_object(Bucket="crls", Key="ca/crl.pem", Body=data)
    assert fetch_crl("s3://crls/ca/crl.pem", s3) == data


@pytest.mark.parametrize("location", ["s3://crls/missing.pem", "s3://no-such-bucket/crl.pem"])
def test_missing_s3_crl_is_unavailable(s3: Any, location: str) -> None:
    s3.create_bucket(Bucket="crls")
    with pytest.raises(CrlUnavailable, match=re.escape(location)):
        fetch_crl(location, s3)


def test_oversized_crl_is_invalid(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(crl_module, "MAX_CRL_BYTES", 10)
    s3.create_bucket(Bucket="crls")
    s3.put_object(Bucket="crls", Key="big.pem", Body=b"x" * 11)
    with pytest.raises(CrlInvalid, match="larger than"):
        fetch_crl("s3://crls/big.pem", s3)


def test_crl_is_fetched_over_http(http_files: tuple[str, dict[str, bytes]], ca: pki.Issued) -> None:
    base, files = http_files
    files["/ca.crl"] = pki.crl_bytes(pki.create_crl(ca, [5]), der=True)
    assert fetch_crl(f"{base}/ca.crl", s3=None) == files["/ca.crl"]  # type: ignore[arg-type]


def test_http_error_status_is_unavailable(http_files: tuple[str, dict[str, bytes]]) -> None:
    base, _ = http_files
    with pytest.raises(CrlUnavailable, match="404"):
        fetch_crl(f"{base}/missing.crl", s3=None)  # type: ignore[arg-type]


def test_unreachable_url_is_unavailable(no_proxy: None) -> None:
    with pytest.raises(CrlUnavailable, match=re.escape("127.0.0.1:9")):
        fetch_crl("http://127.0.0.1:9/crl.pem", s3=None)  # type: ignore[arg-type]


def test_fetch_refuses_an_unusable_location_before_reading() -> None:
    with pytest.raises(ConfigurationError):
        fetch_crl("ftp://x", s3=None)  # type: ignore[arg-type]
