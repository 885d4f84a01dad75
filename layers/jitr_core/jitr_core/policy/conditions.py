"""Condition blocks: the IAM condition operators AWS IoT Core policies use, with IAM's semantics.

Operators: ``String(Not)Equals(IgnoreCase)``, ``String(Not)Like``, ``Numeric*``, ``Date*``,
``Bool``, ``(Not)IpAddress``, ``Arn(Not)Equals``/``Arn(Not)Like``, ``Null``; each but ``Null``
with an ``IfExists`` suffix and a ``ForAnyValue:``/``ForAllValues:`` qualifier. Anything else
(``BinaryEquals`` included) raises :class:`UnsupportedConditionOperator`.

A key missing from the request context makes a condition false, a negated one (``StringNotEquals``)
true, an ``...IfExists`` one true, a ``ForAllValues`` one true and a ``ForAnyValue`` one false.
Policy variables are substituted in the values of string, ``Bool`` and ARN operators only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from jitr_core.policy.errors import InvalidPolicyDocument, UnsupportedConditionOperator
from jitr_core.policy.model import Effect
from jitr_core.policy.patterns import Template, Tokens, arn_regex, glob_regex, literal_text, parse_template

Qualifier = Literal["any", "all"] | None
Kind = Literal["string", "string-ignore-case", "like", "numeric", "date", "bool", "ip", "arn", "null"]
Values = tuple[str, ...] | None
Lookup = Callable[[str], Values]

UNRESOLVED = object()
"""Returned by :func:`bind_condition` when an Allow statement's condition needs an unresolved variable."""


@dataclass(frozen=True)
class Operator:
    name: str
    kind: Kind
    negated: bool
    compare: str = "eq"

    @property
    def takes_variables(self) -> bool:
        return self.kind in ("string", "string-ignore-case", "like", "bool", "arn")


def _operators() -> dict[str, Operator]:
    table = [
        Operator("StringEquals", "string", False),
        Operator("StringNotEquals", "string", True),
        Operator("StringEqualsIgnoreCase", "string-ignore-case", False),
        Operator("StringNotEqualsIgnoreCase", "string-ignore-case", True),
        Operator("StringLike", "like", False),
        Operator("StringNotLike", "like", True),
        Operator("Bool", "bool", False),
        Operator("IpAddress", "ip", False),
        Operator("NotIpAddress", "ip", True),
        Operator("ArnEquals", "arn", False),
        Operator("ArnLike", "arn", False),
        Operator("ArnNotEquals", "arn", True),
        Operator("ArnNotLike", "arn", True),
        Operator("Null", "null", False),
    ]
    for kind in ("Numeric", "Date"):
        kind_name: Kind = "numeric" if kind == "Numeric" else "date"
        table += [
            Operator(f"{kind}Equals", kind_name, False, "eq"),
            Operator(f"{kind}NotEquals", kind_name, True, "eq"),
            Operator(f"{kind}LessThan", kind_name, False, "lt"),
            Operator(f"{kind}LessThanEquals", kind_name, False, "le"),
            Operator(f"{kind}GreaterThan", kind_name, False, "gt"),
            Operator(f"{kind}GreaterThanEquals", kind_name, False, "ge"),
        ]
    return {operator.name.lower(): operator for operator in table}


OPERATORS = _operators()
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: bool(a == b),
    "lt": lambda a, b: bool(a < b),
    "le": lambda a, b: bool(a <= b),
    "gt": lambda a, b: bool(a > b),
    "ge": lambda a, b: bool(a >= b),
}


@dataclass(frozen=True)
class Condition:
    """One key of one operator of a Condition block, parsed."""

    operator: str
    op: Operator
    qualifier: Qualifier
    if_exists: bool
    key: str
    values: tuple[Template, ...]


def parse_operator(name: str) -> tuple[Operator, Qualifier, bool]:
    """``ForAnyValue:StringLikeIfExists`` → (StringLike, "any", True)."""
    qualifier: Qualifier = None
    base = name
    prefix, sep, rest = name.partition(":")
    if sep:
        if prefix.lower() == "foranyvalue":
            qualifier = "any"
        elif prefix.lower() == "forallvalues":
            qualifier = "all"
        else:
            raise UnsupportedConditionOperator(f"unsupported condition operator {name!r}")
        base = rest
    if_exists = base.lower().endswith("ifexists")
    if if_exists:
        base = base[: -len("IfExists")]
    operator = OPERATORS.get(base.lower())
    if operator is None or (operator.kind == "null" and (if_exists or qualifier)):
        raise UnsupportedConditionOperator(f"unsupported condition operator {name!r}")
    return operator, qualifier, if_exists


def _value_strings(raw: Any, where: str) -> tuple[str, ...]:
    items = raw if isinstance(raw, list) else [raw]
    values: list[str] = []
    for item in items:
        if isinstance(item, bool):
            values.append("true" if item else "false")
        elif isinstance(item, str | int | float):
            values.append(str(item))
        else:
            raise InvalidPolicyDocument(f"{where}: condition values must be strings, numbers or booleans")
    return tuple(values)


