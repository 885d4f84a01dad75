"""Audit checks: the workflow's device policy passes clean, and each check finds what it is for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jitr_core.policy import Finding, Severity, audit_policy, has_high

from .helpers import allow, deny, document

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "functions" / "ensure_policy" / "device_policy.json"
ANY = "arn:aws:iot:*:*:"
THING = "${iot:Connection.Thing.ThingName}"
CLIENT = "${iot:ClientId}"


def checks(policy: dict[str, Any]) -> list[tuple[str, Severity]]:
    return [(finding.check, finding.severity) for finding in audit_policy(policy)]


def test_the_workflow_device_policy_has_no_finding() -> None:
    # The workflow's own policy: every resource is its thing's, Connect needs the attached thing.
    findings = audit_policy(DEFAULT_POLICY.read_text(), DEFAULT_POLICY.name)

    assert findings == [], [f.to_json() for f in findings]


def test_a_well_scoped_policy_with_client_ids_and_jobs_has_no_finding() -> None:
    policy = document(
        allow("iot:Connect", f"{ANY}client/{THING}"),
        allow(
            ["iot:Publish", "iot:Receive"],
            [f"{ANY}topic/$aws/things/{THING}/shadow/*", f"{ANY}topic/$aws/things/{THING}/jobs/*"],
        ),
        allow("iot:Subscribe", f"{ANY}topicfilter/$aws/things/{THING}/jobs/#"),
        allow(["iot:GetThingShadow", "iot:UpdateThingShadow"], f"{ANY}thing/{THING}"),
        allow("iot:Publish", f"{ANY}topic/cmd/{CLIENT}/ack"),
        allow("iot:Connect", [f"{ANY}client/gateway-1", f"{ANY}client/gateway-2"]),
    )

    assert checks(policy) == []


@pytest.mark.parametrize("action", ["*", "iot:*"])
def test_wildcard_action_is_high(action: str) -> None:
    assert ("wildcard-action", Severity.HIGH) in checks(document(allow(action, f"{ANY}topic/dt/{THING}/*")))


def test_a_partial_wildcard_action_is_low() -> None:
    assert checks(document(allow("iot:*ThingShadow", f"{ANY}thing/{THING}"))) == [("wildcard-action", Severity.LOW)]


def test_allow_with_not_action_or_not_resource_is_high() -> None:
    not_action = document({"Effect": "Allow", "NotAction": "iot:Connect", "Resource": f"{ANY}topic/dt/{THING}/*"})
    not_resource = document({"Effect": "Allow", "Action": "iot:Publish", "NotResource": f"{ANY}topic/admin/*"})

    assert ("allow-not-action", Severity.HIGH) in checks(not_action)
    assert checks(not_resource) == [("allow-not-resource", Severity.HIGH)]


@pytest.mark.parametrize(
    "resource",
    [f"{ANY}client/*", "*", f"{ANY}client/device-*", f"{ANY}client/{CLIENT}", f"{ANY}*"],
)
def test_connect_for_any_client_id_is_high(resource: str) -> None:
    assert checks(document(allow("iot:Connect", resource))) == [("connect-any-client", Severity.HIGH)]


def test_connect_by_client_id_variable_with_the_is_attached_condition_passes() -> None:
    # Device Defender's own compliant form for ${iot:ClientId}.
    condition = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}

    assert checks(document(allow("iot:Connect", f"{ANY}client/{CLIENT}", Condition=condition))) == []


def test_connect_widened_beside_the_thing_variable_is_high() -> None:
    policy = document(allow("iot:Connect", f"{ANY}client/{THING}*"))

    assert checks(policy) == [("variable-widened", Severity.HIGH)]


@pytest.mark.parametrize(
    ("action", "resource", "severity"),
    [
        ("iot:Publish", f"{ANY}topic/dt/*", Severity.HIGH),
        ("iot:Subscribe", f"{ANY}topicfilter/dt/*", Severity.HIGH),
        ("iot:Subscribe", f"{ANY}topicfilter/dt/+/telemetry", Severity.HIGH),  # + is an MQTT wildcard filter
        ("iot:Subscribe", f"{ANY}topicfilter/#", Severity.HIGH),
        ("iot:Receive", f"{ANY}topic/dt/*", Severity.MEDIUM),  # receiving also needs a subscription
        ("iot:RetainPublish", f"{ANY}topic/*", Severity.HIGH),
        ("iot:Publish", "*", Severity.HIGH),
    ],
)
def test_unscoped_topics(action: str, resource: str, severity: Severity) -> None:
    assert checks(document(allow(action, resource))) == [("unscoped-topic", severity)]


@pytest.mark.parametrize(
    "name",
    [
        f"dt/{CLIENT}*",  # dt/device-1 also reaches dt/device-10/...
        f"dt/*{THING}/x",
        f"dt/*/{THING}/x",  # a wildcard before the variable reaches dt/<other>/<me>/x
        f"dt/?{CLIENT}",
    ],
)
def test_a_wildcard_that_widens_a_variable_scoped_topic_is_high(name: str) -> None:
    assert checks(document(allow("iot:Publish", f"{ANY}topic/{name}"))) == [("variable-widened", Severity.HIGH)]


def test_wildcards_after_the_scoping_level_are_fine() -> None:
    policy = document(
        allow("iot:Publish", f"{ANY}topic/dt/{THING}/*"), allow("iot:Subscribe", f"{ANY}topicfilter/dt/{CLIENT}/#")
    )

    assert checks(policy) == []


@pytest.mark.parametrize(
    ("action", "resource", "severity"),
    [
        ("iot:Publish", f"{ANY}topic/$aws/things/*/shadow/update", Severity.HIGH),
        ("iot:Publish", f"{ANY}topic/$aws/things/*", Severity.HIGH),
        ("iot:Subscribe", f"{ANY}topicfilter/$aws/things/+/shadow/update", Severity.HIGH),
        ("iot:Subscribe", f"{ANY}topicfilter/$aws/things/#", Severity.HIGH),
        ("iot:Receive", f"{ANY}topic/$aws/things/*", Severity.MEDIUM),
        ("iot:Publish", f"{ANY}topic/$aws/things/lamp-1/shadow/update", Severity.MEDIUM),
        ("iot:UpdateThingShadow", f"{ANY}thing/*", Severity.HIGH),
        ("iot:DescribeJobExecution", "*", Severity.HIGH),
        ("iot:GetThingShadow", f"{ANY}thing/lamp-1", Severity.MEDIUM),
    ],
)
def test_shadow_and_job_access_to_other_things(action: str, resource: str, severity: Severity) -> None:
    assert checks(document(allow(action, resource))) == [("other-thing-shadow", severity)]


def test_listing_retained_messages_is_medium() -> None:
    assert checks(document(allow("iot:ListRetainedMessages", "*"))) == [("retained-access", Severity.MEDIUM)]


def test_a_fixed_shared_topic_is_low() -> None:
    assert checks(document(allow("iot:Subscribe", f"{ANY}topicfilter/fleet/announcements"))) == [
        ("shared-topic", Severity.LOW)
    ]


def test_a_resource_of_the_wrong_type_is_reported() -> None:
    # The classic mistake: publishing needs topic/, a topicfilter/ resource never matches.
    policy = document(allow("iot:Publish", f"{ANY}topicfilter/dt/{THING}/*"))

    assert checks(policy) == [("resource-type-mismatch", Severity.MEDIUM)]


def test_variables_in_a_2008_policy_are_reported() -> None:
    policy = document(allow("iot:Publish", f"{ANY}topic/dt/{THING}/*"), version="2008-10-17")

    assert ("variables-not-substituted", Severity.MEDIUM) in checks(policy)


def test_an_unknown_variable_is_reported() -> None:
    # https://docs.aws.amazon.com/iot/latest/developerguide/pub-sub-policy.html once showed ${iot:Thing.ThingName}.
    policy = document(deny("iot:Publish", f"{ANY}topic/${{iot:Thing.ThingName}}/bar"))

    assert ("unknown-variable", Severity.MEDIUM) in checks(policy)


def test_a_deny_scoped_by_a_variable_is_noted() -> None:
    policy = document(
        allow("iot:Publish", f"{ANY}topic/dt/{THING}/*"),
        deny("iot:Publish", f"{ANY}topic/dt/{THING}/admin"),
    )

    assert checks(policy) == [("deny-needs-variable", Severity.LOW)]


def test_for_all_values_in_an_allow_is_noted() -> None:
    condition = {"ForAllValues:StringEquals": {"iot:Certificate.Subject.Organization.List": ["Example Corp"]}}
    policy = document(allow("iot:Publish", f"{ANY}topic/dt/{THING}/*", Condition=condition))

    assert checks(policy) == [("allow-for-all-values", Severity.LOW)]


def test_findings_name_their_statement_and_sort_most_severe_first() -> None:
    policy = document(
        allow("iot:Subscribe", f"{ANY}topicfilter/fleet/news", Sid="News"),
        allow("iot:Publish", f"{ANY}topic/dt/*", Sid="Telemetry"),
    )

    findings = audit_policy(json.dumps(policy), "fleet.json")

    assert [f.check for f in findings] == ["unscoped-topic", "shared-topic"]
    assert findings[0].statement == "fleet.json Statement[1] (Sid Telemetry)"
    assert findings[0].resource == f"{ANY}topic/dt/*"
    assert findings[0].to_json()["severity"] == "HIGH"
    assert has_high(findings)
    assert not has_high(findings[1:])


def test_findings_are_plain_values() -> None:
    finding = Finding(Severity.LOW, "shared-topic", "p", 0, None, "m")

    assert finding.statement == "p Statement[0]"
    assert finding.to_json()["resource"] is None
