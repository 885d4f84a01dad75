"""Condition blocks: each operator, missing keys, IfExists, set qualifiers, variables, unsupported operators."""

from __future__ import annotations

from typing import Any

import pytest
from jitr_core.policy import CertificateInfo, ConnectionContext, UnsupportedConditionOperator, compile_policy

from .helpers import PREFIX, allow, allowed, deny, device, document


def conditional(condition: dict[str, Any], effect: str = "Allow") -> dict[str, Any]:
    statement = {"Effect": effect, "Action": "iot:Connect", "Resource": "*", "Condition": condition}
    return document(statement) if effect == "Allow" else document(allow("iot:Connect", "*"), statement)


def connects(condition: dict[str, Any], context: ConnectionContext | None = None, **keys: Any) -> bool:
    return allowed(
        conditional(condition), "iot:Connect", "client", "device-001", context=context, keys=_keys(keys) or None
    )


def _keys(keys: dict[str, Any]) -> dict[str, Any]:
    """Request keys written as Python names: iot_LastWillTopic → iot:LastWillTopic."""
    return {name.replace("_", ":", 1): value for name, value in keys.items()}


LAMP = device("device-001", thing_type_name="light", thing_attributes={"site": "Paris", "floor": "3"})


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("StringEquals", "Paris", True),
        ("StringEquals", ["London", "Paris"], True),
        ("StringEquals", "paris", False),
        ("StringEquals", "Par*", False),  # StringEquals has no wildcards
        ("StringNotEquals", "London", True),
        ("StringNotEquals", "Paris", False),
        ("StringEqualsIgnoreCase", "PARIS", True),
        ("StringNotEqualsIgnoreCase", "PARIS", False),
        ("StringLike", "Par*", True),
        ("StringLike", "P?ris", True),
        ("StringLike", "par*", False),
        ("StringNotLike", "Lon*", True),
        ("StringNotLike", "Par*", False),
    ],
)
def test_string_operators(operator: str, value: str | list[str], expected: bool) -> None:
    assert connects({operator: {"iot:Connection.Thing.Attributes[site]": value}}, LAMP) is expected


@pytest.mark.parametrize(
    ("operator", "expected"),
    [
        ("StringEquals", False),
        ("StringLike", False),
        ("StringNotEquals", True),  # a negated operator on a missing key holds
        ("StringNotLike", True),
        ("StringEqualsIfExists", True),  # ...IfExists holds when the key is missing
        ("ForAnyValue:StringEquals", False),
        ("ForAllValues:StringEquals", True),  # vacuously true: the IAM pitfall
        ("Bool", False),
        ("NumericEquals", False),
        ("ArnLike", False),
    ],
)
def test_a_missing_key(operator: str, expected: bool) -> None:
    value = "1" if operator.startswith("Numeric") else "true" if operator == "Bool" else "x"
    assert connects({operator: {"iot:Connection.Thing.Attributes[absent]": value}}, LAMP) is expected


def test_if_exists_still_tests_a_present_key() -> None:
    assert connects({"StringEqualsIfExists": {"iot:Connection.Thing.Attributes[site]": "Paris"}}, LAMP)
    assert not connects({"StringEqualsIfExists": {"iot:Connection.Thing.Attributes[site]": "Rome"}}, LAMP)


def test_bool_on_is_attached() -> None:
    condition = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}

    assert connects(condition, LAMP)
    assert not connects(condition, device("device-001", thing_attached=False))
    assert connects({"Bool": {"iot:Connection.Thing.IsAttached": [False]}}, ConnectionContext(client_id="x"))


def test_null_checks_presence() -> None:
    assert connects({"Null": {"iot:Connection.Thing.ThingTypeName": "false"}}, LAMP)
    assert not connects({"Null": {"iot:Connection.Thing.ThingTypeName": "false"}}, device())
    assert connects({"Null": {"iot:Connection.Thing.ThingTypeName": "true"}}, device())


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("NumericEquals", "3", True),
        ("NumericEquals", "3.0", True),
        ("NumericNotEquals", "3", False),
        ("NumericLessThan", "4", True),
        ("NumericLessThan", "3", False),
        ("NumericLessThanEquals", "3", True),
        ("NumericGreaterThan", "2", True),
        ("NumericGreaterThanEquals", "4", False),
    ],
)
def test_numeric_operators(operator: str, value: str, expected: bool) -> None:
    assert connects({operator: {"iot:Connection.Thing.Attributes[floor]": value}}, LAMP) is expected


