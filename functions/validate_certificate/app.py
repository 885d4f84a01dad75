"""ValidateCertificate: decide whether the certificate may be onboarded, and under what thing name.

Rules, in order: the thing name (from the CN or the serial number), the validity period,
the CA (allow-list, ACTIVE, signature), and the CA's revocation list when one is configured.
Any broken rule raises a ``RegistrationRejected`` error whose name says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from cryptography import x509
from jitr_core.aws import AwsClients, error_code
from jitr_core.cache import TtlCache
from jitr_core.certificates import (
    ThingNameSource,
    check_thing_name,
    check_validity,
    compile_thing_name_pattern,
    derive_thing_name,
    load_pem_certificate,
    verify_issued_by,
)
from jitr_core.crl import RevocationList, check_location, fetch_crl, load_crl, verify_crl
from jitr_core.errors import (
    CaNotActive,
    CaNotAllowed,
    CertificateRevoked,
    ConfigurationError,
    CrlStale,
    CrlUnavailable,
)
from jitr_core.handler import workflow_step
from jitr_core.models import CertificateInfo, DeviceIdentity, StepInput, parse_state
from jitr_core.settings import env_bool, env_int, env_list, env_str

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_s3 import S3Client

logger = Logger()
tracer = Tracer()
metrics = Metrics()
clients = AwsClients()


class ValidateInput(StepInput):
    certificate: CertificateInfo


@dataclass(frozen=True)
class ValidationSettings:
    thing_name_source: ThingNameSource
    thing_name_pattern: re.Pattern[str]
    allowed_ca_ids: frozenset[str]
    crl_location: str | None
    crl_fail_open: bool
    crl_cache_seconds: int
    ca_cache_seconds: int

    @classmethod
    def from_env(cls) -> ValidationSettings:
        source = env_str("THING_NAME_SOURCE", ThingNameSource.COMMON_NAME.value)
        try:
            thing_name_source = ThingNameSource(source)
        except ValueError:
            raise ConfigurationError(f"THING_NAME_SOURCE={source!r} is not CommonName or SerialNumber") from None
        crl_location = env_str("CRL_LOCATION", "").strip() or None
        return cls(
            thing_name_source=thing_name_source,
            thing_name_pattern=compile_thing_name_pattern(env_str("THING_NAME_PATTERN", r"^[a-zA-Z0-9:_-]{1,128}$")),
            allowed_ca_ids=frozenset(i.lower() for i in env_list("ALLOWED_CA_CERTIFICATE_IDS")),
            crl_location=check_location(crl_location) if crl_location else None,
            crl_fail_open=env_bool("CRL_FAIL_OPEN"),
            crl_cache_seconds=env_int("CRL_CACHE_SECONDS", 300),
            ca_cache_seconds=env_int("CA_CACHE_SECONDS", 300),
        )


@dataclass(frozen=True)
class CaRecord:
    certificate_id: str
    status: str
    certificate: x509.Certificate


class WarmCaches:
    """What a warm function keeps between registrations: CA certificates and verified CRLs."""

    def __init__(self) -> None:
        self._ca: TtlCache[str, CaRecord] | None = None
        self._crl: TtlCache[tuple[str, str], RevocationList] | None = None

    def ca(self, ttl: int) -> TtlCache[str, CaRecord]:
        if self._ca is None or self._ca.ttl_seconds != ttl:
            self._ca = TtlCache(ttl)
        return self._ca

    def crl(self, ttl: int) -> TtlCache[tuple[str, str], RevocationList]:
        if self._crl is None or self._crl.ttl_seconds != ttl:
            self._crl = TtlCache(ttl)
        return self._crl


caches = WarmCaches()


def describe_ca(iot: IoTClient, ca_certificate_id: str) -> CaRecord:
    try:
        description = iot.describe_ca_certificate(certificateId=ca_certificate_id)["certificateDescription"]
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            raise CaNotActive(f"CA {ca_certificate_id} is not registered with AWS IoT") from None
        raise
    return CaRecord(
        certificate_id=ca_certificate_id,
        status=str(description["status"]),
        certificate=load_pem_certificate(description["certificatePem"]),
    )


def check_ca(info: CertificateInfo, settings: ValidationSettings, iot: IoTClient) -> CaRecord:
    if settings.allowed_ca_ids and info.ca_certificate_id not in settings.allowed_ca_ids:
        raise CaNotAllowed(f"CA {info.ca_certificate_id} is not in the allow-list ALLOWED_CA_CERTIFICATE_IDS")
    ca = caches.ca(settings.ca_cache_seconds).get_or_load(
        info.ca_certificate_id, lambda: describe_ca(iot, info.ca_certificate_id)
    )
    if ca.status != "ACTIVE":
        raise CaNotActive(f"CA {info.ca_certificate_id} is {ca.status}, not ACTIVE")
    return ca


def revocation_list(location: str, ca: CaRecord, settings: ValidationSettings, s3: S3Client) -> RevocationList:
    """The CA's verified CRL, fetched at most once per cache period (or before its nextUpdate)."""
    return caches.crl(settings.crl_cache_seconds).get_or_load(
        (location, ca.certificate_id),
        lambda: verify_crl(load_crl(fetch_crl(location, s3)), ca.certificate),
        expires_in=lambda crl: crl.seconds_until_stale(),
    )


def check_revocation(cert: x509.Certificate, ca: CaRecord, settings: ValidationSettings, s3: S3Client) -> None:
    if settings.crl_location is None:
        return
    try:
        crl = revocation_list(settings.crl_location, ca, settings, s3)
    except (CrlUnavailable, CrlStale) as exc:
        # Failing open is for an unavailable CA, never for a forged or foreign CRL (CrlInvalid).
        if not settings.crl_fail_open:
            raise
        logger.warning(
            "CRL check skipped (CRL_FAIL_OPEN is true)", extra={"reason": type(exc).__name__, "detail": str(exc)}
        )
        metrics.add_metric(name="CrlCheckSkipped", unit=MetricUnit.Count, value=1)
        return
    if crl.is_revoked(cert.serial_number):
        raise CertificateRevoked(f"serial {cert.serial_number:x} is listed in the CA's revocation list")


def validate(
    info: CertificateInfo, settings: ValidationSettings, iot: IoTClient, s3: S3Client, now: datetime | None = None
) -> DeviceIdentity:
    """Apply every rule; return the device's thing name or raise the first rejection."""
    thing_name = check_thing_name(
        derive_thing_name(info.common_names, info.serial_number, settings.thing_name_source),
        settings.thing_name_pattern,
    )
    check_validity(info.not_before, info.not_after, now or datetime.now(UTC))
    ca = check_ca(info, settings, iot)
    cert = load_pem_certificate(info.pem)
    verify_issued_by(cert, ca.certificate)
    check_revocation(cert, ca, settings, s3)
    return DeviceIdentity(thing_name=thing_name)


@workflow_step(logger, tracer, metrics)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    state = parse_state(event, ValidateInput)
    device = validate(state.certificate, ValidationSettings.from_env(), clients.iot(), clients.s3())
    logger.info("certificate accepted", extra={"thingName": device.thing_name})
    return device.to_state()
