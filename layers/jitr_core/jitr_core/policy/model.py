"""What the policy engine reasons about: a connection, a request, and the decision on it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT = "123456789012"
VARIABLES_VERSION = "2012-10-17"
"""The only policy language version in which ``${...}`` policy variables are substituted."""

Effect = Literal["Allow", "Deny"]

MQTT_ACTIONS = ("iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive")
IOT_ACTIONS = (
    *MQTT_ACTIONS,
    "iot:RetainPublish",
    "iot:GetRetainedMessage",
    "iot:ListRetainedMessages",
    "iot:GetThingShadow",
    "iot:UpdateThingShadow",
    "iot:DeleteThingShadow",
    "iot:ListNamedShadowsForThing",
    "iot:DescribeJobExecution",
    "iot:GetPendingJobExecutions",
    "iot:StartNextPendingJobExecution",
    "iot:UpdateJobExecution",
    "iot:AssumeRoleWithCertificate",
)
"""The data-plane actions an AWS IoT Core policy grants to a device."""

RESOURCE_TYPES: Mapping[str, str] = {
    "iot:connect": "client",
    "iot:publish": "topic",
    "iot:receive": "topic",
    "iot:retainpublish": "topic",
    "iot:getretainedmessage": "topic",
    "iot:subscribe": "topicfilter",
    "iot:getthingshadow": "thing",
    "iot:updatethingshadow": "thing",
    "iot:deletethingshadow": "thing",
    "iot:listnamedshadowsforthing": "thing",
    "iot:describejobexecution": "thing",
    "iot:getpendingjobexecutions": "thing",
    "iot:startnextpendingjobexecution": "thing",
    "iot:updatejobexecution": "thing",
    "iot:assumerolewithcertificate": "rolealias",
}
"""The resource type each action is checked against (``iot:ListRetainedMessages`` takes ``*``)."""


def iot_arn(resource_type: str, name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    """``arn:aws:iot:<region>:<account>:<type>/<name>``."""
    return f"arn:aws:iot:{region}:{account}:{resource_type}/{name}"


def topic_arn(region: str, account: str, topic: str) -> str:
    """The resource of ``iot:Publish`` and ``iot:Receive`` on an MQTT topic."""
    return iot_arn("topic", topic, region, account)


def topic_filter_arn(region: str, account: str, topic_filter: str) -> str:
    """The resource of ``iot:Subscribe``; ``+`` and ``#`` in the filter are plain characters of the ARN."""
    return iot_arn("topicfilter", topic_filter, region, account)


def client_arn(region: str, account: str, client_id: str) -> str:
    """The resource of ``iot:Connect``."""
    return iot_arn("client", client_id, region, account)


def thing_arn(region: str, account: str, thing_name: str) -> str:
    """The resource of the shadow and job-execution actions."""
    return iot_arn("thing", thing_name, region, account)


def resource_type(action: str) -> str | None:
    """The resource type ``action`` is checked against, or None for an action the engine has no table for."""
    return RESOURCE_TYPES.get(action.lower())


def resource_for(action: str, name: str, region: str = DEFAULT_REGION, account: str = DEFAULT_ACCOUNT) -> str:
    """The ARN AWS IoT checks ``action`` against, for a topic, topic filter, client id or thing name."""
    if action.lower() == "iot:listretainedmessages":
        return "*"
    kind = resource_type(action)
    if kind is None:
        raise ValueError(f"no resource type is known for {action}; give the resource ARN")
    return iot_arn(kind, name, region, account)


@dataclass(frozen=True)
class CertificateInfo:
    """The X.509 fields AWS IoT exposes as ``iot:Certificate.*`` policy variables.

    Name fields are keyed by the names AWS IoT uses (``CommonName``, ``Organization``,
    ``OrganizationalUnit``, ``Country``...), alternative names by ``DNSName``,
    ``RFC822Name``, ``UniformResourceIdentifier``, ``IPAddress``, ``DirectoryName``.
    Each holds the values in certificate order. ``serial_number`` is decimal, as AWS IoT writes it.
    """

    subject: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    issuer: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    subject_alternative_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    issuer_alternative_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    serial_number: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": {k: list(v) for k, v in self.subject.items()},
            "issuer": {k: list(v) for k, v in self.issuer.items()},
            "subjectAlternativeNames": {k: list(v) for k, v in self.subject_alternative_names.items()},
            "issuerAlternativeNames": {k: list(v) for k, v in self.issuer_alternative_names.items()},
            "serialNumber": self.serial_number,
        }


@dataclass(frozen=True)
class ConnectionContext:
    """Who is connected: what AWS IoT knows about an MQTT connection when it evaluates a policy.

    ``thing_name`` is the registry thing the client id names; ``thing_attached`` says whether it
    is attached to the connection's certificate. Thing variables resolve only when both hold and
    the client id equals the thing name.
    """

    client_id: str | None = None
    thing_name: str | None = None
    thing_attached: bool = True
    thing_type_name: str | None = None
    thing_attributes: Mapping[str, str] = field(default_factory=dict)
    certificate: CertificateInfo | None = None
    certificate_id: str | None = None
    source_ip: str | None = None
    region: str = DEFAULT_REGION
    account: str = DEFAULT_ACCOUNT

    @property
    def connection_thing(self) -> str | None:
        """The thing policy variables refer to, or None when AWS IoT would leave them unresolved."""
        if self.thing_name and self.thing_attached and self.client_id == self.thing_name:
            return self.thing_name
        return None

    @cached_property
    def cache_key(self) -> str:
        """A string naming this context exactly (its hash is computed once, which keeps lookups cheap)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    def to_json(self) -> dict[str, Any]:
        return {
            "clientId": self.client_id,
            "thingName": self.thing_name,
            "thingAttached": self.thing_attached,
            "thingTypeName": self.thing_type_name,
            "thingAttributes": dict(self.thing_attributes),
            "certificate": self.certificate.to_json() if self.certificate else None,
            "certificateId": self.certificate_id,
            "sourceIp": self.source_ip,
            "region": self.region,
            "account": self.account,
        }


@dataclass(frozen=True, slots=True)
class Request:
    """One authorization question: may the connection perform ``action`` on ``resource`` (an ARN)?

    ``context_keys`` carries condition keys that belong to the request rather than the
    connection, such as ``iot:ConnectAttributes`` or ``iot:LastWillTopic`` on a CONNECT.
    """

    action: str
    resource: str
    context_keys: Mapping[str, str | Sequence[str]] | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """ALLOW or DENY, and the statement that decided (none for an implicit deny)."""

    allowed: bool
    effect: Effect | None
    policy_name: str | None
    statement_index: int | None
    sid: str | None
    reason: str

    @property
    def label(self) -> str:
        return "ALLOW" if self.allowed else "DENY"

    @property
    def statement(self) -> str | None:
        """``<policy> Statement[i] (Sid X)`` (``i`` counts from 0, as in the document), or None for an implicit deny."""
        if self.statement_index is None:
            return None
        sid = f" (Sid {self.sid})" if self.sid else ""
        return f"{self.policy_name} Statement[{self.statement_index}]{sid}"

    def to_json(self) -> dict[str, Any]:
        return {
            "decision": self.label,
            "allowed": self.allowed,
            "effect": self.effect,
            "policy": self.policy_name,
            "statementIndex": self.statement_index,
            "sid": self.sid,
            "reason": self.reason,
        }
