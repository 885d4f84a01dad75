"""Policy evaluations per second: the cost of authorizing one publish, subscribe or delivery.

Two policy sets, each compiled once: the workflow's default device policy, and a generated
20-statement policy with conditions (thing attributes, thing type, IsAttached, client id
patterns, Deny statements). Each is asked a mix of allowed and denied requests from a few
connected devices, through ``CompiledPolicySet.evaluate`` (which finds the connection's bound
policies in its cache) and through a connection's ``BoundPolicySet`` directly.
"""

from __future__ import annotations

import json
import time
from itertools import cycle, islice
from pathlib import Path
from typing import Any

from jitr_core.policy import (
    CompiledPolicySet,
    ConnectionContext,
    Request,
    client_arn,
    compile_policy,
    topic_arn,
    topic_filter_arn,
)
from rich.console import Console
from rich.table import Table

DEFAULT_POLICY = Path(__file__).resolve().parents[1] / "functions" / "ensure_policy" / "device_policy.json"
EVALUATIONS = 200_000
REGION = "us-east-1"
ACCOUNT = "123456789012"
DEVICES = tuple(f"device-{n:03d}" for n in range(1, 6))


def twenty_statement_policy() -> dict[str, Any]:
    """A device policy of 20 statements, most with conditions, as a larger fleet might write one."""
    thing = "${iot:Connection.Thing.ThingName}"
    prefix = "arn:aws:iot:*:*:"
    attached = {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}
    statements: list[dict[str, Any]] = [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{prefix}client/{thing}", "Condition": attached}
    ]
    for n, area in enumerate(("telemetry", "events", "logs", "metrics", "alerts", "config", "ota", "diag")):
        statements.append(
            {
                "Sid": f"Publish{area.title()}",
                "Effect": "Allow",
                "Action": ["iot:Publish", "iot:RetainPublish"] if n % 2 else "iot:Publish",
                "Resource": [f"{prefix}topic/{area}/{thing}/*", f"{prefix}topic/{area}/{thing}"],
                "Condition": {
                    "StringEquals": {"iot:Connection.Thing.Attributes[fleet]": ["north", "south"]},
                    "StringLike": {"iot:ClientId": "device-*"},
                    **attached,
                },
            }
        )
    for area in ("commands", "config", "ota", "jobs"):
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["iot:Subscribe"],
                "Resource": f"{prefix}topicfilter/{area}/{thing}/*",
                "Condition": {"StringEquals": {"iot:Connection.Thing.ThingTypeName": "sensor"}},
            }
        )
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["iot:Receive"],
                "Resource": f"{prefix}topic/{area}/{thing}/*",
                "Condition": {"ForAnyValue:StringEquals": {"iot:Connection.Thing.Attributes[fleet]": ["north"]}},
            }
        )
    statements += [
        {"Effect": "Deny", "Action": "iot:Publish", "Resource": f"{prefix}topic/*/{thing}/admin/*"},
        {
            "Effect": "Deny",
            "Action": ["iot:Subscribe", "iot:Receive"],
            "Resource": [f"{prefix}topicfilter/ota/{thing}/internal/*", f"{prefix}topic/ota/{thing}/internal/*"],
            "Condition": {"StringNotEquals": {"iot:Connection.Thing.Attributes[role]": "maintainer"}},
        },
        {
            "Effect": "Deny",
            "Action": "iot:*",
            "Resource": "*",
            "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "false"}},
        },
    ]
    assert len(statements) == 20, len(statements)
    return {"Version": "2012-10-17", "Statement": statements}


def contexts() -> list[ConnectionContext]:
    return [
        ConnectionContext(
            client_id=name,
            thing_name=name,
            thing_type_name="sensor",
            thing_attributes={"fleet": "north" if n % 2 else "south"},
        )
        for n, name in enumerate(DEVICES)
    ]


def default_requests(device: str) -> list[Request]:
    """Allowed and denied requests of one device against the default policy (about half of each)."""
    other = "device-999"
    return [
        Request("iot:Publish", topic_arn(REGION, ACCOUNT, f"dt/{device}/1/telemetry")),
        Request("iot:Publish", topic_arn(REGION, ACCOUNT, f"dt/{other}/1/telemetry")),
        Request("iot:Receive", topic_arn(REGION, ACCOUNT, f"$aws/things/{device}/shadow/update/delta")),
        Request("iot:Receive", topic_arn(REGION, ACCOUNT, f"dt/{other}/1/telemetry")),
        Request("iot:Subscribe", topic_filter_arn(REGION, ACCOUNT, f"dt/{device}/#")),
        Request("iot:Subscribe", topic_filter_arn(REGION, ACCOUNT, "dt/+/telemetry")),
        Request("iot:Connect", client_arn(REGION, ACCOUNT, device)),
        Request("iot:Connect", client_arn(REGION, ACCOUNT, other)),
    ]


