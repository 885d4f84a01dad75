"""EnsurePolicy: the device policy in AWS IoT is the document shipped with the function."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.conftest import LambdaContext
    from tests.unit.conftest import CallLog

POLICY = "jitr-device-policy"
DOCUMENT_FILE = Path(__file__).resolve().parents[2] / "functions" / "ensure_policy" / "device_policy.json"
STATE = {"certificateId": "a" * 64}
REPO_DOCUMENT: dict[str, Any] = json.loads(DOCUMENT_FILE.read_text())


def old_document(n: int) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": f"arn:aws:iot:*:*:client/old-{n}"}],
        }
    )


@pytest.fixture
def ensure(load_function: Callable[[str], ModuleType], aws: None) -> ModuleType:
    return load_function("ensure_policy")


def stored_document(iot: Any) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(iot.get_policy(policyName=POLICY)["policyDocument"])
    return document


def versions(iot: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = iot.list_policy_versions(policyName=POLICY)["policyVersions"]
    return found


def test_missing_policy_is_created_from_the_shipped_document(
    ensure: ModuleType, iot: Any, lambda_context: LambdaContext
) -> None:
    assert ensure.lambda_handler(STATE, lambda_context) == {"policyName": POLICY}
    assert stored_document(iot) == REPO_DOCUMENT
    assert len(versions(iot)) == 1


def test_policy_name_comes_from_the_environment(
    ensure: ModuleType,
    iot: Any,
    lambda_context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEVICE_POLICY_NAME", "fleet-policy")
    assert ensure.lambda_handler(STATE, lambda_context) == {"policyName": "fleet-policy"}
    assert json.loads(iot.get_policy(policyName="fleet-policy")["policyDocument"]) == REPO_DOCUMENT


def test_warm_function_makes_no_calls_once_the_policy_is_ensured(
    ensure: ModuleType, lambda_context: LambdaContext, record_calls: Callable[[Any], CallLog]
) -> None:
    ensure.lambda_handler(STATE, lambda_context)
    calls = record_calls(ensure.clients.iot())
    assert ensure.lambda_handler(STATE, lambda_context) == {"policyName": POLICY}
    assert calls.operations == []


def test_cold_function_with_an_unchanged_policy_only_reads_it(
    ensure: ModuleType,
    load_function: Callable[[str], ModuleType],
    iot: Any,
    lambda_context: LambdaContext,
    record_calls: Callable[[Any], CallLog],
) -> None:
    ensure.lambda_handler(STATE, lambda_context)
    cold = load_function("ensure_policy")
    calls = record_calls(cold.clients.iot())
    assert cold.lambda_handler(STATE, lambda_context) == {"policyName": POLICY}
    assert calls.operations == ["GetPolicy"]
    assert len(versions(iot)) == 1


def test_changed_policy_gets_a_new_default_version(ensure: ModuleType, iot: Any, lambda_context: LambdaContext) -> None:
    iot.create_policy(policyName=POLICY, policyDocument=old_document(1))
    ensure.lambda_handler(STATE, lambda_context)
    assert stored_document(iot) == REPO_DOCUMENT
    listed = versions(iot)
    assert len(listed) == 2
    assert [v["versionId"] for v in listed if v["isDefaultVersion"]] == ["2"]


def test_policy_differing_only_in_whitespace_and_key_order_is_unchanged(
    ensure: ModuleType,
    iot: Any,
    lambda_context: LambdaContext,
    record_calls: Callable[[Any], CallLog],
) -> None:
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps(REPO_DOCUMENT, indent=4, sort_keys=True))
    calls = record_calls(ensure.clients.iot())
    ensure.lambda_handler(STATE, lambda_context)
    assert calls.writes == []


@pytest.mark.parametrize(
    ("default_version", "deleted_version"),
    [
        pytest.param("5", "1", id="default-is-newest"),
        pytest.param("1", "2", id="default-is-oldest"),
        pytest.param("3", "1", id="default-in-the-middle"),
    ],
)
def test_oldest_non_default_version_is_deleted_when_the_policy_has_five(
    ensure: ModuleType,
    iot: Any,
    lambda_context: LambdaContext,
    default_version: str,
    deleted_version: str,
) -> None:
    iot.create_policy(policyName=POLICY, policyDocument=old_document(1))
    for n in range(2, 6):
        iot.create_policy_version(policyName=POLICY, policyDocument=old_document(n), setAsDefault=False)
    iot.set_default_policy_version(policyName=POLICY, policyVersionId=default_version)

    ensure.lambda_handler(STATE, lambda_context)

    listed = versions(iot)
    ids = {v["versionId"] for v in listed}
    assert len(listed) == 5
    assert deleted_version not in ids
    assert ids == {"1", "2", "3", "4", "5", "6"} - {deleted_version}
    assert [v["versionId"] for v in listed if v["isDefaultVersion"]] == ["6"]
    assert stored_document(iot) == REPO_DOCUMENT


def test_policy_created_concurrently_is_adopted(
    ensure: ModuleType,
    iot: Any,
    lambda_context: LambdaContext,
    record_calls: Callable[[Any], CallLog],
) -> None:
    # Another execution creates the policy between this one's GetPolicy and CreatePolicy.
    client = ensure.clients.iot()
    calls = record_calls(client)

    def create_first(**_: Any) -> None:
        client.meta.events.unregister("before-call.iot.CreatePolicy", create_first)
        iot.create_policy(policyName=POLICY, policyDocument=json.dumps(REPO_DOCUMENT))

    client.meta.events.register("before-call.iot.CreatePolicy", create_first)
    assert ensure.lambda_handler(STATE, lambda_context) == {"policyName": POLICY}
    assert calls.operations == ["GetPolicy", "CreatePolicy", "GetPolicy"]
    assert stored_document(iot) == REPO_DOCUMENT
    assert len(versions(iot)) == 1
