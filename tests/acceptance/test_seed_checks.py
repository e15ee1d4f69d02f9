"""The seed's quick checks, run exactly as the seed writes them, from the repository root.

``python3 -c`` puts the working directory first on ``sys.path``, so ``agents`` is the checkout's
``agents/`` folder (aliases of ``nettrace`` modules); it must never be an installed package
(another distribution owns that name), which the packaging checks below pin down.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]

SEED_GOALS = (
    "from agents.agent_goals import GoalValidator; "
    "print(GoalValidator.should_trade(0.8, 3, 'BUY', 'neutral'))"
)
SEED_RUNNER = (
    "from agents.fly_agent_runner import FlyAgentRunner; r = FlyAgentRunner(); "
    "print(r.region, r.get_agents_for_region())"
)


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in env.items() if k not in {"PYTHONPATH", "PYTHONSAFEPATH"}}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def test_the_goal_validator_seed_check_from_the_root(env: dict[str, str]) -> None:
    done = _python(SEED_GOALS, env, ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (0, "True\n", "")


def test_the_runner_seed_check_from_the_root(env: dict[str, str]) -> None:
    done = _python(SEED_RUNNER, {**env, "FLY_REGION": "ewr"}, ROOT)
    assert done.returncode == 0, done.stderr
    agents = "['api', 'sniper', 'meta_engine', 'advanced_team', 'capital_allocator']"
    assert done.stdout == f"ewr {agents}\n"


def test_the_root_modules_are_the_package_modules(env: dict[str, str]) -> None:
    code = (
        "import agents.agent_goals as a, agents.fly_agent_runner as f, agents.sniper as s, "
        "agents.risk_controller as r, agents.quant_engine_v2 as q\n"
        "import nettrace.agents.agent_goals as A, nettrace.agents.fly_agent_runner as F, "
        "nettrace.agents.sniper as S, nettrace.agents.risk_controller as R, "
        "nettrace.agents.quant_engine as Q\n"
        "print(a is A, f is F, s is S, r is R, q is Q, a.GoalValidator is A.GoalValidator)"
    )
    done = _python(code, env, ROOT)
    assert (done.returncode, done.stdout) == (0, "True True True True True True\n"), done.stderr


def test_agents_is_not_installed(env: dict[str, str], tmp_path: Path) -> None:
    # Outside the checkout the folder is not on sys.path: nothing installed puts it there.
    code = (
        "import importlib.util; s = importlib.util.find_spec('agents'); "
        "print('absent' if s is None else s.origin)"
    )
    done = _python(code, env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "absent\n" or not done.stdout.startswith(str(ROOT)), done.stdout


def test_packaging_ships_nettrace_only() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    find = config["tool"]["setuptools"]["packages"]["find"]
    assert find == {"include": ["nettrace*"]}
    shipped = find_packages(where=str(ROOT), include=find["include"])
    assert "nettrace" in shipped
    assert all(name == "nettrace" or name.startswith("nettrace.") for name in shipped)
    dist = importlib.metadata.distribution("nettrace-quant")
    top_level = dist.read_text("top_level.txt")
    if top_level is not None:
        assert top_level.split() == ["nettrace"]
    assert not any(str(f).startswith("agents/") for f in dist.files or [])
