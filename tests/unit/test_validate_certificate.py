"""ValidateCertificate: thing name, validity, CA and revocation list, through the handler on moto."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from jitr_core import errors
from jitr_core.certificates import certificate_id

from jitr import pki
from tests.conftest import load_event

if TYPE_CHECKING:
    from tests.conftest import LambdaContext, Registered
    from tests.unit.conftest import CallLog, Steps

BUCKET = "jitr-crl"
CRL_KEY = "crl.pem"
CRL_LOCATION = f"s3://{BUCKET}/{CRL_KEY}"


@dataclass
class Validation:
    """ValidateCertificate loaded once (a warm function), with what its tests set up around it."""

    module: ModuleType
    steps: Steps
    register: Callable[..., Registered]
    s3: Any
    monkeypatch: pytest.MonkeyPatch
    record_calls: Callable[[Any], CallLog]

    def state(self, issued: pki.Issued, **register_options: Any) -> dict[str, Any]:
        """Register ``issued`` and return ValidateCertificate's input: the event plus ParseCertificate's output."""
        return self.steps.through(self.register(issued, **register_options), "parse_certificate")

    def run(self, state: dict[str, Any]) -> dict[str, Any]:
        return self.steps.run("validate_certificate", state)

    def setenv(self, name: str, value: str) -> None:
        self.monkeypatch.setenv(name, value)

    def use_crl(self, data: bytes | None) -> None:
        """Point CRL_LOCATION at an S3 object holding ``data`` (None: the object does not exist)."""
        self.s3.create_bucket(Bucket=BUCKET)
        self.setenv("CRL_LOCATION", CRL_LOCATION)
        if data is not None:
            self.s3.put_object(Bucket=BUCKET, Key=CRL_KEY, Body=data)

    def iot_calls(self) -> CallLog:
        return self.record_calls(self.module.clients.iot())

    def s3_calls(self) -> CallLog:
        return self.record_calls(self.module.clients.s3())


@pytest.fixture
def v(
    steps: Steps,
    register: Callable[..., Registered],
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
    record_calls: Callable[[Any], CallLog],
) -> Validation:
    return Validation(steps.module("validate_certificate"), steps, register, s3, monkeypatch, record_calls)


# ---------------------------------------------------------------- accepted


def test_valid_certificate_is_named_after_its_common_name(v: Validation, ca: pki.Issued) -> None:
    assert v.run(v.state(pki.issue_device_certificate(ca, "sensor-0042"))) == {"thingName": "sensor-0042"}


def test_serial_number_source_names_the_thing_after_the_serial(v: Validation, ca: pki.Issued) -> None:
    v.setenv("THING_NAME_SOURCE", "SerialNumber")
    state = v.state(pki.issue_device_certificate(ca, "ignored-cn", serial_number=0xC0FFEE))
    assert v.run(state) == {"thingName": "c0ffee"}


def test_ca_in_the_allow_list_is_accepted(v: Validation, ca: pki.Issued, other_ca: pki.Issued) -> None:
    # The list may hold several ids, in either case, with spaces around the commas.
    v.setenv(
        "ALLOWED_CA_CERTIFICATE_IDS",
        f"{certificate_id(other_ca.certificate)} , {certificate_id(ca.certificate).upper()}",
    )
    assert v.run(v.state(pki.issue_device_certificate(ca, "allowed-1"))) == {"thingName": "allowed-1"}


# ---------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    ("common_names", "rejection"),
    [
        pytest.param(["dev*"], errors.ThingNameWildcard, id="wildcard"),
        pytest.param(None, errors.CommonNameMissing, id="no-cn"),
    ],
)
def test_certificate_with_a_bad_common_name_is_rejected(
    v: Validation, ca: pki.Issued, common_names: list[str] | None, rejection: type[errors.RegistrationRejected]
) -> None:
    state = v.state(pki.issue_device_certificate(ca, common_names))
    with pytest.raises(rejection):
        v.run(state)


def issue_with_common_name(ca: pki.Issued, common_name: str) -> pki.Issued:
    """A device certificate whose CN X.509 tools would refuse to write (empty, or over 64 characters)."""
    key = pki.generate_key()
    start = datetime.now(UTC) - timedelta(minutes=5)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name, _validate=False)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=30))
        .sign(ca.key, hashes.SHA256())
    )
    return pki.Issued(certificate, key)


# cryptography warns about a CN outside X.509's 1-64 characters, writing it and reading it alike.
odd_length_warning = pytest.mark.filterwarnings("ignore:Attribute's length must be:UserWarning")


@odd_length_warning
@pytest.mark.parametrize(
    ("common_name", "rejection"),
    [
        pytest.param("", errors.CommonNameMissing, id="empty-cn"),
        pytest.param("d" * 129, errors.ThingNameInvalid, id="129-characters"),
    ],
)
def test_certificate_with_an_unusual_common_name_is_rejected(
    v: Validation, ca: pki.Issued, common_name: str, rejection: type[errors.RegistrationRejected]
) -> None:
    state = v.state(issue_with_common_name(ca, common_name))
    with pytest.raises(rejection):
        v.run(state)


@odd_length_warning
def test_common_name_of_128_characters_names_the_thing(v: Validation, ca: pki.Issued) -> None:
    name = "d" * 128
    assert v.run(v.state(issue_with_common_name(ca, name))) == {"thingName": name}


def test_name_outside_the_configured_pattern_is_rejected(v: Validation, ca: pki.Issued) -> None:
    v.setenv("THING_NAME_PATTERN", r"^fleet-[0-9]+$")
    state = v.state(pki.issue_device_certificate(ca, "device-1"))
    with pytest.raises(errors.ThingNamePatternMismatch):
        v.run(state)


def test_expired_certificate_is_rejected(v: Validation, ca: pki.Issued) -> None:
    start = datetime.now(UTC) - timedelta(days=30)
    state = v.state(pki.issue_device_certificate(ca, "old-1", not_before=start, not_after=start + timedelta(days=1)))
    with pytest.raises(errors.CertificateExpired):
        v.run(state)


def test_not_yet_valid_certificate_is_rejected(v: Validation, ca: pki.Issued) -> None:
    state = v.state(pki.issue_device_certificate(ca, "early-1", not_before=datetime.now(UTC) + timedelta(days=1)))
    with pytest.raises(errors.CertificateNotYetValid):
        v.run(state)


def test_ca_outside_the_allow_list_is_rejected_without_reading_it(
    v: Validation, ca: pki.Issued, other_ca: pki.Issued
) -> None:
    v.setenv("ALLOWED_CA_CERTIFICATE_IDS", certificate_id(other_ca.certificate))
    state = v.state(pki.issue_device_certificate(ca, "device-1"))
    calls = v.iot_calls()
    with pytest.raises(errors.CaNotAllowed):
        v.run(state)
    assert calls.operations == []


def test_inactive_ca_is_rejected(v: Validation, ca: pki.Issued) -> None:
    state = v.state(pki.issue_device_certificate(ca, "device-1"), ca_status="INACTIVE")
    with pytest.raises(errors.CaNotActive, match="INACTIVE"):
        v.run(state)


def test_unregistered_ca_is_rejected(v: Validation, ca: pki.Issued, iot: Any) -> None:
    state = v.state(pki.issue_device_certificate(ca, "device-1"))
    ca_id = certificate_id(ca.certificate)
    iot.update_ca_certificate(certificateId=ca_id, newStatus="INACTIVE")
    iot.delete_ca_certificate(certificateId=ca_id)
    with pytest.raises(errors.CaNotActive, match="not registered"):
        v.run(state)


def test_certificate_claiming_the_ca_but_signed_by_another_key_is_rejected(
    v: Validation, ca: pki.Issued, other_ca: pki.Issued
) -> None:
    forged = pki.issue_device_certificate(pki.Issued(ca.certificate, other_ca.key), "device-forged")
    state = v.state(forged)
    with pytest.raises(errors.SignatureInvalid):
        v.run(state)


# ---------------------------------------------------------------- revocation list


def test_certificate_not_in_the_crl_is_accepted(v: Validation, ca: pki.Issued) -> None:
    v.use_crl(pki.crl_bytes(pki.create_crl(ca, [1, 2, 3])))
    state = v.state(pki.issue_device_certificate(ca, "device-1", serial_number=4))
    assert v.run(state) == {"thingName": "device-1"}


def test_certificate_in_the_crl_is_revoked(v: Validation, ca: pki.Issued) -> None:
    device = pki.issue_device_certificate(ca, "device-1")
    v.use_crl(pki.crl_bytes(pki.create_crl(ca, [1, device.certificate.serial_number]), der=True))
    with pytest.raises(errors.CertificateRevoked, match=f"{device.certificate.serial_number:x}"):
        v.run(v.state(device))


def test_missing_crl_is_unavailable(v: Validation, ca: pki.Issued) -> None:
    v.use_crl(None)
    with pytest.raises(errors.CrlUnavailable):
        v.run(v.state(pki.issue_device_certificate(ca, "device-1")))


def test_missing_crl_is_skipped_when_failing_open(v: Validation, ca: pki.Issued) -> None:
    v.use_crl(None)
    v.setenv("CRL_FAIL_OPEN", "true")
    assert v.run(v.state(pki.issue_device_certificate(ca, "device-1"))) == {"thingName": "device-1"}


def test_unreachable_crl_url_is_unavailable(v: Validation, ca: pki.Issued) -> None:
    v.setenv("CRL_LOCATION", "http://127.0.0.1:9/crl.pem")
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        v.monkeypatch.delenv(name, raising=False)
    with pytest.raises(errors.CrlUnavailable):
        v.run(v.state(pki.issue_device_certificate(ca, "device-1")))


def test_crl_that_does_not_verify_is_invalid(v: Validation, ca: pki.Issued, other_ca: pki.Issued) -> None:
    # Every way a CRL can fail to verify is in test_crl.py; this shows the handler verifies it at all.
    v.use_crl(pki.crl_bytes(pki.create_crl(ca, signing_key=other_ca.key)))
    with pytest.raises(errors.CrlInvalid):
        v.run(v.state(pki.issue_device_certificate(ca, "device-1")))


def test_garbage_crl_is_invalid(v: Validation, ca: pki.Issued) -> None:
    v.use_crl(b"not a revocation list")
    with pytest.raises(errors.CrlInvalid):
        v.run(v.state(pki.issue_device_certificate(ca, "device-1")))


def test_forged_crl_is_rejected_even_when_failing_open(v: Validation, ca: pki.Issued, other_ca: pki.Issued) -> None:
    v.setenv("CRL_FAIL_OPEN", "true")
    device = pki.issue_device_certificate(ca, "device-1")
    v.use_crl(pki.crl_bytes(pki.create_crl(ca, [device.certificate.serial_number], signing_key=other_ca.key)))
    with pytest.raises(errors.CrlInvalid):
        v.run(v.state(device))


def test_stale_crl_is_rejected_unless_failing_open(v: Validation, ca: pki.Issued) -> None:
    now = datetime.now(UTC)
    v.use_crl(
        pki.crl_bytes(pki.create_crl(ca, last_update=now - timedelta(days=8), next_update=now - timedelta(hours=1)))
    )
    state = v.state(pki.issue_device_certificate(ca, "device-1"))
    with pytest.raises(errors.CrlStale):
        v.run(state)
    v.setenv("CRL_FAIL_OPEN", "true")
    assert v.run(state) == {"thingName": "device-1"}


def test_failing_open_still_rejects_a_certificate_a_valid_crl_lists(v: Validation, ca: pki.Issued) -> None:
    v.setenv("CRL_FAIL_OPEN", "true")
    device = pki.issue_device_certificate(ca, "device-1")
    v.use_crl(pki.crl_bytes(pki.create_crl(ca, [device.certificate.serial_number])))
    with pytest.raises(errors.CertificateRevoked):
        v.run(v.state(device))


# ---------------------------------------------------------------- warm function caches


def test_warm_function_reads_the_ca_and_the_crl_once(v: Validation, ca: pki.Issued) -> None:
    v.use_crl(pki.crl_bytes(pki.create_crl(ca, [1])))
    first = v.state(pki.issue_device_certificate(ca, "device-1"))
    second = v.state(pki.issue_device_certificate(ca, "device-2"))
    iot_calls, s3_calls = v.iot_calls(), v.s3_calls()

    assert v.run(first) == {"thingName": "device-1"}
    assert v.run(second) == {"thingName": "device-2"}

    assert iot_calls.operations == ["DescribeCACertificate"]
    assert s3_calls.operations == ["GetObject"]


def test_cold_function_reads_the_ca_again(
    v: Validation, load_function: Callable[[str], ModuleType], ca: pki.Issued, lambda_context: LambdaContext
) -> None:
    state = v.state(pki.issue_device_certificate(ca, "device-1"))
    counts = []
    for _ in range(2):
        cold = load_function("validate_certificate")
        calls = v.record_calls(cold.clients.iot())
        cold.lambda_handler(state, lambda_context)
        counts.append(calls.operations.count("DescribeCACertificate"))
    assert counts == [1, 1]


def test_zero_cache_seconds_reads_the_ca_every_time(v: Validation, ca: pki.Issued) -> None:
    v.setenv("CA_CACHE_SECONDS", "0")
    state = v.state(pki.issue_device_certificate(ca, "device-1"))
    calls = v.iot_calls()
    v.run(state)
    v.run(state)
    assert calls.operations == ["DescribeCACertificate", "DescribeCACertificate"]


def test_failed_crl_read_is_not_cached(v: Validation, ca: pki.Issued) -> None:
    v.use_crl(None)
    state = v.state(pki.issue_device_certificate(ca, "device-1"))
    with pytest.raises(errors.CrlUnavailable):
        v.run(state)
    v.use_crl(pki.crl_bytes(pki.create_crl(ca)))
    assert v.run(state) == {"thingName": "device-1"}


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("THING_NAME_SOURCE", "Subject"),
        ("THING_NAME_PATTERN", "([unclosed"),
        ("CRL_LOCATION", "ftp://crl.example.com/crl.pem"),
        ("CRL_LOCATION", "s3://bucket-without-key"),
        ("CRL_FAIL_OPEN", "maybe"),
        ("CRL_CACHE_SECONDS", "five"),
    ],
)
def test_bad_configuration_is_a_configuration_error(v: Validation, variable: str, value: str) -> None:
    v.setenv(variable, value)
    with pytest.raises(errors.ConfigurationError, match=variable):
        v.run(load_event("validate_certificate.json"))


def test_malformed_state_is_invalid_step_input(v: Validation) -> None:
    with pytest.raises(errors.InvalidStepInput, match="certificate"):
        v.run({"certificateId": "a" * 64})
