"""Policy documents, as AWS IoT stores them, parsed and validated into statements."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from jitr_core.policy.conditions import Condition, parse_conditions
from jitr_core.policy.errors import InvalidPolicyDocument
from jitr_core.policy.model import VARIABLES_VERSION, Effect
from jitr_core.policy.patterns import Template, glob_regex, parse_template, text_tokens

DocumentLike: TypeAlias = str | bytes | Mapping[str, Any]
"""A policy as JSON text or as the parsed object."""

VERSIONS = (VARIABLES_VERSION, "2008-10-17")
DOCUMENT_KEYS = frozenset({"Version", "Statement", "Id"})
STATEMENT_KEYS = frozenset({"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"})


@dataclass(frozen=True)
class ActionMatcher:
    """Whether a statement's Action (or NotAction) list covers an action; case-insensitive, ``*``/``?`` wildcards."""

    exact: frozenset[str]
    pattern: re.Pattern[str] | None
    everything: bool

    @classmethod
    def compile(cls, actions: tuple[str, ...]) -> ActionMatcher:
        wild = tuple(tuple(text_tokens(action.lower())) for action in actions if any(c in action for c in "*?"))
        exact = frozenset(action.lower() for action in actions if not any(c in action for c in "*?"))
        everything = any(action.strip() == "*" for action in actions)
        return cls(exact, glob_regex(wild, True) if wild else None, everything)

    def covers(self, action: str) -> bool:
        lowered = action.lower()
        return (
            self.everything
            or lowered in self.exact
            or (self.pattern is not None and self.pattern.fullmatch(lowered) is not None)
        )


@dataclass(frozen=True)
class Statement:
    """One statement of one policy, parsed."""

    policy_name: str
    index: int
    sid: str | None
    effect: Effect
    actions: tuple[str, ...]
    not_action: bool
    resources: tuple[Template, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]
    matcher: ActionMatcher

    @property
    def label(self) -> str:
        """``<policy> Statement[i] (Sid X)``, counting from 0 as the document does."""
        sid = f" (Sid {self.sid})" if self.sid else ""
        return f"{self.policy_name} Statement[{self.index}]{sid}"

    def applies_to(self, action: str) -> bool:
        """True when the statement's Action/NotAction element covers ``action``."""
        return self.matcher.covers(action) != self.not_action


@dataclass(frozen=True)
class PolicyDocument:
    """A parsed policy: its name, language version and statements."""

    name: str
    version: str
    statements: tuple[Statement, ...]
    source: Mapping[str, Any]

    @property
    def substitutes_variables(self) -> bool:
        return self.version == VARIABLES_VERSION


def load_document(document: DocumentLike, name: str) -> Mapping[str, Any]:
    """The document as an object (JSON text is parsed)."""
    if isinstance(document, bytes | str):
        try:
            document = json.loads(document)
        except ValueError as exc:
            raise InvalidPolicyDocument(f"policy {name!r} is not valid JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise InvalidPolicyDocument(f"policy {name!r} must be a JSON object")
    return document


def _strings(value: Any, element: str, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(item, str) and item for item in items):
        raise InvalidPolicyDocument(f"{where}: {element} must be a non-empty string or list of strings")
    return tuple(items)


def _one_of(statement: Mapping[str, Any], positive: str, negative: str, where: str) -> tuple[tuple[str, ...], bool]:
    if (positive in statement) == (negative in statement):
        raise InvalidPolicyDocument(f"{where}: exactly one of {positive} and {negative} is required")
    element = positive if positive in statement else negative
    return _strings(statement[element], element, where), element == negative


def parse_statement(raw: Any, policy_name: str, index: int, *, variables: bool) -> Statement:
    where = f"policy {policy_name!r} Statement[{index}]"
    if not isinstance(raw, Mapping):
        raise InvalidPolicyDocument(f"{where}: a statement must be a JSON object")
    unknown = sorted(set(raw) - STATEMENT_KEYS)
    if unknown:
        raise InvalidPolicyDocument(
            f"{where}: unknown element(s) {', '.join(unknown)} (AWS IoT policies have no Principal)"
        )
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise InvalidPolicyDocument(f"{where}: Effect must be 'Allow' or 'Deny', not {effect!r}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise InvalidPolicyDocument(f"{where}: Sid must be a string")
    actions, not_action = _one_of(raw, "Action", "NotAction", where)
    resources, not_resource = _one_of(raw, "Resource", "NotResource", where)
    conditions = parse_conditions(raw["Condition"], variables=variables, where=where) if "Condition" in raw else ()
    return Statement(
        policy_name=policy_name,
        index=index,
        sid=sid,
        effect=effect,
        actions=actions,
        not_action=not_action,
        resources=tuple(parse_template(resource, variables=variables) for resource in resources),
        not_resource=not_resource,
        conditions=conditions,
        matcher=ActionMatcher.compile(actions),
    )


def parse_document(document: DocumentLike, name: str = "policy") -> PolicyDocument:
    """Validate and parse one policy; raises :class:`InvalidPolicyDocument` or ``UnsupportedConditionOperator``."""
    source = load_document(document, name)
    unknown = sorted(set(source) - DOCUMENT_KEYS)
    if unknown:
        raise InvalidPolicyDocument(f"policy {name!r}: unknown element(s) {', '.join(unknown)}")
    # Without a Version, IAM-style evaluation uses 2008-10-17, in which ${...} is plain text.
    version = source.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise InvalidPolicyDocument(f"policy {name!r}: Version must be one of {', '.join(VERSIONS)}, not {version!r}")
    raw_statements = source.get("Statement")
    if isinstance(raw_statements, Mapping):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise InvalidPolicyDocument(f"policy {name!r}: Statement must be a statement or a non-empty list of them")
    variables = version == VARIABLES_VERSION
    statements = tuple(
        parse_statement(raw, name, index, variables=variables) for index, raw in enumerate(raw_statements)
    )
    return PolicyDocument(name, version, statements, source)
