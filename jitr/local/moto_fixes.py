"""Where moto's AWS IoT differs from AWS in ways the workflow depends on, behave as AWS does.

Each fix is a ``unittest.mock.patch`` applied for the life of a local stack:

* CreateThing on an existing name succeeds only with the same configuration, else
  ``ResourceAlreadyExistsException`` (moto replaces the thing).
* UpdateCertificate refuses statuses AWS refuses (moto stores any string).
* DescribeCertificate returns ``caCertificateId`` (moto leaves it out), and RegisterCertificate
  finds the CA by certificate, not by the exact PEM text.
* Certificate ids are the SHA-256 of the DER, whatever moto's configuration.
* A CA's auto-registration status is stored (RegisterCACertificate ``allowAutoRegistration``,
  UpdateCACertificate ``newAutoRegistrationStatus``) and returned by DescribeCACertificate;
  UpdateCACertificate refuses invalid statuses.
* ListCACertificates answers (moto does not implement it).
* GetRegistrationCode returns one code per account and region, and RegisterCACertificate
  checks the verification certificate when one is given: its CN must be that code and the
  CA must have signed it.
* DescribeCertificate looks the certificate up by id (moto scans every certificate, which
  fails while another request registers one).
* DescribeCertificate and DescribeCACertificate return the certificate's own validity (moto
  answers a day either side of its creation) and a ``lastModifiedDate`` that status changes move.
* DescribeEndpoint for ``iot:Data-ATS`` and ``iot:Data`` returns the local MQTT endpoint's host
  (``127.0.0.1``) once one serves the account (``set_data_endpoint``), as AWS returns the
  account's data endpoint.
"""

from __future__ import annotations

import uuid
from contextlib import ExitStack
from typing import Any
from unittest import mock

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from jitr_core.certificates import certificate_id
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iot.exceptions import (
    InvalidRequestException,
    IoTClientError,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
)
from moto.iot.models import FakeCaCertificate, FakeCertificate, FakeEndpoint, FakeThing, IoTBackend
from moto.iot.responses import IoTResponse

CERTIFICATE_STATUSES = frozenset(
    {"ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION"}
)
REFUSED_NEW_STATUSES = frozenset({"PENDING_ACTIVATION", "PENDING_TRANSFER"})
CA_STATUSES = frozenset({"ACTIVE", "INACTIVE"})
AUTO_REGISTRATION_STATUSES = frozenset({"ENABLE", "DISABLE"})

_original_create_thing = IoTBackend.create_thing
_original_update_certificate = IoTBackend.update_certificate
_original_certificate_description = FakeCertificate.to_description_dict
_original_register_certificate = IoTBackend.register_certificate
DATA_ENDPOINT_TYPES = frozenset({"iot:Data", "iot:Data-ATS"})


class CertificateValidationException(IoTClientError):
    """AWS's answer to a certificate it cannot accept."""

    def __init__(self, message: str) -> None:
        super().__init__("CertificateValidationException", message)


class RegistrationCodeValidationException(IoTClientError):
    """AWS's answer to a verification certificate whose CN is not the registration code."""

    def __init__(self, message: str) -> None:
        super().__init__("RegistrationCodeValidationException", message)


def _create_thing(
    self: IoTBackend,
    thing_name: str,
    thing_type_name: str,
    attribute_payload: dict[str, Any] | None,
    billing_group_name: str | None = None,
) -> FakeThing:
    existing = next((t for t in self.things.values() if t.thing_name == thing_name), None)
    if existing is not None:
        attributes = (attribute_payload or {}).get("attributes") or {}
        same_type = (existing.thing_type.thing_type_name if existing.thing_type else None) == (thing_type_name or None)
        if same_type and existing.attributes == attributes:
            return existing
        raise ResourceAlreadyExistsException(
            f"Thing {thing_name} already exists in account with different attributes", thing_name, existing.arn
        )
    return _original_create_thing(self, thing_name, thing_type_name, attribute_payload, billing_group_name)


