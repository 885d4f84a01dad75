"""Queries on the moto registry that the step tests assert on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.conftest import Registered

POLICY = "jitr-device-policy"


def status_of(iot: Any, registered: Registered) -> str:
    return str(iot.describe_certificate(certificateId=registered.certificate_id)["certificateDescription"]["status"])


def attached_policies(iot: Any, registered: Registered) -> list[str]:
    return [p["policyName"] for p in iot.list_attached_policies(target=registered.certificate_arn)["policies"]]


def attached_things(iot: Any, registered: Registered) -> list[str]:
    things: list[str] = iot.list_principal_things(principal=registered.certificate_arn)["things"]
    return things
