"""``make demo``: a throwaway CA, three devices, and what the workflow makes of each, locally."""

from __future__ import annotations

import tempfile
from pathlib import Path

from rich.console import Console

from jitr import pki
from jitr.local.registration import LocalIot, RegistrationResult
from jitr.local.simulate import LOCAL_CRL_BUCKET
from jitr.local.stack import LocalStack
from jitr.report import print_results

DEVICES = (
    ("device-001", "a valid device"),
    ("device-*", "an illegal CN (wildcard)"),
    ("device-003", "revoked in the CA's CRL"),
)


def write_fleet(directory: Path) -> tuple[pki.Issued, list[pki.Issued], bytes]:
    """Create the CA, the devices and a CRL revoking the third; write them under ``directory``."""
    ca = pki.create_ca("jitr demo CA")
    pki.write_issued(ca, directory, "ca", force=True)
    devices = []
    for index, (cn, _) in enumerate(DEVICES, start=1):
        issued = pki.issue_device_certificate(ca, cn)
        pki.write_issued(issued, directory, f"device-{index}", force=True)
        devices.append(issued)
    crl = pki.crl_bytes(pki.create_crl(ca, [devices[2].certificate.serial_number]))
    (directory / "crl.pem").write_bytes(crl)
    return ca, devices, crl


def register_fleet(ca: pki.Issued, devices: list[pki.Issued], crl: bytes) -> list[RegistrationResult]:
    with LocalStack(parameter_overrides={"CrlBucket": LOCAL_CRL_BUCKET}) as stack:
        s3 = stack.client("s3")
        s3.create_bucket(Bucket=LOCAL_CRL_BUCKET)
        s3.put_object(Bucket=LOCAL_CRL_BUCKET, Key=stack.template.parameters["CrlKey"], Body=crl)
        iot = LocalIot(stack)
        return [iot.register(device.cert_pem, ca.cert_pem) for device in devices]


def run_demo(keep: Path | None = None) -> int:
    console = Console(soft_wrap=True)
    with tempfile.TemporaryDirectory(prefix="jitr-demo-") as scratch:
        directory = keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        console.print(f"[bold]jitr demo[/]: a CA and three devices in {directory}")
        ca, devices, crl = write_fleet(directory)
        console.print("Registering each device as AWS IoT does on its first connection, then running the workflow…")
        results = register_fleet(ca, devices, crl)
        labels = [f"{cn} — {what}" for cn, what in DEVICES]
        print_results(list(zip(labels, results, strict=True)), console)
        expected = ["ACTIVATED", "REJECTED", "REJECTED"]
        outcomes = [r.outcome for r in results]
        if keep is not None:
            console.print(
                "\nEach device on its own: "
                f"[cyan]jitr simulate {directory}/device-1.pem --ca {directory}/ca.pem --crl {directory}/crl.pem --json[/]"
            )
        else:
            console.print("\n[dim]jitr demo --keep DIR keeps the CA and devices for jitr simulate.[/]")
        if outcomes != expected:
            console.print(f"[bold red]unexpected outcomes {outcomes}, expected {expected}[/]")
            return 1
        return 0