def parse_conditions(block: Any, *, variables: bool, where: str) -> tuple[Condition, ...]:
    """A statement's ``Condition`` element, validated; values of typed operators are checked now."""
    if not isinstance(block, Mapping):
        raise InvalidPolicyDocument(f"{where}: Condition must be an object of operators")
    conditions: list[Condition] = []
    for operator_name, keys in block.items():
        operator, qualifier, if_exists = parse_operator(str(operator_name))
        if not isinstance(keys, Mapping) or not keys:
            raise InvalidPolicyDocument(f"{where}: condition operator {operator_name} needs an object of keys")
        for key, raw in keys.items():
            strings = _value_strings(raw, where)
            substitute = variables and operator.takes_variables
            templates = tuple(parse_template(value, variables=substitute) for value in strings)
            for value in strings:
                _parse_typed(operator, value, f"{where}: {operator_name} {key}")
            conditions.append(Condition(str(operator_name), operator, qualifier, if_exists, str(key), templates))
    return tuple(conditions)


def parse_date(value: str) -> datetime:
    """ISO 8601 (``2024-01-01T00:00:00Z``, a date alone) or epoch seconds, as IAM accepts."""
    text = value.strip()
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_typed(operator: Operator, value: str, where: str) -> Any:
    try:
        if operator.kind == "numeric":
            return float(value)
        if operator.kind == "date":
            return parse_date(value)
        if operator.kind == "ip":
            return ipaddress.ip_network(value, strict=False)
    except ValueError as exc:
        raise InvalidPolicyDocument(f"{where}: {value!r} is not a valid {operator.kind} value ({exc})") from None
    if operator.kind == "null" and value.lower() not in ("true", "false"):
        raise InvalidPolicyDocument(f"{where}: Null takes 'true' or 'false', not {value!r}")
    return value


def _exact(values: Sequence[Tokens], normalize: Callable[[str], str]) -> Callable[[str], bool]:
    accepted = frozenset(normalize(literal_text(tokens)) for tokens in values)
    return lambda value: normalize(value) in accepted


def _pattern(values: Sequence[Tokens], arn: bool) -> Callable[[str], bool]:
    if not values:
        return lambda value: False
    regex = arn_regex(tuple(values)) if arn else glob_regex(tuple(values))
    return lambda value: regex.fullmatch(value) is not None


def _matcher(operator: Operator, values: Sequence[Tokens]) -> Callable[[str], bool]:
    """Whether one request value matches any of the policy's values (the operator's positive sense)."""
    builders: dict[str, Callable[[], Callable[[str], bool]]] = {
        "string": lambda: _exact(values, str),
        "string-ignore-case": lambda: _exact(values, str.casefold),
        "bool": lambda: _exact(values, str.lower),
        "like": lambda: _pattern(values, arn=False),
        "arn": lambda: _pattern(values, arn=True),
    }
    build = builders.get(operator.kind)
    if build is not None:
        return build()
    return _typed_matcher(operator, [_parse_typed(operator, literal_text(tokens), "") for tokens in values])


def _typed_matcher(operator: Operator, parsed: list[Any]) -> Callable[[str], bool]:
    compare = _COMPARE[operator.compare]

    def convert(value: str) -> Any:
        if operator.kind == "numeric":
            return float(value)
        if operator.kind == "date":
            return parse_date(value)
        return ipaddress.ip_address(value.strip())

    def matches(value: str) -> bool:
        try:
            actual = convert(value)
        except ValueError:
            return False
        if operator.kind == "ip":
            return any(actual in network for network in parsed)
        return any(compare(actual, expected) for expected in parsed)

    return matches


@dataclass(frozen=True)
class BoundCondition:
    """A condition with its policy values resolved for one connection, ready to test request values."""

    condition: Condition
    match: Callable[[str], bool]
    null_expected: frozenset[bool] = frozenset()

    @property
    def key(self) -> str:
        return self.condition.key

    def holds(self, values: Values) -> bool:
        condition = self.condition
        operator = condition.op
        if operator.kind == "null":
            return (not values) in self.null_expected
        if not values:
            if condition.if_exists or condition.qualifier == "all":
                return True
            return False if condition.qualifier == "any" else operator.negated
        match = self.match
        if condition.qualifier == "all":
            return all(match(value) != operator.negated for value in values)
        if condition.qualifier == "any":
            return any(match(value) != operator.negated for value in values)
        return any(match(value) for value in values) != operator.negated


def bind_condition(
    condition: Condition, value_of: Callable[[str], str | None], effect: Effect
) -> BoundCondition | object:
    """Resolve the condition's policy values for a connection.

    Returns :data:`UNRESOLVED` when an Allow statement's value needs a variable that does not
    resolve (the statement cannot grant anything); a Deny statement drops such a value instead,
    as AWS IoT compares it as text no request value equals.
    """
    tokens: list[Tokens] = []
    for template in condition.values:
        substituted = template.substitute(value_of)
        if substituted is None:
            if effect == "Allow":
                return UNRESOLVED
            continue
        tokens.append(substituted)
    if condition.op.kind == "null":
        expected = frozenset(literal_text(t).lower() == "true" for t in tokens)
        return BoundCondition(condition, lambda value: False, expected)
    return BoundCondition(condition, _matcher(condition.op, tokens))
