"""The policy examples of the AWS IoT Core developer guide, with the outcomes the guide states for them.

Each example's policy JSON is the guide's; the requests and expected decisions restate, as test
vectors, what the guide says the policy allows or refuses.
"""

from __future__ import annotations

from typing import Any

import pytest
from jitr_core.policy import CertificateInfo, ConnectionContext, compile_policy

from .helpers import allowed, device

ACCOUNT_PREFIX = "arn:aws:iot:us-east-1:123456789012:"
Vector = tuple[str, str, str, ConnectionContext, bool]


def check(policy: dict[str, Any], vectors: list[Vector]) -> None:
    policies = compile_policy(policy)
    for action, kind, name, context, expected in vectors:
        assert allowed(policies, action, kind, name, context=context) is expected, (action, kind, name, context)


def client(client_id: str, **fields: Any) -> ConnectionContext:
    return ConnectionContext(client_id=client_id, **fields)


# https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html
# "Connect policy examples": connect with client ID client1 only.
def test_connect_with_one_client_id() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/client1"],
            }
        ],
    }
    check(
        policy,
        [
            ("iot:Connect", "client", "client1", client("client1"), True),
            ("iot:Connect", "client", "client2", client("client2"), False),
            ("iot:Publish", "topic", "client1", client("client1"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html
# Deny client1 and client2, allow a client id matching a registered thing's name.
def test_connect_denied_client_ids_and_thing_names() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["iot:Connect"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:client/client1",
                    "arn:aws:iot:us-east-1:123456789012:client/client2",
                ],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
            },
        ],
    }
    check(
        policy,
        [
            ("iot:Connect", "client", "thing7", device("thing7"), True),
            ("iot:Connect", "client", "client1", device("client1"), False),  # explicit Deny wins
            ("iot:Connect", "client", "client3", client("client3"), False),  # not a thing
            ("iot:Connect", "client", "thing7", device("thing7", thing_attached=False), False),
        ],
    )


def _connect_attributes(condition: dict[str, Any], effect: str = "Allow") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": effect, "Action": ["iot:Connect"], "Resource": "*", "Condition": condition}],
    }


