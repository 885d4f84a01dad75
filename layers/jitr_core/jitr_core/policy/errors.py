"""Errors of the policy engine: a document it cannot evaluate faithfully is refused, never guessed at."""

from __future__ import annotations

from jitr_core.errors import JitrError


class PolicyError(JitrError):
    """Base of every error the policy engine raises."""


class InvalidPolicyDocument(PolicyError):
    """The document is not a well-formed AWS IoT Core policy (bad JSON, missing or unknown elements)."""


class UnsupportedConditionOperator(PolicyError):
    """A Condition block names an operator the engine does not evaluate.

    Refusing the whole document is deliberate: skipping the condition could turn a
    conditional Allow into an unconditional one.
    """
