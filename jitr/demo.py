"""``make demo``: the whole JITR loop on this machine, through real mutual-TLS connections.

``jitr demo`` starts ``jitr local up`` as a child process and drives it with the project's own
commands, each printed before it runs so it can be copied: a CA is created and registered with
auto-registration, three devices are issued (one valid, one whose CN the workflow refuses, one
revoked before it first connects), and each connects with ``jitr device connect``. The valid
device is activated and publishes telemetry, which the template's rule archives to S3; the other
two are rejected by the workflow and stay refused. The executions are listed, a summary closes,
and the local stack is stopped whatever happens: a failed step, Ctrl-C, SIGTERM, or (on Linux)
the demo being killed.

Exit status: 0 when every device ends as expected, 1 otherwise (or when a step fails), 130 when
interrupted.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.text import Text

from jitr import pki
from jitr.local.credentials import LOCAL_CREDENTIALS
from jitr.local.executions import describe, list_executions

REGION = "us-east-1"
CRL_BUCKET = "jitr-demo-crl"
CRL_KEY = "crl.pem"  # the template's CrlKey default
STATE_DIR = "local"
LOG_FILE = "local-up.log"
READY_PREFIX = "jitr local ready "
READY_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 20.0
STEP_TIMEOUT_SECONDS = 120.0
EXECUTION_TIMEOUT_SECONDS = 60.0
ARCHIVE_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 0.2
TELEMETRY = '{"temperature": 21.5}'
EXIT_INTERRUPTED = 130
PR_SET_PDEATHSIG = 1

# The same interpreter runs the command line, whatever bin/ directory it was installed in.
JITR = (sys.executable, "-c", "from jitr.cli import main; main(prog_name='jitr')")
# Variables that would point a child's boto3 somewhere other than the local stack.
FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")


@dataclass(frozen=True)
class DemoDevice:
    """One device of the demo: its thing name (the CN), file stem, role, and the rejection it should meet."""

    name: str
    stem: str
    role: str
    expected_error: str | None = None

    @property
    def bundle(self) -> str:
        return f"devices/{self.stem}.bundle.pem"

    @property
    def key(self) -> str:
        return f"devices/{self.stem}.key"

    @property
    def telemetry_topic(self) -> str:
        return f"dt/{self.name}/1/telemetry"


VALID = DemoDevice("device-001", "device-001", "a valid device")
WILDCARD = DemoDevice("device-*", "device-002", "an illegal CN (wildcard)", "ThingNameWildcard")
REVOKED = DemoDevice("device-003", "device-003", "revoked before its first connection", "CertificateRevoked")
DEVICES = (VALID, WILDCARD, REVOKED)


class DemoFailed(Exception):
    """A step did not do what the demo needs; the message says which and why."""


@dataclass(frozen=True)
class Endpoints:
    """What ``jitr local up`` serves, as its ready line names it."""

    api: str
    mqtt: str
    cafile: str


def parse_ready_line(line: str) -> Endpoints | None:
    """The endpoints of a ``jitr local ready api=... mqtt=... cafile=...`` line, or ``None`` for any other line."""
    if not line.startswith(READY_PREFIX):
        return None
    fields = dict(item.partition("=")[::2] for item in line[len(READY_PREFIX) :].split())
    if not {"api", "mqtt", "cafile"} <= fields.keys():
        return None
    return Endpoints(fields["api"], fields["mqtt"], fields["cafile"])


@dataclass(frozen=True)
class Execution:
    """A device's registration: its execution and what the workflow decided."""

    name: str
    status: str
    outcome: str
    error: str | None
    message: str

    @property
    def reason(self) -> str:
        return f"{self.error}: {self.message}" if self.error else ""


