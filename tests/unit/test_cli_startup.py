"""The CLI starts without the heavy libraries: they load only for the commands that use them.

A behaviour test, not a timing test: it checks *which* modules a fresh interpreter holds after
`nettrace --help`, `--version`, `rules` and `hardstop status` (benchmarks/cli_startup.py times
them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nettrace.cli.main import CONFIG_ENV_VAR, LAZY_COMMANDS, load_command

HEAVY = ("pandas", "numpy", "ccxt", "flask", "werkzeug", "numba", "sklearn", "plotly",
         "pyarrow", "talib", "alembic", "scipy", "vectorbt")  # fmt: skip

_PROBE = """
import contextlib, io, json, sys
from nettrace.cli.main import main
seen = {}
for args in (["--help"], ["--version"], ["rules"], ["hardstop", "status"]):
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(args)
    seen[" ".join(args)] = sorted(name for name in sys.modules if "." not in name)
print(json.dumps(seen))
"""


def test_quick_commands_do_not_import_the_heavy_libraries(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETTRACE_")}
    env.pop("DATABASE_URL", None)
    env["NETTRACE_DATA_DIR"] = str(tmp_path)  # no database: `hardstop status` stops at that
    probe = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, check=True
    )
    seen: dict[str, list[str]] = json.loads(probe.stdout)
    for command, modules in seen.items():
        assert not set(HEAVY) & set(modules), (
            f"nettrace {command} imported {set(HEAVY) & set(modules)}"
        )
    for command in ("--help", "--version"):
        light = {"sqlalchemy", "pydantic", "pydantic_settings", "structlog"} & set(seen[command])
        assert not light, f"nettrace {command} imported {light}"
    assert "sqlalchemy" not in seen["rules"]


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_the_help_listing_matches_each_commands_own_help(name: str) -> None:
    command = load_command(name)
    first_paragraph = " ".join((command.help or "").strip().split("\n\n")[0].split())
    assert LAZY_COMMANDS[name][2] == first_paragraph


def test_the_config_variable_is_the_settings_one() -> None:
    from nettrace.config.settings import CONFIG_ENV_VAR as SETTINGS_CONFIG_ENV_VAR

    assert CONFIG_ENV_VAR == SETTINGS_CONFIG_ENV_VAR
