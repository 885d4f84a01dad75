"""The evaluation rules: effects, Action/Resource matching, variables, unresolved values, documents, caching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jitr_core.policy import (
    CertificateInfo,
    ConnectionContext,
    InvalidPolicyDocument,
    Request,
    client_arn,
    compile_policies,
    compile_policy,
    resource_for,
    thing_arn,
    topic_arn,
    topic_filter_arn,
)

from .helpers import PREFIX, allow, allowed, arn, decide, deny, device, document

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "functions" / "ensure_policy" / "device_policy.json"


# --- effects -------------------------------------------------------------------------------


def test_explicit_deny_wins_over_an_allow_and_names_the_deny() -> None:
    policy = document(
        allow("iot:Publish", f"{PREFIX}topic/*", Sid="All"),
        deny("iot:Publish", f"{PREFIX}topic/secret", Sid="NoSecret"),
    )

    decision = decide(policy, "iot:Publish", "topic", "secret")

    assert (decision.allowed, decision.effect, decision.statement_index, decision.sid) == (False, "Deny", 1, "NoSecret")
    assert decision.statement == "policy Statement[1] (Sid NoSecret)"
    assert allowed(policy, "iot:Publish", "topic", "public")


def test_a_deny_in_another_policy_wins_too() -> None:
    policies = compile_policies(
        {
            "open": document(allow("iot:*", "*")),
            "guard": document(deny("iot:Subscribe", f"{PREFIX}topicfilter/$aws/*")),
        }
    )

    decision = decide(policies, "iot:Subscribe", "topicfilter", "$aws/things/x/shadow/#")

    assert (decision.allowed, decision.policy_name, decision.statement_index) == (False, "guard", 0)
    assert decide(policies, "iot:Subscribe", "topicfilter", "dt/x").policy_name == "open"


def test_no_matching_allow_is_an_implicit_deny_with_no_statement() -> None:
    decision = decide(document(allow("iot:Publish", f"{PREFIX}topic/a")), "iot:Publish", "topic", "b")

    assert (decision.allowed, decision.effect, decision.policy_name, decision.statement) == (False, None, None, None)
    assert "implicit deny" in decision.reason


def test_the_first_matching_statement_in_document_order_is_reported() -> None:
    policy = document(
        allow("iot:Publish", f"{PREFIX}topic/a/*", Sid="Wide"),
        allow("iot:Publish", f"{PREFIX}topic/a/b", Sid="Exact"),
        allow("iot:Publish", "*", Sid="Everything"),
    )

    assert decide(policy, "iot:Publish", "topic", "a/b").sid == "Wide"
    assert decide(policy, "iot:Publish", "topic", "z").sid == "Everything"


def test_document_order_holds_across_literal_wildcard_and_conditional_statements() -> None:
    attached = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    client_keys = {"StringLike": {"iot:ConnectAttributes": "*"}}  # a request-level condition
    policy = document(
        allow("iot:Publish", f"{PREFIX}topic/a/b", Sid="Exact"),
        allow("iot:Publish", f"{PREFIX}topic/a/*", Sid="Wide"),
        allow("iot:Publish", f"{PREFIX}topic/c/*", Sid="Conditional", Condition=client_keys),
        allow("iot:Publish", f"{PREFIX}topic/c/d", Sid="Later", Condition=attached),
        allow("iot:Publish", "*", Sid="Everything"),
    )
    keys = {"iot:ConnectAttributes": ["LastWill"]}

    assert decide(policy, "iot:Publish", "topic", "a/b").sid == "Exact"
    assert decide(policy, "iot:Publish", "topic", "a/x").sid == "Wide"
    assert decide(policy, "iot:Publish", "topic", "c/d", keys=keys).sid == "Conditional"
    assert decide(policy, "iot:Publish", "topic", "c/d").sid == "Later"
    assert decide(policy, "iot:Publish", "topic", "e").sid == "Everything"


# --- Action and NotAction ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action_element", "action", "expected"),
    [
        ("iot:Publish", "iot:Publish", True),
        ("iot:Publish", "iot:Subscribe", False),
        (["iot:Subscribe", "iot:Publish"], "iot:Publish", True),
        ("IOT:publish", "iot:Publish", True),  # action names are case-insensitive
        ("iot:Publish", "IoT:PUBLISH", True),
        ("iot:*", "iot:Receive", True),
        ("*", "iot:Connect", True),
        ("iot:Pub*", "iot:Publish", True),
        ("iot:Pub*", "iot:Receive", False),
        ("iot:?ublish", "iot:Publish", True),
        ("iot:?ublish", "iot:Pubublish", False),
        ("iot:*ThingShadow", "iot:GetThingShadow", True),
    ],
)
def test_action_element(action_element: str | list[str], action: str, expected: bool) -> None:
    assert allowed(document(allow(action_element, "*")), action, "topic", "x") is expected


def test_not_action_covers_every_other_action() -> None:
    policy = document({"Effect": "Allow", "NotAction": ["iot:Connect", "iot:Subscribe"], "Resource": "*"})

    assert allowed(policy, "iot:Publish", "topic", "x")
    assert not allowed(policy, "iot:Connect", "client", "device-001")
    assert not allowed(policy, "iot:subscribe", "topicfilter", "x")


# --- Resource and NotResource --------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("topic/a/b", "a/b", True),
        ("topic/a/b", "a/b/c", False),
        ("topic/a/b", "A/b", False),  # resources are case-sensitive
        ("topic/a/*", "a/b/c/d", True),  # * spans topic levels
        ("topic/a/*", "a/", True),
        ("topic/a/*", "a", False),
        ("topic/a/?", "a/b", True),
        ("topic/a/?", "a/bc", False),
        ("topic/a/?", "a/", False),
        ("topic/*/b", "x/y/b", True),
        ("topic/a.b", "aXb", False),  # regular-expression characters are literal
        ("topic/a[0-9]", "a1", False),
        ("topic/a[0-9]", "a[0-9]", True),
        ("topic/a\\d", "a\\d", True),
        ("topic/$aws/x", "$aws/x", True),
        ("topicfilter/a", "a", False),  # a topicfilter/ ARN never matches a topic/ resource
    ],
)
def test_resource_wildcards(pattern: str, topic: str, expected: bool) -> None:
    assert allowed(document(allow("iot:Publish", PREFIX + pattern)), "iot:Publish", "topic", topic) is expected


def test_wildcards_in_region_and_account_and_the_bare_star() -> None:
    policy = document(allow("iot:Publish", ["arn:aws:iot:*:*:topic/a", "arn:aws:iot:eu-west-?:123456789012:topic/b"]))

    assert allowed(policy, "iot:Publish", "topic", "a")
    assert compile_policy(policy).is_allowed(
        "iot:Publish", "arn:aws:iot:eu-west-1:123456789012:topic/b", ConnectionContext(client_id="c")
    )
    assert not allowed(policy, "iot:Publish", "topic", "b")  # us-east-1 is not eu-west-?
    assert allowed(document(allow("iot:Connect", "*")), "iot:Connect", "client", "anything")


def test_mqtt_wildcards_in_a_topic_filter_are_plain_characters() -> None:
    policy = document(allow("iot:Subscribe", f"{PREFIX}topicfilter/some/+/topic"))

    assert allowed(policy, "iot:Subscribe", "topicfilter", "some/+/topic")
    assert not allowed(policy, "iot:Subscribe", "topicfilter", "some/a/topic")
    assert not allowed(policy, "iot:Subscribe", "topicfilter", "some/#")


def test_a_policy_star_admits_mqtt_wildcard_filters() -> None:
    policy = document(allow("iot:Subscribe", f"{PREFIX}topicfilter/dt/device-001/*"))

    assert allowed(policy, "iot:Subscribe", "topicfilter", "dt/device-001/#")
    assert allowed(policy, "iot:Subscribe", "topicfilter", "dt/device-001/+/telemetry")
    assert not allowed(policy, "iot:Subscribe", "topicfilter", "dt/#")


def test_not_resource_allows_everything_but_the_named_resources() -> None:
    policy = document({"Effect": "Allow", "Action": "iot:Publish", "NotResource": [f"{PREFIX}topic/admin/*"]})

    assert allowed(policy, "iot:Publish", "topic", "dt/x")
    assert not allowed(policy, "iot:Publish", "topic", "admin/reset")


def test_deny_with_not_resource_denies_all_but_the_named() -> None:
    policy = document(
        allow("iot:Publish", "*"),
        {"Effect": "Deny", "Action": "iot:Publish", "NotResource": f"{PREFIX}topic/dt/*"},
    )

    assert allowed(policy, "iot:Publish", "topic", "dt/a")
    assert decide(policy, "iot:Publish", "topic", "other").effect == "Deny"


# --- policy variables ----------------------------------------------------------------------


def test_client_id_variable() -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/my/${{iot:ClientId}}/*"))
    client = ConnectionContext(client_id="sensor-1")

    assert allowed(policy, "iot:Publish", "topic", "my/sensor-1/t", context=client)
    assert not allowed(policy, "iot:Publish", "topic", "my/sensor-2/t", context=client)
    assert not allowed(policy, "iot:Publish", "topic", "my/sensor-1/t", context=ConnectionContext())


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (ConnectionContext(client_id="lamp", thing_name="lamp"), True),
        (ConnectionContext(client_id="lamp", thing_name="lamp", thing_attached=False), False),
        (ConnectionContext(client_id="other", thing_name="lamp"), False),
        (ConnectionContext(client_id="lamp"), False),
    ],
    ids=["client-is-attached-thing", "not-attached", "client-id-differs", "no-thing"],
)
def test_thing_name_resolves_only_for_an_attached_thing_named_by_the_client_id(
    context: ConnectionContext, expected: bool
) -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/dt/${{iot:Connection.Thing.ThingName}}/*"))

    assert allowed(policy, "iot:Publish", "topic", "dt/lamp/t", context=context) is expected


def test_thing_type_and_attribute_variables() -> None:
    policy = document(
        allow(
            "iot:Publish",
            f"{PREFIX}topic/${{iot:Connection.Thing.ThingTypeName}}/${{iot:Connection.Thing.Attributes[site]}}/*",
        )
    )
    lamp = device("lamp", thing_type_name="light", thing_attributes={"site": "paris"})

    assert allowed(policy, "iot:Publish", "topic", "light/paris/x", context=lamp)
    assert not allowed(policy, "iot:Publish", "topic", "light/london/x", context=lamp)
    assert not allowed(policy, "iot:Publish", "topic", "light//x", context=device("lamp", thing_type_name="light"))


def test_is_attached_variable_and_condition_key() -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/attached/${{iot:Connection.Thing.IsAttached}}"))

    assert allowed(policy, "iot:Publish", "topic", "attached/true")
    assert allowed(policy, "iot:Publish", "topic", "attached/false", context=ConnectionContext(client_id="c"))
    assert not allowed(policy, "iot:Publish", "topic", "attached/true", context=ConnectionContext(client_id="c"))


CERTIFICATE = CertificateInfo(
    subject={"CommonName": ("lamp-7", "Administrator", "Operator"), "Organization": ("Example Corp",)},
    issuer={"CommonName": ("Fleet CA",), "Country": ("US",)},
    subject_alternative_names={"DNSName": ("lamp-7.example.com",), "IPAddress": ("10.0.0.7",)},
    serial_number="10525622389124227206",
)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("iot:Certificate.Subject.CommonName", "lamp-7"),
        ("iot:Certificate.Subject.CommonName.0", "lamp-7"),
        ("iot:Certificate.Subject.CommonName.2", "Operator"),
        ("iot:certificate.subject.organization", "Example Corp"),  # names are case-insensitive
        ("iot:Certificate.Issuer.CommonName", "Fleet CA"),
        ("iot:Certificate.Issuer.Country", "US"),
        ("iot:Certificate.Subject.AlternativeName.DNSName", "lamp-7.example.com"),
        ("iot:Certificate.Subject.AlternativeName.IPAddress", "10.0.0.7"),
        ("iot:Certificate.SerialNumber", "10525622389124227206"),
        ("iot:CertificateId", "abc123"),
        ("aws:SourceIp", "192.0.2.1"),
    ],
)
def test_certificate_and_connection_variables(variable: str, value: str) -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/v/${{{variable}}}"))
    context = ConnectionContext(
        client_id="lamp-7", certificate=CERTIFICATE, certificate_id="abc123", source_ip="192.0.2.1"
    )

    assert allowed(policy, "iot:Publish", "topic", f"v/{value}", context=context)
    assert not allowed(policy, "iot:Publish", "topic", "v/other", context=context)


@pytest.mark.parametrize(
    "variable",
    [
        "iot:Certificate.Subject.CommonName.3",  # no fourth value
        "iot:Certificate.Subject.Title",  # absent field
        "iot:Certificate.Subject.CommonName.List",  # a list is for conditions only
        "iot:Certificate.AvailableKeys",
        "iot:Thing.ThingName",  # not an AWS IoT variable
    ],
)
def test_unresolvable_variables_match_nothing(variable: str) -> None:
    policy = document(allow("iot:Publish", [f"{PREFIX}topic/v/${{{variable}}}", f"{PREFIX}topic/v/${{{variable}}}*"]))
    context = ConnectionContext(client_id="lamp-7", certificate=CERTIFICATE)

    for topic in ("v/", "v/Administrator", "v/${" + variable + "}", "v/x"):
        assert not allowed(policy, "iot:Publish", "topic", topic, context=context), topic


@pytest.mark.parametrize("client_id", ["dev*", "dev?", "*", "?"])
def test_a_client_id_with_policy_wildcards_is_never_substituted(client_id: str) -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/dt/${{iot:ClientId}}/*"))
    context = ConnectionContext(client_id=client_id)

    for topic in (f"dt/{client_id}/x", "dt/dev1/x", "dt/devX/x", "dt/a/x"):
        assert not allowed(policy, "iot:Publish", "topic", topic, context=context), topic


@pytest.mark.parametrize("common_name", ["lamp+1", "lamp#", "$lamp", "la*mp", "x" * 1025])
def test_certificate_values_with_mqtt_wildcards_or_over_1024_chars_are_never_substituted(common_name: str) -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/cn/${{iot:Certificate.Subject.CommonName}}"))
    context = ConnectionContext(client_id="c", certificate=CertificateInfo(subject={"CommonName": (common_name,)}))

    assert not allowed(policy, "iot:Publish", "topic", f"cn/{common_name}", context=context)


def test_only_the_first_five_certificate_values_count() -> None:
    names = tuple(f"cn{n}" for n in range(7))
    policy = document(allow("iot:Publish", f"{PREFIX}topic/${{iot:Certificate.Subject.CommonName.4}}"))
    sixth = document(allow("iot:Publish", f"{PREFIX}topic/${{iot:Certificate.Subject.CommonName.5}}"))
    context = ConnectionContext(client_id="c", certificate=CertificateInfo(subject={"CommonName": names}))

    assert allowed(policy, "iot:Publish", "topic", "cn4", context=context)
    assert not allowed(sixth, "iot:Publish", "topic", "cn5", context=context)


def test_escape_variables_stand_for_literal_characters() -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/a${{*}}b${{?}}c${{$}}{{d}}"))

    assert allowed(policy, "iot:Publish", "topic", "a*b?c${d}")
    assert not allowed(policy, "iot:Publish", "topic", "aXbYc${d}")


def test_a_2008_policy_leaves_variables_as_text() -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/dt/${{iot:ClientId}}"), version="2008-10-17")

    assert not allowed(policy, "iot:Publish", "topic", "dt/device-001")
    assert allowed(policy, "iot:Publish", "topic", "dt/${iot:ClientId}")


def test_a_policy_without_version_does_not_substitute_either() -> None:
    policy = {"Statement": [allow("iot:Publish", f"{PREFIX}topic/dt/${{iot:ClientId}}")]}

    assert not allowed(policy, "iot:Publish", "topic", "dt/device-001")


def test_an_unresolved_entry_drops_out_of_a_resource_list_but_the_others_stay() -> None:
    policy = document(
        allow("iot:Publish", [f"{PREFIX}topic/a/${{iot:Connection.Thing.Attributes[zone]}}", f"{PREFIX}topic/b"])
    )

    assert allowed(policy, "iot:Publish", "topic", "b")
    assert not allowed(policy, "iot:Publish", "topic", "a/")


def test_an_allow_whose_not_resource_is_unresolved_grants_nothing() -> None:
    policy = document(
        {"Effect": "Allow", "Action": "iot:Publish", "NotResource": f"{PREFIX}topic/${{iot:ClientId}}/admin"}
    )

    assert allowed(policy, "iot:Publish", "topic", "x", context=ConnectionContext(client_id="c"))
    assert not allowed(policy, "iot:Publish", "topic", "c/admin", context=ConnectionContext(client_id="c"))
    assert not allowed(policy, "iot:Publish", "topic", "x", context=ConnectionContext(client_id="c*"))


def test_a_deny_whose_resource_is_unresolved_does_not_apply_as_on_aws() -> None:
    policy = document(
        allow("iot:Publish", f"{PREFIX}topic/*"),
        deny("iot:Publish", f"{PREFIX}topic/locked/${{iot:Connection.Thing.Attributes[lock]}}"),
    )

    assert not allowed(policy, "iot:Publish", "topic", "locked/yes", context=device(thing_attributes={"lock": "yes"}))
    assert allowed(policy, "iot:Publish", "topic", "locked/yes")


def test_a_deny_whose_not_resource_is_unresolved_denies_everything() -> None:
    policy = document(
        allow("iot:Publish", "*"),
        {"Effect": "Deny", "Action": "iot:Publish", "NotResource": f"{PREFIX}topic/${{iot:ClientId}}/*"},
    )

    assert allowed(policy, "iot:Publish", "topic", "c/x", context=ConnectionContext(client_id="c"))
    assert not allowed(policy, "iot:Publish", "topic", "c*/x", context=ConnectionContext(client_id="c*"))


# --- documents -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ({"Version": "2012-10-17"}, "Statement"),
        ({"Version": "2012-10-17", "Statement": []}, "Statement"),
        ({"Version": "2012-10-17", "Statement": ["x"]}, "JSON object"),
        ({"Version": "2020-01-01", "Statement": [allow("iot:Publish", "*")]}, "Version"),
        ({"Version": "2012-10-17", "Statement": [allow("iot:Publish", "*")], "Extra": 1}, "Extra"),
        (document({"Effect": "allow", "Action": "iot:Publish", "Resource": "*"}), "Effect"),
        (document({"Effect": "Allow", "Resource": "*"}), "Action and NotAction"),
        (document({"Effect": "Allow", "Action": "a", "NotAction": "b", "Resource": "*"}), "Action and NotAction"),
        (document({"Effect": "Allow", "Action": "iot:Publish"}), "Resource and NotResource"),
        (document({"Effect": "Allow", "Action": [], "Resource": "*"}), "non-empty"),
        (document({"Effect": "Allow", "Action": ["iot:Publish", 3], "Resource": "*"}), "strings"),
        (document({"Effect": "Allow", "Action": "iot:Publish", "Resource": "*", "Principal": "*"}), "Principal"),
        (document({"Effect": "Allow", "Action": "iot:Publish", "Resource": "*", "Sid": 5}), "Sid"),
        (document(allow("iot:Publish", "*", Condition=["Bool"])), "Condition"),
        (document(allow("iot:Publish", "*", Condition={"StringEquals": "x"})), "object of keys"),
        (document(allow("iot:Publish", "*", Condition={"StringEquals": {"k": {"a": 1}}})), "condition values"),
        (document(allow("iot:Publish", "*", Condition={"NumericLessThan": {"k": "ten"}})), "numeric"),
        (document(allow("iot:Publish", "*", Condition={"DateLessThan": {"k": "soon"}})), "date"),
        (document(allow("iot:Publish", "*", Condition={"IpAddress": {"aws:SourceIp": "10.0.0.0/99"}})), "ip"),
        (document(allow("iot:Publish", "*", Condition={"Null": {"k": "maybe"}})), "Null"),
    ],
)
def test_invalid_documents_are_refused_with_a_message(policy: object, message: str) -> None:
    source = policy if isinstance(policy, str) else json.dumps(policy)

    with pytest.raises(InvalidPolicyDocument, match=message):
        compile_policy(source, "bad.json")


def test_a_single_statement_object_is_accepted() -> None:
    policy = {"Version": "2012-10-17", "Statement": allow("iot:Publish", "*")}

    assert allowed(policy, "iot:Publish", "topic", "x")


def test_compile_policies_names_documents() -> None:
    named = compile_policies({"a.json": document(allow("iot:Publish", "*"))})
    numbered = compile_policies([document(deny("iot:Publish", "*")), json.dumps(document(allow("iot:Publish", "*")))])

    assert decide(named, "iot:Publish", "topic", "x").policy_name == "a.json"
    assert decide(numbered, "iot:Publish", "topic", "x").policy_name == "policy-1"
    with pytest.raises(InvalidPolicyDocument, match="compile_policy"):
        compile_policies(document(allow("iot:Publish", "*")))
    with pytest.raises(InvalidPolicyDocument, match="compile_policy"):
        compile_policies(json.dumps(document(allow("iot:Publish", "*"))))
    with pytest.raises(InvalidPolicyDocument, match="no policy"):
        compile_policies([])


# --- the hot path ---------------------------------------------------------------------------


def test_equal_contexts_share_one_binding_and_bound_answers_agree() -> None:
    policies = compile_policy(json.loads(DEFAULT_POLICY.read_text()))
    first, second = device("lamp"), device("lamp")
    bound = policies.bind(first)

    assert policies.bind(second) is bound
    assert policies.bind(device("other")) is not bound
    for topic, expected in (("dt/lamp/1/t", True), ("dt/other/1/t", False)):
        resource = topic_arn("us-east-1", "123456789012", topic)
        assert bound.allows("iot:Publish", resource) is expected
        assert bound.evaluate(Request("iot:Publish", resource)).allowed is expected
        assert policies.is_allowed("iot:Publish", resource, second) is expected


def test_the_bind_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from jitr_core.policy import engine

    monkeypatch.setattr(engine, "BIND_CACHE_SIZE", 3)
    policies = compile_policy(document(allow("iot:Publish", f"{PREFIX}topic/${{iot:ClientId}}")))
    for n in range(10):
        assert allowed(policies, "iot:Publish", "topic", f"c{n}", context=ConnectionContext(client_id=f"c{n}"))

    assert len(policies._bound) == 3


def test_arn_helpers() -> None:
    assert topic_arn("eu-west-1", "1", "a/b") == "arn:aws:iot:eu-west-1:1:topic/a/b"
    assert topic_filter_arn("eu-west-1", "1", "a/#") == "arn:aws:iot:eu-west-1:1:topicfilter/a/#"
    assert client_arn("eu-west-1", "1", "c") == "arn:aws:iot:eu-west-1:1:client/c"
    assert thing_arn("eu-west-1", "1", "t") == "arn:aws:iot:eu-west-1:1:thing/t"
    assert resource_for("iot:Subscribe", "a/+") == arn("topicfilter", "a/+")
    assert resource_for("iot:receive", "a") == arn("topic", "a")
    assert resource_for("iot:UpdateThingShadow", "lamp") == arn("thing", "lamp")
    assert resource_for("iot:ListRetainedMessages", "") == "*"
    with pytest.raises(ValueError, match="give the resource ARN"):
        resource_for("iot:CreateThing", "x")