def test_a_non_numeric_request_value_never_matches_a_numeric_operator() -> None:
    lamp = device(thing_attributes={"floor": "ground"})

    assert not connects({"NumericLessThan": {"iot:Connection.Thing.Attributes[floor]": "3"}}, lamp)


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("DateLessThan", "2030-01-01T00:00:00Z", True),
        ("DateGreaterThan", "2030-01-01T00:00:00Z", False),
        ("DateEquals", "2025-06-01T12:00:00Z", True),
        ("DateNotEquals", "2025-06-01T12:00:00Z", False),
        ("DateGreaterThanEquals", "1748779200", True),  # epoch seconds of 2025-06-01T12:00:00Z
        ("DateLessThanEquals", "2025-06-01", False),
    ],
)
def test_date_operators_on_the_request_time(operator: str, value: str, expected: bool) -> None:
    assert connects({operator: {"aws:CurrentTime": value}}, aws_CurrentTime="2025-06-01T12:00:00Z") is expected


def test_current_time_defaults_to_the_clock() -> None:
    assert connects({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}})
    assert not connects({"DateLessThan": {"aws:EpochTime": "1577836800"}})


@pytest.mark.parametrize(
    ("operator", "networks", "expected"),
    [
        ("IpAddress", "192.0.2.0/24", True),
        ("IpAddress", ["198.51.100.0/24", "192.0.2.7"], True),
        ("IpAddress", "198.51.100.0/24", False),
        ("NotIpAddress", "198.51.100.0/24", True),
        ("IpAddress", "2001:db8::/32", False),
    ],
)
def test_ip_address_operators(operator: str, networks: str | list[str], expected: bool) -> None:
    client = ConnectionContext(client_id="device-001", source_ip="192.0.2.7")

    assert connects({operator: {"aws:SourceIp": networks}}, client) is expected


def test_arn_like_matches_each_component_separately() -> None:
    # The IAM guide's example: StringLike lets * cross colons, ArnLike does not.
    pattern = "arn:aws:someservice:*:111122223333:finance/*"
    value = "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"

    assert connects({"StringLike": {"aws:SourceArn": pattern}}, aws_SourceArn=value)
    assert not connects({"ArnLike": {"aws:SourceArn": pattern}}, aws_SourceArn=value)
    assert connects({"ArnEquals": {"aws:SourceArn": pattern}}, aws_SourceArn=pattern.replace("*", "x"))
    assert connects({"ArnNotLike": {"aws:SourceArn": pattern}}, aws_SourceArn=value)


def test_arn_like_lets_a_wildcard_span_colons_in_the_resource_part() -> None:
    condition = {"ArnLike": {"iot:LastWillTopic": "arn:aws:iot:*:*:topic/will/*"}}

    assert connects(condition, iot_LastWillTopic="arn:aws:iot:us-east-1:1:topic/will/a:b")
    assert not connects(condition, iot_LastWillTopic="arn:aws:iot:us-east-1:1:topicfilter/will/a")


CERTIFICATE = CertificateInfo(subject={"CommonName": ("lamp",), "OrganizationalUnit": ("Ops", "Lab")})


@pytest.mark.parametrize(
    ("operator", "values", "expected"),
    [
        ("ForAnyValue:StringEquals", ["Lab"], True),
        ("ForAnyValue:StringEquals", ["Sales"], False),
        ("ForAllValues:StringEquals", ["Ops", "Lab", "Sales"], True),
        ("ForAllValues:StringEquals", ["Ops"], False),
        ("ForAnyValue:StringNotEquals", ["Ops"], True),  # Lab is not Ops
        ("ForAllValues:StringNotEquals", ["Ops"], False),
        ("ForAnyValue:StringLike", ["L*"], True),
        ("StringEquals", ["Lab"], True),  # without a qualifier, any request value may match
    ],
)
def test_set_qualifiers_on_a_list_key(operator: str, values: list[str], expected: bool) -> None:
    client = ConnectionContext(client_id="device-001", certificate=CERTIFICATE)

    assert connects({operator: {"iot:Certificate.Subject.OrganizationalUnit.List": values}}, client) is expected


