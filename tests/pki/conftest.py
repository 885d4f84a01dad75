"""Fixtures of the CA, device and CRL tests: CA directories, the command line, the openssl binary."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from jitr import pki
from jitr.cli import main

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str


def jitr(*args: str | Path, env: dict[str, str] | None = None) -> Run:
    """Run the command line as a user does; stdout and stderr apart (click 8.1 needs asking)."""
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg,unused-ignore]
    except TypeError:
        runner = CliRunner()
    result = runner.invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def openssl(
    *args: str | Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSSL, *(str(a) for a in args)], capture_output=True, text=True, check=check, env=env)


def assert_one_line_error(run: Run, *fragments: str, exit_code: int = 2) -> None:
    """A usage error: the exit status, one line on stderr that says what is wrong, no traceback."""
    assert run.exit_code == exit_code, (run.exit_code, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("jitr: error: ")
    assert "Traceback" not in run.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.fixture
def ca_dir(tmp_path: Path, ca: pki.Issued) -> Path:
    """A root CA directory (the session's EC CA, written afresh for each test)."""
    pki.write_ca_directory(tmp_path / "root", ca)
    return tmp_path / "root"


@pytest.fixture(scope="session")
def intermediate(ca: pki.Issued) -> pki.Issued:
    return pki.create_ca("jitr Test Intermediate", issuer=ca)


@pytest.fixture
def intermediate_dir(tmp_path: Path, ca: pki.Issued, intermediate: pki.Issued) -> Path:
    pki.write_ca_directory(tmp_path / "intermediate", intermediate, issuer_chain=[ca.certificate])
    return tmp_path / "intermediate"


@pytest.fixture(scope="session")
def expired_ca() -> pki.Issued:
    return pki.create_ca("Expired CA", not_before=datetime.now(UTC) - timedelta(days=30), days=10)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "devices"
