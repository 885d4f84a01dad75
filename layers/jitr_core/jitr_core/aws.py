"""boto3 clients for the functions, and the translation of AWS errors into workflow errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, ReadTimeoutError

from jitr_core.errors import AwsThrottled, AwsUnavailable

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient
    from mypy_boto3_s3 import S3Client

THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "Throttling",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
    }
)
UNAVAILABLE_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "ServiceUnavailable",
        "InternalFailureException",
        "InternalException",
        "InternalError",
    }
)

# A few quick SDK retries absorb a blip; sustained throttling is left to the state machine,
# whose retries back off for longer and show in the execution history.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=10)


class AwsClients:
    """boto3 clients created on first use and kept for the life of a warm function."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}

    def _client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = boto3.client(service, config=CLIENT_CONFIG)  # type: ignore[call-overload]
        return self._clients[service]

    def iot(self) -> IoTClient:
        client: IoTClient = self._client("iot")
        return client

    def s3(self) -> S3Client:
        client: S3Client = self._client("s3")
        return client


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ClientError."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def aws_errors_translated() -> Iterator[None]:
    """Turn throttling and service-side AWS errors into the workflow's retryable errors.

    Usable as a decorator on a handler. Other errors pass through unchanged.
    """
    try:
        yield
    except ClientError as exc:
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if code in THROTTLING_CODES or status == 429:
            raise AwsThrottled(f"{exc.operation_name} was throttled ({code}); retry with backoff") from exc
        if code in UNAVAILABLE_CODES or status >= 500:
            raise AwsUnavailable(f"{exc.operation_name} failed on the AWS side ({code or status})") from exc
        raise
    except (ConnectionError, ReadTimeoutError) as exc:
        raise AwsUnavailable(f"could not reach AWS: {exc}") from exc