def test_request_keys_with_several_values() -> None:
    condition = {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect", "LastWill"]}}

    assert connects(condition, iot_ConnectAttributes=["LastWill"])
    assert not connects(condition, iot_ConnectAttributes=["LastWill", "Other"])


def test_all_conditions_of_a_statement_must_hold() -> None:
    condition = {
        "StringEquals": {"iot:Connection.Thing.ThingTypeName": "light", "iot:Connection.Thing.Attributes[site]": "Rome"}
    }

    assert not connects(condition, LAMP)
    assert connects({"StringEquals": {"iot:Connection.Thing.ThingTypeName": "light"}}, LAMP)


def test_variables_are_substituted_in_string_condition_values() -> None:
    condition = {"StringEquals": {"iot:ClientId": "${iot:Connection.Thing.ThingName}"}}

    assert connects(condition, device("lamp"))
    assert not connects(condition, ConnectionContext(client_id="lamp"))


def test_an_unresolved_variable_in_a_negated_allow_condition_grants_nothing() -> None:
    # StringNotEquals against an unresolved value would hold for everyone: the Allow must not apply.
    condition = {"StringNotEquals": {"iot:ClientId": "${iot:Connection.Thing.Attributes[banned]}"}}

    assert connects(condition, device("lamp", thing_attributes={"banned": "other"}))
    assert not connects(condition, device("lamp"))


def test_a_deny_drops_an_unresolved_condition_value() -> None:
    policy = conditional({"StringEquals": {"iot:ClientId": ["${iot:Connection.Thing.ThingName}", "root"]}}, "Deny")

    assert not allowed(policy, "iot:Connect", "client", "root", context=ConnectionContext(client_id="root"))
    assert allowed(policy, "iot:Connect", "client", "x", context=ConnectionContext(client_id="x"))
    assert not allowed(policy, "iot:Connect", "client", "lamp", context=device("lamp"))


def test_numeric_values_are_not_substituted() -> None:
    policy = conditional({"StringEquals": {"iot:ClientId": "${iot:ClientId}"}})
    numeric = document(allow("iot:Connect", "*", Condition={"NumericEquals": {"iot:ClientId": "7"}}))

    assert allowed(policy, "iot:Connect", "client", "x", context=ConnectionContext(client_id="x"))
    assert allowed(numeric, "iot:Connect", "client", "7", context=ConnectionContext(client_id="7"))


def test_conditions_scope_a_deny_too() -> None:
    policy = conditional({"StringEquals": {"iot:Connection.Thing.Attributes[site]": "Paris"}}, "Deny")

    assert not allowed(policy, "iot:Connect", "client", "device-001", context=LAMP)
    assert allowed(policy, "iot:Connect", "client", "device-001")


@pytest.mark.parametrize(
    "operator",
    [
        "BinaryEquals",
        "StringEqualz",
        "ForSomeValues:StringEquals",
        "NullIfExists",
        "ForAnyValue:Null",
        "IfExists",
        "",
    ],
)
def test_an_unsupported_operator_is_an_error_at_compile_time(operator: str) -> None:
    # Refused when compiled: skipping the condition would turn a conditional Allow into an unconditional one.
    with pytest.raises(UnsupportedConditionOperator, match="unsupported condition operator"):
        compile_policy(conditional({operator: {"iot:ClientId": "x"}}))


def test_operator_names_take_if_exists_and_qualifiers_together() -> None:
    condition = {"ForAnyValue:StringLikeIfExists": {"iot:Certificate.Subject.OrganizationalUnit.List": "L*"}}

    assert connects(condition, ConnectionContext(client_id="c", certificate=CERTIFICATE))
    assert connects(condition, ConnectionContext(client_id="c"))


def test_conditions_reach_statements_with_resources_too() -> None:
    policy = document(
        allow(
            "iot:Publish",
            f"{PREFIX}topic/dt/*",
            Condition={"StringEquals": {"iot:Connection.Thing.ThingTypeName": "light"}},
        ),
        deny("iot:Publish", f"{PREFIX}topic/dt/x", Condition={"StringEquals": {"iot:ClientId": "device-001"}}),
    )

    assert allowed(policy, "iot:Publish", "topic", "dt/a", context=LAMP)
    assert not allowed(policy, "iot:Publish", "topic", "dt/x", context=LAMP)
    assert not allowed(policy, "iot:Publish", "topic", "dt/a", context=device())
