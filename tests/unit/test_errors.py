"""jitr_core.errors: which error names Step Functions treats as rejections."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jitr_core import errors

ASL = Path(__file__).resolve().parents[2] / "statemachine" / "registration.asl.json"

REJECTIONS: list[type[errors.RegistrationRejected]] = [
    errors.CommonNameMissing,
    errors.CommonNameAmbiguous,
    errors.ThingNameInvalid,
    errors.ThingNameWildcard,
    errors.ThingNamePolicyVariable,
    errors.ThingNameTopicCharacter,
    errors.ThingNamePatternMismatch,
    errors.CertificateExpired,
    errors.CertificateNotYetValid,
    errors.CertificateNotPending,
    errors.CaNotAllowed,
    errors.CaNotActive,
    errors.SignatureInvalid,
    errors.CertificateRevoked,
    errors.CrlUnavailable,
    errors.CrlInvalid,
    errors.CrlStale,
]
NOT_REJECTIONS: list[type[Exception]] = [
    errors.JitrError,
    errors.RegistrationRejected,
    errors.RetryableAwsError,
    errors.AwsThrottled,
    errors.AwsUnavailable,
    errors.InvalidRegistrationEvent,
    errors.InvalidStepInput,
    errors.CertificateNotFound,
    errors.ConfigurationError,
]


@pytest.mark.parametrize("rejection", REJECTIONS, ids=lambda c: c.__name__)
def test_every_rejection_is_named_in_rejection_names(rejection: type[errors.RegistrationRejected]) -> None:
    assert rejection.__name__ in errors.REJECTION_NAMES
    assert errors.is_rejection(rejection.__name__)
    assert rejection("x").reason == rejection.__name__


@pytest.mark.parametrize("error", NOT_REJECTIONS, ids=lambda c: c.__name__)
def test_retryable_and_failure_errors_are_not_rejections(error: type[Exception]) -> None:
    assert error.__name__ not in errors.REJECTION_NAMES
    assert not errors.is_rejection(error.__name__)


def test_rejection_names_are_exactly_the_rejections() -> None:
    assert {c.__name__ for c in REJECTIONS} == errors.REJECTION_NAMES


@pytest.mark.parametrize(
    "name", ["States.ALL", "States.TaskFailed", "Lambda.Unknown", "ClientError", "ValueError", "", "thingnamewildcard"]
)
def test_runtime_and_unknown_error_names_are_failures(name: str) -> None:
    assert not errors.is_rejection(name)


def test_state_machine_retries_exactly_the_retryable_errors() -> None:
    definition = json.loads(ASL.read_text())
    retried = {
        name
        for state in definition["States"].values()
        for retry in state.get("Retry", [])
        for name in retry["ErrorEquals"]
        if not name.startswith(("Lambda.", "States."))
    }
    assert retried == {errors.AwsThrottled.__name__, errors.AwsUnavailable.__name__}
