"""Unknown NETTRACE_* variables are refused; every name the code reads is in the registry."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from nettrace.config.settings import (
    EXTRA_ENV_VARS,
    SettingsError,
    is_known_env_var,
    load_settings,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("NETTRACE_") or key in {"FLY_REGION", "PRIMARY_REGION", "DATABASE_URL"}:
            monkeypatch.delenv(key)
    monkeypatch.setenv("NETTRACE_DATA_DIR", str(tmp_path / "data"))


def test_a_misspelled_variable_is_refused_with_the_closest_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETTRACE_MIN_CONFIDANCE", "0.9")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == (
        "unknown environment variable NETTRACE_MIN_CONFIDANCE "
        "(did you mean NETTRACE_MIN_CONFIDENCE?)"
    )


def test_an_unknown_variable_far_from_every_name_gets_no_guess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NETTRACE_ZZZZZZZZZZZZZZZZ", "1")
    with pytest.raises(SettingsError, match=r"^unknown environment variable NETTRACE_Z+$"):
        load_settings()


@pytest.mark.parametrize(
    "name",
    [
        *EXTRA_ENV_VARS,
        "NETTRACE_KRAKEN_API_KEY",
        "NETTRACE_KRAKEN_SECRET",
        "NETTRACE_BINANCEUS_API_KEY",
        "NETTRACE_TRADE_SYMBOL",
        "NETTRACE_TRADE_FEED",
        "NETTRACE_API_PORT",
        "NETTRACE_READ_TOKEN",
        "NETTRACE_MIN_CONFIDENCE",
        "NETTRACE_DATABASE_URL",
        "NETTRACE_REGION",
        "NETTRACE_OPERATOR_TOKEN",
    ],
)
def test_variables_read_outside_settings_are_not_refused(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    assert is_known_env_var(name)
    if name == "NETTRACE_CONFIG":
        return  # it must name a file; that it is read at all is tested in test_settings
    value = "0.9" if name == "NETTRACE_MIN_CONFIDENCE" else "lhr"
    if name.endswith("DATABASE_URL"):
        value = "sqlite:///x.db"
    monkeypatch.setenv(name, value)
    load_settings()


#: Tests that set a misspelled variable to see it refused.
_MISSPELT_ON_PURPOSE = frozenset({Path(__file__).name, "test_config_cli.py"})
_READ_ELSEWHERE = re.compile(r"[\"']((?:NETTRACE_)[A-Z0-9_]+)[\"']")


def test_every_variable_name_in_the_source_is_known() -> None:
    """A NETTRACE_* literal in the code or tests that the registry does not know would be
    refused at start-up: add it to EXTRA_ENV_VARS in nettrace/config/settings.py."""
    unknown: set[str] = set()
    for folder in ("nettrace", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name in _MISSPELT_ON_PURPOSE:
                continue
            for name in _READ_ELSEWHERE.findall(path.read_text(encoding="utf-8")):
                if name != "NETTRACE_" and not is_known_env_var(name):
                    unknown.add(f"{name} ({path.relative_to(ROOT)})")
    assert not unknown, sorted(unknown)
