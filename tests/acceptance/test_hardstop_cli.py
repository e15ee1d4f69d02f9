"""``nettrace hardstop`` as a user runs it: raise, status, clear, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest


def nettrace(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )


@pytest.fixture
def migrated_env(env: dict[str, str]) -> dict[str, str]:
    upgraded = nettrace("db", "upgrade", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    return env


def test_raise_status_clear_round_trip(migrated_env: dict[str, str]) -> None:
    env = migrated_env
    status = nettrace("hardstop", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert "HARDSTOP inactive" in status.stdout

    raised = nettrace("hardstop", "raise", "--reason", "exchange incident", env=env)
    assert raised.returncode == 0, raised.stderr
    assert "HARDSTOP raised by operator: exchange incident" in raised.stdout

    status = nettrace("hardstop", "status", env=env)
    assert "HARDSTOP ACTIVE" in status.stdout
    assert "exchange incident" in status.stdout
    assert "operator" in status.stdout

    no_token = nettrace("hardstop", "clear", "--reason", "ok", "--yes", env=env)
    assert no_token.returncode == 2
    assert no_token.stderr.strip().count("\n") == 0
    assert "NETTRACE_OPERATOR_TOKEN" in no_token.stderr
    assert "HARDSTOP ACTIVE" in nettrace("hardstop", "status", env=env).stdout

    env = {**env, "NETTRACE_OPERATOR_TOKEN": "operator-token-1a2b"}
    refused = nettrace("hardstop", "clear", "--reason", "ok", env=env, stdin="n\n")
    assert refused.returncode == 2
    assert "not cleared" in refused.stderr
    assert "HARDSTOP ACTIVE" in nettrace("hardstop", "status", env=env).stdout

    cleared = nettrace("hardstop", "clear", "--reason", "incident over", "--yes", env=env)
    assert cleared.returncode == 0, cleared.stderr
    assert "HARDSTOP cleared by operator" in cleared.stdout
    assert "exchange incident" in cleared.stdout

    status = nettrace("hardstop", "status", env=env)
    assert "HARDSTOP inactive" in status.stdout
    assert "clear" in status.stdout  # the event log
    assert "raise" in status.stdout


def test_errors_are_one_line_and_exit_2(migrated_env: dict[str, str]) -> None:
    missing = nettrace("hardstop", "raise", env=migrated_env)
    assert missing.returncode == 2
    blank = nettrace("hardstop", "raise", "--reason", "  ", env=migrated_env)
    assert blank.returncode == 2
    assert blank.stderr.strip().count("\n") == 0
    assert "reason must not be empty" in blank.stderr


def test_unmigrated_database_is_one_line_exit_2(env: dict[str, str]) -> None:
    result = nettrace("hardstop", "status", env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "nettrace db upgrade" in result.stderr


def test_a_raise_can_ask_to_flatten_every_position(migrated_env: dict[str, str]) -> None:
    env = migrated_env
    status = nettrace("hardstop", "raise", "--reason", "incident", env=env)
    assert status.returncode == 0, status.stderr
    assert "keep their protective stops" in nettrace("hardstop", "status", env=env).stdout
    flatten = nettrace("hardstop", "raise", "--reason", "sell it all", "--flatten", env=env)
    assert flatten.returncode == 0, flatten.stderr
    assert "flattened at market" in flatten.stdout
    assert "flattened at market" in nettrace("hardstop", "status", env=env).stdout
    assert "--flatten" in nettrace("hardstop", "raise", "--help", env=env).stdout
