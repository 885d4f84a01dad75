"""Evaluation: compile policies once, bind them to a connection once, then decide each request cheaply.

AWS IoT Core's rules, as IAM evaluates identity policies:

* an explicit Deny in any statement of any policy wins;
* otherwise a matching Allow allows;
* otherwise the request is denied (implicit deny).

A statement matches when its Action/NotAction covers the action, its Resource/NotResource
covers the resource ARN (``*`` and ``?`` wildcards; ``+`` and ``#`` are plain characters), and
every condition holds. Variables are substituted per connection (see :mod:`.variables`); a
Resource entry whose variable does not resolve matches nothing. An Allow statement that needs
an unresolved variable in NotResource or a Condition grants nothing, so an unresolved variable
can never widen access.

Binding a policy set to a connection resolves every variable and every condition that depends
only on the connection. Per action, what remains of the Deny statements, and of the Allow ones,
is merged into a dictionary of literal ARNs and one precompiled regular expression (statements
with request-level conditions or NotResource are tested one by one). A request is then a
dictionary lookup and one or two regular-expression matches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from time import time

from jitr_core.policy.conditions import UNRESOLVED, BoundCondition, Values, bind_condition
from jitr_core.policy.document import DocumentLike, PolicyDocument, Statement, parse_document
from jitr_core.policy.errors import InvalidPolicyDocument
from jitr_core.policy.model import ConnectionContext, Decision, Request
from jitr_core.policy.patterns import EVERYTHING, Tokens, glob_regex, is_literal, labelled_regex, literal_text
from jitr_core.policy.variables import Resolver, is_connection_key

BIND_CACHE_SIZE = 4096
"""Connections whose bound policies a :class:`CompiledPolicySet` keeps (oldest dropped first)."""


class BoundStatement:
    """A statement with its variables and connection-level conditions resolved for one connection."""

    __slots__ = (
        "conditions",
        "decision",
        "everything",
        "exact",
        "not_resource",
        "position",
        "regex",
        "resolved",
        "statement",
        "wild",
    )

    def __init__(
        self,
        statement: Statement,
        resolved: tuple[Tokens | None, ...],
        conditions: tuple[BoundCondition, ...],
        position: int = 0,
    ) -> None:
        self.statement = statement
        self.position = position
        self.resolved = resolved
        self.conditions = conditions
        self.not_resource = statement.not_resource
        patterns = [tokens for tokens in resolved if tokens is not None]
        self.everything = EVERYTHING in patterns
        self.exact = frozenset(literal_text(tokens) for tokens in patterns if is_literal(tokens))
        wild = tuple(tokens for tokens in patterns if not is_literal(tokens) and tokens != EVERYTHING)
        self.wild = () if self.everything else wild
        self.regex = glob_regex(wild) if self.wild else None
        allowed = statement.effect == "Allow"
        self.decision = Decision(
            allowed=allowed,
            effect=statement.effect,
            policy_name=statement.policy_name,
            statement_index=statement.index,
            sid=statement.sid,
            reason=f"{'allowed' if allowed else 'explicitly denied'} by {statement.label}",
        )

    @property
    def conditional(self) -> bool:
        """True when some condition depends on the request rather than the connection."""
        return bool(self.conditions)

    def covers(self, resource: str) -> bool:
        """The Resource/NotResource test alone."""
        regex = self.regex
        hit = self.everything or resource in self.exact or (regex is not None and regex.fullmatch(resource) is not None)
        return hit != self.not_resource

    def matches(self, resource: str, request: Request | None) -> bool:
        # covers() inlined: this runs for every publish and every delivered message.
        regex = self.regex
        hit = self.everything or resource in self.exact or (regex is not None and regex.fullmatch(resource) is not None)
        if hit == self.not_resource:
            return False
        if not self.conditions:
            return True
        return all(condition.holds(request_values(request, condition.key)) for condition in self.conditions)


def request_values(request: Request | None, key: str) -> Values:
    """A request-level condition key's values: from the request, else the clock for ``aws:CurrentTime``/``aws:EpochTime``."""
    if request is not None and request.context_keys:
        lowered = key.lower()
        for name, value in request.context_keys.items():
            if name.lower() == lowered:
                return (value,) if isinstance(value, str) else tuple(value)
    lowered = key.lower()
    if lowered == "aws:currenttime":
        return (datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),)
    if lowered == "aws:epochtime":
        return (str(int(time())),)
    return None


