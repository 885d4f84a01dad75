"""Reading a function's configuration from its environment (set by the template's parameters)."""

from __future__ import annotations

import os

from jitr_core.errors import ConfigurationError

_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no", ""}


def env_str(name: str, default: str | None = None) -> str:
    """A required (or defaulted) string setting."""
    value = os.environ.get(name, default)
    if value is None:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ConfigurationError(f"environment variable {name}={value!r} is not true or false")


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigurationError(f"environment variable {name}={value!r} is not a whole number") from None


def env_list(name: str) -> frozenset[str]:
    """A comma-separated setting as a set of non-empty, stripped items."""
    return frozenset(item.strip() for item in os.environ.get(name, "").split(",") if item.strip())
