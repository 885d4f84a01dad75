"""explain(): the concrete resources a device's policies grant it, per action."""

from __future__ import annotations

import json
from pathlib import Path

from jitr_core.policy import ConnectionContext, Grant, compile_policy, explain, thing_context

from .helpers import PREFIX, allow, deny, document

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "functions" / "ensure_policy" / "device_policy.json"
THING = "${iot:Connection.Thing.ThingName}"


def names(grants: list[Grant], effect: str = "Allow") -> list[str]:
    return [grant.name for grant in grants if grant.effect == effect]


def test_the_default_policy_for_one_thing() -> None:
    explained = explain(compile_policy(DEFAULT_POLICY.read_text()), thing_context("lamp-7"))

    assert list(explained) == ["iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"]
    assert names(explained["iot:Connect"]) == ["lamp-7"]
    assert names(explained["iot:Publish"]) == [
        "dt/lamp-7/*",
        "$aws/things/lamp-7/shadow/update",
        "$aws/things/lamp-7/shadow/get",
        "$aws/things/lamp-7/shadow/delete",
    ]
    assert "$aws/things/lamp-7/shadow/update/delta" in names(explained["iot:Subscribe"])
    assert [g.wildcard for g in explained["iot:Publish"]] == [True, False, False, False]
    assert {g.resource_type for g in explained["iot:Subscribe"]} == {"topicfilter"}


def test_a_device_whose_thing_is_not_attached_gets_nothing() -> None:
    explained = explain(compile_policy(DEFAULT_POLICY.read_text()), thing_context("lamp-7", thing_attached=False))

    assert all(grants == [] for grants in explained.values())


def test_denies_exceptions_and_conditions_are_shown() -> None:
    policy = document(
        allow(["iot:Publish", "iot:GetThingShadow"], [f"{PREFIX}topic/dt/{THING}/*", f"{PREFIX}thing/{THING}"]),
        deny("iot:Publish", f"{PREFIX}topic/dt/{THING}/admin"),
        {"Effect": "Allow", "Action": "iot:Receive", "NotResource": f"{PREFIX}topic/private/*"},
        allow("iot:Connect", "*", Condition={"StringEquals": {"iot:ConnectAttributes": "LastWill"}}),
    )

    explained = explain(compile_policy(policy), thing_context("lamp"))

    publish = explained["iot:Publish"]
    assert [(g.effect, g.name) for g in publish] == [("Deny", "dt/lamp/admin"), ("Allow", "dt/lamp/*")]
    assert names(explained["iot:GetThingShadow"]) == ["lamp"]  # other actions appear when granted
    assert explained["iot:Receive"][0].excluded == (f"{PREFIX}topic/private/*",)
    assert explained["iot:Connect"][0].conditional
    assert "iot:UpdateThingShadow" not in explained
    assert json.loads(json.dumps(publish[0].to_json()))["effect"] == "Deny"


def test_resources_of_other_regions_or_accounts_are_left_out() -> None:
    policy = document(
        allow("iot:Publish", ["arn:aws:iot:eu-west-1:123456789012:topic/a", "arn:aws:iot:us-east-1:999:topic/b"]),
        allow("iot:Publish", "arn:aws:iot:us-east-1:123456789012:topic/c"),
    )

    explained = explain(compile_policy(policy), ConnectionContext(client_id="x"))

    assert names(explained["iot:Publish"]) == ["c"]


def test_literal_wildcards_are_not_reported_as_patterns() -> None:
    policy = document(allow("iot:Publish", f"{PREFIX}topic/a${{*}}b"))

    grant = explain(compile_policy(policy), ConnectionContext(client_id="x"))["iot:Publish"][0]

    assert (grant.name, grant.wildcard) == ("a${*}b", False)
