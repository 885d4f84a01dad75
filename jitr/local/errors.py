"""Errors of the local runtime."""


class LocalRuntimeError(Exception):
    """Base of the local runtime's errors: the message is meant for the user as it is."""


class TemplateError(LocalRuntimeError):
    """The template cannot be run locally as written."""
