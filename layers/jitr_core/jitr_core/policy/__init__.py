"""An offline AWS IoT Core policy engine: evaluate, explain and audit device policies.

Evaluation follows AWS IoT: explicit Deny wins, no matching Allow means deny; Action and
Resource (or NotAction/NotResource) with ``*`` and ``?`` wildcards; policy variables
substituted per connection; IAM condition operators. Compile once, bind once per
connection, then each request costs microseconds::

    policies = compile_policies({"device": document})
    context = ConnectionContext(client_id="device-001", thing_name="device-001")
    decision = policies.evaluate(Request("iot:Publish", topic_arn(REGION, ACCOUNT, "dt/device-001/t")), context)

Standard library only (the certificate helpers in :mod:`jitr_core.policy.x509` use ``cryptography``).
The audit and explain halves load on first use, so a broker that only evaluates imports the engine alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jitr_core.policy.document import DocumentLike, PolicyDocument, Statement, parse_document
from jitr_core.policy.engine import BoundPolicySet, CompiledPolicySet, compile_policies, compile_policy
from jitr_core.policy.errors import InvalidPolicyDocument, PolicyError, UnsupportedConditionOperator
from jitr_core.policy.model import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    IOT_ACTIONS,
    MQTT_ACTIONS,
    CertificateInfo,
    ConnectionContext,
    Decision,
    Request,
    client_arn,
    iot_arn,
    resource_for,
    resource_type,
    thing_arn,
    topic_arn,
    topic_filter_arn,
)

if TYPE_CHECKING:
    from jitr_core.policy.audit import Finding, Severity, audit_document, audit_policies, audit_policy, has_high
    from jitr_core.policy.grants import Grant, explain, thing_context

_LAZY = {
    "Finding": "audit",
    "Severity": "audit",
    "audit_document": "audit",
    "audit_policies": "audit",
    "audit_policy": "audit",
    "has_high": "audit",
    "Grant": "grants",
    "explain": "grants",
    "thing_context": "grants",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "IOT_ACTIONS",
    "MQTT_ACTIONS",
    "BoundPolicySet",
    "CertificateInfo",
    "CompiledPolicySet",
    "ConnectionContext",
    "Decision",
    "DocumentLike",
    "Finding",
    "Grant",
    "InvalidPolicyDocument",
    "PolicyDocument",
    "PolicyError",
    "Request",
    "Severity",
    "Statement",
    "UnsupportedConditionOperator",
    "audit_document",
    "audit_policies",
    "audit_policy",
    "client_arn",
    "compile_policies",
    "compile_policy",
    "explain",
    "has_high",
    "iot_arn",
    "parse_document",
    "resource_for",
    "resource_type",
    "thing_arn",
    "thing_context",
    "topic_arn",
    "topic_filter_arn",
]
