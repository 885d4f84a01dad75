"""How long a new device waits to get in, and how fast a crowd of new devices is onboarded.

Both rows run real devices (paho-mqtt clients over mutual TLS, ``connect_once``), in a
process of their own, against the local endpoint of ``jitr local up`` (:class:`LocalEndpoint`,
in this process, with a CA registered ACTIVE with auto-registration). A device sends
CONNECT, is refused while the workflow registers its certificate, and reconnects with
exponential backoff and full jitter (``Backoff``) until its CONNECT is accepted; every failed
attempt (refused, dropped, TLS) is retried, and a device gives up ``GIVE_UP_SECONDS`` after
its first attempt. ACTIVE is observed as the device observes it: the CONNACK that accepts it.

* first CONNECT → ACTIVE: devices one after another, backoff initial 0.05 s, cap 1 s; for
  each, the seconds from the start of its first attempt (TCP, TLS, CONNECT) to the accepted
  CONNACK; median and p95.
* devices at once: every device (a thread each) starts together, with the backoff of
  ``jitr device connect`` (initial 1 s, cap 30 s); devices onboarded per second (those
  onboarded over the seconds from the first attempt to the last accepted CONNACK), devices
  never onboarded (must be 0), CONNECT attempts per device and why attempts failed, and the
  workflow's executions by status. Each refused CONNECT of a certificate still
  PENDING_ACTIVATION publishes its registration event again, so there are more executions
  than devices; the later ones find the certificate registered.

Sizes: ``JITR_BENCH_FIRST_CONNECT_DEVICES`` (default 100), ``JITR_BENCH_CROWD_DEVICES``
(default 500), ``JITR_BENCH_GIVE_UP_SECONDS`` (default 600).
Run ``python -m jitr.bench_local``; ``run()``, ``rows()`` and ``failures()`` feed ``make bench``.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jitr import pki
from jitr.commands.connect import Backoff, DeviceSettings, connect_once, disconnect
from jitr.local.executions import list_executions
from jitr.local.registration import LocalIot
from jitr.local.server import LOCAL_HOST, LocalEndpoint

FIRST_CONNECT_DEVICES = int(os.environ.get("JITR_BENCH_FIRST_CONNECT_DEVICES", "100"))
CROWD_DEVICES = int(os.environ.get("JITR_BENCH_CROWD_DEVICES", "500"))
GIVE_UP_SECONDS = float(os.environ.get("JITR_BENCH_GIVE_UP_SECONDS", "600"))
# Fast, so the latency measured is the workflow's rather than the device's sleep.
FIRST_CONNECT_BACKOFF = Backoff(attempts=sys.maxsize, initial=0.05, cap=1.0)
# What `jitr device connect` does by default (initial 1 s, cap 30 s), with no limit on attempts.
CROWD_BACKOFF = Backoff(attempts=sys.maxsize, initial=1.0, cap=30.0)
CONNACK_TIMEOUT_SECONDS = 10.0
EXECUTIONS_SETTLE_SECONDS = 30.0
# Beyond this attempt number the backoff's window is the cap anyway; keeps 2**n small.
_DOUBLINGS = 30


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, interpolating linearly between ranks.

    ``percentile(v, 0)`` is the smallest value, ``50`` the median, ``100`` the largest.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Onboarding:
    """One device's way in: when its first attempt started, when a CONNECT was accepted (None: never)."""

    name: str
    first_connect: float
    accepted: float | None
    attempts: int
    refusals: Counter[str] = field(default_factory=Counter)

    @property
    def seconds(self) -> float | None:
        return None if self.accepted is None else self.accepted - self.first_connect


def onboard(settings: DeviceSettings, backoff: Backoff, give_up: float) -> Onboarding:
    """Connect until a CONNECT is accepted, sleeping the backoff after every failed attempt.

    Every failure (refused, dropped, TLS) is retried; the device gives up ``give_up`` seconds
    after its first attempt.
    """
    first = time.perf_counter()
    refusals: Counter[str] = Counter()
    attempt = 0
    while True:
        attempt += 1
        result = connect_once(settings)
        if result.client is not None:
            accepted = time.perf_counter()
            disconnect(result.client)
            return Onboarding(settings.client_id, first, accepted, attempt, refusals)
        refusals[f"{result.outcome}: {result.detail}"] += 1
        if time.perf_counter() - first > give_up:
            return Onboarding(settings.client_id, first, None, attempt, refusals)
        time.sleep(backoff.delay(min(attempt, _DOUBLINGS)))