def twenty_requests(device: str) -> list[Request]:
    return [
        Request("iot:Publish", topic_arn(REGION, ACCOUNT, f"telemetry/{device}/temperature")),
        Request("iot:Publish", topic_arn(REGION, ACCOUNT, f"diag/{device}/admin/reset")),
        Request("iot:Publish", topic_arn(REGION, ACCOUNT, "telemetry/device-999/temperature")),
        Request("iot:Receive", topic_arn(REGION, ACCOUNT, f"commands/{device}/reboot")),
        Request("iot:Receive", topic_arn(REGION, ACCOUNT, f"ota/{device}/internal/image")),
        Request("iot:Subscribe", topic_filter_arn(REGION, ACCOUNT, f"config/{device}/#")),
        Request("iot:Subscribe", topic_filter_arn(REGION, ACCOUNT, "config/#")),
        Request("iot:Connect", client_arn(REGION, ACCOUNT, device)),
    ]


def _workload(policies: CompiledPolicySet, requests_of: Any) -> list[tuple[Request, ConnectionContext]]:
    pairs = [(request, context) for context in contexts() for request in requests_of(context.client_id)]
    for request, context in pairs:
        policies.evaluate(request, context)  # bind every connection before timing
    return pairs


def evaluations_per_second(policies: CompiledPolicySet, requests_of: Any, evaluations: int) -> tuple[float, float]:
    """(through CompiledPolicySet.evaluate, through each connection's BoundPolicySet), and the allowed share."""
    pairs = _workload(policies, requests_of)
    work = list(islice(cycle(pairs), evaluations))
    evaluate = policies.evaluate
    started = time.perf_counter()
    for request, context in work:
        evaluate(request, context)
    per_set = evaluations / (time.perf_counter() - started)
    bound = [(policies.bind(context).evaluate, request) for request, context in work]
    started = time.perf_counter()
    for decide, request in bound:
        decide(request)
    per_bound = evaluations / (time.perf_counter() - started)
    return per_set, per_bound


def allowed_share(policies: CompiledPolicySet, requests_of: Any) -> float:
    pairs = _workload(policies, requests_of)
    return sum(policies.evaluate(request, context).allowed for request, context in pairs) / len(pairs)


def run(evaluations: int = EVALUATIONS) -> dict[str, float]:
    """Policy evaluations per second for the default policy and for the 20-statement one."""
    default = compile_policy(json.loads(DEFAULT_POLICY.read_text()), DEFAULT_POLICY.name)
    twenty = compile_policy(twenty_statement_policy(), "twenty-statements")
    default_rate, default_bound = evaluations_per_second(default, default_requests, evaluations)
    twenty_rate, twenty_bound = evaluations_per_second(twenty, twenty_requests, evaluations)
    return {
        "policy_evaluations_per_second_default": round(default_rate),
        "policy_evaluations_per_second_20_statements": round(twenty_rate),
        "policy_evaluations_per_second_default_bound": round(default_bound),
        "policy_evaluations_per_second_20_statements_bound": round(twenty_bound),
        "policy_allowed_share_default": round(allowed_share(default, default_requests), 2),
        "policy_allowed_share_20_statements": round(allowed_share(twenty, twenty_requests), 2),
    }


def rows(results: dict[str, float]) -> list[tuple[str, str]]:
    """Rows for the benchmark table."""

    def rate(key: str) -> str:
        per_second = results[key]
        return f"{per_second:,.0f} ({1e6 / per_second:.1f} µs each)"

    return [
        ("policy evaluations per second, default device policy", rate("policy_evaluations_per_second_default")),
        (
            "policy evaluations per second, 20 statements with conditions",
            rate("policy_evaluations_per_second_20_statements"),
        ),
    ]


def main() -> None:
    results = run()
    table = Table(title="jitr policy engine")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for measure, value in rows(results):
        table.add_row(measure, value)
    Console().print(table)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
