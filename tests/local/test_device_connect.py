"""`jitr device connect` against the local endpoint: refused, retried with backoff, then in and publishing."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jitr import pki
from jitr.commands.connect import Backoff
from jitr.local.server import LocalEndpoint
from tests.local.test_mqtt import (
    Aws,
    DeviceFiles,
    certificate_status,
    device_files,
    register_ca,
    telemetry_bucket,
    wait_for,
)

RUN_SECONDS = 60.0
JITR = [sys.executable, "-c", "from jitr.cli import main; main()"]


def jitr(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The command in its own process, as a device runs it (the endpoint's functions log to this one's stdout).

    ``env`` adds variables to this process's environment.
    """
    environment = {**os.environ, **env} if env is not None else None
    return subprocess.run(
        [*JITR, *args], capture_output=True, text=True, timeout=RUN_SECONDS, check=False, env=environment
    )


def connect(
    endpoint: LocalEndpoint, bundle: Path, key: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return jitr(
        "device",
        "connect",
        "--cert",
        str(bundle),
        "--key",
        str(key),
        "--ca-bundle",
        str(endpoint.cafile),
        "--endpoint",
        f"127.0.0.1:{endpoint.mqtt_port}",
        "--initial-delay",
        "0.2",
        "--max-delay",
        "1",
        *extra,
        env=env,
    )


def report_of(output: str) -> dict[str, Any]:
    """The one JSON object the command printed on stdout."""
    report: dict[str, Any] = json.loads(output)
    return report


def test_a_new_device_is_refused_retried_then_connected_and_its_telemetry_archived(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path
) -> None:
    register_ca(aws, ca := pki.create_ca("Connect CA"))
    files = device_files(tmp_path, ca, "connect-device-1")
    topic = f"dt/{files.name}/1/telemetry"
    result = connect(
        endpoint, files.bundle, files.key, "--attempts", "20", "--publish", topic, "--message", '{"t": 21.5}'
    )
    assert result.returncode == 0, result.stdout + result.stderr
    refused = result.stdout.index("attempt 1: refused (not authorized) — retrying in ")
    connected = result.stdout.index(f": connected as {files.name}\n")
    assert refused < connected < result.stdout.index(f"published to {topic}\n")
    assert certificate_status(aws, files.certificate_id) == "ACTIVE"
    s3, bucket = aws("s3"), telemetry_bucket(endpoint)
    keys = wait_for(
        lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{topic}/").get("Contents", [])],
        "the archived message",
    )
    assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == b'{"t": 21.5}'


def test_json_reports_attempts_connected_published_and_elapsed(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path
) -> None:
    register_ca(aws, ca := pki.create_ca("Connect JSON CA"))
    files = device_files(tmp_path, ca, "connect-device-2")
    result = connect(endpoint, files.bundle, files.key, "--attempts", "20", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = report_of(result.stdout)
    assert set(report) == {"attempts", "connected", "published", "elapsed"}
    assert report["attempts"] >= 2
    assert report["connected"] is True
    assert report["published"] is None
    assert report["elapsed"] > 0
    assert "attempt 1: refused (not authorized)" in result.stderr


def test_a_device_of_an_unknown_ca_fails_at_once_with_a_tls_error(endpoint: LocalEndpoint, tmp_path: Path) -> None:
    files = device_files(tmp_path, pki.create_ca("Unknown CA"), "stranger-device")
    started = time.monotonic()
    result = connect(endpoint, files.bundle, files.key, "--initial-delay", "5", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert time.monotonic() - started < 5
    errors = [line for line in result.stderr.splitlines() if line.startswith("jitr: error:")]
    assert len(errors) == 1
    assert errors[0].startswith(f"jitr: error: TLS handshake with 127.0.0.1:{endpoint.mqtt_port} failed: ")
    report = report_of(result.stdout)
    assert (report["attempts"], report["connected"], report["published"]) == (1, False, None)


def test_a_refused_device_gives_up_after_its_attempts(endpoint: LocalEndpoint, aws: Aws, tmp_path: Path) -> None:
    register_ca(aws, ca := pki.create_ca("No Auto CA"), auto_registration=False)
    files = device_files(tmp_path, ca, "never-device")
    result = connect(endpoint, files.bundle, files.key, "--attempts", "2", "--initial-delay", "0.01")
    assert result.returncode == 1
    assert "attempt 2: refused (not authorized)\n" in result.stdout
    assert result.stderr.strip() == "jitr: error: not connected after 2 attempts"


def test_a_missing_file_or_a_key_of_another_certificate_is_a_usage_error(
    endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    ca = pki.create_ca("Usage CA")
    one, other = device_files(tmp_path, ca, "one"), device_files(tmp_path, ca, "other")
    missing = connect(endpoint, tmp_path / "absent.pem", one.key)
    assert missing.returncode == 2
    assert missing.stderr.startswith("jitr: error: cannot read device certificate ")
    assert missing.stderr.count("\n") == 1
    mismatched = connect(endpoint, one.bundle, other.key)
    assert mismatched.returncode == 2
    assert mismatched.stderr.strip() == f"jitr: error: {other.key} is not the key of the certificate in {one.bundle}"


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    backoff = Backoff(attempts=8, initial=1.0, cap=30.0)
    highest = [backoff.delay(n, lambda low, high: high) for n in range(1, 8)]
    assert highest == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert backoff.delay(3, lambda low, high: low) == 0.0


def test_a_closed_port_is_retried_as_a_dropped_connection(tmp_path: Path) -> None:
    files = device_files(tmp_path, pki.create_ca("Closed Port CA"), "closed-port-device")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = jitr(
        *("device", "connect", "--cert", str(files.bundle), "--key", str(files.key)),
        *("--endpoint", f"127.0.0.1:{port}", "--attempts", "2", "--initial-delay", "0.01"),
    )
    assert result.returncode == 1
    assert re.match(r"attempt 1: dropped \(.+\) — retrying in 0\.0 s\n", result.stdout)
    assert result.stderr.strip() == "jitr: error: not connected after 2 attempts"


def test_a_publish_the_policy_denies_is_not_acknowledged(endpoint: LocalEndpoint, aws: Aws, tmp_path: Path) -> None:
    register_ca(aws, ca := pki.create_ca("Denied Publish CA"))
    files = device_files(tmp_path, ca, "connect-device-3")
    topic = "dt/another-device/1/telemetry"
    result = connect(endpoint, files.bundle, files.key, "--attempts", "20", "--publish", topic, "--message", "{}")
    assert result.returncode == 1
    assert f"no PUBACK for {topic}\n" in result.stdout
    assert result.stderr.strip() == f"jitr: error: the message to {topic} was not acknowledged"


def test_an_mqtt5_device_denied_a_publish_reports_the_puback_reason(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path
) -> None:
    register_ca(aws, ca := pki.create_ca("Denied MQTT 5 CA"))
    files = device_files(tmp_path, ca, "connect-device-5")
    topic = "dt/another-device/1/telemetry"
    result = connect(
        endpoint, files.bundle, files.key, "--protocol", "5", "--attempts", "20", "--publish", topic, "--message", "{}"
    )
    assert result.returncode == 1
    assert "attempt 1: refused (not authorized)" in result.stdout
    assert f"PUBACK not authorized for {topic}\n" in result.stdout
    assert result.stderr.strip() == f"jitr: error: the message to {topic} was not acknowledged"


def encrypt_key(files: DeviceFiles, passphrase: bytes) -> Path:
    encrypted = files.key.with_suffix(".encrypted.key")
    encrypted.write_bytes(pki.private_key_pem(pki.load_private_key(files.key), passphrase))
    return encrypted


def test_an_encrypted_key_is_used_with_its_passphrase_from_the_environment(
    endpoint: LocalEndpoint, aws: Aws, tmp_path: Path
) -> None:
    register_ca(aws, ca := pki.create_ca("Encrypted Key CA"))
    files = device_files(tmp_path, ca, "connect-device-6")
    key = encrypt_key(files, b"s3cret device key")
    env = {"DEVICE_KEY_PASSPHRASE": "s3cret device key"}
    topic = f"dt/{files.name}/1/telemetry"
    result = connect(
        endpoint,
        files.bundle,
        key,
        *("--key-passphrase-env", "DEVICE_KEY_PASSPHRASE", "--protocol", "5", "--attempts", "20"),
        *("--publish", topic, "--message", "{}"),
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"published to {topic}\n" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr
    assert certificate_status(aws, files.certificate_id) == "ACTIVE"


def test_an_encrypted_key_without_or_with_a_wrong_passphrase_is_a_usage_error(
    endpoint: LocalEndpoint, tmp_path: Path
) -> None:
    files = device_files(tmp_path, pki.create_ca("Locked Key CA"), "locked-device")
    key = encrypt_key(files, b"right")
    missing = connect(endpoint, files.bundle, key, env={})
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        f"jitr: error: {key} is encrypted and no passphrase was given: "
        "pass --key-passphrase-env VAR, VAR holding the passphrase"
    )
    wrong = connect(endpoint, files.bundle, key, "--key-passphrase-env", "WRONG", env={"WRONG": "wrong"})
    assert wrong.returncode == 2
    assert wrong.stderr.strip() == f"jitr: error: the passphrase does not decrypt {key}"
