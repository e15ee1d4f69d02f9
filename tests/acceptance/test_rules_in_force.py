"""Settings reach every path (issue 10): the backtest, the paper replay and ``nettrace rules``
take their thresholds and risk limits from the one ``RulesInForce`` the settings build."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nettrace.config.rules import RulesInForce
from nettrace.config.settings import load_settings

CLI = [sys.executable, "-m", "nettrace"]
HOURLY = "coinbase_BTC-USD_1h.parquet"  # the sniper trades on it with the default rules
DAILY = "bitstamp_BTC-USD_1d.parquet"


def _nettrace(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)], env=env, capture_output=True, text=True, timeout=300,
        check=False,
    )  # fmt: skip


def _backtest(env: dict[str, str], data: Path, out: Path, **settings: str) -> dict[str, object]:
    done = _nettrace({**env, **settings}, "backtest", "--strategy", "sniper", "--data", data,
                     "--export", out)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    document: dict[str, object] = json.loads(out.read_text())
    return document


def test_min_confidence_and_max_position_fraction_change_the_backtest(
    env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    """Before issue 10 both settings left the trades and their sizes exactly as they were."""
    data = shared_data / HOURLY
    default = _backtest(env, data, tmp_path / "default.json")
    strict = _backtest(env, data, tmp_path / "strict.json", NETTRACE_MIN_CONFIDENCE="0.99")
    small = _backtest(env, data, tmp_path / "small.json", NETTRACE_MAX_POSITION_FRACTION="0.01")
    trades, strict_trades, small_trades = (d["trades"] for d in (default, strict, small))
    assert isinstance(trades, list)
    assert trades, "the default sniper trades on hourly BTC/USD"
    assert isinstance(strict_trades, list)
    assert len(strict_trades) < len(trades)
    assert isinstance(small_trades, list)
    assert small_trades
    notional = [t["entry_price"] * t["amount"] for t in small_trades]
    # 1% of an equity that never reaches 10,100 here: every entry is at most ~101 quote.
    assert max(notional) <= 0.01 * 10_100
    assert max(notional) < min(t["entry_price"] * t["amount"] for t in trades)


def test_min_confidence_changes_the_paper_replay(
    env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    assert _nettrace(env, "db", "upgrade").returncode == 0
    data = shared_data / DAILY
    runs = {}
    for name, extra in (("default", {}), ("strict", {"NETTRACE_MIN_CONFIDENCE": "0.99"})):
        home = {**env, **extra, "NETTRACE_DATA_DIR": str(tmp_path / name)}
        assert _nettrace(home, "db", "upgrade").returncode == 0
        done = _nettrace(home, "run", "--replay", data, "--quiet", "--export",
                         tmp_path / f"{name}.json")  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())["trades"]
    assert len(runs["default"]) >= 5
    assert len(runs["strict"]) < len(runs["default"])


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("NETTRACE_MIN_CONFIDENCE", "0.5"),
        ("NETTRACE_MIN_SIGNAL_COUNT", "1"),
        ("NETTRACE_ENTRY_MARGIN", "0"),
        ("NETTRACE_HARDSTOP_ACTION", "ignore"),
    ],
)
def test_a_loosening_setting_exits_2_naming_it(
    env: dict[str, str], shared_data: Path, name: str, value: str
) -> None:
    for args in (["rules"], ["backtest", "--strategy", "sniper", "--data", shared_data / DAILY]):
        done = _nettrace({**env, name: value}, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, done.stderr
        assert name in lines[0]
        assert "Traceback" not in done.stderr


def test_rules_prints_exactly_what_the_engine_uses(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tight = {
        "NETTRACE_MIN_CONFIDENCE": "0.8",
        "NETTRACE_MAX_EXIT_REPRICES": "7",
        "NETTRACE_HARDSTOP_ACTION": "flatten",
        "NETTRACE_TAKE_PROFIT_ATR_MULTIPLE": "2.5",
    }
    done = _nettrace({**env, **tight}, "rules", "--json")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    for name, value in tight.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    # The one construction every path uses (QuantEngine, cli.backtest, cli.run).
    assert printed == json.loads(json.dumps(RulesInForce.from_settings(settings).to_json(
        settings.fees())))  # fmt: skip
    assert printed["thresholds"]["in_force"]["min_confidence"] == 0.8
    assert printed["risk_limits"]["max_exit_reprices"] == 7
    assert printed["hardstop_action"] == "flatten"