def issue_devices(
    ca: pki.Issued, prefix: str, count: int, directory: Path, endpoint: LocalEndpoint
) -> list[DeviceSettings]:
    """``count`` devices with EC P-256 keys, their files in ``directory``, set to reach ``endpoint``."""
    signer = pki.DeviceSigner(ca)
    chain = ca.cert_pem.encode()
    devices = []
    for number in range(count):
        name = f"{prefix}-{number:04d}"
        key = pki.generate_key("ec-p256")
        files = pki.DeviceFiles.of(directory, name)
        pki.write_device_files(files, signer.sign([name], key.public_key()), chain, pki.private_key_pem(key))
        devices.append(
            DeviceSettings(
                host=LOCAL_HOST,
                port=endpoint.mqtt_port,
                client_id=name,
                cert=files.bundle,
                key=files.key,
                ca_bundle=endpoint.cafile,
                timeout=CONNACK_TIMEOUT_SECONDS,
            )
        )
    return devices


def settled_executions(endpoint: LocalEndpoint) -> Counter[str]:
    """The workflow's executions by status, once none is RUNNING (or after ``EXECUTIONS_SETTLE_SECONDS``)."""
    sfn = endpoint.stack.client("stepfunctions")
    deadline = time.monotonic() + EXECUTIONS_SETTLE_SECONDS
    while True:
        statuses = Counter(execution.status for execution in list_executions(sfn))
        if not statuses["RUNNING"] or time.monotonic() > deadline:
            return statuses
        time.sleep(0.5)


def sequential(devices: Sequence[DeviceSettings], backoff: Backoff, give_up: float) -> list[Onboarding]:
    """Each device onboarded in turn: the next one starts once the one before is in (or gave up)."""
    return [onboard(device, backoff, give_up) for device in devices]


def all_at_once(devices: Sequence[DeviceSettings], backoff: Backoff, give_up: float) -> list[Onboarding]:
    """Every device in a thread of its own, all released together."""
    release = threading.Event()

    def device(settings: DeviceSettings) -> Onboarding:
        release.wait()
        return onboard(settings, backoff, give_up)

    with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="bench-device") as pool:
        futures = [pool.submit(device, settings) for settings in devices]
        release.set()
        return [future.result() for future in futures]


Fleet = Callable[[Sequence[DeviceSettings], Backoff, float], list[Onboarding]]


def in_device_process(
    fleet: Fleet, devices: Sequence[DeviceSettings], backoff: Backoff, give_up: float
) -> list[Onboarding]:
    """Run the devices in a process of their own, as devices are apart from the endpoint they reach.

    The endpoint (moto, the workflow, the MQTT server) keeps this process's interpreter to itself.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(fleet, list(devices), backoff, give_up).result()


def onboard_fleet(
    prefix: str, fleet: Fleet, devices: int, backoff: Backoff, give_up: float
) -> tuple[list[Onboarding], Counter[str]]:
    """A fresh endpoint and CA, ``devices`` new devices run by ``fleet``; their onboardings and the executions."""
    with (
        tempfile.TemporaryDirectory(prefix="jitr-bench-local-") as scratch,
        LocalEndpoint(api_port=0, mqtt_port=0) as endpoint,
    ):
        ca = pki.create_ca(f"bench {prefix} CA")
        LocalIot(endpoint.stack).register_ca(ca.cert_pem)  # ACTIVE, auto-registration on
        devices_files = issue_devices(ca, prefix, devices, Path(scratch), endpoint)
        onboardings = in_device_process(fleet, devices_files, backoff, give_up)
        return onboardings, settled_executions(endpoint)


def first_connect_to_active(devices: int = FIRST_CONNECT_DEVICES, give_up: float = GIVE_UP_SECONDS) -> dict[str, Any]:
    """Seconds from a new device's first CONNECT to its accepted CONNACK, devices one after another."""
    onboardings, executions = onboard_fleet("first", sequential, devices, FIRST_CONNECT_BACKOFF, give_up)
    seconds = [o.seconds for o in onboardings if o.seconds is not None]
    attempts = [o.attempts for o in onboardings]
    return {
        "first_connect_devices": devices,
        "first_connect_to_active_median_s": round(percentile(seconds, 50), 3) if seconds else None,
        "first_connect_to_active_p95_s": round(percentile(seconds, 95), 3) if seconds else None,
        "first_connect_to_active_max_s": round(max(seconds), 3) if seconds else None,
        "first_connect_attempts_median": statistics.median(attempts),
        "first_connect_not_onboarded": devices - len(seconds),
        "first_connect_executions": dict(executions),
    }


