"""Questions about a certificate's registration that more than one step asks."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient


def is_fully_registered(iot: IoTClient, certificate_arn: str, policy_name: str) -> bool:
    """A certificate counts as registered when it has a thing and the device policy attached.

    Asked of an ACTIVE certificate: since activation is the workflow's last write, an ACTIVE
    certificate with both attachments is a finished registration, whichever execution made it.
    """
    things = iot.list_principal_things(principal=certificate_arn, maxResults=1)["things"]
    if not things:
        return False
    policies = iot.list_attached_policies(target=certificate_arn, recursive=False)["policies"]
    return any(p.get("policyName") == policy_name for p in policies)
