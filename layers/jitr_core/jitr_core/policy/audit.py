"""Audit checks on device policies, in the spirit of AWS IoT Device Defender's "overly permissive" audit.

A device policy should let a device act only as itself and only on its own resources. Each
check reports a :class:`Finding` with a severity:

==========================  ========  ==========================================================
check                       severity  what it finds
==========================  ========  ==========================================================
wildcard-action             HIGH/LOW  ``*`` or ``iot:*`` allowed (HIGH); another wildcard action (LOW)
allow-not-action            HIGH      an Allow with NotAction: everything but a few actions
allow-not-resource          HIGH      an Allow with NotResource: everything but a few resources
connect-any-client          HIGH      iot:Connect for any client id (``client/*``, ``*``, or
                                      ``client/${iot:ClientId}`` without the IsAttached condition)
unscoped-topic              HIGH/MED  topics or filters with wildcards not scoped by a thing or client
                                      variable: one device reads or writes another's topics
                                      (MEDIUM for iot:Receive, which also needs a subscription)
variable-widened            HIGH/MED  a wildcard before or beside the scoping variable
                                      (``dt/${iot:ClientId}*`` also matches ``dt/<id>0/...``)
other-thing-shadow          HIGH/MED  shadow or job topics and APIs of any thing (HIGH) or of one
                                      fixed thing every device shares (MEDIUM)
retained-access             MEDIUM    iot:ListRetainedMessages: every retained topic of the account
shared-topic                LOW       a fixed topic every device holding the policy shares
resource-type-mismatch      MEDIUM    a resource of a type no allowed action is checked against
                                      (``topicfilter/`` for iot:Publish never matches)
variables-not-substituted   MEDIUM    ``${...}`` in a policy whose Version is not 2012-10-17
unknown-variable            MEDIUM    a variable AWS IoT does not define: it never resolves
deny-needs-variable         LOW       a Deny scoped by a variable does not apply when it is unresolved
allow-for-all-values        LOW       ForAllValues in an Allow also holds when the key is missing
==========================  ========  ==========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from jitr_core.policy.document import DocumentLike, PolicyDocument, Statement, parse_document
from jitr_core.policy.model import IOT_ACTIONS, RESOURCE_TYPES
from jitr_core.policy.patterns import Template
from jitr_core.policy.variables import SCOPING_VARIABLES, is_known_key


class Severity(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


SEVERITY_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}
TOPIC_ACTIONS = ("iot:publish", "iot:subscribe", "iot:receive", "iot:retainpublish", "iot:getretainedmessage")
THING_ACTIONS = tuple(action for action, kind in RESOURCE_TYPES.items() if kind == "thing")
CONNECT_SCOPING = SCOPING_VARIABLES - {"iot:clientid"}
_PLACEHOLDER = re.compile("\x00([0-9]+)\x00")


@dataclass(frozen=True)
class Finding:
    """One audit finding on one statement (and resource) of one policy."""

    severity: Severity
    check: str
    policy_name: str
    statement_index: int
    sid: str | None
    message: str
    resource: str | None = None

    @property
    def statement(self) -> str:
        sid = f" (Sid {self.sid})" if self.sid else ""
        return f"{self.policy_name} Statement[{self.statement_index}]{sid}"

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": str(self.severity),
            "check": self.check,
            "policy": self.policy_name,
            "statementIndex": self.statement_index,
            "sid": self.sid,
            "statement": self.statement,
            "resource": self.resource,
            "message": self.message,
        }


@dataclass(frozen=True)
class ResourceShape:
    """A resource pattern's type and its name split into levels, variables masked out."""

    kind: str | None
    levels: tuple[str, ...]
    variables: tuple[str, ...]

    def variables_in(self, level: str) -> list[str]:
        return [self.variables[int(n)].lower() for n in _PLACEHOLDER.findall(level)]

    def wild(self, level: str, characters: str) -> bool:
        return any(char in characters for char in _PLACEHOLDER.sub("", level))

    def scope(self, scoping: frozenset[str], characters: str) -> tuple[bool, bool, bool]:
        """(scoped, widened, wildcard): a scoping variable pins the name unless a wildcard precedes or adjoins it."""
        wildcard = any(self.wild(level, characters) for level in self.levels)
        first = next(
            (i for i, level in enumerate(self.levels) if scoping.intersection(self.variables_in(level))),
            None,
        )
        if first is None:
            return False, False, wildcard
        return True, any(self.wild(level, characters) for level in self.levels[: first + 1]), wildcard