def _update_certificate(self: IoTBackend, certificate_id: str, new_status: str) -> None:
    if new_status not in CERTIFICATE_STATUSES:
        raise InvalidRequestException(f"{new_status} is not a valid certificate status")
    if new_status in REFUSED_NEW_STATUSES:
        raise InvalidRequestException(f"a certificate cannot be set to {new_status}")
    _original_update_certificate(self, certificate_id, new_status)
    self.describe_certificate(certificate_id).last_modified_date = utcnow()


def _describe_certificate(self: IoTBackend, certificate_id: str) -> FakeCertificate:
    certificate = self.certificates.get(certificate_id)
    if certificate is None:
        raise ResourceNotFoundException()
    return certificate


def _described(cert: FakeCertificate) -> dict[str, Any]:
    """moto's description of ``cert`` with the validity of the certificate itself."""
    description = _original_certificate_description(cert)
    certificate = x509.load_pem_x509_certificate(cert.certificate_pem.encode())
    description["validity"] = {
        "notBefore": certificate.not_valid_before_utc.replace(tzinfo=None),
        "notAfter": certificate.not_valid_after_utc.replace(tzinfo=None),
    }
    return description


def _certificate_description(self: FakeCertificate) -> dict[str, Any]:
    description = _described(self)
    if self.ca_certificate_id:
        description["caCertificateId"] = self.ca_certificate_id
    return description


