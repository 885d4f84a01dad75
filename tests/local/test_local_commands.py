"""`jitr local up`, `jitr local executions` and `jitr local execution` as a user runs them.

The tests that start a stack of their own come last: stopping a stack resets moto's
in-process state, which the module's endpoint shares.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from click.testing import CliRunner

from jitr import pki
from jitr.cli import main
from jitr.local.errors import LocalRuntimeError
from jitr.local.registration import LocalIot, RegistrationResult
from jitr.local.server import LocalEndpoint

JITR = Path(sys.executable).with_name("jitr")
READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 20


def runner() -> CliRunner:
    """stdout and stderr apart (click 8.1 needs asking; 8.2 always does it)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        return CliRunner()


def jitr(*args: str) -> Any:
    return runner().invoke(main, list(args))


@pytest.fixture(scope="module")
def registrations(endpoint: LocalEndpoint, ca: pki.Issued) -> dict[str, RegistrationResult]:
    """One device activated and one rejected, each an execution on the endpoint."""
    local = LocalIot(endpoint.stack)
    return {
        "activated": local.register(pki.issue_device_certificate(ca, "cli-device-1").cert_pem, ca.cert_pem),
        "rejected": local.register(pki.issue_device_certificate(ca, "cli-device-*").cert_pem, ca.cert_pem),
    }


def test_executions_lists_every_execution_with_its_status(
    endpoint: LocalEndpoint, registrations: dict[str, RegistrationResult]
) -> None:
    run = jitr("local", "executions", "--json", "--endpoint-url", endpoint.stack.api_url)

    assert run.exit_code == 0, run.stderr
    listed = {e["executionArn"]: e for e in json.loads(run.stdout)}
    assert listed[registrations["activated"].execution_arn]["status"] == "SUCCEEDED"
    assert listed[registrations["rejected"].execution_arn]["status"] == "FAILED"
    assert all(e["stateMachineArn"] == endpoint.stack.state_machine_arn for e in listed.values())

    text = jitr("local", "executions", "--endpoint-url", endpoint.stack.api_url)
    assert text.exit_code == 0, text.stderr
    names = {arn.rsplit(":", 1)[-1] for arn in listed}
    assert {line.split()[-1] for line in text.stdout.splitlines()} == names
    assert any("SUCCEEDED" in line for line in text.stdout.splitlines())


def test_execution_prints_its_path_and_history(
    endpoint: LocalEndpoint, registrations: dict[str, RegistrationResult]
) -> None:
    rejected = registrations["rejected"]
    name = rejected.execution_arn.rsplit(":", 1)[-1]

    run = jitr("local", "execution", name, "--json", "--endpoint-url", endpoint.stack.api_url)

    assert run.exit_code == 0, run.stderr
    story = json.loads(run.stdout)
    assert story["name"] == name
    assert story["status"] == "FAILED"
    assert story["path"] == rejected.states
    assert story["path"][-1] == "RegistrationRejected"
    assert story["error"] == "ThingNameWildcard"
    assert [e["id"] for e in story["events"]] == list(range(1, len(story["events"]) + 1))
    assert story["events"][0]["type"] == "ExecutionStarted"
    assert story["events"][-1]["type"] == "ExecutionFailed"

    text = jitr("local", "execution", rejected.execution_arn, "--endpoint-url", endpoint.stack.api_url)
    assert text.exit_code == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == f"{name}  FAILED"
    assert lines[1] == f"  path:  {' → '.join(rejected.states)}"
    assert any("ThingNameWildcard" in line for line in lines)
    assert sum(1 for line in lines if "StateEntered" in line) == len(rejected.states)


def test_executions_reach_the_endpoint_named_by_aws_endpoint_url(
    endpoint: LocalEndpoint, registrations: dict[str, RegistrationResult]
) -> None:
    run = runner().invoke(main, ["local", "executions", "--json"], env={"AWS_ENDPOINT_URL": endpoint.stack.api_url})
    assert run.exit_code == 0, run.stderr
    listed = {e["executionArn"] for e in json.loads(run.stdout)}
    assert registrations["activated"].execution_arn in listed


