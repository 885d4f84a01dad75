"""The subset of AWS IoT SQL (version 2016-03-23) the local rules engine runs.

A rule's SQL is parsed once, when the stack starts, into a ``RuleQuery``:

    SELECT <item>[, <item>...] FROM '<topic filter>' [WHERE <condition>]

* an item is ``*`` (the payload's keys), a payload field path (``a``, ``a.b``), ``topic()``,
  ``topic(n)`` (the n-th topic level, counting from 1) or ``timestamp()`` (milliseconds since
  the epoch), each optionally followed by ``AS <name>``. An unaliased field path is keyed by
  its last segment, an unaliased function by its name (``topic``, ``timestamp``);
* ``SELECT *`` alone passes the payload as it is, an object or not; a field the payload does
  not have is left out of the result, as AWS IoT leaves out undefined values;
* a condition compares field paths, those functions and literals (single-quoted strings,
  numbers, ``true``/``false``) with ``=``, ``<>``, ``<``, ``<=``, ``>``, ``>=``, combined with
  ``AND``, ``OR``, ``NOT`` and parentheses. A comparison involving a missing field, or values
  of different types, is undefined; a message whose condition is not true runs no action.

Anything else (other functions, nested SELECT, arithmetic, CASE, LIKE, ...) raises
``RuleSqlError`` naming the unsupported part.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FUNCTIONS = ("topic", "timestamp")
KEYWORDS = ("SELECT", "FROM", "WHERE", "AS", "AND", "OR", "NOT", "TRUE", "FALSE")

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'[^']*')|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><>|<=|>=|!=|[=<>*,().])|(?P<other>\S))"
)
_UNDEFINED = object()
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": operator.eq,
    "<>": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class RuleSqlError(ValueError):
    """Rule SQL outside the subset the local rules engine runs."""


@dataclass(frozen=True)
class Token:
    """One lexical token of a rule's SQL: its kind and its text."""

    kind: str
    text: str


@dataclass(frozen=True)
class Field:
    """A payload field path, ``a.b`` as ``("a", "b")``."""

    path: tuple[str, ...]


@dataclass(frozen=True)
class Function:
    """``topic()``, ``topic(n)`` or ``timestamp()``."""

    name: str
    argument: int | None = None


@dataclass(frozen=True)
class Literal:
    """A string, number or boolean literal."""

    value: str | int | float | bool


Operand = Field | Function | Literal


@dataclass(frozen=True)
class Comparison:
    """``left <op> right``."""

    op: str
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Not:
    """``NOT operand``."""

    operand: Condition


@dataclass(frozen=True)
class Logical:
    """``left AND right`` or ``left OR right``."""

    op: str
    left: Condition
    right: Condition


Condition = Comparison | Not | Logical


@dataclass(frozen=True)
class SelectItem:
    """One item of the select list: ``*`` (``expression`` None) or an expression and its key."""

    expression: Field | Function | None
    key: str


@dataclass(frozen=True)
class Message:
    """What a rule is evaluated against: the payload, its topic and the time it arrived (ms)."""

    payload: Any
    topic: str
    timestamp: int


@dataclass(frozen=True)
class RuleQuery:
    """A parsed rule: its select list, topic filter and optional condition."""

    items: tuple[SelectItem, ...]
    topic_filter: str
    where: Condition | None

    def accepts(self, message: Message) -> bool:
        """Whether the rule's condition is true for ``message`` (no condition: always)."""
        return self.where is None or _truth(self.where, message) is True

    def select(self, message: Message) -> Any:
        """The rule's output for ``message``, built as AWS IoT builds it."""
        if all(item.expression is None for item in self.items):
            return message.payload
        result: dict[str, Any] = {}
        for item in self.items:
            if item.expression is None:
                if isinstance(message.payload, dict):
                    result.update(message.payload)
                continue
            value = _value(item.expression, message)
            if value is not _UNDEFINED:
                result[item.key] = value
        return result


def tokenize(sql: str) -> list[Token]:
    """The tokens of ``sql``; a character the subset has no use for is an error."""
    tokens: list[Token] = []
    position = 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        if match is None:
            break
        position = match.end()
        kind = match.lastgroup
        if kind is None:
            continue
        text = match.group(kind)
        if kind == "other" or text == "!=":
            raise RuleSqlError(f"unsupported {text!r} (the local rules engine has no operators beyond comparisons)")
        tokens.append(Token(kind, text))
    return tokens


def parse(sql: str) -> RuleQuery:
    """``sql`` as a ``RuleQuery``; anything outside the supported subset raises ``RuleSqlError``."""
    return _Parser(tokenize(sql)).query()


