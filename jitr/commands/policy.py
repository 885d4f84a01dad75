"""``jitr policy``: evaluate, explain and audit AWS IoT Core device policies offline."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from jitr_core.certificates import certificate_id as certificate_id_of
from jitr_core.policy import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    CertificateInfo,
    CompiledPolicySet,
    ConnectionContext,
    Grant,
    PolicyDocument,
    PolicyError,
    Request,
    audit_policies,
    explain,
    has_high,
    parse_document,
    resource_for,
    resource_type,
)
from jitr_core.policy.x509 import certificate_info
from rich.console import Console
from rich.markup import escape

from jitr.commands.common import read_certificate, usage_error

EXIT_ALLOW = 0
EXIT_DENY = 1
EXIT_HIGH_FINDING = 1
SEVERITY_STYLE = {"HIGH": "bold red", "MEDIUM": "yellow", "LOW": "cyan"}


def _console() -> Console:
    return Console(soft_wrap=True, highlight=False)


def load_policies(paths: Sequence[Path]) -> list[PolicyDocument]:
    """Each file parsed and validated; any problem is a one-line usage error."""
    names = [path.name for path in paths]
    documents: list[PolicyDocument] = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as exc:
            usage_error(f"cannot read policy {path}: {exc.strerror or exc}")
        name = path.name if names.count(path.name) == 1 else str(path)
        try:
            documents.append(parse_document(text, name))
        except PolicyError as exc:
            usage_error(str(exc))
    return documents


def certificate_context(path: Path | None) -> tuple[CertificateInfo | None, str | None]:
    """The certificate's policy variables and its AWS IoT certificate id (SHA-256 of the DER)."""
    if path is None:
        return None, None
    certificate = read_certificate(path, "certificate")
    return certificate_info(certificate), certificate_id_of(certificate)


