"""``jitr ca``: create a certificate authority, register it with AWS IoT, and manage its lifecycle.

The CA directory layout is described in :mod:`jitr.pki`. Also the helpers the ``device``
and ``crl`` command groups share: reading a CA directory, passphrases from the
environment, JSON and table output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from jitr import pki
from jitr.aws_session import AwsTarget, aws_options, call
from jitr.commands.common import usage_error

F = TypeVar("F", bound=Callable[..., Any])

DIRECTORY = click.Path(path_type=Path, file_okay=False)


# --- shared by the ca, device and crl commands -------------------------------------------------


def console() -> Console:
    return Console(soft_wrap=True, highlight=False)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def key_value_table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    return table


def passphrase_from_env(variable: str | None, option: str) -> bytes | None:
    """The passphrase held by environment variable ``variable`` (never a command-line value)."""
    if variable is None:
        return None
    value = os.environ.get(variable)
    if not value:
        usage_error(f"{option} {variable}: the environment variable {variable} is not set or empty")
    return value.encode()


def passphrase_option(name: str, what: str) -> Callable[[F], F]:
    return click.option(
        name,
        metavar="VAR",
        default=None,
        help=f"Name of the environment variable holding the passphrase of {what}.",
    )


def open_ca(
    directory: Path,
    passphrase_env: str | None = None,
    *,
    option: str = "--ca-passphrase-env",
    with_key: bool = True,
    for_signing: bool = True,
) -> pki.CaDirectory:
    """Read a CA directory, or exit with a one-line usage error that says what to do."""
    passphrase = passphrase_from_env(passphrase_env, option)
    try:
        return pki.open_ca_directory(directory, passphrase=passphrase, with_key=with_key, for_signing=for_signing)
    except pki.PassphraseRequired as exc:
        usage_error(f"{exc}: pass {option} VAR, VAR being the environment variable that holds it")
    except pki.WrongPassphrase as exc:
        usage_error(f"{exc}: check the passphrase in ${passphrase_env}")
    except pki.PkiError as exc:
        usage_error(str(exc))


def resolve_ca_id(ca_dir: Path | None, ca_id: str | None) -> str:
    """The CA certificate id from ``--ca DIR`` (SHA-256 of its DER) or ``--ca-id``."""
    if (ca_dir is None) == (ca_id is None):
        usage_error("pass either --ca DIR or --ca-id ID")
    if ca_id is not None:
        return ca_id.strip().lower()
    assert ca_dir is not None
    return open_ca(ca_dir, with_key=False, for_signing=False).certificate_id


# --- jitr ca -----------------------------------------------------------------------------------


@click.group()
def ca() -> None:
    """Create a certificate authority, register it with AWS IoT, and manage it there."""


def _creation_options(command: F) -> F:
    for option in reversed(
        (
            click.option("--cn", "common_name", required=True, help="The CA's common name."),
            click.option("--out", required=True, type=DIRECTORY, help="Directory to write the CA into."),
            click.option(
                "--key-type", type=click.Choice(pki.KEY_TYPES), default="ec-p256", show_default=True, help="CA key."
            ),
            click.option("--days", type=click.IntRange(min=1), default=3650, show_default=True, help="Validity."),
            click.option("--organization", default="jitr", show_default=True, help="The subject's O attribute."),
            click.option(
                "--crl-days",
                type=click.IntRange(min=1),
                default=pki.DEFAULT_CRL_DAYS,
                show_default=True,
                help="How long each CRL the CA signs is current (its nextUpdate).",
            ),
            passphrase_option("--key-passphrase-env", "the new CA key (encrypts it)"),
            click.option("--force", is_flag=True, help="Replace a CA already in --out."),
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
        )
    ):
        command = option(command)
    return command


@ca.command("create")
@_creation_options
def create(
    *,
    common_name: str,
    out: Path,
    key_type: pki.KeyType,
    days: int,
    organization: str,
    crl_days: int,
    key_passphrase_env: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Create a root CA in --out: ca.pem, ca.key (0600), chain.pem, an empty CRL, ca.json."""
    passphrase = passphrase_from_env(key_passphrase_env, "--key-passphrase-env")
    _check_destination(out, force)
    try:
        issued = pki.create_ca(common_name, key_type=key_type, days=days, organization=organization or None)
        store = pki.write_ca_directory(out, issued, passphrase=passphrase, crl_days=crl_days, force=force)
    except pki.PkiError as exc:
        usage_error(str(exc))
    _report_created(store, "root CA", as_json)