def test_an_unknown_execution_is_a_one_line_error(endpoint: LocalEndpoint) -> None:
    run = jitr("local", "execution", "no-such-execution", "--endpoint-url", endpoint.stack.api_url)

    assert run.exit_code == 2
    assert run.stderr.strip() == "jitr: error: no execution named 'no-such-execution' (see `jitr local executions`)"


def test_no_endpoint_is_a_one_line_error() -> None:
    run = jitr("local", "executions", "--endpoint-url", f"http://127.0.0.1:{_free_port()}")

    assert run.exit_code == 1
    assert len(run.stderr.strip().splitlines()) == 1
    assert "cannot reach" in run.stderr


def test_a_busy_port_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LocalRuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
            LocalEndpoint(api_port=port, mqtt_port=0).start()
        run = jitr("local", "up", "--api-port", str(port), "--mqtt-port", "0")

    assert run.exit_code == 2
    assert run.stderr.startswith(f"jitr: error: cannot listen on 127.0.0.1:{port}")


def test_a_busy_mqtt_port_is_a_one_line_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LocalRuntimeError, match=f"cannot listen on 127.0.0.1:{port}"):
            LocalEndpoint(api_port=0, mqtt_port=port).start()
        run = jitr("local", "up", "--api-port", "0", "--mqtt-port", str(port))

    assert run.exit_code == 2
    assert run.stderr.startswith(f"jitr: error: cannot listen on 127.0.0.1:{port}")


def test_the_default_state_dir_is_temporary_and_a_given_one_is_kept(tmp_path: Path) -> None:
    with LocalEndpoint(api_port=0, mqtt_port=0) as temporary:
        made = temporary.state_dir
        assert made.is_dir()
    assert not made.exists()

    given = tmp_path / "state"
    with LocalEndpoint(api_port=0, mqtt_port=0, state_dir=given):
        assert given.is_dir()
    assert given.is_dir()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@pytest.fixture
def local_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    """`jitr local up` in its own process; killed after the test if it is still running."""
    process = subprocess.Popen(
        [str(JITR), "local", "up", "--api-port", "0", "--mqtt-port", "0", "--state-dir", str(tmp_path / "state")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:
        for line in process.stdout or []:
            lines.put(line)

    threading.Thread(target=read_lines, daemon=True).start()
    yield process, lines
    if process.poll() is None:
        process.kill()
        process.wait(STOP_TIMEOUT_SECONDS)


def test_local_up_serves_until_interrupted_then_frees_its_port(
    tmp_path: Path, local_up: tuple[subprocess.Popen[str], queue.Queue[str]]
) -> None:
    process, lines = local_up
    try:
        ready = lines.get(timeout=READY_TIMEOUT_SECONDS).strip()
    except queue.Empty:
        pytest.fail(f"no ready line within {READY_TIMEOUT_SECONDS}s")
    fields = dict(field.split("=", 1) for field in ready.removeprefix("jitr local ready ").split())
    assert list(fields) == ["api", "mqtt", "cafile"]
    url = fields["api"]
    assert url.startswith("http://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1])
    mqtt_host, mqtt_port = fields["mqtt"].rsplit(":", 1)
    assert mqtt_host == "127.0.0.1"
    assert fields["cafile"] == str(tmp_path / "state" / "server-ca.pem")
    assert "BEGIN CERTIFICATE" in Path(fields["cafile"]).read_text()

    aws_cli = shutil.which("aws")
    if aws_cli is not None:
        listed = subprocess.run(
            [
                aws_cli,
                "--endpoint-url",
                url,
                "--region",
                "us-east-1",
                "--output",
                "json",
                "iot",
                "list-ca-certificates",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert json.loads(listed.stdout) == {"certificates": []}
    else:  # no AWS CLI on this machine: the same request through boto3
        iot = boto3.client("iot", region_name="us-east-1", endpoint_url=url)
        assert iot.list_ca_certificates()["certificates"] == []

    process.send_signal(signal.SIGINT)
    assert process.wait(STOP_TIMEOUT_SECONDS) == 0
    assert _port_is_free(port)
    assert _port_is_free(int(mqtt_port))
    assert (tmp_path / "state").is_dir()
