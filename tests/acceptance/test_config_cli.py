"""Bad configuration as a user meets it: one line on stderr, exit 2, no secret, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TOKEN = "op-token-accept-4f4f"


def nettrace(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


def test_version_flag_and_subcommand_agree(env: dict[str, str]) -> None:
    from nettrace import __version__

    flag = nettrace("--version", env=env)
    assert flag.returncode == 0, flag.stderr
    assert flag.stdout == f"nettrace {__version__}\n"
    assert nettrace("version", env=env).stdout == flag.stdout


def test_a_secret_in_an_invalid_setting_is_not_echoed(env: dict[str, str]) -> None:
    env = {**env, "NETTRACE_OPERATOR_TOKEN": TOKEN, "NETTRACE_API_RATE_LIMIT": TOKEN}
    stderr = _one_line_error(nettrace("rules", env=env))
    assert "NETTRACE_API_RATE_LIMIT" in stderr
    assert TOKEN not in stderr


@pytest.mark.parametrize(
    "url", ["mysql://app:pw-9e9e@127.0.0.1/app", "notadb://"], ids=["mysql", "notadb"]
)
def test_an_unsupported_database_url_is_one_line(env: dict[str, str], url: str) -> None:
    stderr = _one_line_error(nettrace("hardstop", "status", env={**env, "DATABASE_URL": url}))
    assert url.split(":")[0] in stderr
    assert "sqlite, postgresql" in stderr
    assert "pw-9e9e" not in stderr


def test_a_misspelled_variable_is_refused(env: dict[str, str]) -> None:
    stderr = _one_line_error(nettrace("rules", env={**env, "NETTRACE_MIN_CONFIDANCE": "0.9"}))
    assert "NETTRACE_MIN_CONFIDANCE" in stderr
    assert "did you mean NETTRACE_MIN_CONFIDENCE?" in stderr


def test_piped_output_at_80_columns_shows_every_value_whole(
    env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = tmp_path / ("a-rather-long-folder-name-" * 3) / "home"
    result = nettrace(
        "config", "show", env={**env, "COLUMNS": "80", "NETTRACE_DATA_DIR": str(data_dir)}
    )
    assert result.returncode == 0, result.stderr
    assert f"sqlite:///{data_dir / 'nettrace.db'}" in result.stdout
    assert "…" not in result.stdout
