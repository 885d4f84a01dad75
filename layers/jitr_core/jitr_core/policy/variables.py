"""Policy variables and condition keys: their values for one connection, as AWS IoT Core resolves them.

* ``iot:ClientId``, ``iot:CertificateId``, ``aws:SourceIp``.
* ``iot:Connection.Thing.ThingName``, ``.ThingTypeName``, ``.Attributes[name]``: only when the
  client id equals the name of a thing attached to the certificate. ``.IsAttached`` is
  ``"true"`` or ``"false"``.
* ``iot:Certificate.Subject.<field>`` and ``iot:Certificate.Issuer.<field>`` (``CommonName``,
  ``Organization``...), their ``.AlternativeName.<kind>``, ``iot:Certificate.SerialNumber``
  (decimal) and ``iot:Certificate.AvailableKeys``. A field with several values gives the first;
  ``.<n>`` gives the n-th (from 0) and ``.List`` all of them (conditions only). At most five
  values are kept.

A variable is substituted only with a value AWS IoT would substitute: never a value holding
a policy wildcard (``*``, ``?``), nor, for certificate fields, one holding ``$``, ``+`` or
``#`` or longer than 1024 characters. Otherwise it stays unresolved and the pattern holding it
matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from jitr_core.policy.model import ConnectionContext

CERTIFICATE_NAME_FIELDS = (
    "CommonName",
    "Country",
    "Organization",
    "OrganizationalUnit",
    "State",
    "SerialNumber",
    "Title",
    "Surname",
    "GivenName",
    "Initials",
    "Pseudonym",
    "GenerationQualifier",
    "DistinguishedNameQualifier",
)
ALTERNATIVE_NAME_FIELDS = ("RFC822Name", "DNSName", "DirectoryName", "UniformResourceIdentifier", "IPAddress")
MAX_CERTIFICATE_VALUES = 5
MAX_CERTIFICATE_VALUE_LENGTH = 1024
POLICY_WILDCARDS = frozenset("*?")
CERTIFICATE_WILDCARDS = frozenset("*?$+#")

_CERTIFICATE_KEY = re.compile(
    r"iot:certificate\.(?P<side>subject|issuer)\.(?:(?P<alt>alternativename)\.)?(?P<field>[a-z0-9]+)"
    r"(?:\.(?P<index>[0-9]+|list))?",
    re.IGNORECASE,
)
_ATTRIBUTE_KEY = re.compile(r"iot:connection\.thing\.attributes\[(?P<name>[^\]]+)\]", re.IGNORECASE)
_NAME_FIELDS = {name.lower(): name for name in CERTIFICATE_NAME_FIELDS}
_ALT_FIELDS = {name.lower(): name for name in ALTERNATIVE_NAME_FIELDS}
_SIMPLE_KEYS = frozenset(
    {
        "iot:clientid",
        "iot:certificateid",
        "aws:sourceip",
        "iot:connection.thing.thingname",
        "iot:connection.thing.thingtypename",
        "iot:connection.thing.isattached",
        "iot:certificate.serialnumber",
        "iot:certificate.availablekeys",
    }
)
CONNECTION_KEY_PREFIXES = ("iot:connection.thing.", "iot:certificate.")

SCOPING_VARIABLES = frozenset(
    {
        "iot:connection.thing.thingname",
        "iot:clientid",
        "iot:certificateid",
        "iot:certificate.serialnumber",
        "iot:certificate.subject.commonname",
        "iot:certificate.subject.commonname.0",
        "iot:certificate.subject.serialnumber",
    }
)
"""Variables that name one device: a resource holding one is that device's own."""


def is_known_key(key: str) -> bool:
    """True for a variable or condition key this module can resolve from a connection."""
    lowered = key.lower()
    if lowered in _SIMPLE_KEYS or _ATTRIBUTE_KEY.fullmatch(key):
        return True
    match = _CERTIFICATE_KEY.fullmatch(key)
    if not match:
        return False
    fields = _ALT_FIELDS if match["alt"] else _NAME_FIELDS
    return match["field"].lower() in fields


