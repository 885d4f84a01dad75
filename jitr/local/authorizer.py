"""What AWS IoT decides for an MQTT client of the local endpoint, read from the local AWS IoT registry.

On CONNECT, AWS IoT looks the client certificate up:

* unknown, issued by a registered CA that is ``ACTIVE`` with auto-registration enabled:
  the certificate is registered as ``PENDING_ACTIVATION`` under that CA, the registration
  event is published on ``$aws/events/certificates/registered/<caId>`` (the template's rule
  starts the workflow), and the connection is refused;
* ``PENDING_ACTIVATION``: refused, and the event published again;
* any other status than ``ACTIVE``, or unknown under a CA that does not auto-register: refused;
* ``ACTIVE``: ``iot:Connect`` on ``client/<clientId>`` is evaluated with the policies attached
  to the certificate (:mod:`jitr_core.policy`), and the same policies then decide every
  ``iot:Publish``, ``iot:Subscribe`` and ``iot:Receive`` of the connection.

The registry is moto's AWS IoT backend of the local stack, read in process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from jitr_core.certificates import certificate_id
from jitr_core.policy import (
    BoundPolicySet,
    ConnectionContext,
    Request,
    client_arn,
    compile_policies,
    topic_arn,
    topic_filter_arn,
)
from jitr_core.policy.x509 import certificate_info
from moto.iot.models import FakeCaCertificate, FakeCertificate, IoTBackend, iot_backends

from jitr.local.registration import REGISTRATION_TOPIC_PREFIX, LocalIot

if TYPE_CHECKING:
    from jitr.local.stack import LocalStack

ACTIVE = "ACTIVE"
PENDING_ACTIVATION = "PENDING_ACTIVATION"
AUTO_REGISTRATION_ENABLED = "ENABLE"


@dataclass(frozen=True)
class ConnectDecision:
    """AWS IoT's answer to a CONNECT: accepted with the connection's policies, or refused and why."""

    accepted: bool
    reason: str
    certificate_id: str
    policies: BoundPolicySet | None = None


class Authorization:
    """The policies of one accepted connection, bound to its client id and thing."""

    def __init__(self, policies: BoundPolicySet, region: str, account: str) -> None:
        self.policies = policies
        self.region = region
        self.account = account

    def may_publish(self, topic: str) -> bool:
        return self.policies.evaluate(Request("iot:Publish", topic_arn(self.region, self.account, topic))).allowed

    def may_receive(self, topic: str) -> bool:
        return self.policies.evaluate(Request("iot:Receive", topic_arn(self.region, self.account, topic))).allowed

    def may_subscribe(self, topic_filter: str) -> bool:
        resource = topic_filter_arn(self.region, self.account, topic_filter)
        return self.policies.evaluate(Request("iot:Subscribe", resource)).allowed


class Authorizer:
    """AWS IoT's decisions for the MQTT clients of a local stack."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self._iot: LocalIot | None = None
        self._iot_lock = threading.Lock()

    @property
    def iot(self) -> LocalIot:
        """AWS IoT's side of a registration, with its clients made once (making one costs tens of ms)."""
        with self._iot_lock:
            if self._iot is None:
                self._iot = LocalIot(self.stack)
            return self._iot

    @property
    def backend(self) -> IoTBackend:
        return iot_backends[self.stack.account_id][self.stack.region]

    def registered_ca_pems(self) -> list[str]:
        """The PEMs of every CA certificate registered in the local AWS IoT (the TLS layer trusts these)."""
        return [ca.certificate_pem for ca in list(self.backend.ca_certificates.values())]

    def authorization(self, policies: BoundPolicySet) -> Authorization:
        return Authorization(policies, self.stack.region, self.stack.account_id)

    def certificate_status(self, cert_id: str) -> str | None:
        """The certificate's status in the registry now, None when it is no longer registered."""
        certificate = self.backend.certificates.get(cert_id)
        return certificate.status if certificate is not None else None

    def connect(self, leaf_der: bytes, client_id: str) -> ConnectDecision:
        """Decide a CONNECT from the client certificate ``leaf_der`` with ``client_id``."""
        leaf = x509.load_der_x509_certificate(leaf_der)
        cert_id = certificate_id(leaf)
        certificate = self.backend.certificates.get(cert_id)
        if certificate is None:
            return self._unknown(cert_id, leaf)
        if certificate.status == PENDING_ACTIVATION:
            self._publish_registration(cert_id, certificate.ca_certificate_id or "")
            return ConnectDecision(False, "the certificate is PENDING_ACTIVATION", cert_id)
        if certificate.status != ACTIVE:
            return ConnectDecision(False, f"the certificate is {certificate.status}", cert_id)
        return self._connect_active(certificate, x509.load_der_x509_certificate(leaf_der), client_id)

    def _unknown(self, cert_id: str, leaf: x509.Certificate) -> ConnectDecision:
        ca = self._issuer(leaf)
        if ca is None:
            return ConnectDecision(False, "no registered CA issued the certificate", cert_id)
        if ca.status != ACTIVE or getattr(ca, "auto_registration_status", None) != AUTO_REGISTRATION_ENABLED:
            return ConnectDecision(False, "the certificate's CA does not auto-register certificates", cert_id)
        self.iot.register_device_certificate(leaf.public_bytes(Encoding.PEM).decode(), ca.certificate_pem)
        self._publish_registration(cert_id, ca.certificate_id)
        return ConnectDecision(False, "the certificate was registered as PENDING_ACTIVATION", cert_id)

    def _issuer(self, leaf: x509.Certificate) -> FakeCaCertificate | None:
        for ca in list(self.backend.ca_certificates.values()):
            try:
                leaf.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.certificate_pem.encode()))
            except (ValueError, TypeError, InvalidSignature):
                continue
            return ca
        return None

    def _publish_registration(self, cert_id: str, ca_id: str) -> None:
        event = LocalIot.registration_event(cert_id, ca_id)
        self.stack.rules.publish(f"{REGISTRATION_TOPIC_PREFIX}{ca_id}", event)

    def _connect_active(self, certificate: FakeCertificate, leaf: x509.Certificate, client_id: str) -> ConnectDecision:
        backend = self.backend
        documents: dict[str, Any] = {
            policy.name: policy.document for policy in backend.list_principal_policies(certificate.arn)
        }
        attached = backend.list_principal_things(certificate.arn)
        thing_exists = any(thing.thing_name == client_id for thing in list(backend.things.values()))
        context = ConnectionContext(
            client_id=client_id,
            thing_name=client_id if thing_exists else None,
            thing_attached=client_id in attached,
            certificate=certificate_info(leaf),
            certificate_id=certificate.certificate_id,
            region=self.stack.region,
            account=self.stack.account_id,
        )
        policies = compile_policies(documents).bind(context)
        connect = policies.evaluate(
            Request("iot:Connect", client_arn(self.stack.region, self.stack.account_id, client_id))
        )
        if not connect.allowed:
            return ConnectDecision(False, f"iot:Connect denied: {connect.reason}", certificate.certificate_id)
        return ConnectDecision(True, "accepted", certificate.certificate_id, policies)
