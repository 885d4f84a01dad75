"""Where moto's AWS IoT differs from AWS in ways the workflow depends on, behave as AWS does.

Each fix is a ``unittest.mock.patch`` applied for the life of a local stack:

* CreateThing on an existing name succeeds only with the same configuration, else
  ``ResourceAlreadyExistsException`` (moto replaces the thing).
* UpdateCertificate refuses statuses AWS refuses (moto stores any string).
* DescribeCertificate returns ``caCertificateId`` (moto leaves it out).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any
from unittest import mock

from moto.iot.exceptions import InvalidRequestException, ResourceAlreadyExistsException
from moto.iot.models import FakeCertificate, FakeThing, IoTBackend

CERTIFICATE_STATUSES = frozenset(
    {"ACTIVE", "INACTIVE", "REVOKED", "PENDING_TRANSFER", "REGISTER_INACTIVE", "PENDING_ACTIVATION"}
)
REFUSED_NEW_STATUSES = frozenset({"PENDING_ACTIVATION", "PENDING_TRANSFER"})

_original_create_thing = IoTBackend.create_thing
_original_update_certificate = IoTBackend.update_certificate
_original_certificate_description = FakeCertificate.to_description_dict


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


def _certificate_description(self: FakeCertificate) -> dict[str, Any]:
    description = _original_certificate_description(self)
    if self.ca_certificate_id:
        description["caCertificateId"] = self.ca_certificate_id
    return description


def apply(stack: ExitStack) -> None:
    """Apply every fix until ``stack`` closes."""
    stack.enter_context(mock.patch.object(IoTBackend, "create_thing", _create_thing))
    stack.enter_context(mock.patch.object(IoTBackend, "update_certificate", _update_certificate))
    stack.enter_context(mock.patch.object(FakeCertificate, "to_description_dict", _certificate_description))
