"""The template's IoT rules on the local endpoint: a registration started as AWS IoT starts it, telemetry archived."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jitr import pki
from jitr.local.errors import TemplateError
from jitr.local.registration import LocalIot
from jitr.local.rules import object_key, topic_matches
from jitr.local.server import LocalEndpoint
from jitr.local.stack import LocalStack

Aws = Callable[[str], Any]


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("$aws/events/certificates/registered/+", "$aws/events/certificates/registered/abc", True),
        ("$aws/events/certificates/registered/+", "$aws/events/certificates/registered/abc/x", False),
        ("$aws/events/certificates/registered/+", "$aws/events/certificates/registered", False),
        ("dt/+/+/telemetry", "dt/plant/device-1/telemetry", True),
        ("dt/+/+/telemetry", "dt/plant/device-1/shadow", False),
        ("dt/#", "dt/a/b/c", True),
        ("dt/#", "other/a", False),
    ],
)
def test_topic_filters_match_as_mqtt_does(topic_filter: str, topic: str, expected: bool) -> None:
    assert topic_matches(topic_filter, topic) is expected


def test_s3_keys_substitute_topic_and_timestamp() -> None:
    key = object_key("${topic()}/${timestamp()}.json", "dt/a/b/telemetry")
    prefix, _, name = key.rpartition("/")
    assert prefix == "dt/a/b/telemetry"
    assert name.removesuffix(".json").isdigit()


def test_a_registration_published_as_aws_iot_does_activates_the_certificate(endpoint: LocalEndpoint, aws: Aws) -> None:
    iot, sfn = aws("iot"), aws("stepfunctions")
    ca = pki.create_ca("Local Registration CA")
    device = pki.issue_device_certificate(ca, "rules-device-1")
    ca_id = iot.register_ca_certificate(caCertificate=ca.cert_pem, setAsActive=True, allowAutoRegistration=True)[
        "certificateId"
    ]
    cert_id = iot.register_certificate(
        certificatePem=device.cert_pem, caCertificatePem=ca.cert_pem, status="PENDING_ACTIVATION"
    )["certificateId"]

    event = LocalIot.registration_event(cert_id, ca_id)
    deliveries = endpoint.stack.rules.publish(f"$aws/events/certificates/registered/{ca_id}", event)

    assert [(d.rule, d.action) for d in deliveries] == [("jitr_RegistrationRule", "StepFunctions")]
    execution_arn = deliveries[0].target
    assert execution_arn.rsplit(":", 1)[-1].startswith("jitr-")
    assert LocalIot(endpoint.stack).wait(execution_arn, timeout=30)["status"] == "SUCCEEDED"
    certificate = iot.describe_certificate(certificateId=cert_id)["certificateDescription"]
    assert certificate["status"] == "ACTIVE"
    assert iot.list_principal_things(principal=certificate["certificateArn"])["things"] == ["rules-device-1"]
    assert json.loads(sfn.describe_execution(executionArn=execution_arn)["input"]) == event


def test_telemetry_is_archived_under_the_topic_and_a_timestamp(endpoint: LocalEndpoint, aws: Aws) -> None:
    message = {"temperature": 21.5}
    deliveries = endpoint.stack.rules.publish("dt/plant/device-1/telemetry", message)

    assert [(d.rule, d.action) for d in deliveries] == [("jitr_TelemetryRule", "S3")]
    bucket, _, key = deliveries[0].target.removeprefix("s3://").partition("/")
    assert key.startswith("dt/plant/device-1/telemetry/")
    assert key.endswith(".json")
    assert json.loads(aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()) == message


def test_a_topic_no_rule_selects_is_delivered_nowhere(endpoint: LocalEndpoint) -> None:
    assert endpoint.stack.rules.publish("dt/plant/device-1/shadow", {"x": 1}) == []


def _template_with_rule(directory: Path, sql: str, action: str) -> Path:
    path = directory / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  OddRule:\n"
        "    Type: AWS::IoT::TopicRule\n"
        "    Properties:\n"
        "      TopicRulePayload:\n"
        f'        Sql: "{sql}"\n'
        "        Actions:\n"
        f"          - {action}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("sql", "action", "message"),
    [
        ("SELECT upper(x) FROM 'dt/+'", "S3: {BucketName: b, Key: k}", "unsupported function upper()"),
        ("SELECT * FROM 'dt/+' WHERE x LIKE 1", "S3: {BucketName: b, Key: k}", "unsupported 'LIKE'"),
        ("SELECT * FROM 'dt/+'", "Lambda: {FunctionArn: f}", "not Lambda"),
        ("SELECT * FROM 'dt/+'", "S3: {BucketName: b, Key: '${clientid()}'}", "not ${clientid()}"),
    ],
)
def test_a_rule_the_local_engine_cannot_run_is_refused_at_startup(
    tmp_path: Path, sql: str, action: str, message: str
) -> None:
    with pytest.raises(TemplateError, match="OddRule") as refused:
        LocalStack(_template_with_rule(tmp_path, sql, action))
    assert message in str(refused.value)