def shape(template: Template) -> ResourceShape:
    variables: list[str] = []
    masked: list[str] = []
    for part in template.parts:
        if part.kind == "variable":
            masked.append(f"\x00{len(variables)}\x00")
            variables.append(part.value)
        else:
            # An escaped ${*} is a literal character, not a wildcard: mask it as a plain one.
            masked.append(part.value if part.kind == "text" else "\x01")
    text = "".join(masked)
    parts = text.split(":", 5)
    if len(parts) == 6 and "/" in parts[5]:
        kind, _, name = parts[5].partition("/")
        literal_kind = None if any(c in kind for c in "*?\x00") else kind
        return ResourceShape(literal_kind, tuple(name.split("/")), tuple(variables))
    return ResourceShape(None, tuple(text.split("/")), tuple(variables))


def _has_is_attached(statement: Statement) -> bool:
    return any(
        c.op.name == "Bool"
        and c.qualifier is None
        and c.key.lower() == "iot:connection.thing.isattached"
        and any(value.text.lower() == "true" for value in c.values)
        for c in statement.conditions
    )


class _Auditor:
    def __init__(self, document: PolicyDocument) -> None:
        self.document = document
        self.findings: list[Finding] = []

    def add(
        self, statement: Statement, severity: Severity, check: str, message: str, resource: str | None = None
    ) -> None:
        self.findings.append(
            Finding(severity, check, statement.policy_name, statement.index, statement.sid, message, resource)
        )

    def run(self) -> list[Finding]:
        self.check_versions()
        for statement in self.document.statements:
            self.check_variables(statement)
            if statement.effect == "Deny":
                if any(t.has_variables for t in statement.resources) and self.document.substitutes_variables:
                    self.add(
                        statement,
                        Severity.LOW,
                        "deny-needs-variable",
                        "this Deny is scoped by a policy variable; when the variable does not resolve "
                        "(a missing attribute, a value with wildcards) the Deny does not apply",
                    )
                continue
            self.check_allow(statement)
        return self.findings

    def check_versions(self) -> None:
        if self.document.substitutes_variables:
            return
        for statement in self.document.statements:
            texts = [t.text for t in statement.resources] + [v.text for c in statement.conditions for v in c.values]
            if any("${" in text for text in texts):
                self.add(
                    statement,
                    Severity.MEDIUM,
                    "variables-not-substituted",
                    f"Version is {self.document.version}, so ${{...}} is not substituted: "
                    "no device matches this statement (set Version 2012-10-17)",
                )
                return

    def check_variables(self, statement: Statement) -> None:
        if not self.document.substitutes_variables:
            return
        templates = [*statement.resources, *(v for c in statement.conditions for v in c.values)]
        unknown = sorted({name for t in templates for name in t.variables if not is_known_key(name)})
        for name in unknown:
            self.add(
                statement,
                Severity.MEDIUM,
                "unknown-variable",
                f"${{{name}}} is not an AWS IoT policy variable: it never resolves and its pattern matches nothing",
            )

    def check_allow(self, statement: Statement) -> None:
        granted = [action.lower() for action in IOT_ACTIONS if statement.applies_to(action)]
        self.check_actions(statement)
        if any(c.qualifier == "all" for c in statement.conditions):
            self.add(
                statement,
                Severity.LOW,
                "allow-for-all-values",
                "ForAllValues also holds when the key is missing from the request: add a Null check or use ForAnyValue",
            )
        if "iot:listretainedmessages" in granted:
            self.add(
                statement,
                Severity.MEDIUM,
                "retained-access",
                "iot:ListRetainedMessages lists the retained topics of every device in the account",
            )
        if statement.not_resource:
            self.add(
                statement,
                Severity.HIGH,
                "allow-not-resource",
                "an Allow with NotResource grants every resource but the few it names",
            )
            return
        for template in statement.resources:
            self.check_resource(statement, template, granted)

    def check_actions(self, statement: Statement) -> None:
        if statement.not_action:
            self.add(
                statement,
                Severity.HIGH,
                "allow-not-action",
                f"an Allow with NotAction grants every action but {', '.join(statement.actions)}",
            )
            return
        for action in statement.actions:
            if action.strip().lower() in ("*", "iot:*"):
                self.add(statement, Severity.HIGH, "wildcard-action", f"allows {action}: every AWS IoT action")
            elif any(char in action for char in "*?"):
                self.add(
                    statement,
                    Severity.LOW,
                    "wildcard-action",
                    f"{action} allows every action it matches, now and later",
                )

    def check_resource(self, statement: Statement, template: Template, granted: list[str]) -> None:
        resource_shape = shape(template)
        kind = resource_shape.kind
        fitting = [action for action in granted if kind is None or RESOURCE_TYPES.get(action) == kind]
        if kind is not None and granted and not fitting:
            self.add(
                statement,
                Severity.MEDIUM,
                "resource-type-mismatch",
                f"no allowed action is checked against {kind}/ resources, so this one never matches "
                f"({', '.join(_names(granted))})",
                template.text,
            )
            return
        if "iot:connect" in fitting:
            self.check_connect(statement, template, resource_shape)
        topic_actions = [action for action in fitting if action in TOPIC_ACTIONS]
        if topic_actions:
            self.check_topics(statement, template, resource_shape, topic_actions)
        thing_actions = [action for action in fitting if action in THING_ACTIONS]
        if thing_actions:
            self.check_things(statement, template, resource_shape, thing_actions)

    def check_connect(self, statement: Statement, template: Template, resource_shape: ResourceShape) -> None:
        scoped, widened, wildcard = resource_shape.scope(CONNECT_SCOPING, "*?")
        if scoped:
            if widened:
                self.add(
                    statement,
                    Severity.HIGH,
                    "variable-widened",
                    "iot:Connect: a wildcard beside the variable lets a device connect with other client ids",
                    template.text,
                )
            return
        uses_client_id = any(name.lower() == "iot:clientid" for name in template.variables)
        message = "iot:Connect is allowed for any client id: a device can take over another device's session"
        if wildcard:
            self.add(statement, Severity.HIGH, "connect-any-client", message, template.text)
        elif uses_client_id and not _has_is_attached(statement):
            self.add(
                statement,
                Severity.HIGH,
                "connect-any-client",
                f"{message} (${{iot:ClientId}} is whatever the device sends: use "
                "${iot:Connection.Thing.ThingName}, or require iot:Connection.Thing.IsAttached)",
                template.text,
            )

    def check_topics(
        self, statement: Statement, template: Template, resource_shape: ResourceShape, actions: list[str]
    ) -> None:
        kind = resource_shape.kind
        characters = "*?+#" if kind == "topicfilter" or (kind is None and "iot:subscribe" in actions) else "*?"
        scoped, widened, wildcard = resource_shape.scope(SCOPING_VARIABLES, characters)
        severity = Severity.MEDIUM if actions == ["iot:receive"] else Severity.HIGH
        levels = resource_shape.levels
        names = ", ".join(_names(actions))
        if scoped:
            if widened:
                self.add(
                    statement,
                    severity,
                    "variable-widened",
                    f"{names}: a wildcard before or beside the scoping variable reaches other devices' topics",
                    template.text,
                )
            return
        if len(levels) >= 2 and levels[0] == "$aws" and levels[1] == "things":
            any_thing = len(levels) < 3 or any(resource_shape.wild(level, characters) for level in levels[:3])
            self.add(
                statement,
                severity if any_thing else Severity.MEDIUM,
                "other-thing-shadow",
                f"{names} on the shadow or job topics of "
                + ("any thing" if any_thing else "one fixed thing that every device holding this policy shares"),
                template.text,
            )
            return
        if wildcard:
            self.add(
                statement,
                severity,
                "unscoped-topic",
                f"{names} on topics not scoped by a thing or client variable: "
                "one device can read or write another device's topics",
                template.text,
            )
        elif kind is not None:
            self.add(
                statement,
                Severity.LOW,
                "shared-topic",
                f"{names} on a fixed topic every device holding this policy shares",
                template.text,
            )

    def check_things(
        self, statement: Statement, template: Template, resource_shape: ResourceShape, actions: list[str]
    ) -> None:
        scoped, widened, wildcard = resource_shape.scope(SCOPING_VARIABLES, "*?")
        if scoped and not widened:
            return
        names = ", ".join(_names(actions))
        if scoped or wildcard:
            self.add(statement, Severity.HIGH, "other-thing-shadow", f"{names} on any thing", template.text)
        else:
            self.add(
                statement,
                Severity.MEDIUM,
                "other-thing-shadow",
                f"{names} on one fixed thing that every device holding this policy shares",
                template.text,
            )


def _names(actions: Iterable[str]) -> list[str]:
    canonical = {action.lower(): action for action in IOT_ACTIONS}
    return [canonical.get(action, action) for action in actions]


def audit_document(document: PolicyDocument) -> list[Finding]:
    """The findings of one parsed policy, most severe first."""
    findings = _Auditor(document).run()
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f.severity], f.statement_index))


def audit_policy(document: DocumentLike, name: str = "policy") -> list[Finding]:
    """Parse (raising on an invalid document) and audit one policy."""
    return audit_document(parse_document(document, name))


def audit_policies(documents: Sequence[PolicyDocument]) -> list[Finding]:
    findings = [finding for document in documents for finding in audit_document(document)]
    return sorted(findings, key=lambda f: SEVERITY_ORDER[f.severity])


def has_high(findings: Iterable[Finding]) -> bool:
    return any(finding.severity is Severity.HIGH for finding in findings)
