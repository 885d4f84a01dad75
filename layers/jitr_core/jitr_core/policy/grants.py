"""What a device may do: the concrete topics, topic filters, client ids and things its policies grant it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from jitr_core.policy.engine import BoundStatement, CompiledPolicySet
from jitr_core.policy.model import IOT_ACTIONS, MQTT_ACTIONS, ConnectionContext, Effect, resource_type
from jitr_core.policy.patterns import display_text, glob_regex, text_tokens

_LITERAL_ESCAPES = re.compile(r"\$\{[*?$]\}")


@dataclass(frozen=True)
class Grant:
    """One resource pattern a statement applies to an action, with the connection's values substituted."""

    action: str
    effect: Effect
    resource: str
    resource_type: str | None
    name: str
    wildcard: bool
    excluded: tuple[str, ...]
    conditional: bool
    policy_name: str
    statement_index: int
    sid: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "effect": self.effect,
            "resource": self.resource,
            "resourceType": self.resource_type,
            "name": self.name,
            "wildcard": self.wildcard,
            "except": list(self.excluded),
            "conditional": self.conditional,
            "policy": self.policy_name,
            "statementIndex": self.statement_index,
            "sid": self.sid,
        }


def split_arn(pattern: str) -> tuple[str | None, str, str, str]:
    """(type, name, region, account) of an IoT ARN pattern; ``*`` alone is any type and any name."""
    parts = pattern.split(":", 5)
    if len(parts) < 6 or "/" not in parts[5]:
        return None, pattern, "*", "*"
    kind, _, name = parts[5].partition("/")
    return kind, name, parts[3], parts[4]


def has_wildcard(text: str) -> bool:
    """True when policy text holds a ``*`` or ``?`` wildcard (``${*}`` and ``${?}`` are literal)."""
    return any(char in "*?" for char in _LITERAL_ESCAPES.sub("", text))


def _fits(text: str, value: str) -> bool:
    return glob_regex((tuple(text_tokens(text)),)).fullmatch(value) is not None


def _grants(action: str, bound: BoundStatement, context: ConnectionContext) -> Iterable[Grant]:
    statement = bound.statement
    expected = resource_type(action)
    patterns = [display_text(tokens) for tokens in bound.resolved if tokens is not None]

    def grant(resource: str, kind: str | None, name: str, wildcard: bool, excluded: tuple[str, ...]) -> Grant:
        return Grant(
            action=action,
            effect=statement.effect,
            resource=resource,
            resource_type=kind,
            name=name,
            wildcard=wildcard,
            excluded=excluded,
            conditional=bound.conditional,
            policy_name=statement.policy_name,
            statement_index=statement.index,
            sid=statement.sid,
        )

    if statement.not_resource:
        yield grant("*", None, "*", True, tuple(patterns))
        return
    for pattern in patterns:
        kind, name, region, account = split_arn(pattern)
        if kind is not None and not has_wildcard(kind) and kind != expected:
            continue  # a topicfilter/ ARN never matches iot:Publish, and so on
        if not (_fits(region, context.region) and _fits(account, context.account)):
            continue
        yield grant(pattern, kind, name, has_wildcard(name), ())


def explain(
    policies: CompiledPolicySet, context: ConnectionContext, actions: Iterable[str] = IOT_ACTIONS
) -> dict[str, list[Grant]]:
    """For each action, the resources the connection's policies allow and deny (Deny first).

    The MQTT actions are always listed (an empty list means: nothing allowed); other actions
    only when some statement grants or denies them.
    """
    bound = policies.bind(context)
    explained: dict[str, list[Grant]] = {}
    for action in actions:
        denies, allows, _ = bound.plan(action)
        grants = [
            grant
            for statement in (*denies.statements, *allows.statements)
            for grant in _grants(action, statement, context)
        ]
        if grants or action in MQTT_ACTIONS:
            explained[action] = grants
    return explained


def thing_context(
    thing_name: str,
    *,
    client_id: str | None = None,
    region: str = "us-east-1",
    account: str = "123456789012",
    **fields: Any,
) -> ConnectionContext:
    """The context of a registered device connecting as its thing (client id = thing name, attached)."""
    return ConnectionContext(
        client_id=client_id or thing_name,
        thing_name=thing_name,
        thing_attached=fields.pop("thing_attached", True),
        region=region,
        account=account,
        **fields,
    )
