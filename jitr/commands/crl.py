"""``jitr crl``: the CA's certificate revocation list, shown, signed again, and published.

The CRL in the CA directory (``crl.pem`` and ``crl.der``) is the record of what the CA
revoked; ``jitr device revoke`` adds to it. The workflow rejects a CRL past its
``nextUpdate`` (``CrlInvalid``), so sign it again before then: ``jitr crl renew --publish``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import click
from cryptography import x509
from rich.table import Table

from jitr import pki
from jitr.aws_session import AwsTarget, aws_options, call
from jitr.commands.ca import DIRECTORY, console, open_ca, passphrase_option, print_json
from jitr.commands.common import usage_error

DER_SUFFIXES = (".der", ".crl")


def describe_crl(crl: x509.CertificateRevocationList, store: pki.CaDirectory) -> dict[str, Any]:
    next_update = crl.next_update_utc
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "number": pki.crl_number(crl),
        "lastUpdate": crl.last_update_utc.isoformat(),
        "nextUpdate": next_update.isoformat() if next_update else None,
        "current": next_update is None or next_update > datetime.now(UTC),
        "entries": len(crl),
        "files": {"pem": str(store.file(pki.CA_CRL_PEM)), "der": str(store.file(pki.CA_CRL_DER))},
    }


def s3_location(location: str) -> tuple[str, str]:
    parsed = urlparse(location)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        usage_error(f"--publish {location!r}: expected s3://BUCKET/KEY")
    return parsed.netloc, key


def publish_crl(
    aws: AwsTarget, store: pki.CaDirectory, crl: x509.CertificateRevocationList, location: str
) -> dict[str, str]:
    """Upload the CRL where the workflow reads it: DER for a key ending .der or .crl, PEM otherwise."""
    bucket, key = s3_location(location)
    der = key.lower().endswith(DER_SUFFIXES)
    call(
        f"the CRL in {store.path} is updated, but uploading it to {location} failed: PutObject",
        aws.client("s3").put_object,
        Bucket=bucket,
        Key=key,
        Body=pki.crl_bytes(crl, der=der),
        ContentType="application/pkix-crl" if der else "application/x-pem-file",
    )
    return {"location": location, "encoding": "DER" if der else "PEM"}


def _current_crl(store: pki.CaDirectory) -> x509.CertificateRevocationList:
    try:
        crl = pki.read_crl(store)
    except pki.PkiError as exc:
        usage_error(str(exc))
    if crl is None:
        usage_error(f"{store.path} has no {pki.CA_CRL_PEM}; sign one with `jitr crl renew --ca {store.path}`")
    return crl


@click.group()
def crl() -> None:
    """Show, sign again and publish a CA's certificate revocation list."""


@crl.command("show")
@click.option("--ca", "ca_dir", required=True, type=DIRECTORY, help="The CA's directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def show(ca_dir: Path, as_json: bool) -> None:
    """The CRL's validity and entries (serial, revocation date, reason); its signature is checked."""
    store = open_ca(ca_dir, with_key=False, for_signing=False)
    current = _current_crl(store)
    summary = describe_crl(current, store)
    revocations = pki.crl_revocations(current)
    if as_json:
        print_json({**summary, "revoked": [r.to_json() for r in revocations]})
        return
    out = console()
    state = "current" if summary["current"] else "[bold red]STALE: the workflow rejects it; run jitr crl renew[/]"
    out.print(f"CRL number {summary['number']} of {summary['issuer']}")
    out.print(f"  last update {summary['lastUpdate']}, next update {summary['nextUpdate']} ({state})")
    table = Table(title=f"{len(revocations)} revoked", title_justify="left")
    for column in ("serial", "revoked at", "reason"):
        table.add_column(column)
    for revocation in revocations:
        entry = revocation.to_json()
        table.add_row(str(entry["serial"]), str(entry["revokedAt"]), str(entry["reason"] or "-"))
    out.print(table)


@crl.command("renew")
@click.option("--ca", "ca_dir", required=True, type=DIRECTORY, help="The CA's directory.")
@click.option("--days", type=click.IntRange(min=1), default=None, help="The CRL's lifetime (default: the CA's).")
@click.option("--publish", default=None, metavar="s3://BUCKET/KEY", help="Upload it where the workflow reads it.")
@passphrase_option("--ca-passphrase-env", "the CA key")
@aws_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def renew(
    *, ca_dir: Path, days: int | None, publish: str | None, ca_passphrase_env: str | None, aws: AwsTarget, as_json: bool
) -> None:
    """Sign the CRL again with the same entries, the next CRL number and a new nextUpdate."""
    if publish:
        s3_location(publish)
    store = open_ca(ca_dir, ca_passphrase_env, for_signing=False)
    try:
        signed = pki.resign_crl(store, days=days)
    except pki.PkiError as exc:
        usage_error(str(exc))
    summary = describe_crl(signed, store)
    if publish:
        summary["published"] = publish_crl(aws, store, signed, publish)
    if as_json:
        print_json(summary)
        return
    out = console()
    out.print(
        f"CRL number {summary['number']} signed: {summary['entries']} entries, next update {summary['nextUpdate']}"
    )
    if publish:
        out.print(f"Uploaded to {publish}.")
