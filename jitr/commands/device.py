"""``jitr device``: issue device certificates (one, or a fleet on every core), sign CSRs, revoke.

A device named ``NAME`` gets ``NAME.key`` (0600), ``NAME.pem`` and ``NAME.bundle.pem`` (its
certificate followed by the CA chain: what it presents for JITR) in the output directory,
and a row in ``manifest.csv`` there (name, serial, certificate id, notAfter, file names).

Bulk issuance is resumable. A name already in the manifest whose certificate file exists is
skipped; files a run wrote but had not yet listed (it was killed) are checked against the CA
and listed, or completed when only the key was written. Nothing is overwritten and no name
gets a second certificate unless ``--force`` says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import math
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from cryptography import x509
from jitr_core.certificates import DEFAULT_THING_NAME_PATTERN, compile_thing_name_pattern
from jitr_core.errors import ConfigurationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from jitr import pki
from jitr.aws_session import AwsTarget, aws_options, call
from jitr.commands.ca import (
    DIRECTORY,
    console,
    key_value_table,
    open_ca,
    passphrase_from_env,
    passphrase_option,
    print_json,
)
from jitr.commands.common import usage_error
from jitr.commands.connect import connect
from jitr.commands.crl import describe_crl, publish_crl, s3_location

EXIT_INTERRUPTED = 130
LOCK_FILE = ".jitr.lock"
EC_CHUNK = 100
RSA_CHUNK = 4
CHUNKS_PER_WORKER = 16
REVOCATION_REASONS = tuple(r.value for r in x509.ReasonFlags if r is not x509.ReasonFlags.remove_from_crl)

Advance = Callable[[int], None]
Tracker = Callable[[int], AbstractContextManager[Advance]]


# --- issuing, in this process or in a worker -------------------------------------------------


class IssueFailed(click.ClickException):
    """A run stopped by a file it could not write: one line, exit status 1."""

    exit_code = 1

    def show(self, file: object = None) -> None:
        click.echo(f"jitr: error: {self.format_message()}", err=True)


@dataclass(frozen=True)
class IssueSpec:
    """What every worker needs to issue certificates; the CA key travels decrypted, in memory only."""

    ca_certificate_pem: bytes
    ca_key_pem: bytes
    chain_pem: bytes
    out: Path
    key_type: pki.KeyType = "ec-p256"
    days: int = 365
    key_passphrase: bytes | None = field(default=None, repr=False)
    force: bool = False

    @classmethod
    def of(cls, store: pki.CaDirectory, out: Path, **options: Any) -> IssueSpec:
        return cls(pki.certificate_pem(store.certificate), store.issued.key_pem, store.chain_pem, out, **options)


@dataclass(frozen=True)
class ChunkResult:
    """The rows of the names a chunk issued, and the error that stopped it, if one did."""

    rows: list[pki.ManifestRow]
    error: str | None = None


class Issuer:
    """Issues device certificates for one CA into one directory."""

    def __init__(self, spec: IssueSpec) -> None:
        self.spec = spec
        ca_key = pki.parse_private_key(spec.ca_key_pem, "the CA key")
        self.ca = pki.Issued(x509.load_pem_x509_certificate(spec.ca_certificate_pem), ca_key)
        self.signer = pki.DeviceSigner(self.ca, days=spec.days)

    def issue(self, name: str, key: pki.PrivateKey | None = None) -> pki.ManifestRow:
        """A new certificate for ``name``; with ``key``, for that key (already on disk, so not written)."""
        files = pki.DeviceFiles.of(self.spec.out, name)
        new_key = key is None
        key = key or pki.generate_key(self.spec.key_type)
        certificate = self.signer.sign([name], key.public_key())
        key_pem = pki.private_key_pem(key, self.spec.key_passphrase) if new_key else None
        pki.write_device_files(files, certificate, self.spec.chain_pem, key_pem, force=self.spec.force)
        return pki.ManifestRow.of(name, certificate, files, with_key=True)

    def issue_chunk(self, names: Sequence[str]) -> ChunkResult:
        rows: list[pki.ManifestRow] = []
        for name in names:
            try:
                rows.append(self.issue(name))
            except (OSError, pki.PkiError, ValueError) as exc:
                return ChunkResult(rows, f"{name}: {_failure(exc)}")
        return ChunkResult(rows)


def _failure(exc: Exception) -> str:
    if isinstance(exc, FileExistsError):
        return f"{exc.filename} appeared meanwhile (another run?); run again to pick it up"
    if isinstance(exc, OSError):
        return f"cannot write {exc.filename}: {exc.strerror}"
    return str(exc)


_WORKER: Issuer | None = None


PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _start_worker(spec: IssueSpec, parent: int) -> None:
    """Worker initializer: stopping is the parent's to decide (it lets running chunks finish)."""
    global _WORKER  # noqa: PLW0603 (one issuer per worker process)
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    _die_with(parent)
    _WORKER = Issuer(spec)


