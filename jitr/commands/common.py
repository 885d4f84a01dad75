"""What every ``jitr`` command shares: one-line usage errors, template parameters, reading certificates."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import NoReturn

import click
from cryptography import x509

EXIT_USAGE = 2


class UsageProblem(click.ClickException):
    """A one-line usage error: exit status 2, no traceback."""

    exit_code = EXIT_USAGE

    def show(self, file: object = None) -> None:
        click.echo(f"jitr: error: {self.format_message()}", err=True)


def usage_error(message: str) -> NoReturn:
    raise UsageProblem(message)


def read_certificate(path: Path, what: str) -> x509.Certificate:
    """The first certificate of a PEM file (a device bundle starts with the device certificate)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        usage_error(f"cannot read {what} {path}: {exc.strerror or exc}")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        try:
            certificates = [x509.load_der_x509_certificate(data)]
        except ValueError:
            usage_error(f"{path} is not a PEM or DER X.509 certificate ({what})")
    return certificates[0]


def is_ca_certificate(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def parse_overrides(values: Iterable[str]) -> dict[str, str]:
    """``Key=Value`` pairs, as many per option as the shell passes (sam's syntax)."""
    overrides: dict[str, str] = {}
    for value in values:
        for pair in value.split():
            key, sep, item = pair.partition("=")
            if not sep or not key:
                usage_error(f"--parameter-overrides expects Key=Value, got {pair!r}")
            overrides[key] = item
    return overrides
