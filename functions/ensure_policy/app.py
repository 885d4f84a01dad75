"""EnsurePolicy: make sure the device policy in AWS IoT is the document shipped with this function.

Creates the policy when it is missing and adds a new default version when the shipped
document changed, deleting the oldest non-default version first when the policy already
has the five versions AWS IoT allows. A warm function that has ensured the policy once makes
no further policy calls.
"""

from __future__ import annotations

import functools
import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from jitr_core.aws import AwsClients, error_code
from jitr_core.handler import workflow_step
from jitr_core.models import PolicyRef
from jitr_core.settings import env_str

if TYPE_CHECKING:
    from mypy_boto3_iot import IoTClient

logger = Logger()
tracer = Tracer()
clients = AwsClients()

POLICY_FILE = Path(__file__).with_name("device_policy.json")
MAX_POLICY_VERSIONS = 5


class PolicyChange(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@functools.cache
def load_policy_document(path: Path = POLICY_FILE) -> dict[str, Any]:
    """The shipped policy document, read once per warm function (it only changes with a deploy)."""
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def document_digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _get_policy_document(iot: IoTClient, name: str) -> dict[str, Any] | None:
    try:
        policy = iot.get_policy(policyName=name)
    except ClientError as exc:
        if error_code(exc) == "ResourceNotFoundException":
            return None
        raise
    current: dict[str, Any] = json.loads(policy["policyDocument"])
    return current


def _make_room_for_a_version(iot: IoTClient, name: str) -> None:
    versions = iot.list_policy_versions(policyName=name)["policyVersions"]
    if len(versions) < MAX_POLICY_VERSIONS:
        return
    oldest = min((v for v in versions if not v.get("isDefaultVersion")), key=lambda v: v["createDate"])
    iot.delete_policy_version(policyName=name, policyVersionId=oldest["versionId"])
    logger.info("deleted the oldest policy version", extra={"policyVersionId": oldest["versionId"]})


def ensure_policy(iot: IoTClient, name: str, document: dict[str, Any]) -> PolicyChange:
    """Bring the policy ``name`` to ``document``; say what had to change."""
    current = _get_policy_document(iot, name)
    if current is None:
        try:
            iot.create_policy(policyName=name, policyDocument=json.dumps(document))
            return PolicyChange.CREATED
        except ClientError as exc:
            if error_code(exc) != "ResourceAlreadyExistsException":
                raise
            current = _get_policy_document(iot, name)  # another execution created it first
    if current == document:
        return PolicyChange.UNCHANGED
    _make_room_for_a_version(iot, name)
    iot.create_policy_version(policyName=name, policyDocument=json.dumps(document), setAsDefault=True)
    return PolicyChange.UPDATED


class EnsuredPolicies:
    """The (policy name, document digest) pairs this warm function has already ensured."""

    def __init__(self) -> None:
        self._done: set[tuple[str, str]] = set()

    def ensure(self, iot: IoTClient, name: str, document: dict[str, Any]) -> PolicyChange:
        key = (name, document_digest(document))
        if key in self._done:
            return PolicyChange.UNCHANGED
        change = ensure_policy(iot, name, document)
        self._done.add(key)
        return change


ensured = EnsuredPolicies()


@workflow_step(logger, tracer)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    name = env_str("DEVICE_POLICY_NAME")
    change = ensured.ensure(clients.iot(), name, load_policy_document())
    if change is not PolicyChange.UNCHANGED:
        logger.info("device policy %s", change.value, extra={"policyName": name})
    return PolicyRef(policy_name=name).to_state()