def _die_with(parent: int) -> None:
    """On Linux a worker is killed when the parent dies (even by SIGKILL) rather than wait forever."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


@contextmanager
def _stopped_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP stop a run as Ctrl-C does: running chunks finish and are listed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _issue_chunk(names: list[str]) -> ChunkResult:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.issue_chunk(names)


def process_context() -> Any:
    """fork on Linux: workers start at once and inherit the CA key in memory; elsewhere the platform's default."""
    if sys.platform == "linux" and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context()


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def chunk_size(count: int, workers: int, key_type: pki.KeyType) -> int:
    """Small enough that every core stays busy to the end and progress moves; large enough to be cheap."""
    cap = EC_CHUNK if key_type == "ec-p256" else RSA_CHUNK
    return max(1, min(cap, math.ceil(count / (workers * CHUNKS_PER_WORKER))))


@dataclass
class RunResult:
    rows: list[pki.ManifestRow] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False


@contextmanager
def _no_progress(total: int) -> Iterator[Advance]:
    yield lambda _: None


def run_issuance(
    spec: IssueSpec,
    names: Sequence[str],
    manifest: Path,
    *,
    workers: int,
    track: Tracker = _no_progress,
) -> RunResult:
    """Issue ``names``, appending each finished chunk to ``manifest`` (fsynced) as it comes in.

    Ctrl-C, SIGTERM and SIGHUP stop the run: chunks already running finish and are listed.
    """
    result = RunResult()
    if not names:
        return result
    size = chunk_size(len(names), workers, spec.key_type)
    chunks = [list(names[i : i + size]) for i in range(0, len(names), size)]
    pool: ProcessPoolExecutor | None = None
    pending: set[Future[ChunkResult]] = set()
    if workers <= 1 or len(chunks) == 1:
        issuer = Issuer(spec)
        finished: Iterator[ChunkResult] = (issuer.issue_chunk(chunk) for chunk in chunks)
    else:
        pool = ProcessPoolExecutor(
            max_workers=min(workers, len(chunks)),
            mp_context=process_context(),
            initializer=_start_worker,
            initargs=(spec, os.getpid()),
        )
        pending = {pool.submit(_issue_chunk, chunk) for chunk in chunks}  # workers fork here, before any thread
        finished = _as_they_finish(pending)
    try:
        with _stopped_like_ctrl_c(), track(len(names)) as advance:
            for chunk_result in finished:
                if not _record(chunk_result, manifest, result, advance):
                    break
    except KeyboardInterrupt:
        result.interrupted = True
    except BrokenProcessPool as exc:
        result.error = f"a worker process stopped ({exc}); run the same command again to finish"
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    _record_finished(pending, manifest, result)
    return result


def _as_they_finish(pending: set[Future[ChunkResult]]) -> Iterator[ChunkResult]:
    """Each chunk's result as it completes; what is left in ``pending`` was not handed out yet."""
    for future in as_completed(list(pending)):
        pending.discard(future)
        yield future.result()


