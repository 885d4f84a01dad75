"""The device policy shipped with EnsurePolicy: a device may act only as, and on the topics of, its own thing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

POLICY_FILE = Path(__file__).resolve().parents[2] / "functions" / "ensure_policy" / "device_policy.json"
THING = "${iot:Connection.Thing.ThingName}"
ARN_PREFIX = "arn:aws:iot:*:*:"
OWN_TOPIC_PREFIXES = (f"dt/{THING}/", f"$aws/things/{THING}/shadow/")


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def statements() -> list[dict[str, Any]]:
    document: dict[str, Any] = json.loads(POLICY_FILE.read_text())
    found: list[dict[str, Any]] = document["Statement"]
    return found


def grants(action: str) -> list[str]:
    """Every resource an Allow statement grants ``action`` on."""
    return [
        resource
        for statement in statements()
        if statement["Effect"] == "Allow" and action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    ]


def test_policy_version_is_the_one_that_substitutes_policy_variables() -> None:
    # With any other Version, ${iot:Connection.Thing.ThingName} is not substituted.
    assert json.loads(POLICY_FILE.read_text())["Version"] == "2012-10-17"


def test_every_resource_names_the_connected_thing() -> None:
    for statement in statements():
        for resource in as_list(statement["Resource"]):
            assert THING in resource, resource


def test_no_action_is_a_wildcard() -> None:
    for statement in statements():
        for action in as_list(statement["Action"]):
            assert "*" not in action, action
            assert action.startswith("iot:"), action


def test_only_the_four_device_actions_are_allowed() -> None:
    actions = {a for s in statements() for a in as_list(s["Action"])}
    assert actions == {"iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"}


def test_connect_is_only_as_the_own_thing_while_it_is_attached() -> None:
    assert grants("iot:Connect") == [f"{ARN_PREFIX}client/{THING}"]
    (connect,) = [s for s in statements() if "iot:Connect" in as_list(s["Action"])]
    assert connect["Condition"] == {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}


@pytest.mark.parametrize(
    ("action", "resource_type"),
    [("iot:Publish", "topic"), ("iot:Receive", "topic"), ("iot:Subscribe", "topicfilter")],
)
def test_messaging_is_only_on_the_own_topics(action: str, resource_type: str) -> None:
    resources = grants(action)
    assert resources
    for resource in resources:
        prefix = f"{ARN_PREFIX}{resource_type}/"
        assert resource.startswith(prefix), resource
        topic = resource.removeprefix(prefix)
        assert topic.startswith(OWN_TOPIC_PREFIXES), topic
        # A wildcard may only come after the thing's own prefix, never widen the thing name itself.
        assert "*" not in topic.split(THING, 1)[0]
        assert "+" not in topic
        assert "#" not in topic


def test_no_statement_uses_not_action_or_not_resource() -> None:
    for statement in statements():
        assert not {"NotAction", "NotResource"} & set(statement), statement.get("Sid")
