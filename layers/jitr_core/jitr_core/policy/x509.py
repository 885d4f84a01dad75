"""The ``iot:Certificate.*`` policy variables of an X.509 certificate (imports ``cryptography``; the engine does not)."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from jitr_core.policy.model import CertificateInfo

NAME_FIELDS = {
    NameOID.COMMON_NAME: "CommonName",
    NameOID.COUNTRY_NAME: "Country",
    NameOID.ORGANIZATION_NAME: "Organization",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OrganizationalUnit",
    NameOID.STATE_OR_PROVINCE_NAME: "State",
    NameOID.SERIAL_NUMBER: "SerialNumber",
    NameOID.TITLE: "Title",
    NameOID.SURNAME: "Surname",
    NameOID.GIVEN_NAME: "GivenName",
    NameOID.INITIALS: "Initials",
    NameOID.PSEUDONYM: "Pseudonym",
    NameOID.GENERATION_QUALIFIER: "GenerationQualifier",
    NameOID.DN_QUALIFIER: "DistinguishedNameQualifier",
}


def name_fields(name: x509.Name) -> dict[str, tuple[str, ...]]:
    """The name's attributes by AWS IoT field name, values in certificate order."""
    fields: dict[str, list[str]] = {}
    for attribute in name:
        field = NAME_FIELDS.get(attribute.oid)
        if field is not None:
            value = attribute.value
            fields.setdefault(field, []).append(value if isinstance(value, str) else value.decode(errors="replace"))
    return {field: tuple(values) for field, values in fields.items()}


def alternative_names(names: x509.SubjectAlternativeName | x509.IssuerAlternativeName) -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {
        "DNSName": tuple(names.get_values_for_type(x509.DNSName)),
        "RFC822Name": tuple(names.get_values_for_type(x509.RFC822Name)),
        "UniformResourceIdentifier": tuple(names.get_values_for_type(x509.UniformResourceIdentifier)),
        "IPAddress": tuple(str(ip) for ip in names.get_values_for_type(x509.IPAddress)),
        "DirectoryName": tuple(n.rfc4514_string() for n in names.get_values_for_type(x509.DirectoryName)),
    }
    return {kind: values for kind, values in found.items() if values}


def _extension_names(
    certificate: x509.Certificate, kind: type[x509.SubjectAlternativeName] | type[x509.IssuerAlternativeName]
) -> dict[str, tuple[str, ...]]:
    try:
        return alternative_names(certificate.extensions.get_extension_for_class(kind).value)
    except x509.ExtensionNotFound:
        return {}


def certificate_info(certificate: x509.Certificate) -> CertificateInfo:
    """Subject, issuer, alternative names and the serial number (decimal, as AWS IoT writes it)."""
    return CertificateInfo(
        subject=name_fields(certificate.subject),
        issuer=name_fields(certificate.issuer),
        subject_alternative_names=_extension_names(certificate, x509.SubjectAlternativeName),
        issuer_alternative_names=_extension_names(certificate, x509.IssuerAlternativeName),
        serial_number=str(certificate.serial_number),
    )
