"""Read the workflow's executions from a Step Functions endpoint: list them, find one, tell its story."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jitr.local.errors import LocalRuntimeError

# A history event keeps its details under a key ending in this (``taskFailedEventDetails``, ...).
_DETAILS_SUFFIX = "EventDetails"


@dataclass(frozen=True)
class ExecutionSummary:
    """One execution as ``jitr local executions`` lists it."""

    name: str
    arn: str
    state_machine_arn: str
    status: str
    start_date: datetime
    stop_date: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "executionArn": self.arn,
            "stateMachineArn": self.state_machine_arn,
            "status": self.status,
            "startDate": self.start_date.isoformat(),
            "stopDate": self.stop_date.isoformat() if self.stop_date else None,
        }


def _pages(operation: Any, key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = operation(**kwargs)
        items.extend(page[key])
        if not page.get("nextToken"):
            return items
        kwargs["nextToken"] = page["nextToken"]


def list_executions(sfn: Any) -> list[ExecutionSummary]:
    """Every execution of every state machine, oldest first."""
    executions = [
        ExecutionSummary(
            name=e["name"],
            arn=e["executionArn"],
            state_machine_arn=e["stateMachineArn"],
            status=e["status"],
            start_date=e["startDate"],
            stop_date=e.get("stopDate"),
        )
        for machine in _pages(sfn.list_state_machines, "stateMachines")
        for e in _pages(sfn.list_executions, "executions", stateMachineArn=machine["stateMachineArn"])
    ]
    return sorted(executions, key=lambda e: e.start_date)


def find_execution(sfn: Any, name_or_arn: str) -> str:
    """The ARN of the execution named ``name_or_arn`` (or that ARN itself)."""
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    for execution in list_executions(sfn):
        if execution.name == name_or_arn:
            return execution.arn
    raise LocalRuntimeError(f"no execution named {name_or_arn!r} (see `jitr local executions`)")


def history(sfn: Any, execution_arn: str) -> list[dict[str, Any]]:
    """The execution's events, oldest first."""
    return _pages(sfn.get_execution_history, "events", executionArn=execution_arn)


def execution_path(events: list[dict[str, Any]]) -> list[str]:
    """The states the execution entered, in order: the story its state names tell."""
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def event_details(event: dict[str, Any]) -> dict[str, Any]:
    """The details document of a history event (its ``…EventDetails`` field), or ``{}``."""
    for key, value in event.items():
        if key.endswith(_DETAILS_SUFFIX) and isinstance(value, dict):
            return value
    return {}


def describe(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """The execution's status, path and events, as ``jitr local execution --json`` prints them."""
    description = sfn.describe_execution(executionArn=execution_arn)
    events = history(sfn, execution_arn)
    return {
        "name": description["name"],
        "executionArn": execution_arn,
        "status": description["status"],
        "path": execution_path(events),
        "error": description.get("error"),
        "cause": description.get("cause"),
        "events": [
            {
                "id": e["id"],
                "type": e["type"],
                "timestamp": e["timestamp"].isoformat(),
                "details": event_details(e),
            }
            for e in events
        ],
    }