def is_connection_key(key: str) -> bool:
    """True when the key's value comes from the connection (it is fixed for the connection's lifetime)."""
    lowered = key.lower()
    return lowered in _SIMPLE_KEYS or lowered.startswith(CONNECTION_KEY_PREFIXES)


def _limited(values: tuple[str, ...]) -> tuple[str, ...]:
    return values[:MAX_CERTIFICATE_VALUES]


class Resolver:
    """The values of variables and condition keys for one connection."""

    def __init__(self, context: ConnectionContext) -> None:
        self.context = context
        self._cache: dict[str, tuple[str, ...] | None] = {}

    def values(self, key: str) -> tuple[str, ...] | None:
        """The key's values (a condition key may have several), or None when the request context lacks it."""
        lowered = key.lower()
        if lowered not in self._cache:
            self._cache[lowered] = self._lookup(key, lowered)
        return self._cache[lowered]

    def substitution(self, name: str) -> str | None:
        """What ``${name}`` becomes, or None when AWS IoT would leave it unresolved."""
        lowered = name.lower()
        if lowered.endswith(".list") or lowered == "iot:certificate.availablekeys":
            return None
        values = self.values(name)
        if not values:
            return None
        value = values[0]
        if lowered.startswith("iot:certificate."):
            if len(value) > MAX_CERTIFICATE_VALUE_LENGTH or not CERTIFICATE_WILDCARDS.isdisjoint(value):
                return None
        elif not POLICY_WILDCARDS.isdisjoint(value):
            return None
        return value

    def _lookup(self, key: str, lowered: str) -> tuple[str, ...] | None:
        context = self.context
        thing = context.connection_thing
        simple: dict[str, str | None] = {
            "iot:clientid": context.client_id,
            "iot:certificateid": context.certificate_id,
            "aws:sourceip": context.source_ip,
            "iot:connection.thing.thingname": thing,
            "iot:connection.thing.thingtypename": context.thing_type_name if thing else None,
            "iot:connection.thing.isattached": "true" if thing else "false",
            "iot:certificate.serialnumber": context.certificate.serial_number if context.certificate else None,
        }
        if lowered in simple:
            value = simple[lowered]
            return None if value is None else (value,)
        if lowered == "iot:certificate.availablekeys":
            return self._available_keys()
        attribute = _ATTRIBUTE_KEY.fullmatch(key)
        if attribute:
            found = context.thing_attributes.get(attribute["name"]) if thing else None
            return None if found is None else (found,)
        return self._certificate_field(key)

    def _certificate_field(self, key: str) -> tuple[str, ...] | None:
        match = _CERTIFICATE_KEY.fullmatch(key)
        certificate = self.context.certificate
        if not match or certificate is None:
            return None
        if match["alt"]:
            source = (
                certificate.subject_alternative_names
                if match["side"].lower() == "subject"
                else certificate.issuer_alternative_names
            )
            field = _ALT_FIELDS.get(match["field"].lower())
        else:
            source = certificate.subject if match["side"].lower() == "subject" else certificate.issuer
            field = _NAME_FIELDS.get(match["field"].lower())
        values = _limited(tuple(source.get(field, ()))) if field else ()
        if not values:
            return None
        index = match["index"]
        if index is None:
            return values[:1]
        if index.lower() == "list":
            return values
        position = int(index)
        return (values[position],) if position < len(values) else None

    def _available_keys(self) -> tuple[str, ...] | None:
        certificate = self.context.certificate
        if certificate is None:
            return None
        keys: list[str] = []
        groups: tuple[tuple[str, Mapping[str, tuple[str, ...]]], ...] = (
            ("iot:Certificate.Subject.", certificate.subject),
            ("iot:Certificate.Issuer.", certificate.issuer),
            ("iot:Certificate.Subject.AlternativeName.", certificate.subject_alternative_names),
            ("iot:Certificate.Issuer.AlternativeName.", certificate.issuer_alternative_names),
        )
        for prefix, fields in groups:
            keys.extend(prefix + name for name, values in fields.items() if values)
        if certificate.serial_number:
            keys.append("iot:Certificate.SerialNumber")
        return tuple(keys) or None
