"""A small time-to-live cache for what a warm function may reuse across invocations."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Keeps each value for ``ttl_seconds`` (or less, when ``expires_at`` says so)."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get_or_load(self, key: K, load: Callable[[], V], expires_in: Callable[[V], float | None] | None = None) -> V:
        """The cached value for ``key``, loading it when absent or expired.

        ``expires_in`` may shorten a value's life (a CRL whose nextUpdate comes sooner).
        """
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        life = self.ttl_seconds
        if expires_in is not None:
            own = expires_in(value)
            if own is not None:
                life = min(life, max(own, 0.0))
        self._entries[key] = (now + life, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
