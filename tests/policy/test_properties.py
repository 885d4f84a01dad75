"""Properties that must hold for every policy and request, not only the examples: checked with hypothesis."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from jitr_core.policy import ConnectionContext, Request, compile_policy, iot_arn

from .helpers import ACCOUNT, REGION

SETTINGS = settings(max_examples=200, deadline=None)
ACTIONS = ("iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive", "iot:RetainPublish", "iot:GetThingShadow")
KINDS = ("topic", "topicfilter", "client", "thing")
VARIABLES = (
    "${iot:ClientId}",
    "${iot:Connection.Thing.ThingName}",
    "${iot:Connection.Thing.Attributes[zone]}",
    "${iot:Certificate.Subject.CommonName}",
)
# Characters that matter: policy wildcards, MQTT wildcards, separators, regex metacharacters.
ALPHABET = "ab1-/*?+#$.:[]{}\\"

names = st.text(alphabet=ALPHABET, min_size=0, max_size=8)
plain_names = st.text(alphabet=ALPHABET.replace("$", "").replace("{", "").replace("}", ""), max_size=8)
identifiers = st.text(alphabet=ALPHABET, min_size=1, max_size=6)


@st.composite
def resource_patterns(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return "*"
    return iot_arn(draw(KIND), "".join(draw(PIECES)), draw(REGION_PATTERN), "*")


KIND = st.sampled_from(KINDS)
PIECES = st.lists(st.one_of(names, st.sampled_from(VARIABLES)), min_size=1, max_size=3)
REGION_PATTERN = st.sampled_from([REGION, "*"])
ACTION_LISTS = st.lists(st.sampled_from([*ACTIONS, "iot:*", "*", "iot:Pub*"]), min_size=1, max_size=3)
RESOURCE_LISTS = st.lists(resource_patterns(), min_size=1, max_size=3)
CONDITIONS = st.one_of(
    st.none(),
    st.tuples(
        st.sampled_from(["StringEquals", "StringNotEquals", "StringLike", "ForAllValues:StringEquals"]),
        st.sampled_from(["iot:ClientId", "iot:Connection.Thing.Attributes[zone]", "iot:ConnectAttributes"]),
        st.lists(st.one_of(names, st.sampled_from(VARIABLES)), max_size=3),
    ),
)
EFFECTS = st.sampled_from(["Allow", "Deny"])
ACTION_KEYS = st.sampled_from(["Action", "Action", "NotAction"])
RESOURCE_KEYS = st.sampled_from(["Resource", "Resource", "NotResource"])


@st.composite
def statements(draw: st.DrawFn, effect: str | None = None) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": effect or draw(EFFECTS),
        draw(ACTION_KEYS): draw(ACTION_LISTS),
        draw(RESOURCE_KEYS): draw(RESOURCE_LISTS),
    }
    condition = draw(CONDITIONS)
    if condition is not None:
        operator, key, values = condition
        statement["Condition"] = {operator: {key: values}}
    return statement


ATTACHED = st.booleans()
THING_CHOICE = st.integers(0, 2)
ZONES = st.dictionaries(st.just("zone"), identifiers, max_size=1)
REQUEST_ACTIONS = st.sampled_from(ACTIONS)
ATTRIBUTE_LISTS = st.lists(names, max_size=2)


@st.composite
def contexts(draw: st.DrawFn) -> ConnectionContext:
    client_id = draw(identifiers)
    thing = (client_id, None, draw(identifiers))[draw(THING_CHOICE)]
    return ConnectionContext(
        client_id=client_id,
        thing_name=thing,
        thing_attached=draw(ATTACHED),
        thing_attributes=draw(ZONES),
    )


@st.composite
def requests(draw: st.DrawFn) -> Request:
    return Request(
        draw(REQUEST_ACTIONS),
        iot_arn(draw(KIND), draw(names), REGION, ACCOUNT),
        {"iot:ConnectAttributes": draw(ATTRIBUTE_LISTS)},
    )


def compiled(*statement_list: dict[str, Any]) -> Any:
    return _compile(json.dumps({"Version": "2012-10-17", "Statement": list(statement_list)}))


@cache
def _compile(text: str) -> Any:
    return compile_policy(text)


@SETTINGS
@given(st.lists(statements("Deny"), min_size=1, max_size=4), contexts(), st.lists(requests(), min_size=1, max_size=5))
def test_a_policy_of_deny_statements_never_allows(
    denies: list[dict[str, Any]], context: ConnectionContext, request_list: list[Request]
) -> None:
    policies = compiled(*denies)

    for request in request_list:
        assert not policies.evaluate(request, context).allowed


@SETTINGS
@given(st.lists(statements(), min_size=1, max_size=4), statements("Deny"), contexts(), requests())
def test_adding_a_deny_never_allows_more(
    base: list[dict[str, Any]], extra: dict[str, Any], context: ConnectionContext, request: Request
) -> None:
    if compiled(*base, extra).evaluate(request, context).allowed:
        assert compiled(*base).evaluate(request, context).allowed


@SETTINGS
@given(st.lists(statements(), min_size=1, max_size=4), statements("Allow"), contexts(), requests())
def test_adding_an_allow_never_denies_more(
    base: list[dict[str, Any]], extra: dict[str, Any], context: ConnectionContext, request: Request
) -> None:
    if compiled(*base).evaluate(request, context).allowed:
        assert compiled(*base, extra).evaluate(request, context).allowed


def literal(value: str) -> str:
    """``value`` written into a policy so that it matches only itself."""
    return value.replace("$", "${$}").replace("*", "${*}").replace("?", "${?}")


@st.composite
def client_scoped_resources(draw: st.DrawFn) -> list[tuple[str, str]]:
    """(kind, name template) pairs whose every name holds ${iot:ClientId}, with wildcards around it."""
    return [
        (
            draw(st.sampled_from(["topic", "topicfilter"])),
            draw(plain_names) + "${iot:ClientId}" + draw(plain_names),
        )
        for _ in range(draw(st.integers(1, 3)))
    ]


@SETTINGS
@given(client_scoped_resources(), identifiers, st.sampled_from(ACTIONS[1:4]), names, st.sampled_from(KINDS[:2]))
def test_substituting_a_variable_never_widens_access(
    resources: list[tuple[str, str]], client_id: str, action: str, topic: str, kind: str
) -> None:
    # With the variable, the policy allows no more than the same policy with the client id written
    # in literally; a client id holding a wildcard is not substituted and allows nothing at all.
    def policy(name: str) -> dict[str, Any]:
        return {"Effect": "Allow", "Action": action, "Resource": [iot_arn(k, name, REGION, "*") for k, _ in resources]}

    with_variable = compiled(*[policy(template) for _, template in resources])
    written_in = compiled(
        *[policy(template.replace("${iot:ClientId}", literal(client_id))) for _, template in resources]
    )
    context = ConnectionContext(client_id=client_id)
    request = Request(action, iot_arn(kind, topic, REGION, ACCOUNT))

    if with_variable.evaluate(request, context).allowed:
        assert written_in.evaluate(request, context).allowed
        assert "*" not in client_id
        assert "?" not in client_id


@SETTINGS
@given(client_scoped_resources(), identifiers, st.sampled_from(ACTIONS[1:4]))
def test_a_client_may_reach_its_own_topic_whatever_characters_its_id_holds(
    resources: list[tuple[str, str]], client_id: str, action: str
) -> None:
    # The converse: substitution is exact. Unless the id holds a policy wildcard, the topic the
    # template names for this client (the wildcards of the template filled with nothing) is allowed.
    kind, template = resources[0]
    policies = compiled({"Effect": "Allow", "Action": action, "Resource": iot_arn(kind, template, REGION, "*")})
    prefix, _, suffix = template.partition("${iot:ClientId}")
    own = prefix.replace("*", "").replace("?", "x") + client_id + suffix.replace("*", "").replace("?", "x")
    context = ConnectionContext(client_id=client_id)

    decision = policies.evaluate(Request(action, iot_arn(kind, own, REGION, ACCOUNT)), context)

    assert decision.allowed is ("*" not in client_id and "?" not in client_id)


@SETTINGS
@given(st.lists(statements(), min_size=1, max_size=4), contexts(), st.lists(requests(), min_size=1, max_size=4))
def test_the_bound_fast_path_agrees_with_evaluate_and_a_fresh_compile(
    statement_list: list[dict[str, Any]], context: ConnectionContext, request_list: list[Request]
) -> None:
    source = json.dumps({"Version": "2012-10-17", "Statement": statement_list})
    cached, fresh = _compile(source), compile_policy(source)
    bound = cached.bind(context)

    for request in request_list:
        decision = cached.evaluate(request, context)
        assert decision == fresh.evaluate(request, context)
        assert bound.allows(request.action, request.resource, request.context_keys) is decision.allowed
        if decision.allowed:
            assert decision.effect == "Allow"
            assert statement_list[decision.statement_index or 0]["Effect"] == "Allow"


def glob_reference(pattern: str, text: str) -> bool:
    """A plain dynamic-programming glob: * any run, ? one character, everything else literal."""
    row = [True] + [False] * len(text)
    for char in pattern:
        if char == "*":
            next_row = [row[0]] + [False] * len(text)
            for i in range(1, len(text) + 1):
                next_row[i] = next_row[i - 1] or row[i]
        else:
            next_row = [False] * (len(text) + 1)
            for i in range(1, len(text) + 1):
                next_row[i] = row[i - 1] and (char == "?" or char == text[i - 1])
        row = next_row
    return row[-1]


@SETTINGS
@given(st.text(alphabet=ALPHABET.replace("$", ""), max_size=8), names)
def test_resource_matching_is_a_glob_with_every_other_character_literal(pattern: str, topic: str) -> None:
    policies = compiled(
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": iot_arn("topic", pattern, REGION, ACCOUNT)}
    )
    resource = iot_arn("topic", topic, REGION, ACCOUNT)

    assert policies.is_allowed("iot:Publish", resource, ConnectionContext(client_id="c")) is glob_reference(
        pattern, topic
    )
