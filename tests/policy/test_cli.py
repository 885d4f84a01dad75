"""``jitr policy test|explain|audit`` as a user runs them: output, JSON, exit status, usage errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jitr_core.policy.x509 import certificate_info

from jitr.cli import main

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "functions" / "ensure_policy" / "device_policy.json"
SERIAL = 0x921285CBB7A5E086


def runner() -> CliRunner:
    """stdout and stderr apart (click 8.1 needs asking; 8.2 always does it)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return CliRunner()


def jitr(*args: str) -> tuple[int, str, str]:
    result = runner().invoke(main, ["policy", *args])
    return result.exit_code, result.stdout, result.stderr


def write(tmp_path: Path, name: str, policy: object) -> str:
    path = tmp_path / name
    path.write_text(policy if isinstance(policy, str) else json.dumps(policy))
    return str(path)


def device_certificate() -> x509.Certificate:
    """A self-signed certificate with the subject fields AWS IoT exposes as policy variables."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "IoT Devices"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "LightBulb"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "NY"),
            x509.NameAttribute(NameOID.COMMON_NAME, "lamp-7"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Administrator"),
        ]
    )
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fleet CA")]))
        .public_key(key.public_key())
        .serial_number(SERIAL)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("lamp-7.example.com"), x509.RFC822Name("lamp@example.com")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def cert_file(tmp_path: Path) -> str:
    path = tmp_path / "lamp.pem"
    path.write_bytes(device_certificate().public_bytes(serialization.Encoding.PEM))
    return str(path)


def test_allow_prints_the_deciding_statement_and_exits_0() -> None:
    code, out, _ = jitr(
        "test",
        "--policy",
        str(DEFAULT_POLICY),
        "--action",
        "iot:Publish",
        "--topic",
        "dt/device-001/1/telemetry",
        "--client-id",
        "device-001",
        "--thing-name",
        "device-001",
    )

    assert code == 0
    assert out.splitlines()[0] == (
        "ALLOW  iot:Publish arn:aws:iot:us-east-1:123456789012:topic/dt/device-001/1/telemetry"
    )
    assert "device_policy.json Statement[1] (Sid PublishOwnTopics)" in out


def test_deny_exits_1_and_json_tells_why() -> None:
    code, out, _ = jitr(
        "test",
        "--policy",
        str(DEFAULT_POLICY),
        "--action",
        "iot:Publish",
        "--topic",
        "dt/device-002/1/telemetry",
        "--thing-name",
        "device-001",
        "--json",
    )

    report = json.loads(out)
    assert code == 1
    assert report["decision"] == "DENY"
    assert report["allowed"] is False
    assert report["statementIndex"] is None
    assert report["resource"] == "arn:aws:iot:us-east-1:123456789012:topic/dt/device-002/1/telemetry"
    assert report["context"]["clientId"] == "device-001"  # the client id defaults to the thing name


def test_an_explicit_deny_is_named(tmp_path: Path) -> None:
    policy = write(
        tmp_path,
        "guard.json",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:*", "Resource": "*"},
                {
                    "Sid": "NoAdmin",
                    "Effect": "Deny",
                    "Action": "iot:Publish",
                    "Resource": "arn:aws:iot:*:*:topic/admin",
                },
            ],
        },
    )

    code, out, _ = jitr("test", "--policy", policy, "--action", "iot:Publish", "--topic", "admin", "--json")

    assert code == 1
    assert (json.loads(out)["effect"], json.loads(out)["sid"], json.loads(out)["policy"]) == (
        "Deny",
        "NoAdmin",
        "guard.json",
    )


def test_subscribe_maps_the_topic_to_a_topic_filter_and_connect_to_the_client_id() -> None:
    common = ["test", "--policy", str(DEFAULT_POLICY), "--thing-name", "lamp", "--json"]

    code, out, _ = jitr(*common, "--action", "iot:Subscribe", "--topic", "dt/lamp/#")
    assert (code, json.loads(out)["resource"]) == (0, "arn:aws:iot:us-east-1:123456789012:topicfilter/dt/lamp/#")

    code, out, _ = jitr(*common, "--action", "iot:Connect", "--region", "eu-west-1", "--account", "111")
    assert (code, json.loads(out)["resource"]) == (0, "arn:aws:iot:eu-west-1:111:client/lamp")

    code, _, _ = jitr(*common, "--action", "iot:Connect", "--not-attached")
    assert code == 1

    code, _, _ = jitr(*common, "--action", "iot:Connect", "--client-id", "other")
    assert code == 1


def test_several_policies_and_a_resource_arn(tmp_path: Path) -> None:
    shadow = write(
        tmp_path,
        "shadow.json",
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": "iot:GetThingShadow",
                "Resource": "arn:aws:iot:*:*:thing/${iot:Connection.Thing.ThingName}",
            },
        },
    )
    base = ["test", "--policy", str(DEFAULT_POLICY), "--policy", shadow, "--thing-name", "lamp"]

    assert jitr(*base, "--action", "iot:GetThingShadow")[0] == 0  # a thing action defaults to the thing
    assert jitr(*base, "--action", "iot:GetThingShadow", "--resource", "arn:aws:iot:us-east-1:1:thing/other")[0] == 1
    assert jitr(*base, "--action", "iot:ListRetainedMessages")[0] == 1


def test_request_keys_reach_conditions(tmp_path: Path) -> None:
    # The guide's persistent-session example: connect with LastWill and nothing else.
    policy = write(
        tmp_path,
        "sessions.json",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Connect",
                    "Resource": "*",
                    "Condition": {"ForAllValues:StringEquals": {"iot:ConnectAttributes": ["LastWill"]}},
                }
            ],
        },
    )
    base = ["test", "--policy", policy, "--action", "iot:Connect", "--client-id", "c"]

    assert jitr(*base, "--request-key", "iot:ConnectAttributes=LastWill")[0] == 0
    assert (
        jitr(
            *base,
            "--request-key",
            "iot:ConnectAttributes=LastWill",
            "--request-key",
            "iot:ConnectAttributes=PersistentConnect",
        )[0]
        == 1
    )
    assert jitr(*base, "--request-key", "oops")[0] == 2


def test_cert_fills_the_certificate_variables(tmp_path: Path, cert_file: str) -> None:
    policy = write(
        tmp_path,
        "cert.json",
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "iot:Publish",
                    "Resource": "arn:aws:iot:*:*:topic/${iot:Certificate.Subject.Organization}/${iot:Certificate.SerialNumber}/*",
                    "Condition": {"StringEquals": {"iot:Certificate.Subject.CommonName.1": "Administrator"}},
                }
            ],
        },
    )
    topic = f"IoT Devices/{SERIAL}/status"

    code, out, _ = jitr(
        "test",
        "--policy",
        policy,
        "--action",
        "iot:Publish",
        "--topic",
        topic,
        "--cert",
        cert_file,
        "--client-id",
        "x",
        "--json",
    )
    assert code == 0, out
    certificate = json.loads(out)["context"]["certificate"]
    assert certificate["subject"]["CommonName"] == ["lamp-7", "Administrator"]
    assert len(json.loads(out)["context"]["certificateId"]) == 64

    assert jitr("test", "--policy", policy, "--action", "iot:Publish", "--topic", topic, "--client-id", "x")[0] == 1


def test_certificate_info_maps_x509_fields_to_aws_names() -> None:
    info = certificate_info(device_certificate())

    assert info.subject == {
        "Country": ("US",),
        "Organization": ("IoT Devices",),
        "OrganizationalUnit": ("LightBulb",),
        "State": ("NY",),
        "CommonName": ("lamp-7", "Administrator"),
    }
    assert info.issuer == {"CommonName": ("Fleet CA",)}
    assert info.subject_alternative_names == {"DNSName": ("lamp-7.example.com",), "RFC822Name": ("lamp@example.com",)}
    assert info.issuer_alternative_names == {}
    assert info.serial_number == "10525622389124227206"


def test_attributes_and_thing_type(tmp_path: Path) -> None:
    policy = write(
        tmp_path,
        "attributes.json",
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": "arn:aws:iot:*:*:topic/${iot:Connection.Thing.Attributes[site]}/*",
                "Condition": {"StringEquals": {"iot:Connection.Thing.ThingTypeName": "light"}},
            },
        },
    )
    base = ["test", "--policy", policy, "--thing-name", "lamp", "--action", "iot:Publish", "--topic", "paris/t"]

    assert jitr(*base, "--attribute", "site=paris", "--thing-type", "light")[0] == 0
    assert jitr(*base, "--attribute", "site=paris")[0] == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--action", "iot:Publish"], "needs --topic"),
        (["--action", "Publish", "--topic", "t"], "AWS IoT action"),
        (["--action", "iot:Connect"], "needs --client-id"),
        (["--action", "iot:Publish", "--topic", "t", "--resource", "*"], "not both"),
        (["--action", "iot:CreateThing"], "give --resource"),
        (["--action", "iot:GetThingShadow"], "needs --resource"),
        (["--action", "iot:Publish", "--topic", "t", "--attribute", "novalue"], "NAME=VALUE"),
        (["--action", "iot:Publish", "--topic", "t", "--cert", "/nonexistent.pem"], "cannot read certificate"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], message: str) -> None:
    code, out, err = jitr("test", "--policy", str(DEFAULT_POLICY), *args)

    assert code == 2
    assert out == ""
    assert err.startswith("jitr: error: "), err
    assert message in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*"}]}, "Resource"),
        (
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "iot:*",
                        "Resource": "*",
                        "Condition": {"BinaryEquals": {"k": "AA=="}},
                    }
                ],
            },
            "unsupported condition operator 'BinaryEquals'",
        ),
    ],
)
def test_a_bad_policy_is_a_usage_error_in_every_command(tmp_path: Path, content: object, message: str) -> None:
    policy = write(tmp_path, "bad.json", content)

    for args in (
        ["test", "--policy", policy, "--action", "iot:Connect", "--client-id", "c"],
        ["explain", "--policy", policy, "--thing-name", "t"],
        ["audit", policy],
    ):
        code, _, err = jitr(*args)
        assert code == 2, (args, err)
        assert message in err, (args, err)


def test_a_missing_policy_file_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = jitr("audit", str(tmp_path / "absent.json"))

    assert code == 2
    assert "cannot read policy" in err


def test_click_usage_errors_exit_2() -> None:
    assert jitr("test", "--action", "iot:Publish")[0] == 2  # --policy is required
    assert jitr("explain", "--policy", str(DEFAULT_POLICY))[0] == 2  # --thing-name is required


def test_explain_lists_the_concrete_topics_of_a_thing() -> None:
    code, out, _ = jitr("explain", "--policy", str(DEFAULT_POLICY), "--thing-name", "lamp-7")

    assert code == 0
    assert "allow client lamp-7" in out
    assert "allow topic dt/lamp-7/*  (wildcard pattern)" in out
    assert "allow topicfilter $aws/things/lamp-7/shadow/update/accepted" in out
    assert "device-001" not in out
    assert "${" not in out


def test_explain_json_and_a_device_that_gets_nothing() -> None:
    code, out, _ = jitr(
        "explain", "--policy", str(DEFAULT_POLICY), "--thing-name", "lamp", "--client-id", "x", "--json"
    )

    report = json.loads(out)
    assert code == 0
    assert report["context"]["clientId"] == "x"
    assert report["actions"] == {"iot:Connect": [], "iot:Publish": [], "iot:Subscribe": [], "iot:Receive": []}

    code, out, _ = jitr("explain", "--policy", str(DEFAULT_POLICY), "--thing-name", "lamp", "--not-attached")
    assert out.count("nothing allowed") == 4


def test_audit_of_the_default_policy_is_clean() -> None:
    # The workflow's test suite runs the audit on the policy EnsurePolicy deploys.
    code, out, _ = jitr("audit", str(DEFAULT_POLICY))

    assert code == 0
    assert out.startswith("no findings")


def test_audit_exits_1_on_a_high_finding_and_0_on_lesser_ones(tmp_path: Path) -> None:
    broad = write(
        tmp_path,
        "broad.json",
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]},
    )
    shared = write(
        tmp_path,
        "shared.json",
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": "arn:aws:iot:*:*:topicfilter/news"}
            ],
        },
    )

    code, out, _ = jitr("audit", broad)
    assert code == 1
    assert "HIGH" in out
    assert "wildcard-action" in out
    assert "broad.json Statement[0]" in out

    code, out, _ = jitr("audit", shared, "--json")
    assert code == 0
    assert [f["check"] for f in json.loads(out)["findings"]] == ["shared-topic"]
    assert json.loads(out)["high"] is False


def test_the_policy_group_is_on_the_main_command() -> None:
    result = runner().invoke(main, ["--help"])

    assert "policy" in result.stdout
