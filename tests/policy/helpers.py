"""Small builders for policy tests: documents, contexts and one-line decisions."""

from __future__ import annotations

from typing import Any

from jitr_core.policy import (
    CompiledPolicySet,
    ConnectionContext,
    Decision,
    Request,
    compile_policy,
    iot_arn,
)

REGION = "us-east-1"
ACCOUNT = "123456789012"
PREFIX = f"arn:aws:iot:{REGION}:{ACCOUNT}:"


def statement(effect: str, action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": effect, "Action": action, "Resource": resource, **extra}


def allow(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Allow", action, resource, **extra)


def deny(action: str | list[str], resource: str | list[str], **extra: Any) -> dict[str, Any]:
    return statement("Deny", action, resource, **extra)


def document(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def device(name: str = "device-001", **fields: Any) -> ConnectionContext:
    """A registered device connecting as its own thing (client id = thing name, attached)."""
    return ConnectionContext(client_id=name, thing_name=name, **fields)


def arn(kind: str, name: str) -> str:
    return iot_arn(kind, name, REGION, ACCOUNT)


def decide(
    policy: dict[str, Any] | CompiledPolicySet,
    action: str,
    kind: str,
    name: str,
    context: ConnectionContext | None = None,
    keys: dict[str, Any] | None = None,
) -> Decision:
    """The decision on ``action`` over the ``kind/name`` resource; ``keys`` are request-level condition keys."""
    policies = policy if isinstance(policy, CompiledPolicySet) else compile_policy(policy)
    return policies.evaluate(Request(action, arn(kind, name), keys), context or device())


def allowed(policy: dict[str, Any] | CompiledPolicySet, action: str, kind: str, name: str, **kwargs: Any) -> bool:
    return decide(policy, action, kind, name, **kwargs).allowed
