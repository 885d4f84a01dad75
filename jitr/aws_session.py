"""AWS clients for the ``jitr`` commands: region, profile and endpoint in one place.

Every command that talks to AWS takes ``--region``, ``--profile`` and ``--endpoint-url``.
Without ``--endpoint-url`` boto3 applies its own configuration, ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_IOT`` included, so the same command works against AWS, a local endpoint
that speaks the AWS IoT API, or moto. An explicit ``--endpoint-url`` always wins.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import click
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
)

from jitr.commands.common import usage_error

R = TypeVar("R")


class AwsFailure(click.ClickException):
    """AWS refused or could not be reached: one line, exit status 1, no traceback."""

    exit_code = 1

    def show(self, file: object = None) -> None:
        click.echo(f"jitr: error: {self.format_message()}", err=True)


def aws_failure(message: str) -> NoReturn:
    raise AwsFailure(message)


@dataclass(frozen=True)
class AwsTarget:
    """Where a command's AWS calls go."""

    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    def client(self, service: str) -> Any:
        """A boto3 client; configuration problems become one-line usage errors."""
        import boto3  # noqa: PLC0415 (about 150 ms: only commands that call AWS pay for it)

        with aws_errors(f"creating the {service} client"):
            session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            if self.endpoint_url:
                return session.client(service, endpoint_url=self.endpoint_url)  # type: ignore[call-overload]
            return session.client(service)  # type: ignore[call-overload]


@contextmanager
def aws_errors(action: str) -> Iterator[None]:
    """Report botocore's exceptions as one line: configuration ones exit 2, AWS's answers exit 1."""
    try:
        yield
    except ProfileNotFound as exc:
        usage_error(f"{exc}; pass an existing --profile or configure it with `aws configure`")
    except NoRegionError:
        usage_error("no AWS region: pass --region or set AWS_REGION")
    except (NoCredentialsError, PartialCredentialsError):
        usage_error("no AWS credentials: pass --profile or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    except EndpointConnectionError as exc:
        aws_failure(f"{action}: cannot reach {exc.kwargs.get('endpoint_url')}; check --endpoint-url and the network")
    except ClientError as exc:
        error = exc.response.get("Error", {})
        aws_failure(f"{action}: {error.get('Code', 'error')}: {error.get('Message', exc)}")
    except BotoCoreError as exc:
        aws_failure(f"{action}: {exc}")


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def call(action: str, operation: Callable[..., Any], /, *, tolerate: Collection[str] = (), **kwargs: Any) -> Any:
    """``operation(**kwargs)``; an AWS error whose code is in ``tolerate`` returns ``None``, others exit in one line."""
    with aws_errors(action):
        try:
            return operation(**kwargs)
        except ClientError as exc:
            if error_code(exc) in tolerate:
                return None
            raise
    raise AssertionError("aws_errors re-raises every exception")  # pragma: no cover


def aws_options(command: Callable[..., R]) -> Callable[..., R]:
    """Add ``--region``, ``--profile`` and ``--endpoint-url``; the command receives them as ``aws``."""

    @functools.wraps(command)
    def wrapper(*args: Any, region: str | None, profile: str | None, endpoint_url: str | None, **kwargs: Any) -> R:
        return command(*args, aws=AwsTarget(region, profile, endpoint_url), **kwargs)

    options = (
        click.option("--region", default=None, help="AWS region (default: the profile's, or AWS_REGION)."),
        click.option("--profile", default=None, help="AWS named profile (default: AWS_PROFILE, or the default)."),
        click.option(
            "--endpoint-url",
            default=None,
            metavar="URL",
            help="An endpoint that speaks the AWS API (default: AWS_ENDPOINT_URL, or AWS's).",
        ),
    )
    decorated: Callable[..., R] = wrapper
    for option in reversed(options):
        decorated = option(decorated)
    return decorated