@dataclass
class DeviceRun:
    """What happened to one device: its registration, whether it got in, and the message archived."""

    device: DemoDevice
    execution: Execution
    connected: bool
    archived: str | None = None

    def problems(self) -> list[str]:
        """How this run differs from what the demo expects of the device (nothing when it is as expected)."""
        found = []
        expected = self.device.expected_error
        if expected is None:
            if self.execution.outcome != "ACTIVATED":
                found.append(f"{self.device.name} was {self.execution.outcome}, expected ACTIVATED")
            if not self.connected:
                found.append(f"{self.device.name} did not connect")
            if self.archived is None:
                found.append(f"no telemetry of {self.device.name} in the archive bucket")
            elif not same_json(self.archived, TELEMETRY):
                found.append(f"the archived telemetry {self.archived!r} is not the message sent, {TELEMETRY!r}")
        else:
            if (self.execution.outcome, self.execution.error) != ("REJECTED", expected):
                found.append(
                    f"{self.device.name} was {self.execution.outcome} {self.execution.error or ''}".rstrip()
                    + f", expected REJECTED {expected}"
                )
            if self.connected:
                found.append(f"{self.device.name} connected, expected to be refused")
        return found

    def summary(self) -> str:
        if self.execution.outcome == "ACTIVATED":
            if self.archived:
                return "ACTIVATED  connected, telemetry archived"
            return f"ACTIVATED  {'connected' if self.connected else 'not connected'}"
        connection = "connected" if self.connected else "connection refused"
        return f"{self.execution.outcome:<9}  {self.execution.reason}; {connection}"


def same_json(text: str, expected: str) -> bool:
    """Whether ``text`` is the JSON document ``expected`` is (the rule may re-serialise what it archives)."""
    try:
        return bool(json.loads(text) == json.loads(expected))
    except ValueError:
        return False


# --- the local stack, a child process ----------------------------------------------------------


def _stop_with(parent: int) -> Callable[[], None]:
    """In the child, before it runs: SIGTERM when the demo dies, even by SIGKILL (Linux only)."""

    def request() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the demo died before the request took effect
            os._exit(1)

    return request


class LocalStackProcess:
    """``jitr local up`` on free ports, run from ``directory``; stopped (SIGINT, then SIGKILL) on exit.

    Its output goes to ``directory/local-up.log``: the ready line is read from there, and the
    file is shown when the stack does not get ready.
    """

    def __init__(self, directory: Path, console: Console) -> None:
        self.directory = directory
        self.console = console
        self.log = directory / LOG_FILE
        self.process: subprocess.Popen[bytes] | None = None
        self.arguments = (
            "local",
            "up",
            "--api-port",
            "0",
            "--mqtt-port",
            "0",
            "--state-dir",
            STATE_DIR,
            "--parameter-overrides",
            f"CrlBucket={CRL_BUCKET}",
        )

    def __enter__(self) -> LocalStackProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start the stack in its own session, so that only the demo decides when it stops."""
        self.console.print(f"[cyan]$ jitr {shlex.join(self.arguments)} &[/]")
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (the demo's own interpreter and arguments)
                [*JITR, *self.arguments],
                cwd=self.directory,
                env=child_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_stop_with(os.getpid()) if sys.platform == "linux" else None,  # noqa: PLW1509
            )
        self.console.print(f"  started: jitr local up, pid {self.process.pid} (its output: {self.log})")

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> Endpoints:
        """The endpoints of the ready line, once printed; ``DemoFailed`` when the stack exits or times out first."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self._log_text().splitlines():
                if endpoints := parse_ready_line(line):
                    return endpoints
            if (code := self.process.poll()) is not None:
                raise DemoFailed(f"jitr local up exited with status {code} before it was ready:\n{self._log_tail()}")
            time.sleep(POLL_SECONDS)
        raise DemoFailed(f"jitr local up was not ready within {timeout:.0f} s:\n{self._log_tail()}")

    def stop(self) -> None:
        """Stop the stack as Ctrl-C does and wait for it; kill it if it does not stop in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                self.process.kill()
                self.process.wait()
        self.console.print(
            f"\nStopped jitr local up (pid {self.process.pid}, exit status {self.process.returncode}): "
            "nothing is left running."
        )

    def _log_text(self) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _log_tail(self, lines: int = 20) -> str:
        return "\n".join(self._log_text().splitlines()[-lines:]) or "(no output)"


def child_environment(api: str | None = None) -> dict[str, str]:
    """The demo's environment for a child; with ``api``, AWS clients aimed at the local stack with its credentials."""
    environment = {k: v for k, v in os.environ.items() if k not in FOREIGN_AWS_VARIABLES}
    if api is not None:
        environment.update(
            AWS_ENDPOINT_URL=api,
            AWS_DEFAULT_REGION=REGION,
            AWS_REGION=REGION,
            AWS_ACCESS_KEY_ID=LOCAL_CREDENTIALS["aws_access_key_id"],
            AWS_SECRET_ACCESS_KEY=LOCAL_CREDENTIALS["aws_secret_access_key"],
        )
    return environment


