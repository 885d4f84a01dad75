"""`jitr demo` as `make demo` runs it: a real process that starts `jitr local up` and drives it.

Each test runs the demo as a subprocess and then checks that the local stack it started (its
pid and its API port, as the demo printed them) is gone.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.workflow

JITR = (sys.executable, "-c", "from jitr.cli import main; main(prog_name='jitr')")
DEMO_TIMEOUT_SECONDS = 240
READY_TIMEOUT_SECONDS = 120
EXECUTION_LINE = re.compile(r"^  \d{4}-\d\d-\d\dT\S+\s+(SUCCEEDED|FAILED|RUNNING|ABORTED)\s+jitr-\S+$", re.MULTILINE)


def demo_environment() -> dict[str, str]:
    """The test's environment, with output unbuffered so that a reader sees each line as it is printed."""
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*JITR, "demo", *args],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        env=demo_environment(),
        check=False,
    )


def stack_pid(output: str) -> int:
    match = re.search(r"started: jitr local up, pid (\d+)", output)
    assert match, output
    return int(match.group(1))


def api_port(output: str) -> int:
    match = re.search(r"ready: api=http://127\.0\.0\.1:(\d+) ", output)
    assert match, output
    return int(match.group(1))


def is_local_up(pid: int) -> bool:
    """Whether ``pid`` is a live `jitr local up` process (a reused pid running something else is not)."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return b"local" in arguments and b"up" in arguments and state != "Z"


def port_is_served(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def assert_nothing_left(output: str, *, ready: bool = True) -> None:
    pid = stack_pid(output)
    assert not is_local_up(pid), f"jitr local up (pid {pid}) is still running"
    assert "Stopped jitr local up" in output
    if ready:
        port = api_port(output)
        assert not port_is_served(port), f"port {port} of the local stack is still served"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_demo_registers_three_devices_over_tls_and_leaves_nothing_running(tmp_path: Path) -> None:
    result = run_demo("--keep", str(tmp_path))
    out = result.stdout

    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^  device-001\s+ACTIVATED\s+connected, telemetry archived$", out, re.MULTILINE), out
    assert re.search(
        r"^  device-\*\s+REJECTED\s+ThingNameWildcard: .*wildcard.*; connection refused$", out, re.MULTILINE
    ), out
    assert re.search(
        r"^  device-003\s+REJECTED\s+CertificateRevoked: .*revocation list; connection refused$", out, re.MULTILINE
    ), out
    # The message as read back from the archive bucket, under the topic the device published on.
    assert re.search(
        r"archived s3://\S+/dt/device-001/1/telemetry/\d+\.json: \{\"temperature\": 21\.5\}$", out, re.MULTILINE
    ), out
    assert [m.group(1) for m in EXECUTION_LINE.finditer(out)] == ["SUCCEEDED", "FAILED", "FAILED"], out
    # Each command is shown as a reader would type it.
    for command in ("$ jitr ca create", "$ jitr ca register", "$ jitr device issue", "$ jitr device revoke"):
        assert command in out
    assert "$ jitr device connect" in out
    assert "$ jitr local executions" in out
    assert_nothing_left(out)
    # --keep keeps the files the commands wrote.
    assert (tmp_path / "ca" / "ca.pem").is_file()
    assert (tmp_path / "devices" / "device-001.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "devices" / "device-002.bundle.pem").is_file()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_failed_step_stops_the_local_stack(tmp_path: Path) -> None:
    # `jitr ca create --out ca` cannot write into a file named ca: the demo's first step fails
    # while the stack it started is still coming up.
    (tmp_path / "ca").write_text("not a directory")

    result = run_demo("--keep", str(tmp_path))

    assert result.returncode == 1, result.stdout + result.stderr
    assert "jitr demo failed: `jitr ca create" in result.stdout
    assert "'ca' is a file" in result.stdout
    assert "Summary" not in result.stdout
    assert_nothing_left(result.stdout, ready=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_interrupting_the_demo_stops_the_local_stack(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [*JITR, "demo", "--keep", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=demo_environment(),
    )
    assert demo.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            line = demo.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "ready: api=" in line:
                demo.send_signal(signal.SIGINT)  # Ctrl-C, to the demo alone: the stack is its to stop
                break
        rest, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    out = "".join(lines) + rest

    assert demo.returncode == 130, out
    assert "jitr demo interrupted" in out
    assert_nothing_left(out)
