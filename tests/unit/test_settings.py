"""jitr_core.settings: a function's configuration read from its environment."""

from __future__ import annotations

import pytest
from jitr_core.errors import ConfigurationError
from jitr_core.settings import env_bool, env_int, env_list, env_str

NAME = "JITR_TEST_SETTING"


@pytest.fixture(autouse=True)
def unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(NAME, raising=False)


def test_required_string_that_is_missing_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match=NAME):
        env_str(NAME)


def test_string_falls_back_to_its_default_only_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    assert env_str(NAME, "fallback") == "fallback"
    monkeypatch.setenv(NAME, "")
    assert env_str(NAME, "fallback") == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("1", True),
        ("false", False),
        ("No", False),
        ("0", False),
        ("", False),
    ],
)
def test_boolean_spellings(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv(NAME, value)
    assert env_bool(NAME, default=not expected) is expected


def test_unset_boolean_takes_its_default() -> None:
    assert env_bool(NAME, default=True) is True
    assert env_bool(NAME) is False


@pytest.mark.parametrize("value", ["maybe", "on", "2", "truee"])
def test_unknown_boolean_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ConfigurationError, match=NAME):
        env_bool(NAME)


@pytest.mark.parametrize(("value", "expected"), [("300", 300), (" 0 ", 0), ("", 42), ("   ", 42)])
def test_whole_numbers(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    monkeypatch.setenv(NAME, value)
    assert env_int(NAME, 42) == expected


@pytest.mark.parametrize("value", ["five", "1.5", "3e2"])
def test_number_that_is_not_whole_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(NAME, value)
    with pytest.raises(ConfigurationError, match=NAME):
        env_int(NAME, 42)


def test_list_is_split_on_commas_and_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NAME, " a, b ,,c , a ")
    assert env_list(NAME) == frozenset({"a", "b", "c"})


def test_unset_list_is_empty() -> None:
    assert env_list(NAME) == frozenset()
