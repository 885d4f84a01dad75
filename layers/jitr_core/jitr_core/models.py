"""Typed models of the registration event and of the state each step adds.

Step Functions passes one JSON document from state to state. Each step reads the parts it
needs through these models and adds its own result under a key of its own (``ResultPath``):

``certificate`` (ParseCertificate), ``device`` (ValidateCertificate), ``policy``
(EnsurePolicy), ``thing`` (CreateThing), ``attachment`` (AttachPrincipal), ``activation``
(ActivateCertificate) and, on failure, ``error`` and ``compensation``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, TypeVar

from aws_lambda_powertools.utilities.parser import parse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from jitr_core.errors import InvalidRegistrationEvent, InvalidStepInput, JitrError

CERTIFICATE_ID_PATTERN = r"^[0-9a-f]{64}$"


class Model(BaseModel):
    """camelCase on the wire, snake_case in Python; unknown keys are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    def to_state(self) -> dict[str, Any]:
        """The JSON-ready form a step returns to Step Functions."""
        return self.model_dump(mode="json", by_alias=True)


class RegistrationEvent(Model):
    """What AWS IoT publishes on ``$aws/events/certificates/registered/<caCertificateId>``."""

    certificate_id: str = Field(pattern=CERTIFICATE_ID_PATTERN)
    ca_certificate_id: str = Field(pattern=CERTIFICATE_ID_PATTERN)
    timestamp: int = Field(ge=0, strict=True)
    certificate_status: Literal["PENDING_ACTIVATION"]
    aws_account_id: str = Field(pattern=r"^[0-9]{12}$")
    certificate_registration_timestamp: str | int | None = None


class CertificateInfo(Model):
    """The registered certificate as ParseCertificate read it (``$.certificate``)."""

    certificate_id: str = Field(pattern=CERTIFICATE_ID_PATTERN)
    certificate_arn: str
    ca_certificate_id: str = Field(pattern=CERTIFICATE_ID_PATTERN)
    status: str
    pem: str
    serial_number: str
    common_names: list[str]
    not_before: datetime
    not_after: datetime
    registered_at: datetime
    already_registered: bool = False


class DeviceIdentity(Model):
    """The identity ValidateCertificate accepted (``$.device``)."""

    thing_name: str


class PolicyRef(Model):
    """The device policy EnsurePolicy made sure of (``$.policy``)."""

    policy_name: str


class ThingRef(Model):
    """The thing CreateThing created or found (``$.thing``)."""

    thing_name: str
    thing_arn: str
    created: bool


class Attachment(Model):
    """What AttachPrincipal attached to the certificate (``$.attachment``)."""

    policy_name: str
    thing_name: str


class StepError(BaseModel):
    """The error a Catch stores at ``$.error`` (Step Functions' own key casing)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    Error: str
    Cause: str | None = None


class CompensationResult(Model):
    """What Compensate undid (``$.compensation``); ``outcome`` picks the final Fail state."""

    outcome: Literal["REJECTED", "FAILED"]
    certificate_status: str | None
    undone: list[str]


class StepInput(Model):
    """The workflow state as a step sees it; each step declares the keys it requires."""

    certificate_id: str = Field(pattern=CERTIFICATE_ID_PATTERN)


M = TypeVar("M", bound=BaseModel)


def parse_state(event: Any, model: type[M], error: type[JitrError] = InvalidStepInput) -> M:
    """Parse a step's input into ``model`` or raise ``error`` naming every bad field."""
    if not isinstance(event, dict):
        raise error(f"{model.__name__}: <root>: expected a JSON object, got {type(event).__name__}")
    try:
        return parse(event=event, model=model)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise error(f"{model.__name__}: {problems}") from None
    except (TypeError, ValueError) as exc:  # not a JSON object at all
        raise error(f"{model.__name__}: {exc}") from None


def parse_registration_event(event: Any) -> RegistrationEvent:
    """Parse the AWS IoT registration event, or raise ``InvalidRegistrationEvent``."""
    return parse_state(event, RegistrationEvent, InvalidRegistrationEvent)