def _record(chunk: ChunkResult, manifest: Path, result: RunResult, advance: Advance) -> bool:
    pki.append_manifest(manifest, chunk.rows)
    result.rows.extend(chunk.rows)
    advance(len(chunk.rows))
    if chunk.error:
        result.error = result.error or chunk.error
        return False
    return True


def _record_finished(pending: set[Future[ChunkResult]], manifest: Path, result: RunResult) -> None:
    """Chunks that were running when the run stopped still finished: list what they issued."""
    for future in pending:
        if future.done() and not future.cancelled() and future.exception() is None:
            _record(future.result(), manifest, result, lambda _: None)


# --- planning a run: what to issue, skip, complete or adopt ------------------------------------


@dataclass
class Plan:
    issue: list[str] = field(default_factory=list)
    complete: list[str] = field(default_factory=list)
    adopt: list[str] = field(default_factory=list)
    skip: list[pki.ManifestRow] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)


def plan_issuance(names: Sequence[str], out: Path, listed: dict[str, pki.ManifestRow], *, force: bool) -> Plan:
    """Sort the names by what their files and the manifest say; empty leftovers of unlisted names are removed."""
    plan = Plan()
    for name in names:
        files = pki.DeviceFiles.of(out, name)
        if force:
            plan.issue.append(name)
            continue
        if name not in listed:
            _drop_empty(files)
        if name in listed:
            if _has_content(files.certificate):
                plan.skip.append(listed[name])
            else:
                plan.conflicts.append(
                    f"{name} is in {out / pki.MANIFEST} but {files.certificate} is missing or empty; "
                    "restore it, or pass --force to issue a new certificate"
                )
        elif files.certificate.exists() and files.key.exists():
            plan.adopt.append(name)
        elif files.certificate.exists():
            plan.conflicts.append(f"{files.certificate} exists without {files.key.name}; remove it or pass --force")
        elif files.key.exists():
            plan.complete.append(name)
        elif files.bundle.exists():
            plan.conflicts.append(f"{files.bundle} exists without a certificate; remove it or pass --force")
        else:
            plan.issue.append(name)
    return plan


