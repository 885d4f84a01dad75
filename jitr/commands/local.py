"""``jitr local``: run the project's stack behind a local AWS API endpoint, and read its executions."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from jitr.aws_session import aws_errors
from jitr.commands.common import parse_overrides, usage_error
from jitr.local.credentials import LOCAL_CREDENTIALS
from jitr.local.errors import LocalRuntimeError
from jitr.local.executions import describe, find_execution, list_executions

R = TypeVar("R")
DEFAULT_ENDPOINT = "http://127.0.0.1:4566"
LOCAL_REGION = "us-east-1"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@click.group()
def local() -> None:
    """The project's stack on this machine: an AWS API endpoint that runs the real workflow."""


@local.command()
@click.option(
    "--api-port",
    type=click.IntRange(0, 65535),
    default=4566,
    show_default=True,
    help="Port of the AWS API endpoint on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--mqtt-port",
    type=click.IntRange(0, 65535),
    default=8883,
    show_default=True,
    help="Port of the MQTT endpoint (mutual TLS) on 127.0.0.1 (0: any free port).",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory for the endpoint's files (default: a temporary one, removed on exit).",
)
@click.option(
    "--parameter-overrides",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE ...",
    help="Template parameters, as for sam deploy.",
)
@click.option(
    "--template", type=click.Path(path_type=Path), default=None, help="The SAM template (default: the project's)."
)
def up(
    api_port: int, mqtt_port: int, state_dir: Path | None, overrides: tuple[str, ...], template: Path | None
) -> None:
    """Serve the AWS API and AWS IoT's MQTT endpoint with the stack deployed, until Ctrl-C or SIGTERM.

    The functions, state machine and IoT rules of the template run behind
    http://127.0.0.1:API_PORT, for `aws --endpoint-url` and boto3. Devices connect over MQTT
    with mutual TLS to 127.0.0.1:MQTT_PORT, trusting STATE_DIR/server-ca.pem, and are
    registered, refused or authorised as AWS IoT would. When everything is ready, one line is
    printed: `jitr local ready api=http://127.0.0.1:API_PORT mqtt=127.0.0.1:MQTT_PORT
    cafile=STATE_DIR/server-ca.pem`.
    """
    from jitr.local.server import LocalEndpoint  # noqa: PLC0415 (moto: only `local up` pays for it)

    stop = threading.Event()
    try:
        endpoint = LocalEndpoint(
            template, parse_overrides(overrides), api_port=api_port, mqtt_port=mqtt_port, state_dir=state_dir
        )
        with _stop_on_signals(stop), endpoint:
            click.echo(endpoint.ready_line())
            sys.stdout.flush()
            while not stop.wait(0.2):
                pass
    except LocalRuntimeError as exc:
        usage_error(str(exc))
    click.echo("jitr local stopped", err=True)


class _stop_on_signals:
    """Set ``stop`` on SIGINT and SIGTERM while the block runs; restore the previous handlers after."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()

    def __enter__(self) -> None:
        for number in STOP_SIGNALS:
            self.previous[number] = signal.signal(number, self._handle)

    def __exit__(self, *exc: object) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)


def endpoint_option(command: Callable[..., R]) -> Callable[..., R]:
    """``--endpoint-url``: where ``jitr local up`` serves the AWS API (else ``AWS_ENDPOINT_URL``, else port 4566)."""
    return click.option(
        "--endpoint-url",
        envvar="AWS_ENDPOINT_URL",
        default=DEFAULT_ENDPOINT,
        show_default=True,
        show_envvar=True,
        metavar="URL",
        help="The AWS API endpoint of `jitr local up`.",
    )(command)


def _step_functions(endpoint_url: str) -> Any:
    import boto3  # noqa: PLC0415 (about 150 ms: only the commands that call the endpoint pay for it)
    from botocore.config import Config  # noqa: PLC0415

    return boto3.client(  # type: ignore[call-overload]
        "stepfunctions",
        region_name=LOCAL_REGION,
        endpoint_url=endpoint_url,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30),
        **LOCAL_CREDENTIALS,
    )


@local.command()
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def executions(endpoint_url: str, as_json: bool) -> None:
    """List the workflow's executions, oldest first, with their status."""
    with aws_errors(f"listing the executions at {endpoint_url}"):
        rows = list_executions(_step_functions(endpoint_url))
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], indent=2))
        return
    for row in rows:
        click.echo(f"{row.start_date.isoformat(timespec='seconds')}  {row.status:<9}  {row.name}")


@local.command()
@click.argument("name_or_arn")
@endpoint_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def execution(name_or_arn: str, endpoint_url: str, as_json: bool) -> None:
    """Print one execution's path through the state machine and its event history."""
    sfn = _step_functions(endpoint_url)
    with aws_errors(f"reading execution {name_or_arn} at {endpoint_url}"):
        try:
            story = describe(sfn, find_execution(sfn, name_or_arn))
        except LocalRuntimeError as exc:
            usage_error(str(exc))
    if as_json:
        click.echo(json.dumps(story, indent=2, default=str))
        return
    click.echo(f"{story['name']}  {story['status']}")
    click.echo(f"  path:  {' → '.join(story['path'])}")
    if story["error"]:
        click.echo(f"  error: {story['error']}: {story['cause'] or ''}")
    click.echo("  events:")
    for event in story["events"]:
        details = event["details"]
        summary = details.get("name") or details.get("error") or details.get("resource") or ""
        click.echo(f"    {event['id']:>3}  {event['timestamp']}  {event['type']}  {summary}".rstrip())