# https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html
# "MQTT persistent sessions policy examples": iot:ConnectAttributes with ForAllValues / ForAnyValue.
@pytest.mark.parametrize(
    ("policy", "attributes", "expected"),
    [
        # Allows connect with the PersistentConnect feature.
        (
            _connect_attributes({"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}),
            [],
            True,
        ),
        (
            _connect_attributes({"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}),
            ["PersistentConnect"],
            True,
        ),
        (
            _connect_attributes({"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}),
            ["LastWill"],
            False,
        ),
        # Disallows PersistentConnect, other features are allowed.
        (
            _connect_attributes({"ForAllValues:StringNotEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}),
            ["LastWill"],
            True,
        ),
        (
            _connect_attributes({"ForAllValues:StringNotEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}),
            ["PersistentConnect"],
            False,
        ),
        # Allows connect only with PersistentConnect; any other feature may come along.
        (
            _connect_attributes({"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}),
            ["PersistentConnect", "LastWill"],
            True,
        ),
        (
            _connect_attributes({"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}}),
            ["LastWill"],
            False,
        ),
        # Allows clean connect, with or without LastWill, and no other feature.
        (
            _connect_attributes({"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}),
            ["LastWill"],
            True,
        ),
        (
            _connect_attributes({"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}}),
            ["PersistentConnect"],
            False,
        ),
        # Only default features: an empty list of values.
        (_connect_attributes({"ForAllValues:StringEquals": {"iot:ConnectAttributes": []}}), [], True),
        (_connect_attributes({"ForAllValues:StringEquals": {"iot:ConnectAttributes": []}}), ["LastWill"], False),
    ],
)
def test_persistent_session_connect_attributes(policy: dict[str, Any], attributes: list[str], expected: bool) -> None:
    policies = compile_policy(policy)
    keys = {"iot:ConnectAttributes": attributes}

    assert allowed(policies, "iot:Connect", "client", "c", context=client("c"), keys=keys) is expected


# https://docs.aws.amazon.com/iot/latest/developerguide/connect-policy.html
# Allow everything but PersistentConnect, written as an Allow and a ForAnyValue Deny.
def test_persistent_connect_denied_by_a_for_any_value_deny() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["iot:Connect"], "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": ["iot:Connect"],
                "Resource": "*",
                "Condition": {"ForAnyValue:StringEquals": {"iot:ConnectAttributes": ["PersistentConnect"]}},
            },
        ],
    }
    policies = compile_policy(policy)

    for attributes, expected in (([], True), (["LastWill"], True), (["LastWill", "PersistentConnect"], False)):
        keys = {"iot:ConnectAttributes": attributes}
        assert allowed(policies, "iot:Connect", "client", "c", context=client("c"), keys=keys) is expected


# https://docs.aws.amazon.com/iot/latest/developerguide/connect-and-pub.html
# "Connect and publish policy examples": publish on the thing-name topic (registered) or client-id topic.
def test_connect_and_publish_registered_and_unregistered() -> None:
    registered = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
            },
        ],
    }
    unregistered = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/client1"],
            },
        ],
    }
    check(
        registered,
        [
            ("iot:Connect", "client", "thing1", device("thing1"), True),
            ("iot:Publish", "topic", "thing1", device("thing1"), True),
            ("iot:Publish", "topic", "thing2", device("thing1"), False),
            ("iot:Connect", "client", "client9", client("client9", thing_name="thing1"), False),
        ],
    )
    check(
        unregistered,
        [
            ("iot:Connect", "client", "client1", client("client1"), True),
            ("iot:Connect", "client", "client2", client("client2"), False),
            ("iot:Publish", "topic", "client1", client("client1"), True),
            ("iot:Publish", "topic", "client2", client("client1"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
# Publish to any topic prefixed by the thing name (registered) or the client id (unregistered).
def test_publish_under_the_own_prefix() -> None:
    registered = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/*"],
            },
        ],
    }
    unregistered = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:client/client1",
                    "arn:aws:iot:us-east-1:123456789012:client/client2",
                    "arn:aws:iot:us-east-1:123456789012:client/client3",
                ],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"],
            },
        ],
    }
    check(
        registered,
        [
            ("iot:Publish", "topic", "thing1/a/b", device("thing1"), True),
            ("iot:Publish", "topic", "thing2/a", device("thing1"), False),
            ("iot:Publish", "topic", "thing1", device("thing1"), False),
        ],
    )
    check(
        unregistered,
        [
            ("iot:Connect", "client", "client3", client("client3"), True),
            ("iot:Connect", "client", "client4", client("client4"), False),
            ("iot:Publish", "topic", "client2/x", client("client2"), True),
            ("iot:Publish", "topic", "client1/x", client("client2"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
# Subscribe to <thing name>/room* and receive on it: thing1/room1, thing1/room2...
def test_subscribe_and_receive_with_a_trailing_wildcard() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/${iot:Connection.Thing.ThingName}/room*"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Receive"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.ThingName}/room*"],
            },
        ],
    }
    check(
        policy,
        [
            ("iot:Subscribe", "topicfilter", "thing1/room1", device("thing1"), True),
            ("iot:Subscribe", "topicfilter", "thing1/room2", device("thing1"), True),
            ("iot:Subscribe", "topicfilter", "thing1/kitchen", device("thing1"), False),
            ("iot:Subscribe", "topicfilter", "thing2/room1", device("thing1"), False),
            ("iot:Receive", "topic", "thing1/room1", device("thing1"), True),
            ("iot:Receive", "topic", "thing1/room1", device("thing2"), False),
            ("iot:Publish", "topic", "thing1/room1", device("thing1"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
# + and # in a topicfilter resource are literal: the device may subscribe to some/+/topic only.
def test_topic_filter_with_mqtt_wildcards_is_literal() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/client1"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/some/+/topic"],
            },
        ],
    }
    check(
        policy,
        [
            ("iot:Subscribe", "topicfilter", "some/+/topic", client("client1"), True),
            ("iot:Subscribe", "topicfilter", "some/sensor/topic", client("client1"), False),
            ("iot:Subscribe", "topicfilter", "some/#", client("client1"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
# Subscribe to my/topic and my/othertopic (two literal filters).
def test_subscribe_to_two_topics() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/client1"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:topicfilter/my/topic",
                    "arn:aws:iot:us-east-1:123456789012:topicfilter/my/othertopic",
                ],
            },
        ],
    }
    check(
        policy,
        [
            ("iot:Subscribe", "topicfilter", "my/topic", client("client1"), True),
            ("iot:Subscribe", "topicfilter", "my/othertopic", client("client1"), True),
            ("iot:Subscribe", "topicfilter", "my/#", client("client1"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
# Publish to any topic prefixed by the client id, except the one ending with bar.
def test_publish_prefix_except_bar() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:client/client1",
                    "arn:aws:iot:us-east-1:123456789012:client/client2",
                ],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/*"],
            },
            {
                "Effect": "Deny",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:ClientId}/bar"],
            },
        ],
    }
    check(
        policy,
        [
            ("iot:Publish", "topic", "client1/foo", client("client1"), True),
            ("iot:Publish", "topic", "client1/bar", client("client1"), False),
            ("iot:Publish", "topic", "client2/bar", client("client1"), False),
            ("iot:Publish", "topic", "client1/bar/baz", client("client1"), True),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
# "Receive policy examples": subscribe to and receive messages on my/topic.
def test_subscribe_and_receive_one_topic() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/my/topic"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Receive"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/my/topic"],
            },
        ],
    }
    check(
        policy,
        [
            ("iot:Subscribe", "topicfilter", "my/topic", device("thing1"), True),
            ("iot:Receive", "topic", "my/topic", device("thing1"), True),
            ("iot:Receive", "topic", "my/other", device("thing1"), False),
            ("iot:Receive", "topicfilter", "my/topic", device("thing1"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html
# Thing variables resolve for a certificate attached to a thing even when the client id is fixed:
# here no variable is used, and client1 publishes and receives one provisioning topic.
def test_publish_receive_and_subscribe_one_provisioning_topic() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/client1"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:Receive"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/iotmonitor/provisioning/987654321098"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/iotmonitor/provisioning/987654321098"],
            },
        ],
    }
    topic = "iotmonitor/provisioning/987654321098"
    check(
        policy,
        [
            ("iot:Publish", "topic", topic, client("client1"), True),
            ("iot:Receive", "topic", topic, client("client1"), True),
            ("iot:Subscribe", "topicfilter", topic, client("client1"), True),
            ("iot:Subscribe", "topicfilter", "iotmonitor/provisioning/#", client("client1"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/basic-policy-variables.html
# A client connecting with client id "+" may subscribe to my/+/topic: the guide's warning about
# ${iot:ClientId} in a topic filter when Connect does not restrict client ids.
def test_client_id_plus_subscribes_to_the_mqtt_wildcard_filter() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topicfilter/my/${iot:ClientId}/topic"],
            }
        ],
    }
    check(
        policy,
        [
            ("iot:Subscribe", "topicfilter", "my/+/topic", client("+"), True),
            ("iot:Subscribe", "topicfilter", "my/clientid1/topic", client("clientid1"), True),
            ("iot:Subscribe", "topicfilter", "my/clientid1/topic", client("+"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/basic-policy-variables.html
# Connect and publish scoped by ${iot:ClientId}.
def test_basic_client_id_variables() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123451234510:client/${iot:ClientId}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123451234510:topic/my/topic/${iot:ClientId}"],
            },
        ],
    }
    policies = compile_policy(policy)
    context = ConnectionContext(client_id="c1", account="123451234510")

    assert policies.is_allowed("iot:Connect", "arn:aws:iot:us-east-1:123451234510:client/c1", context)
    assert policies.is_allowed("iot:Publish", "arn:aws:iot:us-east-1:123451234510:topic/my/topic/c1", context)
    assert not policies.is_allowed("iot:Publish", "arn:aws:iot:us-east-1:123451234510:topic/my/topic/c2", context)
    assert not policies.is_allowed("iot:Publish", "arn:aws:iot:us-east-1:123456789012:topic/my/topic/c1", context)


# https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html
# Connect only when the certificate is attached to the thing being evaluated.
def test_connect_only_when_attached() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["*"],
                "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": ["true"]}},
            }
        ],
    }
    check(
        policy,
        [
            ("iot:Connect", "client", "thing1", device("thing1"), True),
            ("iot:Connect", "client", "thing1", device("thing1", thing_attached=False), False),
            ("iot:Connect", "client", "loner", client("loner"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html
# Publish when the thing has a given thing type and attribute value, and is attached.
def test_publish_by_thing_type_and_attribute() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": "arn:aws:iot:us-east-1:123456789012:topic/device/stats",
                "Condition": {
                    "StringEquals": {
                        "iot:Connection.Thing.Attributes[attributeName]": "attributeValue",
                        "iot:Connection.Thing.ThingTypeName": "Thing_Type_Name",
                    },
                    "Bool": {"iot:Connection.Thing.IsAttached": "true"},
                },
            }
        ],
    }
    good = device("t", thing_type_name="Thing_Type_Name", thing_attributes={"attributeName": "attributeValue"})
    check(
        policy,
        [
            ("iot:Publish", "topic", "device/stats", good, True),
            ("iot:Publish", "topic", "device/stats", device("t", thing_type_name="Thing_Type_Name"), False),
            (
                "iot:Publish",
                "topic",
                "device/stats",
                device("t", thing_type_name="Other", thing_attributes={"attributeName": "attributeValue"}),
                False,
            ),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/thing-policy-examples.html
# Publish to a topic that starts with a thing attribute; an unattached certificate leaves the
# variable unresolved, "and will result in an access denied error".
def test_publish_under_a_thing_attribute() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": "arn:aws:iot:us-east-1:123456789012:topic/${iot:Connection.Thing.Attributes[attributeName]}/*",
            }
        ],
    }
    fields = {"thing_attributes": {"attributeName": "building-a"}}
    check(
        policy,
        [
            ("iot:Publish", "topic", "building-a/temp", device("t", **fields), True),
            ("iot:Publish", "topic", "building-b/temp", device("t", **fields), False),
            ("iot:Publish", "topic", "building-a/temp", device("t", thing_attached=False, **fields), False),
        ],
    )


ORGANIZATION_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Connect"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
        },
        {
            "Effect": "Allow",
            "Action": ["iot:Publish"],
            "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/my/topic/${iot:Connection.Thing.ThingName}"],
            "Condition": {
                "ForAllValues:StringEquals": {
                    "iot:Certificate.Subject.Organization.List": ["Example Corp", "AnyCompany"]
                }
            },
        },
    ],
}


# https://docs.aws.amazon.com/iot/latest/developerguide/cert-policy-variables.html
# Publish to the thing's topic only with a certificate whose Organization is Example Corp or AnyCompany.
@pytest.mark.parametrize(
    ("organizations", "expected"),
    [(("Example Corp",), True), (("AnyCompany", "Example Corp"), True), (("Other Corp",), False)],
)
def test_publish_by_certificate_organization(organizations: tuple[str, ...], expected: bool) -> None:
    certificate = CertificateInfo(subject={"CommonName": ("thing1",), "Organization": organizations})
    context = device("thing1", certificate=certificate)

    assert allowed(ORGANIZATION_POLICY, "iot:Publish", "topic", "my/topic/thing1", context=context) is expected
    assert not allowed(ORGANIZATION_POLICY, "iot:Publish", "topic", "my/topic/thing2", context=context)


# https://docs.aws.amazon.com/iot/latest/developerguide/certificate-policy-examples.html
# Publish to a topic named after the certificate id, or after the subject's common name.
def test_publish_to_certificate_id_and_common_name_topics() -> None:
    by_id = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:CertificateId}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Connection.Thing.ThingName}"],
            },
        ],
    }
    by_name = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Certificate.Subject.CommonName}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:client/client1",
                    "arn:aws:iot:us-east-1:123456789012:client/client2",
                    "arn:aws:iot:us-east-1:123456789012:client/client3",
                ],
            },
        ],
    }
    certificate = CertificateInfo(subject={"CommonName": ("sensor-9",)})
    thing = device("thing1", certificate_id="4f1a9c", certificate=certificate)
    check(
        by_id,
        [
            ("iot:Publish", "topic", "4f1a9c", thing, True),
            ("iot:Publish", "topic", "thing1", thing, False),
            ("iot:Connect", "client", "thing1", thing, True),
        ],
    )
    check(
        by_name,
        [
            ("iot:Publish", "topic", "sensor-9", client("client2", certificate=certificate), True),
            ("iot:Publish", "topic", "client2", client("client2", certificate=certificate), False),
            ("iot:Connect", "client", "client4", client("client4", certificate=certificate), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/certificate-policy-examples.html
# Publish under admin/ when the third common name (index 2) is Administrator, or when any of
# the common names is Administrator (ForAnyValue on CommonName.List).
def test_publish_as_administrator_by_common_name() -> None:
    by_index = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/admin/*"],
                "Condition": {"StringEquals": {"iot:Certificate.Subject.CommonName.2": "Administrator"}},
            }
        ],
    }
    by_any = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/admin/${iot:Connection.Thing.ThingName}"],
                "Condition": {"ForAnyValue:StringEquals": {"iot:Certificate.Subject.CommonName.List": "Administrator"}},
            }
        ],
    }
    third = CertificateInfo(subject={"CommonName": ("thing1", "Operator", "Administrator")})
    second = CertificateInfo(subject={"CommonName": ("thing1", "Administrator")})
    plain = CertificateInfo(subject={"CommonName": ("thing1",)})
    check(
        by_index,
        [
            ("iot:Publish", "topic", "admin/reset", device("thing1", certificate=third), True),
            ("iot:Publish", "topic", "admin/reset", device("thing1", certificate=second), False),
        ],
    )
    check(
        by_any,
        [
            ("iot:Publish", "topic", "admin/thing1", device("thing1", certificate=second), True),
            ("iot:Publish", "topic", "admin/thing1", device("thing1", certificate=third), True),
            ("iot:Publish", "topic", "admin/thing1", device("thing1", certificate=plain), False),
            ("iot:Publish", "topic", "admin/thing2", device("thing1", certificate=second), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/use-policy-variables.html
# Client id must be the certificate serial number in decimal (92:12:85:cb:b7:a5:e0:86 is
# 10525622389124227206), and publish under <Organization>/device-stats/<client id>/.
def test_serial_number_client_id_and_organization_topic() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/${iot:Certificate.SerialNumber}"],
            },
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": [
                    "arn:aws:iot:us-east-1:123456789012:topic/${iot:Certificate.Subject.Organization}/device-stats/${iot:ClientId}/*"
                ],
            },
        ],
    }
    serial = str(0x921285CBB7A5E086)
    certificate = CertificateInfo(subject={"Organization": ("IoT Devices",)}, serial_number=serial)
    without_organization = CertificateInfo(serial_number=serial)
    check(
        policy,
        [
            ("iot:Connect", "client", "10525622389124227206", client(serial, certificate=certificate), True),
            (
                "iot:Connect",
                "client",
                "92:12:85:cb:b7:a5:e0:86",
                client("92:12:85:cb:b7:a5:e0:86", certificate=certificate),
                False,
            ),
            (
                "iot:Publish",
                "topic",
                f"IoT Devices/device-stats/{serial}/cpu",
                client(serial, certificate=certificate),
                True,
            ),
            (
                "iot:Publish",
                "topic",
                f"IoT Devices/device-stats/{serial}/cpu",
                client(serial, certificate=without_organization),
                False,
            ),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/use-policy-variables.html
# Null condition: connect only with certificates that have a serial number and a common name.
def test_null_condition_on_certificate_variables() -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Connect"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:client/*"],
                "Condition": {
                    "Null": {"iot:Certificate.SerialNumber": "false", "iot:Certificate.Subject.CommonName": "false"}
                },
            }
        ],
    }
    complete = CertificateInfo(subject={"CommonName": ("lamp",)}, serial_number="42")
    check(
        policy,
        [
            ("iot:Connect", "client", "lamp", client("lamp", certificate=complete), True),
            ("iot:Connect", "client", "lamp", client("lamp", certificate=CertificateInfo(serial_number="42")), False),
            ("iot:Connect", "client", "lamp", client("lamp"), False),
        ],
    )


# https://docs.aws.amazon.com/iot/latest/developerguide/use-policy-variables.html
# "X.509 Certificate policy variable limitations": a certificate attribute holding *, $, +, ? or #
# is not substituted; the ${...} text stays and authorization fails.
@pytest.mark.parametrize("organization", ["Acme*", "Acme$", "Acme+", "Acme?", "Acme#"])
def test_certificate_attribute_with_wildcards_is_not_substituted(organization: str) -> None:
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["iot:Publish"],
                "Resource": ["arn:aws:iot:us-east-1:123456789012:topic/${iot:Certificate.Subject.Organization}/*"],
            }
        ],
    }
    context = client("c", certificate=CertificateInfo(subject={"Organization": (organization,)}))

    assert not allowed(policy, "iot:Publish", "topic", f"{organization}/x", context=context)
    assert not allowed(policy, "iot:Publish", "topic", "Acme/x", context=context)
