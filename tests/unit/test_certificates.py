"""jitr_core.certificates: thing-name rules, validity, issuer signature and certificate ids."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from jitr_core import errors
from jitr_core.certificates import (
    DEFAULT_THING_NAME_PATTERN,
    ThingNameSource,
    certificate_id,
    check_thing_name,
    check_validity,
    common_names,
    compile_thing_name_pattern,
    derive_thing_name,
    load_pem_certificate,
    serial_hex,
    verify_issued_by,
)

from jitr import pki

if TYPE_CHECKING:
    from tests.conftest import Registered

DEFAULT_PATTERN = re.compile(DEFAULT_THING_NAME_PATTERN)


def thing_name_from(names: list[str], pattern: re.Pattern[str] = DEFAULT_PATTERN) -> str:
    """The thing name the CommonName rules give a subject with ``names`` as its CNs."""
    return check_thing_name(derive_thing_name(names, "0abc", ThingNameSource.COMMON_NAME), pattern)


# ---------------------------------------------------------------- deriving the name


@pytest.mark.parametrize(
    ("names", "rejection"),
    [
        pytest.param([], errors.CommonNameMissing, id="no-cn"),
        pytest.param([""], errors.CommonNameMissing, id="empty-cn"),
        pytest.param(["   "], errors.CommonNameMissing, id="blank-cn"),
        pytest.param(["device-1", "device-2"], errors.CommonNameAmbiguous, id="two-cns"),
        pytest.param(["device-1", "device-1"], errors.CommonNameAmbiguous, id="same-cn-twice"),
    ],
)
def test_subject_without_exactly_one_common_name_is_rejected(
    names: list[str], rejection: type[errors.RegistrationRejected]
) -> None:
    with pytest.raises(rejection):
        derive_thing_name(names, "0abc", ThingNameSource.COMMON_NAME)


def test_single_common_name_is_the_thing_name() -> None:
    assert derive_thing_name(["device-001"], "0abc", ThingNameSource.COMMON_NAME) == "device-001"


def test_serial_number_source_names_the_thing_after_the_serial_even_without_a_cn() -> None:
    assert derive_thing_name([], "3b764c81f5", ThingNameSource.SERIAL_NUMBER) == "3b764c81f5"
    assert derive_thing_name(["a", "b"], "3b764c81f5", ThingNameSource.SERIAL_NUMBER) == "3b764c81f5"


# ---------------------------------------------------------------- the naming rules


@pytest.mark.parametrize(
    ("name", "rejection"),
    [
        pytest.param("dev*", errors.ThingNameWildcard, id="star"),
        pytest.param("dev?", errors.ThingNameWildcard, id="question-mark"),
        pytest.param("*", errors.ThingNameWildcard, id="only-star"),
        pytest.param("${iot:ClientId}", errors.ThingNamePolicyVariable, id="client-id-variable"),
        pytest.param("a${iot:Connection.Thing.ThingName}", errors.ThingNamePolicyVariable, id="thing-name-variable"),
        pytest.param("site/device", errors.ThingNameTopicCharacter, id="slash"),
        pytest.param("device+", errors.ThingNameTopicCharacter, id="plus"),
        pytest.param("device#", errors.ThingNameTopicCharacter, id="hash"),
        pytest.param("device 1", errors.ThingNameInvalid, id="space"),
        pytest.param("device.1", errors.ThingNameInvalid, id="dot"),
        pytest.param("dévice", errors.ThingNameInvalid, id="non-ascii"),
        pytest.param("device\n", errors.ThingNameInvalid, id="trailing-newline"),
        pytest.param("d" * 129, errors.ThingNameInvalid, id="129-characters"),
    ],
)
def test_thing_name_breaking_a_rule_is_rejected_with_the_rule_it_broke(
    name: str, rejection: type[errors.RegistrationRejected]
) -> None:
    with pytest.raises(errors.RegistrationRejected) as caught:
        thing_name_from([name])
    assert type(caught.value) is rejection
    assert caught.value.reason == rejection.__name__


def test_wildcard_in_common_name_is_rejected() -> None:
    with pytest.raises(errors.ThingNameWildcard, match="wildcard"):
        thing_name_from(["sensor-*"])


def test_the_most_specific_rule_is_reported_first() -> None:
    # '*' is also outside [a-zA-Z0-9:_-]; the wildcard rule says more, so it wins.
    with pytest.raises(errors.ThingNameWildcard):
        thing_name_from(["a/b*"])


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("d" * 128, id="128-characters"),
        pytest.param("a", id="1-character"),
        pytest.param("Fleet_A:device-0001", id="every-allowed-punctuation"),
    ],
)
def test_legal_thing_name_is_accepted(name: str) -> None:
    assert thing_name_from([name]) == name


def test_configured_pattern_mismatch_is_rejected() -> None:
    pattern = compile_thing_name_pattern(r"^fleet-[0-9]{4}$")
    with pytest.raises(errors.ThingNamePatternMismatch, match="fleet-"):
        thing_name_from(["device-0001"], pattern)


def test_configured_pattern_must_match_the_whole_name() -> None:
    pattern = compile_thing_name_pattern(r"fleet-[0-9]{4}")
    assert thing_name_from(["fleet-0001"], pattern) == "fleet-0001"
    with pytest.raises(errors.ThingNamePatternMismatch):
        thing_name_from(["fleet-00012"], pattern)


def test_configured_pattern_cannot_loosen_the_aws_rules() -> None:
    with pytest.raises(errors.ThingNameInvalid):
        thing_name_from(["device.1"], compile_thing_name_pattern(r".*"))


def test_invalid_configured_pattern_is_a_configuration_error() -> None:
    with pytest.raises(errors.ConfigurationError, match="THING_NAME_PATTERN"):
        compile_thing_name_pattern("([unclosed")


# ---------------------------------------------------------------- reading the certificate


def test_common_names_lists_every_cn_of_the_subject_in_order(ca: pki.Issued) -> None:
    issued = pki.issue_device_certificate(ca, ["first", "second"])
    assert common_names(issued.certificate) == ["first", "second"]


def test_common_names_is_empty_for_a_subject_without_cn(ca: pki.Issued) -> None:
    issued = pki.issue_device_certificate(ca, None)
    assert common_names(issued.certificate) == []


def test_common_names_ignores_other_subject_attributes(ca: pki.Issued) -> None:
    # The CA's subject is O=jitr, CN=jitr Test CA.
    assert len(list(ca.certificate.subject)) == 2
    assert common_names(ca.certificate) == ["jitr Test CA"]


def test_serial_hex_is_lowercase_hex_without_separators(ca: pki.Issued) -> None:
    issued = pki.issue_device_certificate(ca, "device-1", serial_number=0xABCDEF0123)
    assert serial_hex(issued.certificate) == "abcdef0123"


def test_load_pem_certificate_accepts_str_and_bytes(device: pki.Issued) -> None:
    assert load_pem_certificate(device.cert_pem) == device.certificate
    assert load_pem_certificate(device.cert_pem.encode()) == device.certificate


def test_load_pem_certificate_rejects_what_is_not_a_certificate() -> None:
    with pytest.raises(ValueError, match=r"."):
        load_pem_certificate("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")


def test_certificate_id_is_the_sha256_of_the_der_encoding(device: pki.Issued) -> None:
    expected = hashlib.sha256(device.certificate.public_bytes(Encoding.DER)).hexdigest()
    assert certificate_id(device.certificate) == expected
    assert re.fullmatch(r"[0-9a-f]{64}", certificate_id(device.certificate))


def test_certificate_id_matches_the_id_aws_iot_assigns(device: pki.Issued, register: Callable[..., Registered]) -> None:
    registered = register(device)
    assert certificate_id(device.certificate) == registered.certificate_id


# ---------------------------------------------------------------- validity period

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)


def test_certificate_within_its_validity_period_is_accepted() -> None:
    check_validity(NOW - timedelta(days=1), NOW + timedelta(days=1), NOW)


def test_validity_bounds_are_inclusive() -> None:
    check_validity(NOW, NOW, NOW)


def test_expired_certificate_is_rejected() -> None:
    with pytest.raises(errors.CertificateExpired, match="expired"):
        check_validity(NOW - timedelta(days=10), NOW - timedelta(seconds=1), NOW)


def test_not_yet_valid_certificate_is_rejected() -> None:
    with pytest.raises(errors.CertificateNotYetValid):
        check_validity(NOW + timedelta(seconds=1), NOW + timedelta(days=10), NOW)


def test_validity_defaults_to_the_current_time(ca: pki.Issued) -> None:
    past = datetime.now(UTC) - timedelta(days=30)
    expired = pki.issue_device_certificate(ca, "old", not_before=past, not_after=past + timedelta(days=1))
    with pytest.raises(errors.CertificateExpired):
        check_validity(expired.certificate.not_valid_before_utc, expired.certificate.not_valid_after_utc)


# ---------------------------------------------------------------- issuer and signature


def test_certificate_issued_by_the_ca_verifies(device: pki.Issued, ca: pki.Issued) -> None:
    verify_issued_by(device.certificate, ca.certificate)


def test_certificate_of_another_ca_is_rejected(device: pki.Issued, other_ca: pki.Issued) -> None:
    with pytest.raises(errors.SignatureInvalid):
        verify_issued_by(device.certificate, other_ca.certificate)


def test_certificate_naming_the_ca_but_signed_by_another_key_is_rejected(ca: pki.Issued, other_ca: pki.Issued) -> None:
    impostor = pki.Issued(ca.certificate, other_ca.key)
    forged = pki.issue_device_certificate(impostor, "device-forged")
    assert forged.certificate.issuer == ca.certificate.subject
    with pytest.raises(errors.SignatureInvalid, match="signature does not verify"):
        verify_issued_by(forged.certificate, ca.certificate)
