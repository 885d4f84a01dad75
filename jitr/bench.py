"""``make bench``: what one registration costs, how fast the local stack registers a fleet,
how fast device certificates are issued and policies evaluated, and how long devices
connecting to the local endpoint wait to be onboarded (:mod:`jitr.bench_local`).

Prints, and writes to ``.bench/results.json`` (merged with rows other benchmarks add):
the AWS API calls the handlers make per registration (cold and warm functions), the
state transitions of the happy path, each handler module's import time, and
registrations per second for a fleet of devices on the local stack.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from jitr import bench_local, bench_pki, bench_policy, pki
from jitr.local.registration import LocalIot
from jitr.local.stack import PROJECT_ROOT, LocalStack

RESULTS = PROJECT_ROOT / ".bench" / "results.json"
LAMBDA_VENV = PROJECT_ROOT / ".bench" / "lambda-venv"
LAYER = PROJECT_ROOT / "layers" / "jitr_core"
FLEET_SIZE = int(os.environ.get("JITR_BENCH_DEVICES", "200"))
IMPORT_RUNS = 5
HANDLERS = (
    "parse_certificate",
    "validate_certificate",
    "ensure_policy",
    "create_thing",
    "attach_principal",
    "activate_certificate",
    "compensate",
)
# USD, us-east-1 list prices: Standard workflows per state transition, Lambda per request.
PRICE_PER_TRANSITION = 25.0 / 1_000_000
PRICE_PER_LAMBDA_REQUEST = 0.20 / 1_000_000

_IMPORT_PROBE = """
import importlib.util, sys, time
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = sys.modules["app"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print((time.perf_counter() - start) * 1000)
"""


def registration_costs() -> dict[str, Any]:
    """API calls (cold, then warm) and state transitions of one successful registration."""
    ca = pki.create_ca("bench CA")
    with LocalStack() as stack:
        iot = LocalIot(stack)
        cold = iot.register(pki.issue_device_certificate(ca, "bench-cold").cert_pem, ca.cert_pem)
        cold_calls = stack.api_call_counts()
        stack.api_calls.clear()
        warm = iot.register(pki.issue_device_certificate(ca, "bench-warm").cert_pem, ca.cert_pem)
        warm_calls = stack.api_call_counts()
        invocations = sum(1 for state in warm.states if state in _task_states(stack))
    assert cold.outcome == warm.outcome == "ACTIVATED", (cold, warm)
    return {
        "iot_api_calls_per_registration": sum(n for op, n in warm_calls.items() if op.startswith("iot:")),
        "api_calls_by_operation_warm": dict(sorted(warm_calls.items())),
        "api_calls_by_operation_cold": dict(sorted(cold_calls.items())),
        "state_transitions_per_registration": warm.state_transitions,
        "lambda_invocations_per_registration": invocations,
        "happy_path_states": warm.states,
    }


def _task_states(stack: LocalStack) -> set[str]:
    states = stack.template.state_machine().definition["States"]
    return {name for name, state in states.items() if state["Type"] == "Task"}


def lambda_like_python() -> tuple[str, str]:
    """An interpreter with only the layer's requirements, as a function has on Lambda.

    The development environment holds packages botocore picks up when present (awscrt,
    pyOpenSSL) that make imports slower than on Lambda. Falls back to this interpreter.
    """
    venv = LAMBDA_VENV
    python = venv / "bin" / "python"
    if not python.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)  # noqa: S603
            subprocess.run(  # noqa: S603
                [str(python), "-m", "pip", "install", "--quiet", "-r", str(LAYER / "requirements.txt")],
                check=True,
                capture_output=True,
            )
        except subprocess.CalledProcessError as exc:
            shutil.rmtree(venv, ignore_errors=True)
            return sys.executable, f"development environment (layer venv failed: {exc.stderr[-200:]!r})"
    return str(python), "layer requirements only"


def handler_import_ms(python: str) -> dict[str, float]:
    """Median cold import time of each handler module, each in a fresh interpreter."""
    environment = {
        **os.environ,
        "POWERTOOLS_TRACE_DISABLED": "true",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PYTHONPATH": str(LAYER),
    }
    timings: dict[str, float] = {}
    for handler in HANDLERS:
        path = PROJECT_ROOT / "functions" / handler / "app.py"
        runs = [
            float(
                subprocess.run(  # noqa: S603 (our own interpreter and file)
                    [python, "-c", _IMPORT_PROBE, str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=environment,
                ).stdout.strip()
            )
            for _ in range(IMPORT_RUNS)
        ]
        timings[handler] = round(statistics.median(runs), 1)
    return timings


def fleet_throughput(devices: int = FLEET_SIZE) -> dict[str, Any]:
    """Start ``devices`` registrations at once on one local stack; time until all have ended."""
    ca = pki.create_ca("bench fleet CA")
    fleet = [pki.issue_device_certificate(ca, f"fleet-{i:04d}") for i in range(devices)]
    with LocalStack() as stack:
        iot = LocalIot(stack)
        ca_id = iot.register_ca(ca.cert_pem)
        certificate_ids = [iot.register_device_certificate(d.cert_pem, ca.cert_pem) for d in fleet]
        started = time.perf_counter()
        executions = [iot.start_registration(iot.registration_event(c, ca_id)) for c in certificate_ids]
        outcomes = Counter(iot.wait(arn, timeout=600)["status"] for arn in executions)
        elapsed = time.perf_counter() - started
    return {
        "registrations_per_second": round(devices / elapsed, 1),
        "fleet_devices": devices,
        "fleet_seconds": round(elapsed, 2),
        "fleet_outcomes": dict(outcomes),
    }


def cost_per_million(results: dict[str, Any]) -> dict[str, float]:
    transitions = results["state_transitions_per_registration"] * 1_000_000
    invocations = results["lambda_invocations_per_registration"] * 1_000_000
    return {
        "state_transitions": transitions,
        "lambda_invocations": invocations,
        "iot_api_calls": results["iot_api_calls_per_registration"] * 1_000_000,
        "step_functions_usd": round(transitions * PRICE_PER_TRANSITION, 2),
        "lambda_requests_usd": round(invocations * PRICE_PER_LAMBDA_REQUEST, 2),
    }


def save(results: dict[str, Any], path: Path = RESULTS) -> None:
    """Merge into the results file, so other benchmarks' rows are kept."""
    existing: dict[str, Any] = {}
    if path.exists():
        try:
            existing = json.loads(path.read_text())
        except json.JSONDecodeError:
            existing = {}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**existing, **results}, indent=2) + "\n")


