"""``jitr simulate``: one device certificate through the workflow on a fresh local stack."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from jitr.local.errors import LocalRuntimeError
from jitr.local.registration import LocalIot, RegistrationResult
from jitr.local.stack import DEFAULT_TEMPLATE, LocalStack

LOCAL_CRL_BUCKET = "jitr-local-crl"


def crl_overrides(overrides: dict[str, str]) -> dict[str, str]:
    """Point the workflow at the local S3 object that will hold the CRL."""
    if overrides.get("CrlUrl"):
        raise LocalRuntimeError("--crl serves the CRL from the local S3; drop the CrlUrl override")
    return {**overrides, "CrlBucket": overrides.get("CrlBucket") or LOCAL_CRL_BUCKET, "CrlUrl": ""}


def simulate_registration(
    device: x509.Certificate,
    ca: x509.Certificate,
    crl: bytes | None,
    overrides: dict[str, str],
    template: Path | None = None,
) -> tuple[RegistrationResult, list[str]]:
    """Register ``device`` under ``ca`` and run the workflow; return its result and the functions' logs."""
    if crl is not None:
        overrides = crl_overrides(overrides)
    with LocalStack(template or DEFAULT_TEMPLATE, overrides) as stack:
        if crl is not None:
            s3 = stack.client("s3")
            bucket = stack.template.parameters["CrlBucket"]
            s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=stack.template.parameters["CrlKey"], Body=crl)
        iot = LocalIot(stack)
        result = iot.register(_pem(device), _pem(ca))
        return result, list(stack.logs)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode()