def _load_pem(pem: str, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise CertificateValidationException(f"the {what} is not a PEM X.509 certificate") from None


def der_certificate_id(pem: str) -> str:
    """AWS IoT's certificate id: the lowercase hex SHA-256 of the certificate's DER."""
    return certificate_id(_load_pem(pem, "certificate"))


def _compute_cert_id(self: FakeCertificate, certificate_pem: str) -> str:
    return der_certificate_id(certificate_pem)


def _find_ca_certificate(self: IoTBackend, ca_certificate_pem: str | None) -> str | None:
    if not ca_certificate_pem:
        return None
    ca_id = der_certificate_id(ca_certificate_pem)
    return ca_id if ca_id in self.ca_certificates else None


def _register_certificate(
    self: IoTBackend, certificate_pem: str, ca_certificate_pem: str | None, set_as_active: bool, status: str
) -> FakeCertificate:
    if ca_certificate_pem and _find_ca_certificate(self, ca_certificate_pem) is None:
        raise CertificateValidationException("the CA certificate is not registered")
    if status and status not in CERTIFICATE_STATUSES:
        raise InvalidRequestException(f"{status} is not a valid certificate status")
    return _original_register_certificate(self, certificate_pem, ca_certificate_pem, set_as_active, status)


def registration_code(backend: IoTBackend) -> str:
    """The account's registration code: the same on every call, as on AWS."""
    code: str | None = getattr(backend, "jitr_registration_code", None)
    if code is None:
        code = uuid.uuid4().hex + uuid.uuid4().hex
        backend.jitr_registration_code = code  # type: ignore[attr-defined]
    return code


def _get_registration_code(self: IoTBackend) -> str:
    return registration_code(self)


def check_verification_certificate(backend: IoTBackend, ca_pem: str, verification_pem: str) -> None:
    """Refuse a verification certificate whose CN is not the registration code or that the CA did not sign."""
    ca = _load_pem(ca_pem, "CA certificate")
    verification = _load_pem(verification_pem, "verification certificate")
    common_names = [a.value for a in verification.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    if common_names != [backend.get_registration_code()]:
        raise RegistrationCodeValidationException(
            "the verification certificate's CN is not the registration code (GetRegistrationCode)"
        )
    try:
        verification.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise CertificateValidationException("the verification certificate is not signed by the CA") from None


def _register_ca_response(self: IoTResponse) -> ActionResult:
    ca_pem = self._get_param("caCertificate")
    verification_pem = self._get_param("verificationCertificate")
    if verification_pem:
        check_verification_certificate(self.iot_backend, ca_pem, verification_pem)
    _load_pem(ca_pem, "CA certificate")
    cert = self.iot_backend.register_ca_certificate(
        ca_certificate=ca_pem,
        set_as_active=self._get_bool_param("setAsActive") or False,
        registration_config=self._get_param("registrationConfig") or {},
    )
    cert.auto_registration_status = (  # type: ignore[attr-defined]
        "ENABLE" if self._get_bool_param("allowAutoRegistration") else "DISABLE"
    )
    return ActionResult({"certificateId": cert.certificate_id, "certificateArn": cert.arn})


def _auto_registration_status(cert: FakeCaCertificate) -> str:
    return str(getattr(cert, "auto_registration_status", "DISABLE"))


def _update_ca_response(self: IoTResponse) -> EmptyResult:
    certificate_id = self.path.split("/")[-1]
    new_status = self._get_param("newStatus")
    auto_registration = self._get_param("newAutoRegistrationStatus")
    if new_status is not None and new_status not in CA_STATUSES:
        raise InvalidRequestException(f"{new_status} is not a valid CA certificate status")
    if auto_registration is not None and auto_registration not in AUTO_REGISTRATION_STATUSES:
        raise InvalidRequestException(f"{auto_registration} is not a valid auto-registration status")
    self.iot_backend.update_ca_certificate(
        certificate_id=certificate_id, new_status=new_status, config=self._get_param("registrationConfig")
    )
    cert = self.iot_backend.describe_ca_certificate(certificate_id)
    if auto_registration is not None:
        cert.auto_registration_status = auto_registration  # type: ignore[attr-defined]
    cert.last_modified_date = utcnow()
    return EmptyResult()


def _describe_ca_response(self: IoTResponse) -> ActionResult:
    cert = self.iot_backend.describe_ca_certificate(certificate_id=self.path.split("/")[-1])
    description = _described(cert)
    description["autoRegistrationStatus"] = _auto_registration_status(cert)
    description.pop("transferData", None)
    return ActionResult({"certificateDescription": description, "registrationConfig": cert.registration_config})


def _list_ca_response(self: IoTResponse) -> ActionResult:
    certificates = [
        {
            "certificateArn": cert.arn,
            "certificateId": cert.certificate_id,
            "status": cert.status,
            "creationDate": cert.creation_date,
        }
        for cert in self.iot_backend.ca_certificates.values()
    ]
    return ActionResult({"certificates": certificates})


def set_data_endpoint(backend: IoTBackend, host: str) -> None:
    """Make DescribeEndpoint return ``host`` as the account's data endpoint."""
    backend.jitr_data_endpoint = host  # type: ignore[attr-defined]


def _describe_endpoint(self: IoTBackend, endpoint_type: str) -> FakeEndpoint:
    endpoint = FakeEndpoint(endpoint_type, self.region_name)
    host = getattr(self, "jitr_data_endpoint", None)
    if host is not None and endpoint_type in DATA_ENDPOINT_TYPES:
        endpoint.endpoint = host
    return endpoint


def apply(stack: ExitStack) -> None:
    """Apply every fix until ``stack`` closes."""
    stack.enter_context(mock.patch.object(FakeCertificate, "compute_cert_id", _compute_cert_id))
    stack.enter_context(mock.patch.object(IoTBackend, "_find_ca_certificate", _find_ca_certificate))
    stack.enter_context(mock.patch.object(IoTBackend, "register_certificate", _register_certificate))
    stack.enter_context(mock.patch.object(IoTBackend, "get_registration_code", _get_registration_code))
    stack.enter_context(mock.patch.object(IoTResponse, "register_ca_certificate", _register_ca_response))
    stack.enter_context(mock.patch.object(IoTResponse, "update_ca_certificate", _update_ca_response))
    stack.enter_context(mock.patch.object(IoTResponse, "describe_ca_certificate", _describe_ca_response))
    stack.enter_context(mock.patch.object(IoTResponse, "list_ca_certificates", _list_ca_response, create=True))
    stack.enter_context(mock.patch.object(IoTBackend, "create_thing", _create_thing))
    stack.enter_context(mock.patch.object(IoTBackend, "update_certificate", _update_certificate))
    stack.enter_context(mock.patch.object(IoTBackend, "describe_certificate", _describe_certificate))
    stack.enter_context(mock.patch.object(FakeCertificate, "to_description_dict", _certificate_description))
    stack.enter_context(mock.patch.object(IoTBackend, "describe_endpoint", _describe_endpoint))