def report(results: dict[str, Any], console: Console, extra_rows: list[tuple[str, str]] | None = None) -> None:
    table = Table(title="jitr registration benchmark (local stack)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("IoT API calls per registration (warm)", str(results["iot_api_calls_per_registration"]))
    for operation, count in results["api_calls_by_operation_warm"].items():
        table.add_row(f"  {operation}", str(count))
    table.add_row("API calls of a cold registration", str(sum(results["api_calls_by_operation_cold"].values())))
    table.add_row("state transitions per registration", str(results["state_transitions_per_registration"]))
    table.add_row("Lambda invocations per registration", str(results["lambda_invocations_per_registration"]))
    for handler, ms in results["handler_import_ms"].items():
        table.add_row(f"import {handler} (ms, median)", f"{ms:.0f}")
    table.add_row(
        f"registrations per second ({results['fleet_devices']} devices at once)",
        f"{results['registrations_per_second']}",
    )
    cost = results["cost_per_million_registrations"]
    table.add_row("per million: Step Functions (USD)", f"{cost['step_functions_usd']:,.2f}")
    table.add_row("per million: Lambda requests (USD)", f"{cost['lambda_requests_usd']:,.2f}")
    for label, value in extra_rows or []:
        table.add_row(label, value)
    console.print(table)


def main() -> None:
    console = Console(soft_wrap=True)
    console.print("Measuring one registration…")
    results = registration_costs()
    console.print("Measuring handler import times (first run builds .bench/lambda-venv)…")
    python, environment = lambda_like_python()
    results["handler_import_ms"] = handler_import_ms(python)
    results["handler_import_environment"] = environment
    console.print(f"Registering {FLEET_SIZE} devices at once…")
    results.update(fleet_throughput())
    results["cost_per_million_registrations"] = cost_per_million(results)
    console.print("Measuring device certificate issuance…")
    pki_results = bench_pki.run()
    console.print("Measuring policy evaluation…")
    policy_results = bench_policy.run()
    console.print("Onboarding devices on the local endpoint (one after another, then all at once)…")
    local_results = bench_local.run()
    results.update(pki_results)
    results.update(policy_results)
    results.update(local_results)
    results["python"] = sys.version.split()[0]
    extra_rows = bench_pki.rows(pki_results) + bench_policy.rows(policy_results) + bench_local.rows(local_results)
    report(results, console, extra_rows)
    save(results)
    console.print(f"Written to {RESULTS.relative_to(PROJECT_ROOT)}")
    if problems := bench_local.failures(local_results):
        for problem in problems:
            console.print(f"[red]FAILED:[/red] {problem}")
        sys.exit(1)


if __name__ == "__main__":
    main()
