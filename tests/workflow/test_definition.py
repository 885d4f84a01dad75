"""The state machine definition and its wiring in template.yaml (no execution needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jitr_core.errors import REJECTION_NAMES

from jitr.local.errors import TemplateError
from jitr.local.template import load_template, resolve_template

ROOT = Path(__file__).resolve().parents[2]
ASL = json.loads((ROOT / "statemachine" / "registration.asl.json").read_text())
TASKS = {name: state for name, state in ASL["States"].items() if state["Type"] == "Task"}
STEPS = [name for name in TASKS if name != "Compensate"]


def retried_errors(state: dict[str, Any]) -> set[str]:
    return {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}


def test_steps_run_in_the_documented_order() -> None:
    order, name = [], ASL["StartAt"]
    while name in TASKS or ASL["States"][name]["Type"] == "Choice":
        state = ASL["States"][name]
        if state["Type"] == "Task":
            order.append(name)
            name = state["Next"]
        else:
            name = state["Default"]
    assert order == [
        "ParseCertificate",
        "ValidateCertificate",
        "EnsurePolicy",
        "CreateThing",
        "AttachPrincipal",
        "ActivateCertificate",
    ]
    assert ASL["States"][name]["Type"] == "Succeed"


@pytest.mark.parametrize("step", STEPS)
def test_every_step_is_a_lambda_invoke_caught_into_compensation(step: str) -> None:
    state = TASKS[step]
    assert state["Resource"] == "arn:aws:states:::lambda:invoke"
    assert state["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Compensate"}]


@pytest.mark.parametrize("step", [*STEPS, "Compensate"])
def test_every_task_retries_lambda_errors_and_throttling_with_full_jitter(step: str) -> None:
    state = TASKS[step]
    assert retried_errors(state) >= {
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "AwsThrottled",
        "AwsUnavailable",
    }
    for retrier in state["Retry"]:
        assert retrier["JitterStrategy"] == "FULL"
        assert retrier["BackoffRate"] >= 2


@pytest.mark.parametrize("step", [*STEPS, "Compensate"])
def test_rejections_and_catch_alls_are_never_retried(step: str) -> None:
    assert not retried_errors(TASKS[step]) & (REJECTION_NAMES | {"States.ALL", "States.TaskFailed"})


def test_throttling_retries_outlast_a_burst_at_ten_tps() -> None:
    """Backoff before giving up must cover minutes of a saturated DescribeCertificate quota."""
    retrier = next(r for r in TASKS["ParseCertificate"]["Retry"] if "AwsThrottled" in r["ErrorEquals"])
    waits = [
        min(retrier["IntervalSeconds"] * retrier["BackoffRate"] ** n, retrier.get("MaxDelaySeconds", float("inf")))
        for n in range(retrier["MaxAttempts"])
    ]
    assert sum(waits) >= 60


def test_final_fail_states_carry_the_original_error() -> None:
    for name in ("RegistrationRejected", "RegistrationFailed"):
        assert ASL["States"][name] == {
            **ASL["States"][name],
            "ErrorPath": "$.error.Error",
            "CausePath": "$.error.Cause",
        }


def test_template_substitutes_every_function_of_the_definition() -> None:
    resolved = resolve_template(ROOT / "template.yaml")
    definition = resolved.state_machine().definition
    arns = {s["Parameters"]["FunctionName"] for s in definition["States"].values() if s["Type"] == "Task"}
    function_arns = {f"arn:aws:lambda:us-east-1:123456789012:function:{f.name}" for f in resolved.functions.values()}
    assert arns == function_arns
    assert "${" not in json.dumps(definition)


def test_every_function_has_its_own_folder_and_handler() -> None:
    for function in resolve_template(ROOT / "template.yaml").functions.values():
        assert function.module_file.is_file(), function.logical_id
        assert f"def {function.function_name_attr}(" in function.module_file.read_text()


def test_functions_run_on_python313_arm64_with_least_privilege_roles() -> None:
    template = load_template(ROOT / "template.yaml")
    assert template["Globals"]["Function"]["Runtime"] == "python3.13"
    assert template["Globals"]["Function"]["Architectures"] == ["arm64"]
    functions = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert len(functions) == 7
    for logical_id, function in functions.items():
        actions = {
            action
            for policy in function["Properties"]["Policies"]
            for statement in _statements(policy)
            for action in _as_list(statement.get("Action", []))
        }
        assert actions, logical_id
        assert not any(a.endswith("*") for a in actions), (logical_id, actions)


def test_registration_rule_starts_this_state_machine_and_keeps_failed_events() -> None:
    resolved = resolve_template(ROOT / "template.yaml")
    rule = next(r for r in resolved.topic_rules.values() if "$aws/events/certificates/registered/+" in r.sql)
    template = load_template(ROOT / "template.yaml")
    payload = template["Resources"][rule.logical_id]["Properties"]["TopicRulePayload"]
    assert rule.actions[0]["StepFunctions"]["StateMachineName"] == resolved.state_machine().name
    assert "Sqs" in payload["ErrorAction"]


def test_conflicting_revocation_sources_are_refused() -> None:
    with pytest.raises(TemplateError, match="OneRevocationListSource"):
        resolve_template(ROOT / "template.yaml", {"CrlBucket": "crl-bucket", "CrlUrl": "https://ca.example/crl.pem"})


def _statements(policy: Any) -> list[dict[str, Any]]:
    if isinstance(policy, dict) and "Statement" in policy:
        return [s for item in policy["Statement"] for s in _statements(item)]
    if isinstance(policy, dict) and "Fn::If" in policy:
        return [s for branch in policy["Fn::If"][1:] for s in _statements(branch)]
    if isinstance(policy, dict) and "Effect" in policy:
        return [policy]
    return []


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