@ca.command("create-intermediate")
@click.option("--issuer", required=True, type=DIRECTORY, help="Directory of the CA that signs the intermediate.")
@passphrase_option("--issuer-passphrase-env", "the issuer's key")
@_creation_options
def create_intermediate(
    *,
    issuer: Path,
    issuer_passphrase_env: str | None,
    common_name: str,
    out: Path,
    key_type: pki.KeyType,
    days: int,
    organization: str,
    crl_days: int,
    key_passphrase_env: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Create an intermediate CA signed by --issuer (register the intermediate for a production fleet).

    Its chain.pem holds the intermediate followed by the issuer's chain; it never outlives the issuer.
    """
    parent = open_ca(issuer, issuer_passphrase_env, option="--issuer-passphrase-env")
    passphrase = passphrase_from_env(key_passphrase_env, "--key-passphrase-env")
    _check_destination(out, force)
    if out.resolve() == issuer.resolve():
        usage_error("--out is the issuer's own directory; give the intermediate a directory of its own")
    try:
        issued = pki.create_ca(
            common_name, key_type=key_type, days=days, issuer=parent.issued, organization=organization or None
        )
        store = pki.write_ca_directory(
            out, issued, issuer_chain=parent.chain, passphrase=passphrase, crl_days=crl_days, force=force
        )
    except pki.PkiError as exc:
        usage_error(str(exc))
    _report_created(store, "intermediate CA", as_json)


def _check_destination(out: Path, force: bool) -> None:
    existing = [path for path in pki.ca_files(out) if path.exists()]
    if existing and not force:
        usage_error(f"{existing[0]} exists; pass --force to replace the CA in {out}")
    if out.exists() and not out.is_dir():
        usage_error(f"{out} is not a directory")


def _report_created(store: pki.CaDirectory, kind: str, as_json: bool) -> None:
    cert = store.certificate
    summary: dict[str, Any] = {
        "directory": str(store.path),
        "kind": kind,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "keyType": store.metadata.key_type,
        "certificateId": store.certificate_id,
        "notAfter": cert.not_valid_after_utc.isoformat(),
        "files": {name: str(store.file(name)) for name in (pki.CA_CERT, pki.CA_KEY, pki.CA_CHAIN, pki.CA_CRL_PEM)},
    }
    if as_json:
        print_json(summary)
        return
    console().print(
        key_value_table(
            f"Created {kind} in {store.path}",
            [
                ("subject", summary["subject"]),
                ("issuer", summary["issuer"]),
                ("key", f"{summary['keyType']} in {store.file(pki.CA_KEY)} (mode 0600)"),
                ("valid until", f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"),
                ("certificate id", store.certificate_id),
            ],
        )
    )
    console().print(f"Next: jitr ca register --ca {store.path}")


# --- registration ----------------------------------------------------------------------------


@ca.command("register")
@click.option("--ca", "ca_dir", required=True, type=DIRECTORY, help="The CA's directory.")
@passphrase_option("--ca-passphrase-env", "the CA key")
@aws_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def register(ca_dir: Path, ca_passphrase_env: str | None, aws: AwsTarget, as_json: bool) -> None:
    """Register the CA with AWS IoT, ACTIVE with auto-registration on, and print its certificate id.

    Gets the account's registration code, signs a verification certificate (CN = the code)
    with the CA key, and registers both. For a CA already registered it only makes sure the
    CA is ACTIVE with auto-registration on.
    """
    store = open_ca(ca_dir, ca_passphrase_env)
    iot = aws.client("iot")
    result = register_ca(iot, store)
    pki.record_registration(store, result["certificateArn"])
    if as_json:
        print_json(result)
        return
    out = console()
    verb = "Registered" if result["created"] else "Already registered:"
    out.print(f"{verb} CA [bold]{result['certificateId']}[/] in {iot.meta.region_name}")
    out.print("  status ACTIVE, auto-registration ENABLE")
    for change in result["changed"]:
        out.print(f"  changed: {change}")


def register_ca(iot: Any, store: pki.CaDirectory) -> dict[str, Any]:
    """Register the CA (proving possession) unless it is already; either way leave it ACTIVE and auto-registering."""
    ca_id = store.certificate_id
    description = describe_ca(iot, ca_id)
    created = False
    if description is None:
        code = call("GetRegistrationCode", iot.get_registration_code)["registrationCode"]
        try:
            verification = pki.create_verification_certificate(store.issued, code)
        except pki.PkiError as exc:
            usage_error(str(exc))
        response = call(
            "RegisterCACertificate",
            iot.register_ca_certificate,
            tolerate={"ResourceAlreadyExistsException"},  # registered meanwhile, by another run
            caCertificate=pki.certificate_pem(store.certificate).decode(),
            verificationCertificate=pki.certificate_pem(verification).decode(),
            setAsActive=True,
            allowAutoRegistration=True,
        )
        if response is None:
            description = _described(iot, ca_id)
        else:
            ca_id, created = response["certificateId"], True
            description = {"certificateArn": response["certificateArn"]}
    changed = [] if created else ensure_active(iot, ca_id, description)
    return {
        "certificateId": ca_id,
        "certificateArn": description.get("certificateArn", ""),
        "status": "ACTIVE",
        "autoRegistrationStatus": "ENABLE",
        "created": created,
        "changed": changed,
    }


def describe_ca(iot: Any, ca_id: str) -> dict[str, Any] | None:
    """The CA's description in AWS IoT, or ``None`` when it is not registered there."""
    response = call(
        "DescribeCACertificate",
        iot.describe_ca_certificate,
        tolerate={"ResourceNotFoundException"},
        certificateId=ca_id,
    )
    return None if response is None else dict(response["certificateDescription"])


def ensure_active(iot: Any, ca_id: str, description: dict[str, Any]) -> list[str]:
    """Set ACTIVE and auto-registration ENABLE where they are not (an unreported setting is set anyway)."""
    changes: dict[str, str] = {}
    if description.get("status") != "ACTIVE":
        changes["newStatus"] = "ACTIVE"
    if description.get("autoRegistrationStatus") != "ENABLE":
        changes["newAutoRegistrationStatus"] = "ENABLE"
    if changes:
        call("UpdateCACertificate", iot.update_ca_certificate, certificateId=ca_id, **changes)
    said = []
    if "newStatus" in changes:
        said.append(f"status {description.get('status')} → ACTIVE")
    if "newAutoRegistrationStatus" in changes:
        said.append(f"auto-registration {description.get('autoRegistrationStatus', 'unreported')} → ENABLE")
    return said


# --- lifecycle -------------------------------------------------------------------------------


def _lifecycle_options(command: F) -> F:
    for option in reversed(
        (
            click.option("--ca", "ca_dir", type=DIRECTORY, default=None, help="The CA's directory."),
            click.option("--ca-id", default=None, metavar="ID", help="The CA certificate id in AWS IoT."),
            aws_options,
            click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
        )
    ):
        command = option(command)
    return command


def _described(iot: Any, ca_id: str) -> dict[str, Any]:
    description = describe_ca(iot, ca_id)
    if description is None:
        usage_error(
            f"CA {ca_id} is not registered in AWS IoT in {iot.meta.region_name}; "
            "register it with `jitr ca register --ca DIR`"
        )
    return description


@ca.command("status")
@_lifecycle_options
def status(ca_dir: Path | None, ca_id: str | None, aws: AwsTarget, as_json: bool) -> None:
    """Show the CA's registration in AWS IoT: status, auto-registration, validity."""
    identifier = resolve_ca_id(ca_dir, ca_id)
    iot = aws.client("iot")
    description = _described(iot, identifier)
    summary = {
        "certificateId": description.get("certificateId", identifier),
        "certificateArn": description.get("certificateArn"),
        "status": description.get("status"),
        "autoRegistrationStatus": description.get("autoRegistrationStatus"),
        "certificateMode": description.get("certificateMode"),
        "creationDate": description.get("creationDate"),
        "validity": description.get("validity"),
        "region": iot.meta.region_name,
    }
    if as_json:
        print_json(summary)
        return
    validity = summary["validity"] or {}
    console().print(
        key_value_table(
            f"CA {identifier}",
            [
                ("ARN", str(summary["certificateArn"])),
                ("status", str(summary["status"])),
                ("auto-registration", str(summary["autoRegistrationStatus"] or "not reported by this endpoint")),
                ("mode", str(summary["certificateMode"] or "-")),
                ("registered", str(summary["creationDate"] or "-")),
                ("valid", f"{validity.get('notBefore', '?')} → {validity.get('notAfter', '?')}"),
            ],
        )
    )


LIFECYCLE = {
    "deactivate": (
        "Deactivate the CA in AWS IoT: no new device signed by it registers.",
        {"newStatus": "INACTIVE"},
        "CA {id} is INACTIVE: AWS IoT registers no new device signed by it, so JITR stops for it. "
        "Devices already registered keep their certificates' status; revoke or deactivate those separately.",
    ),
    "activate": (
        "Activate the CA in AWS IoT again.",
        {"newStatus": "ACTIVE"},
        "CA {id} is ACTIVE: devices signed by it can register again (when auto-registration is on).",
    ),
    "disable-auto-registration": (
        "Turn auto-registration off: unknown devices signed by the CA are refused, not registered.",
        {"newAutoRegistrationStatus": "DISABLE"},
        "Auto-registration is off for CA {id}: a device certificate signed by it that AWS IoT does not know "
        "is refused, not registered, and no registration workflow starts.",
    ),
    "enable-auto-registration": (
        "Turn auto-registration on: a new device signed by the CA is registered on first connection.",
        {"newAutoRegistrationStatus": "ENABLE"},
        "Auto-registration is on for CA {id}: a new device signed by it is registered on first connection "
        "and the workflow decides.",
    ),
}


def _lifecycle_command(name: str, summary: str, changes: dict[str, str], message: str) -> None:
    @ca.command(name, help=summary)
    @_lifecycle_options
    def command(ca_dir: Path | None, ca_id: str | None, aws: AwsTarget, as_json: bool) -> None:
        identifier = resolve_ca_id(ca_dir, ca_id)
        iot = aws.client("iot")
        _described(iot, identifier)
        call("UpdateCACertificate", iot.update_ca_certificate, certificateId=identifier, **changes)
        if as_json:
            print_json({"certificateId": identifier, **changes, "message": message.format(id=identifier)})
        else:
            console().print(message.format(id=identifier))


for _name, (_summary, _changes, _message) in LIFECYCLE.items():
    _lifecycle_command(_name, _summary, _changes, _message)
