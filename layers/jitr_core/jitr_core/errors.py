"""Errors the workflow's functions raise.

The class name is the error name Step Functions sees (the Lambda runtime reports it as
``errorType``), so the names are part of the state machine's contract:

* ``RegistrationRejected`` subclasses judge the certificate. They are never retried; the
  workflow compensates and ends in ``RegistrationRejected``.
* ``RetryableAwsError`` subclasses are transient; the state machine retries them with backoff.
* Everything else is a failure: the workflow compensates and ends in ``RegistrationFailed``.
"""

from __future__ import annotations


class JitrError(Exception):
    """Base of every error this project raises on purpose."""


class RegistrationRejected(JitrError):
    """The certificate may not be registered. ``reason`` names the rule it broke."""

    @property
    def reason(self) -> str:
        return type(self).__name__


class CommonNameMissing(RegistrationRejected):
    """The subject has no CN (or an empty one) to take the thing name from."""


class CommonNameAmbiguous(RegistrationRejected):
    """The subject has more than one CN."""


class ThingNameInvalid(RegistrationRejected):
    """The thing name breaks AWS thing-name rules or the configured pattern."""


class ThingNameWildcard(ThingNameInvalid):
    """The name holds a wildcard ('*' or '?'), which a policy variable would widen."""


class ThingNamePolicyVariable(ThingNameInvalid):
    """The name holds policy-variable syntax ('${'), which a policy could substitute."""


class ThingNameTopicCharacter(ThingNameInvalid):
    """The name holds an MQTT topic character ('/', '+' or '#')."""


class ThingNamePatternMismatch(ThingNameInvalid):
    """The name is a legal thing name but does not match the configured pattern."""


class CertificateExpired(RegistrationRejected):
    """The certificate's notAfter has passed."""


class CertificateNotYetValid(RegistrationRejected):
    """The certificate's notBefore is in the future."""


class CertificateNotPending(RegistrationRejected):
    """The certificate is INACTIVE, REVOKED or in transfer: a late or replayed event."""


class CaNotAllowed(RegistrationRejected):
    """The issuing CA is not in the configured allow-list."""


class CaNotActive(RegistrationRejected):
    """The issuing CA is registered but not ACTIVE."""


class SignatureInvalid(RegistrationRejected):
    """The certificate was not signed by the CA it was registered under."""


class CertificateRevoked(RegistrationRejected):
    """The CA's revocation list names the certificate's serial number."""


class CrlUnavailable(RegistrationRejected):
    """The revocation list could not be fetched (fail closed)."""


class CrlInvalid(RegistrationRejected):
    """The revocation list is unparseable, or not issued and signed by the CA: never failed open."""


class CrlStale(RegistrationRejected):
    """The revocation list's nextUpdate has passed (fail closed unless CRL_FAIL_OPEN)."""


class RetryableAwsError(JitrError):
    """A transient AWS condition; the state machine retries the step."""


class AwsThrottled(RetryableAwsError):
    """An AWS API call was throttled (ThrottlingException, TooManyRequestsException...)."""


class AwsUnavailable(RetryableAwsError):
    """An AWS API call failed on the service side (5xx, InternalFailure, ServiceUnavailable)."""


class InvalidRegistrationEvent(JitrError):
    """The event is not a well-formed AWS IoT certificate registration event."""


class InvalidStepInput(JitrError):
    """A step received state it cannot work on (a wiring error in the state machine)."""


class CertificateNotFound(JitrError):
    """The event names a certificate id that AWS IoT does not know."""


class ConfigurationError(JitrError):
    """A function's environment (the template's parameters) is invalid."""


def _subclasses(cls: type) -> set[type]:
    found: set[type] = set()
    sub: type
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _subclasses(sub)
    return found


REJECTION_NAMES: frozenset[str] = frozenset(c.__name__ for c in _subclasses(RegistrationRejected))
"""Error names that mean 'rejected', as Step Functions reports them."""


def is_rejection(error_name: str) -> bool:
    """True when a Step Functions error name is one of the rejections above."""
    return error_name in REJECTION_NAMES
