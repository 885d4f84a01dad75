"""jitr_core.aws: AWS errors become the workflow's retryable errors, or pass through."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from jitr_core.aws import AwsClients, aws_errors_translated, error_code
from jitr_core.errors import AwsThrottled, AwsUnavailable, RetryableAwsError


def client_error(code: str, status: int, operation: str = "DescribeCertificate") -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": "test"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)


def raise_inside(exc: Exception) -> None:
    with aws_errors_translated():
        raise exc


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("ThrottlingException", 400, id="ThrottlingException"),
        pytest.param("TooManyRequestsException", 400, id="TooManyRequestsException"),
        pytest.param("Throttling", 400, id="Throttling"),
        pytest.param("RequestLimitExceeded", 400, id="RequestLimitExceeded"),
        pytest.param("SlowDown", 400, id="SlowDown"),
        pytest.param("SomethingNew", 429, id="any-code-with-HTTP-429"),
    ],
)
def test_throttling_becomes_aws_throttled(code: str, status: int) -> None:
    original = client_error(code, status)
    with pytest.raises(AwsThrottled, match="DescribeCertificate") as caught:
        raise_inside(original)
    assert caught.value.__cause__ is original


@pytest.mark.parametrize(
    ("code", "status"),
    [
        pytest.param("ServiceUnavailableException", 400, id="ServiceUnavailableException"),
        pytest.param("InternalFailureException", 400, id="InternalFailureException"),
        pytest.param("InternalError", 400, id="InternalError"),
        pytest.param("InternalServerError", 500, id="any-code-with-HTTP-500"),
        pytest.param("", 502, id="no-code-with-HTTP-502"),
    ],
)
def test_service_side_failure_becomes_aws_unavailable(code: str, status: int) -> None:
    original = client_error(code, status)
    with pytest.raises(AwsUnavailable) as caught:
        raise_inside(original)
    assert caught.value.__cause__ is original


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ResourceNotFoundException", 404),
        ("ResourceAlreadyExistsException", 409),
        ("InvalidRequestException", 400),
        ("AccessDeniedException", 403),
    ],
)
def test_client_side_error_passes_through_unchanged(code: str, status: int) -> None:
    original = client_error(code, status)
    with pytest.raises(ClientError) as caught:
        raise_inside(original)
    assert caught.value is original
    assert not isinstance(caught.value, RetryableAwsError)


def test_connection_failures_become_aws_unavailable() -> None:
    with pytest.raises(AwsUnavailable, match="could not reach AWS"):
        raise_inside(EndpointConnectionError(endpoint_url="https://iot.us-east-1.amazonaws.com"))
    with pytest.raises(AwsUnavailable):
        raise_inside(ReadTimeoutError(endpoint_url="https://iot.us-east-1.amazonaws.com"))


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError):
        raise_inside(KeyError("x"))


def test_translation_works_as_a_decorator_on_every_call() -> None:
    calls: list[int] = []

    @aws_errors_translated()
    def handler() -> None:
        calls.append(1)
        raise client_error("ThrottlingException", 400)

    for _ in range(2):
        with pytest.raises(AwsThrottled):
            handler()
    assert len(calls) == 2


def test_error_code_reads_the_aws_code() -> None:
    assert error_code(client_error("ResourceNotFoundException", 404)) == "ResourceNotFoundException"
    assert error_code(ClientError({}, "GetPolicy")) == ""


def test_clients_are_created_once_and_reused() -> None:
    clients = AwsClients()
    assert clients.iot() is clients.iot()
    assert clients.s3() is clients.s3()
    assert clients.iot().meta.service_model.service_name == "iot"
    assert clients.s3().meta.service_model.service_name == "s3"
