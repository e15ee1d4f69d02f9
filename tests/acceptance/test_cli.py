"""The CLI as a user runs it: a real ``nettrace`` process, its output and its exit code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nettrace.store.migrate import head_revision

SECRETS = ("cli-secret-9f8e7d", "cli-token-6c5b4a", "cli-dbpass-3e2d1c")


def nettrace(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_seed_check_prints_true() -> None:
    code = (
        "from nettrace.agents.agent_goals import GoalValidator; "
        "print(GoalValidator.should_trade(0.8, 3, 'BUY', 'neutral'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout == "True\n"


def test_version(env: dict[str, str]) -> None:
    from nettrace import __version__

    result = nettrace("version", env=env)
    assert result.returncode == 0
    assert result.stdout.strip() == f"nettrace {__version__}"


def test_db_upgrade_creates_the_default_sqlite_database(
    env: dict[str, str], tmp_path: Path
) -> None:
    head = head_revision()  # the newest migration the package ships
    first = nettrace("db", "upgrade", env=env)
    assert first.returncode == 0, first.stderr
    assert f"from empty to {head}" in first.stdout
    assert (tmp_path / "home" / "nettrace.db").is_file()
    again = nettrace("db", "upgrade", env=env)
    assert f"already at revision {head}" in again.stdout
    current = nettrace("db", "current", env=env)
    assert "up to date" in current.stdout
    down = nettrace("db", "downgrade", "base", env=env)
    assert down.returncode == 0
    assert "base (empty)" in down.stdout
    assert "behind" in nettrace("db", "current", env=env).stdout


def test_rules_table_and_json_show_the_thresholds_in_force(env: dict[str, str]) -> None:
    table = nettrace("rules", env=env)
    assert table.returncode == 0
    for text in ("Never lose money", "Always make money", "Grow money faster", "0.70", "0.90%"):
        assert text in table.stdout
    env["NETTRACE_MIN_CONFIDENCE"] = "0.8"
    data = json.loads(nettrace("rules", "--json", env=env).stdout)
    assert data["thresholds"]["law"]["min_confidence"] == 0.70
    assert data["thresholds"]["in_force"]["min_confidence"] == 0.8
    assert data["thresholds"]["in_force"]["min_signal_count"] == 2
    assert data["required_entry_move"] == pytest.approx(0.009)
    assert data["hardstop_daily_loss"] == 0.05
    assert [rule["number"] for rule in data["rules"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("args", "extra_env", "expected"),
    [
        (["bogus"], {}, "No such command 'bogus'"),
        (["rules", "--jsn"], {}, "No such option: --jsn"),
        (["db", "downgrade"], {}, "Missing argument 'revision'"),
        (["rules"], {"NETTRACE_MAKER_FEE": "abc"}, "invalid setting NETTRACE_MAKER_FEE = 'abc'"),
        (["rules"], {"FLY_REGION": "Frankfurt"}, "invalid setting FLY_REGION = 'Frankfurt'"),
        (["--config", "/nonexistent.toml", "rules"], {}, "does not exist"),
        (
            ["db", "upgrade"],
            {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"},
            "cannot reach database postgresql://nobody@127.0.0.1:1/none",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_code_2(
    env: dict[str, str], args: list[str], extra_env: dict[str, str], expected: str
) -> None:
    env.update(extra_env)
    result = nettrace(*args, env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nettrace: error: ")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_every_command_has_help(env: dict[str, str]) -> None:
    for args in (
        ["--help"],
        ["db", "--help"],
        ["db", "upgrade", "--help"],
        ["rules", "--help"],
        ["config", "show", "--help"],
        ["version", "--help"],
    ):
        result = nettrace(*args, env=env)
        assert result.returncode == 0, args
        assert "Usage" in result.stdout


def test_no_secret_reaches_cli_output_even_at_debug(env: dict[str, str]) -> None:
    env.update(
        NETTRACE_EXCHANGE_API_SECRET=SECRETS[0],
        NETTRACE_OPERATOR_TOKEN=SECRETS[1],
        DATABASE_URL=f"postgresql://nettrace:{SECRETS[2]}@127.0.0.1:1/none",
        NETTRACE_LOG_LEVEL="DEBUG",
    )
    outputs = []
    # The last one fails to connect: the error line must not carry the password either.
    for args in (["config", "show"], ["rules", "--json"], ["db", "current"]):
        result = nettrace(*args, env=env)
        outputs.append(result.stdout + result.stderr)
    combined = "\n".join(outputs)
    assert "exchange_api_secret" in combined  # the setting is listed...
    assert "postgresql://nettrace:***@127.0.0.1:1/none" in combined
    for secret in SECRETS:
        assert secret not in combined  # ...but never its value
