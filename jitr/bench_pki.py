"""How fast ``jitr device issue`` issues a fleet, beside what the ``cryptography`` library can do.

For EC P-256 and RSA-2048 device keys, all signed by an EC P-256 CA:

* ``device_certs_per_second_*``: bulk issuance as the command runs it (every core, three
  files per device, the manifest fsynced per chunk), into a temporary directory;
* ``raw_sign_per_second_*``: one core generating a key and signing a certificate of the same
  profile in a loop, nothing written;
* ``bulk_vs_raw_times_cores_*``: the first over the second times the number of cores (the
  goal is at least 0.8);
* ``parallel_raw_sign_per_second_*`` and ``bulk_vs_parallel_raw_*``: the raw loop run on
  every core at once, which shows what the machine's cores really deliver together, and how
  much of that bulk issuance keeps once it writes files;
* ``file_creates_per_second``: small files created in the temporary directory, the cost
  bulk issuance pays three times per device.

Run ``python -m jitr.bench_pki``; ``run()`` and ``rows()`` feed ``make bench``.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from jitr import pki
from jitr.commands.device import IssueSpec, available_cores, issue_fleet, process_context

EC_DEVICES = 2000
EC_RAW = 1000
EC_REPEATS = 3
RSA_DEVICES = 200
RSA_RAW = 40
RSA_PARALLEL = 80
FILE_CREATES = 3000
KEY_TYPES: tuple[tuple[pki.KeyType, str], ...] = (("ec-p256", "ec_p256"), ("rsa-2048", "rsa_2048"))

_RAW_CA: pki.Issued | None = None


def _raw_loop(key_type: pki.KeyType, count: int, ca: pki.Issued | None = None) -> float:
    """Seconds to generate ``count`` keys and sign a device certificate for each, on one core."""
    signer = pki.DeviceSigner(ca or _raw_ca())
    started = time.perf_counter()
    for number in range(count):
        signer.sign([f"raw-{number:06d}"], pki.generate_key(key_type).public_key())
    return time.perf_counter() - started


def _raw_ca() -> pki.Issued:
    global _RAW_CA  # noqa: PLW0603 (one CA per benchmark process)
    if _RAW_CA is None:
        _RAW_CA = pki.create_ca("bench raw CA")
    return _RAW_CA


def raw_rate(key_type: pki.KeyType, count: int, ca: pki.Issued) -> float:
    return count / _raw_loop(key_type, count, ca)


def parallel_raw_rate(key_type: pki.KeyType, count: int, cores: int) -> float:
    """The raw loop in ``cores`` processes at once: what the cores deliver together, with no files."""
    share = max(1, count // cores)
    with ProcessPoolExecutor(max_workers=cores, mp_context=process_context()) as pool:
        list(pool.map(_raw_loop, [key_type] * cores, [1] * cores))  # start every worker first
        started = time.perf_counter()
        list(pool.map(_raw_loop, [key_type] * cores, [share] * cores))
        return share * cores / (time.perf_counter() - started)


def bulk_rate(store: pki.CaDirectory, key_type: pki.KeyType, count: int, directory: Path, cores: int) -> float:
    """Certificates per second of bulk issuance, as ``jitr device issue --prefix --count`` runs it."""
    directory.mkdir()
    spec = IssueSpec.of(store, directory, key_type=key_type)
    names = [f"bench-{number:06d}" for number in range(count)]
    summary = issue_fleet(spec, names, directory / pki.MANIFEST, workers=cores)
    assert len(summary.issued) == count, summary
    return count / summary.seconds


def file_creates_per_second(directory: Path, count: int = FILE_CREATES) -> float:
    directory.mkdir()
    started = time.perf_counter()
    for number in range(count):
        pki.write_new_file(directory / f"f{number}", b"x" * 600)
    return count / (time.perf_counter() - started)


def _best(measure: Callable[[int], float], repeats: int) -> float:
    """The best of ``repeats`` runs: other load on the machine only ever slows a run down."""
    return max(measure(attempt) for attempt in range(repeats))


def run() -> dict[str, float]:
    cores = available_cores()
    results: dict[str, float] = {"cores": cores}
    with tempfile.TemporaryDirectory(prefix="jitr-bench-pki-") as scratch:
        root = Path(scratch)
        store = pki.write_ca_directory(root / "ca", pki.create_ca("bench CA"))
        for key_type, slug in KEY_TYPES:
            results.update(_measure(store, key_type, slug, root, cores))
        results["file_creates_per_second"] = round(file_creates_per_second(root / "files"))
    return results


def _measure(store: pki.CaDirectory, key_type: pki.KeyType, slug: str, root: Path, cores: int) -> dict[str, float]:
    ec = key_type == "ec-p256"
    repeats = EC_REPEATS if ec else 1
    raw = _best(lambda _: raw_rate(key_type, EC_RAW if ec else RSA_RAW, store.issued), repeats)
    parallel = _best(lambda _: parallel_raw_rate(key_type, EC_DEVICES if ec else RSA_PARALLEL, cores), repeats)
    devices = EC_DEVICES if ec else RSA_DEVICES
    bulk = _best(lambda attempt: bulk_rate(store, key_type, devices, root / f"{slug}-{attempt}", cores), repeats)
    return {
        f"device_certs_per_second_{slug}": round(bulk, 1),
        f"raw_sign_per_second_{slug}": round(raw, 1),
        f"parallel_raw_sign_per_second_{slug}": round(parallel, 1),
        f"bulk_vs_raw_times_cores_{slug}": round(bulk / (raw * cores), 3),
        f"bulk_vs_parallel_raw_{slug}": round(bulk / parallel, 3),
    }


def rows(results: dict[str, float]) -> list[tuple[str, str]]:
    cores = int(results["cores"])
    table: list[tuple[str, str]] = []
    for label, slug in (("EC P-256", "ec_p256"), ("RSA-2048", "rsa_2048")):
        table += [
            (
                f"device certificates per second, bulk, {label} ({cores} cores)",
                f"{results[f'device_certs_per_second_{slug}']:,.0f}",
            ),
            (f"  raw keygen + sign per second, one core, {label}", f"{results[f'raw_sign_per_second_{slug}']:,.0f}"),
            ("  bulk / (raw x cores)", f"{results[f'bulk_vs_raw_times_cores_{slug}']:.2f}"),
            (
                f"  raw keygen + sign per second, {cores} cores at once",
                f"{results[f'parallel_raw_sign_per_second_{slug}']:,.0f}",
            ),
            ("  bulk / raw on every core", f"{results[f'bulk_vs_parallel_raw_{slug}']:.2f}"),
        ]
    table.append(("files created per second (temporary directory)", f"{results['file_creates_per_second']:,.0f}"))
    return table


def main() -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    results = run()
    table = Table(title="jitr device issue: bulk issuance")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for measure, value in rows(results):
        table.add_row(measure, value)
    Console(soft_wrap=True).print(table)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
