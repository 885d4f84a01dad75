"""The ``jitr`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from jitr import __version__
from jitr.commands.common import is_ca_certificate, parse_overrides, read_certificate, usage_error
from jitr.local.errors import LocalRuntimeError

EXIT_ACTIVATED = 0
EXIT_FAILED = 1
EXIT_REJECTED = 3


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="jitr")
def main() -> None:
    """Just-In-Time Registration of IoT devices onto AWS IoT Core."""


@main.command()
@click.argument("device_cert", type=click.Path(path_type=Path))
@click.option("--ca", "ca_cert", required=True, type=click.Path(path_type=Path), help="The CA certificate (PEM).")
@click.option("--crl", "crl_file", type=click.Path(path_type=Path), help="A CRL (PEM or DER) for the workflow to read.")
@click.option(
    "--parameter-overrides",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE ...",
    help="Template parameters, as for sam deploy (e.g. ThingNameSource=SerialNumber).",
)
@click.option(
    "--template", type=click.Path(path_type=Path), default=None, help="The SAM template (default: the project's)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--verbose", is_flag=True, help="Also print the functions' logs (stderr).")
def simulate(
    device_cert: Path,
    ca_cert: Path,
    crl_file: Path | None,
    overrides: tuple[str, ...],
    template: Path | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Register DEVICE_CERT through the real workflow on the embedded local stack.

    The certificate is registered under the CA as AWS IoT does on a device's first
    connection (PENDING_ACTIVATION, then the registration event); the workflow decides.
    Exit status: 0 activated, 3 rejected, 1 failed, 2 usage error.
    """
    from jitr.local.simulate import simulate_registration
    from jitr.report import print_result

    device = read_certificate(device_cert, "device certificate")
    ca = read_certificate(ca_cert, "CA certificate")
    if not is_ca_certificate(ca):
        usage_error(f"{ca_cert} is not a CA certificate (no basicConstraints CA:TRUE)")
    crl: bytes | None = None
    if crl_file is not None:
        try:
            crl = crl_file.read_bytes()
        except OSError as exc:
            usage_error(f"cannot read CRL {crl_file}: {exc.strerror or exc}")
    try:
        result, logs = simulate_registration(device, ca, crl, parse_overrides(overrides), template)
    except LocalRuntimeError as exc:
        usage_error(str(exc))
    if verbose:
        click.echo("".join(logs), err=True, nl=False)
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        print_result(result)
    sys.exit({"ACTIVATED": EXIT_ACTIVATED, "REJECTED": EXIT_REJECTED}.get(result.outcome, EXIT_FAILED))


@main.command()
@click.option(
    "--keep",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Work in DIR and keep it: the CA, the devices and the local stack's log.",
)
def demo(keep: Path | None) -> None:
    """JITR end to end on a local stack: three devices connect over mutual TLS, with the jitr commands.

    One valid device is activated and its telemetry archived, one with an illegal CN is
    rejected, one revoked before it first connects is rejected. Exit 0 when all three end so.
    """
    from jitr.demo import run_demo

    sys.exit(run_demo(keep))


# Command groups that live in their own modules (jitr/commands/).

from jitr.commands.ca import ca  # noqa: E402
from jitr.commands.crl import crl  # noqa: E402
from jitr.commands.device import device  # noqa: E402

main.add_command(ca)
main.add_command(device)
main.add_command(crl)

from jitr.commands.policy import policy  # noqa: E402

main.add_command(policy)

from jitr.commands.local import local  # noqa: E402

main.add_command(local)