# --- the commands, as a reader would type them -------------------------------------------------


@dataclass(frozen=True)
class Completed:
    """A command's exit status and its output (stdout and stderr, in order)."""

    code: int
    output: str


class Shell:
    """Runs ``jitr`` commands from the demo directory, printing each command and what it printed."""

    def __init__(self, console: Console, directory: Path) -> None:
        self.console = console
        self.directory = directory
        self.environment = child_environment()

    def aim_at(self, api: str) -> None:
        """From now on, commands reach AWS at ``api`` (``AWS_ENDPOINT_URL``) with the local credentials."""
        self.environment = child_environment(api)

    def run(self, *arguments: str, ok: Sequence[int] = (0,), show: Callable[[str], str] | None = None) -> Completed:
        """Run ``jitr ARGUMENTS``; ``DemoFailed`` unless its exit status is in ``ok``."""
        command = f"jitr {shlex.join(arguments)}"
        self.console.print(Text(f"$ {command}", style="cyan"))
        try:
            done = subprocess.run(  # noqa: S603 (the demo's own interpreter and arguments)
                [*JITR, *arguments],
                cwd=self.directory,
                env=self.environment,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=STEP_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DemoFailed(f"`{command}` did not finish within {STEP_TIMEOUT_SECONDS:.0f} s") from None
        output = done.stdout.rstrip()
        for line in (show(output) if show else output).splitlines():
            self.console.print(Text(f"  {line}", style="dim"))
        self.console.print(Text(f"  → exit status {done.returncode}", style="dim"))
        if done.returncode not in ok:
            raise DemoFailed(f"`{command}` exited with status {done.returncode}:\n{output}")
        return Completed(done.returncode, output)


def up_to_events(output: str) -> str:
    """An execution's story without its event history."""
    kept = output.split("\n  events:", 1)[0]
    return kept + ("\n  (events left out)" if kept != output else "")


# --- reading the local AWS ---------------------------------------------------------------------


class LocalAws:
    """boto3 clients of the local stack: executions, topic rules, buckets."""

    def __init__(self, api: str) -> None:
        import boto3  # noqa: PLC0415 (about 150 ms: paid once the stack is up)

        def client(service: str) -> Any:
            return boto3.client(  # type: ignore[call-overload]
                service, region_name=REGION, endpoint_url=api, **LOCAL_CREDENTIALS
            )

        self.sfn = client("stepfunctions")
        self.iot = client("iot")
        self.s3 = client("s3")
        self._inputs: dict[str, dict[str, Any]] = {}

    def create_bucket(self, bucket: str) -> None:
        self.s3.create_bucket(Bucket=bucket)

    def execution_of(self, certificate_id: str, timeout: float = EXECUTION_TIMEOUT_SECONDS) -> Execution:
        """The finished execution that registered ``certificate_id``; ``DemoFailed`` when none finishes in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for summary in list_executions(self.sfn):
                if self._input_of(summary.arn).get("certificateId") == certificate_id and summary.status != "RUNNING":
                    return _execution(describe(self.sfn, summary.arn))
            time.sleep(POLL_SECONDS)
        raise DemoFailed(f"no execution for certificate {certificate_id} finished within {timeout:.0f} s")

    def execution_count(self) -> int:
        return len(list_executions(self.sfn))

    def _input_of(self, arn: str) -> dict[str, Any]:
        if arn not in self._inputs:
            try:
                document = json.loads(self.sfn.describe_execution(executionArn=arn).get("input") or "{}")
            except ValueError:
                document = {}
            self._inputs[arn] = document if isinstance(document, dict) else {}
        return self._inputs[arn]

    def telemetry_bucket(self) -> str:
        """The bucket the template's telemetry rule archives to, read from the topic rules in AWS IoT."""
        for listed in self.iot.list_topic_rules().get("rules", []):
            rule = self.iot.get_topic_rule(ruleName=listed["ruleName"])["rule"]
            for action in rule.get("actions", []):
                if "s3" in action:
                    return str(action["s3"]["bucketName"])
        raise DemoFailed("no topic rule archives to S3 (is TelemetryArchive false?)")

    def archived(self, bucket: str, topic: str, timeout: float = ARCHIVE_TIMEOUT_SECONDS) -> tuple[str, str] | None:
        """The first object archived under ``topic/`` and its body, or ``None`` when none appears in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            contents = self.s3.list_objects_v2(Bucket=bucket, Prefix=f"{topic}/").get("Contents", [])
            if contents:
                key = contents[0]["Key"]
                return key, self.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
            time.sleep(POLL_SECONDS)
        return None


def _execution(story: dict[str, Any]) -> Execution:
    """What the workflow decided, from ``jitr local execution --json``'s document."""
    path = story["path"]
    if story["status"] == "SUCCEEDED":
        outcome = "ACTIVATED"
    elif path and path[-1] == "RegistrationRejected":
        outcome = "REJECTED"
    else:
        outcome = story["status"]  # FAILED (a step failed), TIMED_OUT, ABORTED
    cause = story.get("cause") or ""
    try:
        message = str(json.loads(cause).get("errorMessage", cause))
    except (ValueError, AttributeError):
        message = cause
    return Execution(story["name"], story["status"], outcome, story.get("error"), message)


# --- the demo ----------------------------------------------------------------------------------


class Demo:
    """The steps, in order; each prints what it runs and what came of it."""

    def __init__(self, console: Console, directory: Path, stack: LocalStackProcess, *, force: bool) -> None:
        self.console = console
        self.directory = directory
        self.stack = stack
        self.shell = Shell(console, directory)
        self.force = ("--force",) if force else ()
        self.endpoints: Endpoints | None = None
        self.aws: LocalAws | None = None

    def heading(self, text: str) -> None:
        self.console.print(f"\n[bold]{text}[/]")

    def run(self) -> tuple[list[DeviceRun], list[str]]:
        """Every step; the devices' runs, and what else went other than expected."""
        self.create_ca()
        self.issue_devices()
        endpoints = self.wait_for_stack()
        self.register_ca()
        self.revoke_before_first_connection()
        runs = [self.connect(device, endpoints) for device in DEVICES]
        self.show_archive(runs[0])
        return runs, self.show_executions(runs, endpoints)

    def create_ca(self) -> None:
        self.heading("A certificate authority (while the stack starts)")
        self.shell.run("ca", "create", "--cn", "jitr demo CA", "--out", "ca", *self.force)

    def issue_devices(self) -> None:
        self.heading("Three devices")
        for device in (VALID, REVOKED):
            self.shell.run("device", "issue", "--ca", "ca", "--cn", device.name, "--out", "devices", *self.force)
        self.console.print(f"{WILDCARD.name} ({WILDCARD.role}): jitr refuses to issue it…")
        self.shell.run("device", "issue", "--ca", "ca", "--cn", WILDCARD.name, "--out", "devices", ok=(2,))
        # A CA outside jitr (openssl, another PKI) signs whatever it is asked to: the demo signs this
        # one with the CA key through jitr.pki, to show that the workflow refuses it all the same.
        store = pki.open_ca_directory(self.directory / "ca")
        issued = pki.issue_device_certificate(store.issued, WILDCARD.name)
        files = pki.DeviceFiles.of(self.directory / "devices", WILDCARD.stem)
        pki.write_device_files(files, issued.certificate, store.chain_pem, issued.key_pem, force=True)
        self.console.print(
            f"…so the demo signs it with the CA key itself, as openssl would: {WILDCARD.bundle}, {WILDCARD.key}"
        )

    def wait_for_stack(self) -> Endpoints:
        self.heading("The local stack")
        endpoints = self.stack.wait_ready()
        self.endpoints = endpoints
        self.aws = LocalAws(endpoints.api)
        self.shell.aim_at(endpoints.api)
        self.console.print(f"  ready: api={endpoints.api} mqtt={endpoints.mqtt} cafile={endpoints.cafile}")
        self.console.print(
            "  The commands below reach it through the environment:\n"
            f"  [cyan]export AWS_ENDPOINT_URL={endpoints.api} AWS_DEFAULT_REGION={REGION} "
            f"AWS_ACCESS_KEY_ID={LOCAL_CREDENTIALS['aws_access_key_id']} "
            f"AWS_SECRET_ACCESS_KEY={LOCAL_CREDENTIALS['aws_secret_access_key']}[/]"
        )
        return endpoints

    def register_ca(self) -> None:
        self.heading("Register the CA with AWS IoT (ACTIVE, auto-registration on)")
        self.shell.run("ca", "register", "--ca", "ca")

    def revoke_before_first_connection(self) -> None:
        self.heading(f"Revoke {REVOKED.name} before it ever connects, and publish the CRL")
        assert self.aws is not None
        self.aws.create_bucket(CRL_BUCKET)
        self.console.print(
            f"  The stack runs with CrlBucket={CRL_BUCKET}; the demo creates that bucket "
            f"(aws s3 mb s3://{CRL_BUCKET}) for the CRL to go in."
        )
        self.shell.run(
            "device", "revoke", "--ca", "ca", "--cert", f"devices/{REVOKED.stem}.pem",
            "--reason", "keyCompromise", "--publish", f"s3://{CRL_BUCKET}/{CRL_KEY}",
        )  # fmt: skip

    def connect(self, device: DemoDevice, endpoints: Endpoints) -> DeviceRun:
        """First connection (refused while the workflow decides), the decision, then a reconnection."""
        assert self.aws is not None
        self.heading(f"{device.name}: {device.role}")
        connect = (
            "device", "connect", "--cert", device.bundle, "--key", device.key,
            "--ca-bundle", endpoints.cafile, "--endpoint", endpoints.mqtt,
        )  # fmt: skip
        self.shell.run(*connect, "--attempts", "1", ok=(0, 1))
        execution = self.aws.execution_of(self.certificate_id(device))
        style = "green" if execution.outcome == "ACTIVATED" else "yellow"
        self.console.print(
            f"  workflow: execution {execution.name} {execution.status} → [bold {style}]{execution.outcome}[/]"
            + (f" ({execution.reason})" if execution.reason else "")
        )
        self.console.print("  The device reconnects:")
        backoff = ("--initial-delay", "0.2", "--max-delay", "2")
        if device.expected_error is None:
            topic = device.telemetry_topic
            done = self.shell.run(
                *connect, "--attempts", "5", *backoff, "--publish", topic, "--message", TELEMETRY, ok=(0, 1)
            )
        else:
            done = self.shell.run(*connect, "--attempts", "2", *backoff, ok=(0, 1))
        return DeviceRun(device, execution, connected=done.code == 0)

    def certificate_id(self, device: DemoDevice) -> str:
        """AWS IoT's id of the device's certificate: the SHA-256 of its DER."""
        certificate = pki.read_certificates(self.directory / device.bundle, "device certificate")[0]
        return pki.certificate_id(certificate)

    def show_archive(self, run: DeviceRun) -> None:
        self.heading("The archived telemetry")
        assert self.aws is not None
        if not run.connected:
            self.console.print(f"  {run.device.name} never connected: nothing to look for.")
            return
        bucket = self.aws.telemetry_bucket()
        topic = run.device.telemetry_topic
        self.console.print(
            f"  The template's TelemetryRule archives dt/+/+/telemetry to s3://{bucket}; the demo reads it back "
            f"with boto3 ([cyan]aws s3 ls s3://{bucket}/{topic}/[/] would list it):"
        )
        found = self.aws.archived(bucket, topic)
        if found is None:
            self.console.print(f"  [red]nothing under s3://{bucket}/{topic}/ after {ARCHIVE_TIMEOUT_SECONDS:.0f} s[/]")
            return
        key, body = found
        run.archived = body
        self.console.print(Text(f"  archived s3://{bucket}/{key}: {body}"))

    def show_executions(self, runs: list[DeviceRun], endpoints: Endpoints) -> list[str]:
        """List the executions and tell each device's; what is unexpected about them."""
        assert self.aws is not None
        self.heading("The workflow's executions")
        self.shell.run("local", "executions", "--endpoint-url", endpoints.api)
        for run in runs:
            self.shell.run("local", "execution", run.execution.name, "--endpoint-url", endpoints.api, show=up_to_events)
        count = self.aws.execution_count()
        return [] if count == len(runs) else [f"{count} executions, expected one per device ({len(runs)})"]


def print_summary(console: Console, runs: list[DeviceRun], problems: list[str]) -> bool:
    """One line per device, then the verdict; whether everything went as expected."""
    console.print("\n[bold]Summary[/]")
    width = max(len(run.device.name) for run in runs)
    for run in runs:
        console.print(Text(f"  {run.device.name:<{width}}  {run.summary()}"))
    problems = [*(p for run in runs for p in run.problems()), *problems]
    if problems:
        console.print("[bold red]Not as expected:[/]")
        for problem in problems:
            console.print(Text(f"  - {problem}"))
        return False
    console.print(
        "[bold green]As expected:[/] the valid device was activated and its telemetry archived; "
        "the illegal CN and the revoked device were rejected and stay refused."
    )
    return True


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the demo as Ctrl-C does, so the local stack is stopped too."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_demo(keep: Path | None = None) -> int:
    """Run the demo in ``keep`` (kept afterwards) or a temporary directory; the exit status."""
    console = Console(soft_wrap=True, highlight=False)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="jitr-demo-") as scratch, _sigterm_as_interrupt():
        directory = (keep or Path(scratch)).resolve()
        directory.mkdir(parents=True, exist_ok=True)
        console.print(f"[bold]jitr demo[/]: JITR end to end over mutual TLS, on a local stack, in {directory}")
        console.print(f"Every command runs from that directory ([cyan]cd {shlex.quote(str(directory))}[/]).\n")
        try:
            with LocalStackProcess(directory, console) as stack:
                runs, problems = Demo(console, directory, stack, force=keep is not None).run()
        except DemoFailed as exc:
            console.print(Text(f"\njitr demo failed: {exc}", style="bold red"))
            return 1
        except KeyboardInterrupt:
            console.print("[bold red]jitr demo interrupted[/]")
            return EXIT_INTERRUPTED
        passed = print_summary(console, runs, problems)
        if keep is None:
            console.print("[dim]jitr demo --keep DIR keeps the CA, the devices and the stack's log in DIR.[/]")
        console.print(f"[dim]{time.monotonic() - started:.1f} s[/]")
        return 0 if passed else 1