def crowd(devices: int = CROWD_DEVICES, give_up: float = GIVE_UP_SECONDS) -> dict[str, Any]:
    """Start ``devices`` new devices at once; how fast they are onboarded, and how many never are."""
    return crowd_results(*onboard_fleet("crowd", all_at_once, devices, CROWD_BACKOFF, give_up))


def crowd_results(onboardings: Sequence[Onboarding], executions: Counter[str]) -> dict[str, Any]:
    """The crowd row from each device's onboarding and the executions by status."""
    accepted = [o.accepted for o in onboardings if o.accepted is not None]
    attempts = [o.attempts for o in onboardings]
    refusals: Counter[str] = sum((o.refusals for o in onboardings), Counter())
    wall = (max(accepted) - min(o.first_connect for o in onboardings)) if accepted else None
    return {
        "crowd_devices": len(onboardings),
        "crowd_onboarded": len(accepted),
        "crowd_not_onboarded": len(onboardings) - len(accepted),
        "crowd_seconds": round(wall, 2) if wall else None,
        "crowd_onboarded_per_second": round(len(accepted) / wall, 2) if wall else 0.0,
        "crowd_connect_attempts": sum(attempts),
        "crowd_attempts_per_device_median": statistics.median(attempts),
        "crowd_attempts_per_device_max": max(attempts),
        "crowd_failed_attempts": dict(refusals.most_common()),
        "crowd_executions": dict(executions),
    }


def run(first_devices: int = FIRST_CONNECT_DEVICES, crowd_devices: int = CROWD_DEVICES) -> dict[str, Any]:
    started = time.perf_counter()
    results = first_connect_to_active(first_devices)
    results.update(crowd(crowd_devices))
    results["local_device_bench_seconds"] = round(time.perf_counter() - started, 1)
    return results


def failures(results: dict[str, Any]) -> list[str]:
    """What the measurement says went wrong: devices never onboarded."""
    problems = []
    if results["first_connect_not_onboarded"]:
        problems.append(
            f"{results['first_connect_not_onboarded']} of {results['first_connect_devices']} devices "
            "connecting one after another were never onboarded"
        )
    if results["crowd_not_onboarded"]:
        problems.append(
            f"{results['crowd_not_onboarded']} of {results['crowd_devices']} devices connecting at once "
            "were never onboarded"
        )
    return problems


def rows(results: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows for the benchmark table."""
    executions = results["crowd_executions"]
    return [
        (
            f"first CONNECT → ACTIVE, {results['first_connect_devices']} devices one after another (s)",
            f"median {results['first_connect_to_active_median_s']}, p95 {results['first_connect_to_active_p95_s']}",
        ),
        (
            f"devices onboarded per second, {results['crowd_devices']} at once",
            f"{results['crowd_onboarded_per_second']} ({results['crowd_seconds']} s)",
        ),
        ("  devices not onboarded", str(results["crowd_not_onboarded"])),
        (
            "  CONNECT attempts (total; per device median, max)",
            f"{results['crowd_connect_attempts']}; {results['crowd_attempts_per_device_median']}, "
            f"{results['crowd_attempts_per_device_max']}",
        ),
        (
            "  workflow executions (SUCCEEDED / all)",
            f"{executions.get('SUCCEEDED', 0)} / {sum(executions.values())}",
        ),
    ]


def main() -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    results = run()
    table = Table(title="jitr local endpoint: devices onboarding")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for measure, value in rows(results):
        table.add_row(measure, value)
    console = Console(soft_wrap=True)
    console.print(table)
    print(json.dumps(results, indent=2))
    problems = failures(results)
    for problem in problems:
        console.print(f"[red]FAILED:[/red] {problem}")
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
