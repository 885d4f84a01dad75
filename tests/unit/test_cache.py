"""jitr_core.cache.TtlCache, driven by an injected clock."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from jitr_core.cache import TtlCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    """Returns 'value-1', 'value-2'... and counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"value-{self.calls}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def loader() -> CountingLoader:
    return CountingLoader()


def test_value_is_loaded_once_within_the_ttl(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)
    assert cache.get_or_load("k", loader) == "value-1"
    clock.now += 59.9
    assert cache.get_or_load("k", loader) == "value-1"
    assert loader.calls == 1


def test_value_is_reloaded_once_the_ttl_has_passed(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)
    cache.get_or_load("k", loader)
    clock.now += 60
    assert cache.get_or_load("k", loader) == "value-2"
    clock.now += 30
    assert cache.get_or_load("k", loader) == "value-2"
    assert loader.calls == 2


def test_each_key_is_cached_separately(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)
    assert cache.get_or_load("a", loader) == "value-1"
    assert cache.get_or_load("b", loader) == "value-2"
    assert cache.get_or_load("a", loader) == "value-1"


def test_expires_in_shortens_a_values_life(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)
    cache.get_or_load("k", loader, expires_in=lambda _: 10.0)
    clock.now += 9.9
    assert cache.get_or_load("k", loader, expires_in=lambda _: 10.0) == "value-1"
    clock.now += 0.1
    assert cache.get_or_load("k", loader, expires_in=lambda _: 10.0) == "value-2"


def test_expires_in_cannot_lengthen_a_values_life(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)
    cache.get_or_load("k", loader, expires_in=lambda _: 3600.0)
    clock.now += 60
    assert cache.get_or_load("k", loader) == "value-2"


@pytest.mark.parametrize(
    ("expires_in", "reloads_at_once"),
    [
        pytest.param(lambda _: None, False, id="none-keeps-the-ttl"),
        pytest.param(lambda _: -5.0, True, id="negative-expires-at-once"),
        pytest.param(lambda _: 0.0, True, id="zero-expires-at-once"),
    ],
)
def test_expires_in_edge_values(
    clock: FakeClock, loader: CountingLoader, expires_in: Callable[[str], float | None], reloads_at_once: bool
) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)
    cache.get_or_load("k", loader, expires_in=expires_in)
    cache.get_or_load("k", loader, expires_in=expires_in)
    assert loader.calls == (2 if reloads_at_once else 1)


def test_zero_ttl_never_caches(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(0, clock=clock)
    cache.get_or_load("k", loader)
    cache.get_or_load("k", loader)
    assert loader.calls == 2


def test_failed_load_is_not_cached(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)

    def failing() -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        cache.get_or_load("k", failing)
    assert cache.get_or_load("k", loader) == "value-1"


def test_clear_forgets_every_value(clock: FakeClock, loader: CountingLoader) -> None:
    cache: TtlCache[str, str] = TtlCache(60, clock=clock)
    cache.get_or_load("k", loader)
    cache.clear()
    assert cache.get_or_load("k", loader) == "value-2"
