"""Human-readable output of registrations."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.console import Console

from jitr.local.registration import RegistrationResult

OUTCOME_STYLE = {"ACTIVATED": "bold green", "REJECTED": "bold yellow", "FAILED": "bold red"}


def error_message(error: dict[str, str] | None) -> str:
    """The handler's own message when the cause is a Lambda error document."""
    if not error:
        return ""
    cause = error.get("Cause") or ""
    try:
        message = json.loads(cause).get("errorMessage", cause)
    except (ValueError, AttributeError):
        message = cause
    return f"{error.get('Error')}: {message}"


def print_result(result: RegistrationResult, console: Console | None = None) -> None:
    console = console or Console(soft_wrap=True)
    style = OUTCOME_STYLE.get(result.outcome, "bold")
    console.print(
        f"[{style}]{result.outcome}[/]  certificate {result.certificate_id[:16]}…  {result.certificate_status}"
    )
    console.print(f"  path:     {' → '.join(result.states)}")
    console.print(f"  thing:    {result.thing_name or '-'}")
    console.print(f"  policies: {', '.join(result.policies) or '-'}")
    if result.error:
        console.print(f"  error:    {error_message(result.error)}", markup=False, highlight=False)


def print_results(rows: Sequence[tuple[str, RegistrationResult]], console: Console | None = None) -> None:
    """One block per device: its label, then what ``print_result`` shows."""
    console = console or Console(soft_wrap=True)
    for label, result in rows:
        console.print(f"\n[bold]{label}[/]", highlight=False)
        print_result(result, console)