class StatementGroup:
    """The Deny (or the Allow) statements of one action, searched for the first one matching a request.

    Statements with neither conditions left nor NotResource are merged: one dictionary of
    literal ARNs and one regular expression whose named groups tell which statement matched.
    The others are tested one by one, only while they come earlier than the match found.
    """

    __slots__ = ("complex", "everything", "exact", "regex", "statements", "wild")

    def __init__(self, statements: Sequence[BoundStatement]) -> None:
        self.statements = tuple(statements)
        simple = [b for b in self.statements if not b.conditions and not b.not_resource]
        self.complex = tuple(b for b in self.statements if b.conditions or b.not_resource)
        self.exact: dict[str, BoundStatement] = {}
        for bound in simple:
            for resource in bound.exact:
                self.exact.setdefault(resource, bound)
        self.everything = next((b for b in simple if b.everything), None)
        self.wild = tuple(b for b in simple if b.wild)
        self.regex = labelled_regex(tuple(b.wild for b in self.wild)) if self.wild else None

    def first(self, resource: str, request: Request | None) -> BoundStatement | None:
        """The earliest statement of the group that matches, or None."""
        best = self.exact.get(resource)
        everything = self.everything
        if everything is not None and (best is None or everything.position < best.position):
            best = everything
        regex = self.regex
        if regex is not None:
            found = regex.fullmatch(resource)
            if found is not None:
                bound = self.wild[int(found.lastgroup[1:])]  # type: ignore[index]
                if best is None or bound.position < best.position:
                    best = bound
        for bound in self.complex:
            if best is not None and bound.position > best.position:
                break
            if bound.matches(resource, request):
                return bound
        return best


def bind_statement(statement: Statement, resolver: Resolver, position: int = 0) -> BoundStatement | None:
    """The statement for one connection, or None when it can match no request of that connection."""
    dynamic: list[BoundCondition] = []
    for condition in statement.conditions:
        bound = bind_condition(condition, resolver.substitution, statement.effect)
        if bound is UNRESOLVED or not isinstance(bound, BoundCondition):
            return None
        if is_connection_key(condition.key):
            if not bound.holds(resolver.values(condition.key)):
                return None
        else:
            dynamic.append(bound)
    resolved = tuple(template.substitute(resolver.substitution) for template in statement.resources)
    if statement.not_resource:
        # An unresolved exclusion excludes nothing: an Allow could then grant more than intended.
        if statement.effect == "Allow" and None in resolved:
            return None
    elif all(tokens is None for tokens in resolved):
        return None
    return BoundStatement(statement, resolved, tuple(dynamic), position)


Plan = tuple[StatementGroup, StatementGroup, Decision]