def parse_attributes(values: Sequence[str]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for value in values:
        name, sep, item = value.partition("=")
        if not sep or not name:
            usage_error(f"--attribute expects NAME=VALUE, got {value!r}")
        attributes[name] = item
    return attributes


def parse_request_keys(values: Sequence[str]) -> dict[str, list[str]]:
    """``KEY=VALUE`` pairs; a key given several times has several values."""
    keys: dict[str, list[str]] = {}
    for value in values:
        name, sep, item = value.partition("=")
        if not sep or not name:
            usage_error(f"--request-key expects KEY=VALUE, got {value!r}")
        keys.setdefault(name, []).append(item)
    return keys


def connection(
    *,
    client_id: str | None,
    thing_name: str | None,
    attached: bool,
    thing_type: str | None,
    attributes: Sequence[str],
    cert: Path | None,
    source_ip: str | None,
    region: str,
    account: str,
) -> ConnectionContext:
    certificate, certificate_id = certificate_context(cert)
    return ConnectionContext(
        client_id=client_id if client_id is not None else thing_name,
        thing_name=thing_name,
        thing_attached=attached,
        thing_type_name=thing_type,
        thing_attributes=parse_attributes(attributes),
        certificate=certificate,
        certificate_id=certificate_id,
        source_ip=source_ip,
        region=region,
        account=account,
    )


def request_resource(action: str, topic: str | None, resource: str | None, context: ConnectionContext) -> str:
    """The ARN the action is checked against: --resource as given, else built from --topic, the client id or thing."""
    if resource is not None:
        if topic is not None:
            usage_error("give --topic or --resource, not both")
        return resource
    kind = resource_type(action)
    if action.lower() == "iot:listretainedmessages":
        return "*"
    if kind is None:
        usage_error(f"no resource type is known for {action}: give --resource ARN")
    if kind in ("topic", "topicfilter"):
        if topic is None:
            usage_error(f"{action} needs --topic (or --resource)")
        name = topic
    elif kind == "client":
        if context.client_id is None:
            usage_error("iot:Connect needs --client-id (or --thing-name, used as the client id)")
        name = context.client_id
    elif kind == "thing" and context.thing_name is not None:
        name = context.thing_name
    else:
        usage_error(f"{action} needs --resource ARN")
    return resource_for(action, name, context.region, context.account)


def context_options(func: Any) -> Any:
    """The options that describe the connection, shared by ``test`` and ``explain``.

    The command receives them (with its own ``--client-id`` and ``--thing-name``) as one
    ``context: ConnectionContext``.
    """
    options = [
        click.option("--not-attached", is_flag=True, help="The thing is not attached to the certificate."),
        click.option("--thing-type", default=None, help="The thing's type (iot:Connection.Thing.ThingTypeName)."),
        click.option(
            "--attribute", "attributes", multiple=True, metavar="NAME=VALUE", help="A thing attribute (repeatable)."
        ),
        click.option(
            "--cert", type=click.Path(path_type=Path), default=None, help="The device certificate (PEM or DER)."
        ),
        click.option("--source-ip", default=None, help="The client's IP address (aws:SourceIp)."),
        click.option("--region", default=DEFAULT_REGION, show_default=True),
        click.option("--account", default=DEFAULT_ACCOUNT, show_default=True),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object."),
    ]

    @functools.wraps(func)
    def with_context(
        *,
        client_id: str | None,
        thing_name: str | None,
        not_attached: bool,
        thing_type: str | None,
        attributes: tuple[str, ...],
        cert: Path | None,
        source_ip: str | None,
        region: str,
        account: str,
        **rest: Any,
    ) -> Any:
        context = connection(
            client_id=client_id,
            thing_name=thing_name,
            attached=not not_attached,
            thing_type=thing_type,
            attributes=attributes,
            cert=cert,
            source_ip=source_ip,
            region=region,
            account=account,
        )
        return func(context=context, **rest)

    wrapped: Any = with_context
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


policy_files_option = click.option(
    "--policy",
    "policy_files",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="A policy document (JSON); repeat for every policy attached to the certificate.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def policy() -> None:
    """Evaluate, explain and audit AWS IoT Core policies offline."""


@policy.command("test")
@policy_files_option
@click.option("--action", required=True, help="iot:Connect, iot:Publish, iot:Subscribe, iot:Receive...")
@click.option("--topic", default=None, help="The topic (Publish, Receive) or topic filter (Subscribe).")
@click.option("--resource", default=None, help="The resource ARN, for any action.")
@click.option("--client-id", default=None, help="The MQTT client id (default: the thing name).")
@click.option("--thing-name", default=None, help="The thing the client id names.")
@click.option(
    "--request-key",
    "request_keys",
    multiple=True,
    metavar="KEY=VALUE",
    help="A request condition key, e.g. iot:ConnectAttributes=LastWill (repeat a key for several values).",
)
@context_options
def test_command(
    *,
    policy_files: tuple[Path, ...],
    action: str,
    topic: str | None,
    resource: str | None,
    request_keys: tuple[str, ...],
    context: ConnectionContext,
    as_json: bool,
) -> None:
    """Decide one request as AWS IoT would: ALLOW or DENY, and the statement that decided.

    Exit status: 0 allow, 1 deny, 2 usage error.
    """
    if not action.lower().startswith("iot:") or len(action) <= 4:
        usage_error(f"--action must be an AWS IoT action such as iot:Publish, not {action!r}")
    policies = CompiledPolicySet(load_policies(policy_files))
    arn = request_resource(action, topic, resource, context)
    decision = policies.evaluate(Request(action, arn, parse_request_keys(request_keys) or None), context)
    if as_json:
        click.echo(json.dumps({**decision.to_json(), "action": action, "resource": arn, "context": context.to_json()}))
    else:
        console = _console()
        style = "bold green" if decision.allowed else "bold red"
        console.print(f"[{style}]{decision.label}[/]  {escape(action)} {escape(arn)}")
        console.print(f"  {escape(decision.reason)}")
    sys.exit(EXIT_ALLOW if decision.allowed else EXIT_DENY)


@policy.command("explain")
@policy_files_option
@click.option("--thing-name", required=True, help="The device's thing name.")
@click.option("--client-id", default=None, help="The MQTT client id (default: the thing name).")
@context_options
def explain_command(
    *,
    policy_files: tuple[Path, ...],
    context: ConnectionContext,
    as_json: bool,
) -> None:
    """List, per action, the concrete client ids, topics and topic filters a device may use."""
    policies = CompiledPolicySet(load_policies(policy_files))
    explained = explain(policies, context)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "context": context.to_json(),
                    "actions": {action: [g.to_json() for g in grants] for action, grants in explained.items()},
                }
            )
        )
        return
    console = _console()
    console.print(f"[bold]{escape(context.thing_name or '-')}[/] (client id {escape(context.client_id or '-')})")
    for action, grants in explained.items():
        console.print(f"\n[bold]{action}[/]")
        if not any(g.effect == "Allow" for g in grants):
            console.print("  nothing allowed")
        for grant in grants:
            console.print("  " + _grant_line(grant), highlight=False)


def _grant_line(grant: Grant) -> str:
    verb = "[green]allow[/]" if grant.effect == "Allow" else "[red]deny [/]"
    what = grant.resource_type or "any"
    name = escape(grant.name)
    notes = []
    if grant.wildcard:
        notes.append("wildcard pattern")
    if grant.excluded:
        notes.append("except " + ", ".join(escape(e) for e in grant.excluded))
    if grant.conditional:
        notes.append("if the request's conditions hold")
    suffix = f"  [dim]({'; '.join(notes)})[/]" if notes else ""
    return f"{verb} {what} {name}{suffix}  [dim]{escape(grant.policy_name)} Statement[{grant.statement_index}][/]"


@policy.command("audit")
@click.argument("policy_files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def audit_command(policy_files: tuple[Path, ...], as_json: bool) -> None:
    """Report what makes a device policy too broad, with a severity each.

    Exit status: 0 no HIGH finding, 1 at least one HIGH finding, 2 usage error.
    """
    findings = audit_policies(load_policies(policy_files))
    high = has_high(findings)
    if as_json:
        click.echo(json.dumps({"findings": [f.to_json() for f in findings], "high": high}))
    else:
        console = _console()
        if not findings:
            console.print(f"[bold green]no findings[/] in {', '.join(escape(str(p)) for p in policy_files)}")
        for finding in findings:
            style = SEVERITY_STYLE[str(finding.severity)]
            console.print(f"[{style}]{finding.severity:<6}[/] {finding.check}  {escape(finding.statement)}")
            if finding.resource:
                console.print(f"        {escape(finding.resource)}")
            console.print(f"        {escape(finding.message)}")
    sys.exit(EXIT_HIGH_FINDING if high else 0)
