"""Wildcard patterns and policy-variable templates, compiled to regular expressions once.

A policy string is parsed once into a :class:`Template` of text, ``${variable}`` and escape
parts. Substituting a connection's values yields :data:`Tokens`: literal chunks and ``*``/``?``
wildcards. Only the policy's own text carries wildcards; a substituted value is always
literal, so a value can never widen a pattern. Regular expressions are cached by tokens, so
thousands of connections sharing a policy share its compiled patterns.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Token = tuple[bool, str]
"""``(True, "*")`` or ``(True, "?")`` for a wildcard, ``(False, text)`` for literal text."""
Tokens = tuple[Token, ...]

EVERYTHING: Tokens = ((True, "*"),)
VARIABLE = re.compile(r"\$\{([^}]*)\}")
ESCAPES = {"*": "*", "?": "?", "$": "$"}
"""``${*}``, ``${?}`` and ``${$}`` stand for the literal character."""
_DISPLAY_ESCAPES = str.maketrans({"*": "${*}", "?": "${?}"})


@dataclass(frozen=True)
class Part:
    """A piece of a policy string: wildcard-bearing text, a variable reference, or an escaped character."""

    kind: Literal["text", "variable", "escape"]
    value: str


@dataclass(frozen=True)
class Template:
    """A policy string (resource ARN or condition value), parsed once."""

    text: str
    parts: tuple[Part, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(part.value for part in self.parts if part.kind == "variable")

    @property
    def has_variables(self) -> bool:
        return any(part.kind == "variable" for part in self.parts)

    def substitute(self, value_of: Callable[[str], str | None]) -> Tokens | None:
        """The tokens with every variable replaced by its literal value, or None when one is unresolved."""
        tokens: list[Token] = []
        for part in self.parts:
            if part.kind == "text":
                tokens.extend(text_tokens(part.value))
                continue
            value = part.value if part.kind == "escape" else value_of(part.value)
            if value is None:
                return None
            tokens.append((False, value))
        return merge(tokens)


def parse_template(text: str, *, variables: bool = True) -> Template:
    """Split ``text`` into parts; without ``variables`` (a 2008-10-17 policy) ``${...}`` is plain text."""
    if not variables or "${" not in text:
        return Template(text, (Part("text", text),) if text else ())
    parts: list[Part] = []
    position = 0
    for match in VARIABLE.finditer(text):
        if match.start() > position:
            parts.append(Part("text", text[position : match.start()]))
        name = match.group(1).strip()
        parts.append(Part("escape", ESCAPES[name]) if name in ESCAPES else Part("variable", name))
        position = match.end()
    if position < len(text):
        parts.append(Part("text", text[position:]))
    return Template(text, tuple(parts))


def text_tokens(text: str) -> Iterable[Token]:
    """Policy text: ``*`` and ``?`` are wildcards, every other character (``+`` and ``#`` too) is literal."""
    start = 0
    for index, char in enumerate(text):
        if char in "*?":
            if index > start:
                yield (False, text[start:index])
            yield (True, char)
            start = index + 1
    if start < len(text):
        yield (False, text[start:])


def merge(tokens: Iterable[Token]) -> Tokens:
    """Adjacent literal chunks joined, so equal patterns have equal tokens (and share a cache entry)."""
    merged: list[Token] = []
    for wild, text in tokens:
        if not wild and merged and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + text)
        elif wild or text:
            merged.append((wild, text))
    return tuple(merged)


def is_literal(tokens: Tokens) -> bool:
    return not any(wild for wild, _ in tokens)


def literal_text(tokens: Tokens) -> str:
    """The string the tokens spell, wildcards as their characters (for exact-match operators)."""
    return "".join(text for _, text in tokens)


def display_text(tokens: Tokens) -> str:
    """The tokens written back as policy text: a literal ``*`` or ``?`` shows as ``${*}`` or ``${?}``."""
    return "".join(text if wild else text.translate(_DISPLAY_ESCAPES) for wild, text in tokens)


def _glob_source(tokens: Tokens) -> str:
    return "".join((".*" if text == "*" else ".") if wild else re.escape(text) for wild, text in tokens)


def _arn_source(tokens: Tokens) -> str:
    """ARN matching: a wildcard stays within its colon-delimited component, except in the resource part."""
    pieces: list[str] = []
    colons = 0
    for wild, text in tokens:
        if wild:
            within = colons < 5
            pieces.append(("[^:]*" if within else ".*") if text == "*" else ("[^:]" if within else "."))
        else:
            pieces.append(re.escape(text))
            colons += text.count(":")
    return "".join(pieces)


@lru_cache(maxsize=16384)
def glob_regex(patterns: tuple[Tokens, ...], ignore_case: bool = False) -> re.Pattern[str]:
    """One regular expression matching a whole string against any of ``patterns`` (use ``fullmatch``)."""
    source = "|".join(_glob_source(tokens) for tokens in patterns)
    return re.compile(f"(?:{source})", re.DOTALL | (re.IGNORECASE if ignore_case else 0))


@lru_cache(maxsize=4096)
def labelled_regex(groups: tuple[tuple[Tokens, ...], ...]) -> re.Pattern[str]:
    """One regular expression over several pattern groups; ``match.lastgroup`` is ``g<n>`` of the first group matching.

    Alternatives are tried in order, so the group reported is the earliest one that matches.
    """
    source = "|".join(
        f"(?P<g{n}>" + "|".join(_glob_source(tokens) for tokens in patterns) + ")" for n, patterns in enumerate(groups)
    )
    return re.compile(source, re.DOTALL)


@lru_cache(maxsize=4096)
def arn_regex(patterns: tuple[Tokens, ...]) -> re.Pattern[str]:
    """Like :func:`glob_regex`, with ``ArnLike`` semantics (use ``fullmatch``)."""
    return re.compile("(?:" + "|".join(_arn_source(tokens) for tokens in patterns) + ")", re.DOTALL)