def _has_content(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _drop_empty(files: pki.DeviceFiles) -> None:
    """An empty file of an unlisted device is what a killed run leaves between creating and writing it."""
    for path in (files.key, files.certificate, files.bundle):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_size == 0 and not path.is_symlink():
                path.unlink()


@contextmanager
def exclusive(out: Path) -> Iterator[None]:
    """One issuing command at a time per output directory (its manifest is appended to)."""
    with (out / LOCK_FILE).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            usage_error(f"another jitr command is issuing into {out}; wait for it to finish")
        yield


def recover(issuer: Issuer, name: str) -> pki.ManifestRow:
    """Files an interrupted run wrote but did not list: adopt a complete pair, or sign for a lone key."""
    files = pki.DeviceFiles.of(issuer.spec.out, name)
    key = pki.load_private_key(files.key, issuer.spec.key_passphrase)
    if not files.certificate.exists():
        return issuer.issue(name, key=key)
    certificate = pki.read_certificates(files.certificate, "device certificate")[0]
    pki.check_issued_by(certificate, issuer.ca.certificate, str(files.certificate))
    if pki.common_names_of(certificate.subject) != [name]:
        raise pki.PkiError(f"{files.certificate} is not a certificate for {name}; remove it or pass --force")
    if not pki.key_matches(certificate, key):
        raise pki.PkiError(f"{files.key} does not belong to {files.certificate}; remove both or pass --force")
    if not files.bundle.exists():
        pki.write_new_file(files.bundle, pki.certificate_pem(certificate) + issuer.spec.chain_pem)
    return pki.ManifestRow.of(name, certificate, files, with_key=True)


# --- jitr device -------------------------------------------------------------------------------


@click.group()
def device() -> None:
    """Issue device certificates, sign devices' CSRs, revoke certificates, and connect as a device."""


device.add_command(connect)


def bulk_names(prefix: str, count: int, start: int, digits: int | None) -> list[str]:
    width = digits or len(str(start + count - 1))
    return [f"{prefix}{number:0{width}d}" for number in range(start, start + count)]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return compile_thing_name_pattern(pattern)
    except ConfigurationError as exc:
        usage_error(f"--thing-name-pattern: {exc}")


def check_names(names: Sequence[str], pattern: re.Pattern[str]) -> None:
    for name in names:
        try:
            pki.device_thing_name([name], pattern, "device name")
            pki.check_common_name(name, "device")
        except pki.PkiError as exc:
            usage_error(f"{exc}; the thing name is the certificate's CN")


@contextmanager
def progress_bar(total: int) -> Iterator[Advance]:
    bar = Progress(
        TextColumn("issuing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True, soft_wrap=True),
        transient=False,
    )
    with bar:
        task = bar.add_task("issue", total=total)
        yield lambda n: bar.advance(task, n)


THING_NAME_OPTION = click.option(
    "--thing-name-pattern",
    default=DEFAULT_THING_NAME_PATTERN,
    show_default=True,
    help="Regex every name must match (the deployed ThingNamePattern); AWS's own rule always applies.",
)


@device.command("issue")
@click.option("--ca", "ca_dir", required=True, type=DIRECTORY, help="The CA's directory.")
@click.option("--cn", "common_name", default=None, help="One device: its thing name, the certificate's CN.")
@click.option("--prefix", default=None, help="Bulk: names are PREFIX followed by a number.")
@click.option("--count", type=click.IntRange(min=1), default=None, help="Bulk: how many devices.")
@click.option("--start", type=click.IntRange(min=0), default=1, show_default=True, help="Bulk: first number.")
@click.option("--digits", type=click.IntRange(min=1), default=None, help="Bulk: zero-pad numbers to this width.")
@click.option("--out", required=True, type=DIRECTORY, help="Directory for the keys, certificates and manifest.")
@click.option(
    "--key-type", type=click.Choice(pki.KEY_TYPES), default="ec-p256", show_default=True, help="Device key type."
)
@click.option(
    "--days", type=click.IntRange(min=1), default=365, show_default=True, help="Validity (capped at the CA's)."
)
@THING_NAME_OPTION
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Processes (default: every core).")
@passphrase_option("--key-passphrase-env", "the device keys (encrypts them)")
@passphrase_option("--ca-passphrase-env", "the CA key")
@click.option("--force", is_flag=True, help="Issue again, overwriting existing files.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def issue(
    *,
    ca_dir: Path,
    common_name: str | None,
    prefix: str | None,
    count: int | None,
    start: int,
    digits: int | None,
    out: Path,
    key_type: pki.KeyType,
    days: int,
    thing_name_pattern: str,
    workers: int | None,
    key_passphrase_env: str | None,
    ca_passphrase_env: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Issue a device's key, certificate and chain bundle (--cn), or a fleet's (--prefix, --count).

    Bulk issuance uses every core, shows progress, and is resumable: run the same command
    again after an interruption and it completes the fleet without duplicates.
    """
    names = _requested_names(common_name, prefix, count, start, digits)
    check_names(names, compile_pattern(thing_name_pattern))
    store = open_ca(ca_dir, ca_passphrase_env)
    spec = IssueSpec.of(
        store,
        out,
        key_type=key_type,
        days=days,
        key_passphrase=passphrase_from_env(key_passphrase_env, "--key-passphrase-env"),
        force=force,
    )
    if out.exists() and not out.is_dir():
        usage_error(f"{out} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(out):
        summary = issue_fleet(
            spec, names, out / pki.MANIFEST, workers=workers or available_cores(), show_progress=len(names) > 1
        )
    _report_issue(summary, as_json, single=common_name is not None)


def _requested_names(
    common_name: str | None, prefix: str | None, count: int | None, start: int, digits: int | None
) -> list[str]:
    if common_name is not None and (prefix is not None or count is not None):
        usage_error("pass either --cn NAME or --prefix PREFIX --count N, not both")
    if common_name is not None:
        return [common_name]
    if prefix is None or count is None:
        usage_error("pass --cn NAME for one device, or --prefix PREFIX --count N for a fleet")
    return bulk_names(prefix, count, start, digits)


@dataclass
class IssueSummary:
    manifest: Path
    issued: list[pki.ManifestRow]
    recovered: list[pki.ManifestRow]
    skipped: list[pki.ManifestRow]
    seconds: float
    workers: int

    @property
    def rate(self) -> float:
        return len(self.issued) / self.seconds if self.seconds else 0.0

    def to_json(self, *, rows: bool) -> dict[str, Any]:
        data: dict[str, Any] = {
            "manifest": str(self.manifest),
            "issued": len(self.issued),
            "recovered": len(self.recovered),
            "skipped": len(self.skipped),
            "seconds": round(self.seconds, 3),
            "certificatesPerSecond": round(self.rate, 1),
            "workers": self.workers,
        }
        if rows:
            data["devices"] = [r.to_json() for r in (*self.issued, *self.recovered, *self.skipped)]
        return data


def issue_fleet(
    spec: IssueSpec, names: Sequence[str], manifest: Path, *, workers: int, show_progress: bool = False
) -> IssueSummary:
    """Plan, recover what an interrupted run left, then issue the rest; exits on conflicts or errors."""
    started = time.perf_counter()
    try:
        listed = pki.read_manifest(manifest)
    except pki.PkiError as exc:
        usage_error(str(exc))
    plan = plan_issuance(names, spec.out, listed, force=spec.force)
    if plan.conflicts:
        more = f" (and {len(plan.conflicts) - 1} more)" if len(plan.conflicts) > 1 else ""
        usage_error(plan.conflicts[0] + more)
    if spec.force and listed:
        reissued = set(plan.issue)
        pki.rewrite_manifest(manifest, [row for name, row in listed.items() if name not in reissued])
    recovered = _recover_all(spec, plan, manifest)
    result = run_issuance(
        spec, plan.issue, manifest, workers=workers, track=progress_bar if show_progress else _no_progress
    )
    summary = IssueSummary(manifest, result.rows, recovered, plan.skip, time.perf_counter() - started, workers)
    if result.interrupted:
        click.echo(
            f"jitr: interrupted: {len(result.rows)} of {len(plan.issue)} issued and listed in {manifest}; "
            "run the same command again to finish",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    if result.error:
        raise IssueFailed(f"{result.error} ({len(result.rows)} issued and listed in {manifest})")
    return summary


def _recover_all(spec: IssueSpec, plan: Plan, manifest: Path) -> list[pki.ManifestRow]:
    if not plan.adopt and not plan.complete:
        return []
    issuer = Issuer(spec)
    rows = []
    for name in (*plan.adopt, *plan.complete):
        try:
            rows.append(recover(issuer, name))
        except pki.PkiError as exc:
            usage_error(str(exc))
        except OSError as exc:
            usage_error(f"{name}: {_failure(exc)}")
    pki.append_manifest(manifest, rows)
    return rows


def _report_issue(summary: IssueSummary, as_json: bool, *, single: bool) -> None:
    if as_json:
        print_json(summary.to_json(rows=single))
        return
    out = console()
    if single:
        rows = [*summary.issued, *summary.recovered, *summary.skipped]
        row = rows[0]
        state = "issued" if summary.issued else "recovered" if summary.recovered else "already issued (skipped)"
        directory = summary.manifest.parent
        out.print(
            key_value_table(
                f"{row.name}: {state}",
                [
                    ("serial", row.serial),
                    ("certificate id", row.certificate_id),
                    ("valid until", row.not_after),
                    ("key", f"{directory / row.key} (mode 0600)" if row.key else "-"),
                    ("certificate", str(directory / row.certificate)),
                    ("bundle", f"{directory / row.bundle} (present this for JITR)"),
                ],
            )
        )
        if summary.skipped:
            out.print("Pass --force to issue a new certificate for it.")
        return
    out.print(
        f"Issued {len(summary.issued)} device certificates in {summary.seconds:.1f} s "
        f"({summary.rate:.0f}/s on {summary.workers} processes); "
        f"recovered {len(summary.recovered)}, skipped {len(summary.skipped)} already listed."
    )
    out.print(f"Manifest: {summary.manifest}")


# --- signing a CSR -----------------------------------------------------------------------------


@device.command("sign-csr")
@click.option("--ca", "ca_dir", required=True, type=DIRECTORY, help="The CA's directory.")
@click.option("--csr", "csr_file", required=True, type=click.Path(path_type=Path, dir_okay=False), help="The CSR.")
@click.option("--out", type=DIRECTORY, default=None, help="Where to write the certificate (default: the CSR's).")
@click.option(
    "--days", type=click.IntRange(min=1), default=365, show_default=True, help="Validity (capped at the CA's)."
)
@THING_NAME_OPTION
@passphrase_option("--ca-passphrase-env", "the CA key")
@click.option("--force", is_flag=True, help="Overwrite an existing certificate for the device.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def sign_csr(
    *,
    ca_dir: Path,
    csr_file: Path,
    out: Path | None,
    days: int,
    thing_name_pattern: str,
    ca_passphrase_env: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Sign a CSR made on the device, so its private key never leaves it.

    Refuses a CSR whose signature does not verify, whose CN breaks the thing-name rules, or
    whose key AWS IoT does not accept. The certificate carries only the CN of the CSR's
    subject and this project's device extensions; extensions the CSR requests are ignored.
    """
    try:
        data = csr_file.read_bytes()
    except OSError as exc:
        usage_error(f"cannot read the CSR {csr_file}: {exc.strerror or exc}")
    try:
        csr = pki.load_csr(data, str(csr_file))
        name = pki.device_thing_name(
            pki.common_names_of(csr.subject), compile_pattern(thing_name_pattern), str(csr_file)
        )
        pki.check_device_public_key(csr.public_key(), str(csr_file))
    except pki.PkiError as exc:
        usage_error(str(exc))
    store = open_ca(ca_dir, ca_passphrase_env)
    directory = out or csr_file.parent
    files = pki.DeviceFiles.of(directory, name)
    directory.mkdir(parents=True, exist_ok=True)
    with exclusive(directory):
        for path in (files.certificate, files.bundle):
            if path.exists() and not force:
                usage_error(f"{path} exists; pass --force to replace the device's certificate")
        certificate = pki.DeviceSigner(store.issued, days=days).sign([name], csr.public_key())
        pki.write_device_files(files, certificate, store.chain_pem, None, force=force)
        row = pki.ManifestRow.of(name, certificate, files, with_key=False)
        pki.append_manifest(directory / pki.MANIFEST, [row])
    if as_json:
        print_json(row.to_json())
        return
    console().print(
        key_value_table(
            f"{name}: signed (the key stays on the device)",
            [
                ("serial", row.serial),
                ("certificate id", row.certificate_id),
                ("valid until", row.not_after),
                ("certificate", str(files.certificate)),
                ("bundle", f"{files.bundle} (present this for JITR)"),
            ],
        )
    )


# --- revocation --------------------------------------------------------------------------------


@device.command("revoke")
@click.option("--ca", "ca_dir", required=True, type=DIRECTORY, help="The CA's directory.")
@click.option("--cert", "cert_file", type=click.Path(path_type=Path, dir_okay=False), help="The device certificate.")
@click.option("--serial", default=None, metavar="HEX", help="Or its serial number, in hex.")
@click.option(
    "--reason", type=click.Choice(REVOCATION_REASONS), default="unspecified", show_default=True, help="CRL reason code."
)
@click.option(
    "--publish", default=None, metavar="s3://BUCKET/KEY", help="Upload the new CRL where the workflow reads it."
)
@click.option("--offline", is_flag=True, help="Only update the CRL: do not set the certificate REVOKED in AWS IoT.")
@click.option(
    "--crl-days", type=click.IntRange(min=1), default=None, help="The new CRL's lifetime (default: the CA's)."
)
@passphrase_option("--ca-passphrase-env", "the CA key")
@aws_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def revoke(
    *,
    ca_dir: Path,
    cert_file: Path | None,
    serial: str | None,
    reason: str,
    publish: str | None,
    offline: bool,
    crl_days: int | None,
    ca_passphrase_env: str | None,
    aws: AwsTarget,
    as_json: bool,
) -> None:
    """Revoke a device certificate: add it to the CA's CRL and sign the CRL again (PEM and DER).

    With --publish the CRL is uploaded to S3; with --cert, a certificate registered in AWS IoT
    is also set REVOKED there (AWS IoT disconnects the device within minutes).
    """
    if (cert_file is None) == (serial is None):
        usage_error("pass either --cert FILE or --serial HEX")
    if publish:
        s3_location(publish)
    store = open_ca(ca_dir, ca_passphrase_env, for_signing=False)
    certificate = _revoked_certificate(cert_file, store) if cert_file else None
    number = certificate.serial_number if certificate else _parse_serial(serial or "")
    revocation = pki.Revocation(number, datetime.now(UTC), x509.ReasonFlags(reason))
    try:
        previous = pki.read_crl(store)
        crl = pki.resign_crl(store, [revocation], days=crl_days)
    except pki.PkiError as exc:
        usage_error(str(exc))
    already = previous is not None and any(r.serial_number == number for r in previous)
    report: dict[str, Any] = {
        "serial": format(number, "x"),
        "alreadyRevoked": already,
        "reason": reason,
        "crl": describe_crl(crl, store),
    }
    if publish:
        report["published"] = publish_crl(aws, store, crl, publish)
    if certificate is not None and not offline:
        report["aws"] = _revoke_in_aws(aws, certificate)
    _report_revoke(report, as_json)


def _revoked_certificate(cert_file: Path, store: pki.CaDirectory) -> x509.Certificate:
    try:
        certificate = pki.read_certificates(cert_file, "device certificate")[0]
        pki.check_issued_by(certificate, store.certificate, str(cert_file))
    except pki.PkiError as exc:
        usage_error(f"{exc}; only the CA that issued a certificate can revoke it")
    return certificate


def _parse_serial(text: str) -> int:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        number = int(cleaned, 16)
    except ValueError:
        usage_error(f"--serial {text!r} is not a hexadecimal serial number")
    if number <= 0:
        usage_error(f"--serial {text!r}: serial numbers are positive")
    return number


def _revoke_in_aws(aws: AwsTarget, certificate: x509.Certificate) -> dict[str, Any]:
    from jitr_core.certificates import certificate_id  # noqa: PLC0415

    iot = aws.client("iot")
    identifier = certificate_id(certificate)
    description = call(
        "DescribeCertificate",
        iot.describe_certificate,
        tolerate={"ResourceNotFoundException"},
        certificateId=identifier,
    )
    if description is None:
        return {"certificateId": identifier, "registered": False, "region": iot.meta.region_name}
    before = description["certificateDescription"].get("status")
    if before != "REVOKED":
        call("UpdateCertificate", iot.update_certificate, certificateId=identifier, newStatus="REVOKED")
    return {"certificateId": identifier, "registered": True, "statusBefore": before, "status": "REVOKED"}


def _report_revoke(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    out = console()
    crl = report["crl"]
    said = "was already listed" if report["alreadyRevoked"] else "added"
    out.print(f"Serial {report['serial']} {said} in the CRL ({report['reason']}).")
    out.print(f"CRL number {crl['number']} signed, {crl['entries']} entries, next update {crl['nextUpdate']}:")
    out.print(f"  {crl['files']['pem']}\n  {crl['files']['der']}")
    if "published" in report:
        out.print(f"Uploaded to {report['published']['location']}.")
    aws = report.get("aws")
    if aws is None:
        out.print("AWS IoT not changed (pass --cert without --offline to set a registered certificate REVOKED).")
    elif not aws["registered"]:
        out.print(f"Certificate {aws['certificateId'][:16]}… is not registered in AWS IoT ({aws['region']}).")
    else:
        out.print(f"Certificate {aws['certificateId'][:16]}… was {aws['statusBefore']}, is now REVOKED in AWS IoT.")