class BoundPolicySet:
    """A compiled policy set bound to one connection: the object on an MQTT broker's hot path."""

    def __init__(self, policies: CompiledPolicySet, context: ConnectionContext) -> None:
        self.policies = policies
        self.context = context
        resolver = Resolver(context)
        self.statements: tuple[BoundStatement | None, ...] = tuple(
            bind_statement(statement, resolver, position) for position, statement in enumerate(policies.statements)
        )
        self._plans: dict[str, Plan] = {}

    def plan(self, action: str) -> Plan:
        """The Deny and Allow statements that can apply to ``action``, and its implicit-deny decision."""
        plan = self._plans.get(action)
        if plan is None:
            plan = self._plans.get(action.lower())
            if plan is None:
                denies, allows = self.policies.statement_indexes(action)
                plan = (
                    StatementGroup([bound for i in denies if (bound := self.statements[i]) is not None]),
                    StatementGroup([bound for i in allows if (bound := self.statements[i]) is not None]),
                    Decision(False, None, None, None, None, f"no statement allows {action} here (implicit deny)"),
                )
                self._plans[action.lower()] = plan
            self._plans[action] = plan
        return plan

    def evaluate(self, request: Request) -> Decision:
        """ALLOW or DENY for one request, with the statement that decided."""
        denies, allows, implicit = self.plan(request.action)
        resource = request.resource
        bound = denies.first(resource, request)
        if bound is None:
            bound = allows.first(resource, request)
        return implicit if bound is None else bound.decision

    def allows(self, action: str, resource: str, context_keys: Mapping[str, str | Sequence[str]] | None = None) -> bool:
        """``evaluate(...).allowed`` without building a :class:`Request` when no request keys are needed."""
        request = Request(action, resource, context_keys) if context_keys else None
        denies, allows, _ = self.plan(action)
        return denies.first(resource, request) is None and allows.first(resource, request) is not None


class CompiledPolicySet:
    """Policies parsed and indexed once; evaluate requests of any connection against all of them."""

    def __init__(self, documents: Sequence[PolicyDocument]) -> None:
        self.documents = tuple(documents)
        self.statements: tuple[Statement, ...] = tuple(s for document in self.documents for s in document.statements)
        self._indexes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._bound: dict[str, BoundPolicySet] = {}

    def statement_indexes(self, action: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Positions of the Deny and the Allow statements whose Action element covers ``action``."""
        lowered = action.lower()
        found = self._indexes.get(lowered)
        if found is None:
            applying = [(i, s.effect) for i, s in enumerate(self.statements) if s.applies_to(lowered)]
            found = (
                tuple(i for i, effect in applying if effect == "Deny"),
                tuple(i for i, effect in applying if effect == "Allow"),
            )
            self._indexes[lowered] = found
        return found

    def bind(self, context: ConnectionContext) -> BoundPolicySet:
        """The policies bound to a connection (cached: bind once per connection, or let this cache do it)."""
        key = context.cache_key
        bound = self._bound.get(key)
        if bound is None:
            bound = BoundPolicySet(self, context)
            if len(self._bound) >= BIND_CACHE_SIZE:
                self._bound.pop(next(iter(self._bound)))
            self._bound[key] = bound
        return bound

    def evaluate(self, request: Request, context: ConnectionContext) -> Decision:
        """ALLOW or DENY, and the statement that decided."""
        return self.bind(context).evaluate(request)

    def is_allowed(self, action: str, resource: str, context: ConnectionContext) -> bool:
        return self.bind(context).allows(action, resource)


def compile_policy(document: DocumentLike, name: str = "policy") -> CompiledPolicySet:
    """One policy document, compiled."""
    return CompiledPolicySet([parse_document(document, name)])


def compile_policies(documents: Mapping[str, DocumentLike] | Iterable[DocumentLike]) -> CompiledPolicySet:
    """The policies attached to a principal, compiled together.

    ``documents`` maps policy names to documents (JSON text or objects); a plain sequence is
    named ``policy-1``, ``policy-2``... For a single document, use :func:`compile_policy`.
    """
    if isinstance(documents, str | bytes):
        raise InvalidPolicyDocument("compile_policies takes several documents; use compile_policy for one")
    if isinstance(documents, Mapping):
        if "Statement" in documents or "Version" in documents:
            raise InvalidPolicyDocument("compile_policies takes {name: document}; use compile_policy for one document")
        named = list(documents.items())
    else:
        named = [(f"policy-{n}", document) for n, document in enumerate(documents, start=1)]
    if not named:
        raise InvalidPolicyDocument("no policy documents given")
    return CompiledPolicySet([parse_document(document, str(name)) for name, document in named])