class _Parser:
    """A recursive-descent parser over a rule's tokens."""

    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def at_keyword(self, word: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "name" and token.text.upper() == word

    def at_op(self, text: str) -> bool:
        token = self.peek()
        return token is not None and token.kind == "op" and token.text == text

    def next(self) -> Token:
        token = self.peek()
        if token is None:
            raise RuleSqlError("unexpected end of the SQL")
        self.position += 1
        return token

    def expect_keyword(self, word: str) -> None:
        if not self.at_keyword(word):
            raise RuleSqlError(f"expected {word}, found {self._describe()}")
        self.position += 1

    def expect_op(self, text: str) -> None:
        if not self.at_op(text):
            raise RuleSqlError(f"expected {text!r}, found {self._describe()}")
        self.position += 1

    def _describe(self) -> str:
        token = self.peek()
        return "the end of the SQL" if token is None else f"unsupported {token.text!r}"

    def query(self) -> RuleQuery:
        self.expect_keyword("SELECT")
        items = [self.select_item()]
        while self.at_op(","):
            self.position += 1
            items.append(self.select_item())
        self.expect_keyword("FROM")
        source = self.next()
        if source.kind != "string":
            raise RuleSqlError(f"FROM takes a quoted topic filter, not {source.text!r}")
        where = None
        if self.at_keyword("WHERE"):
            self.position += 1
            where = self.disjunction()
        if self.peek() is not None:
            raise RuleSqlError(f"{self._describe()} after the query")
        return RuleQuery(tuple(items), source.text[1:-1], where)

    def select_item(self) -> SelectItem:
        if self.at_op("*"):
            self.position += 1
            return SelectItem(None, "*")
        expression = self.operand()
        if isinstance(expression, Literal):
            raise RuleSqlError(f"unsupported literal {expression.value!r} in the select list")
        key = expression.path[-1] if isinstance(expression, Field) else expression.name
        if self.at_keyword("AS"):
            self.position += 1
            alias = self.next()
            if alias.kind != "name":
                raise RuleSqlError(f"AS takes a name, not {alias.text!r}")
            key = alias.text
        return SelectItem(expression, key)

    def disjunction(self) -> Condition:
        condition = self.conjunction()
        while self.at_keyword("OR"):
            self.position += 1
            condition = Logical("OR", condition, self.conjunction())
        return condition

    def conjunction(self) -> Condition:
        condition = self.negation()
        while self.at_keyword("AND"):
            self.position += 1
            condition = Logical("AND", condition, self.negation())
        return condition

    def negation(self) -> Condition:
        if self.at_keyword("NOT"):
            self.position += 1
            return Not(self.negation())
        if self.at_op("("):
            self.position += 1
            if self.at_keyword("SELECT"):
                raise RuleSqlError("unsupported nested SELECT")
            condition = self.disjunction()
            self.expect_op(")")
            return condition
        return self.comparison()

    def comparison(self) -> Comparison:
        left = self.operand()
        token = self.peek()
        if token is None or token.kind != "op" or token.text not in _OPERATORS:
            raise RuleSqlError(f"expected a comparison ({' '.join(_OPERATORS)}), found {self._describe()}")
        self.position += 1
        return Comparison(token.text, left, self.operand())

    def operand(self) -> Operand:
        token = self.next()
        if token.kind == "string":
            return Literal(token.text[1:-1])
        if token.kind == "number":
            return Literal(float(token.text) if "." in token.text else int(token.text))
        if token.kind != "name":
            raise RuleSqlError(f"unsupported {token.text!r}")
        word = token.text.upper()
        if word in ("TRUE", "FALSE"):
            return Literal(word == "TRUE")
        if self.at_op("("):
            return self.function(token.text)
        if word in KEYWORDS or word == "CASE":
            raise RuleSqlError(f"unsupported {token.text!r} here")
        path = [token.text]
        while self.at_op("."):
            self.position += 1
            segment = self.next()
            if segment.kind != "name":
                raise RuleSqlError(f"unsupported {segment.text!r} in a field path")
            path.append(segment.text)
        following = self.peek()
        if following is not None and following.kind == "name" and following.text.upper() not in KEYWORDS:
            raise RuleSqlError(f"unsupported {following.text!r}")
        return Field(tuple(path))

    def function(self, name: str) -> Function:
        if name.lower() not in FUNCTIONS:
            raise RuleSqlError(f"unsupported function {name}() (the local rules engine runs topic() and timestamp())")
        self.expect_op("(")
        argument = None
        level = self.peek()
        if name.lower() == "topic" and level is not None and level.kind == "number":
            text = self.next().text
            if not text.isdigit() or int(text) < 1:
                raise RuleSqlError(f"topic() takes a topic level from 1, not {text}")
            argument = int(text)
        self.expect_op(")")
        return Function(name.lower(), argument)


def _value(operand: Operand, message: Message) -> Any:
    """An operand's value for ``message``; ``_UNDEFINED`` for a missing field or topic level."""
    if isinstance(operand, Literal):
        return operand.value
    if isinstance(operand, Function):
        if operand.name == "timestamp":
            return message.timestamp
        if operand.argument is None:
            return message.topic
        levels = message.topic.split("/")
        return levels[operand.argument - 1] if operand.argument <= len(levels) else _UNDEFINED
    value = message.payload
    for segment in operand.path:
        if not isinstance(value, dict) or segment not in value:
            return _UNDEFINED
        value = value[segment]
    return value


def _kind(value: Any) -> str:
    """The comparison type of a value: numbers compare with numbers, strings with strings."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__


def _compare(op: str, left: Any, right: Any) -> bool | None:
    """``left <op> right``; None (undefined) for missing values or values of different types."""
    if left is _UNDEFINED or right is _UNDEFINED or _kind(left) != _kind(right):
        return None
    if op not in ("=", "<>") and _kind(left) not in ("number", "str"):
        return None
    return bool(_OPERATORS[op](left, right))


def _truth(condition: Condition, message: Message) -> bool | None:
    """A condition's three-valued truth for ``message``: True, False or None (undefined)."""
    if isinstance(condition, Comparison):
        return _compare(condition.op, _value(condition.left, message), _value(condition.right, message))
    if isinstance(condition, Not):
        inner = _truth(condition.operand, message)
        return None if inner is None else not inner
    left, right = _truth(condition.left, message), _truth(condition.right, message)
    if condition.op == "AND":
        if left is False or right is False:
            return False
        return None if left is None or right is None else True
    if left is True or right is True:
        return True
    return None if left is None or right is None else False
