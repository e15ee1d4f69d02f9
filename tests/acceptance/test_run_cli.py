"""``nettrace run`` as a user runs it: paper replay, parity with the backtest, refusals, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from nettrace.agents.quant_engine import EngineConfig, QuantEngine
from nettrace.agents.sniper import SniperAgent
from nettrace.config.settings import Settings
from nettrace.execution.exchange import ExchangeStatus
from nettrace.execution.paper import PaperExchange
from nettrace.store.database import Database
from nettrace.store.models import OrderRow

FILE = "bitstamp_BTC-USD_1d.parquet"  # 1,220 real daily bars; the sniper trades 9 times on it
#: 12,996 real 5-minute bars, 13 round trips: long enough that every kill lands mid-replay.
KILL_FILE = "binance_DASH-BTC_5m.parquet"
KILL_PAIR, KILL_VENUE, KILL_BASE, KILL_QUOTE = "DASH/BTC", "binance", "DASH", "BTC"
CLI = [sys.executable, "-m", "nettrace"]


def _nettrace(
    env: dict[str, str], *args: str, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture
def home(env: dict[str, str]) -> dict[str, str]:
    done = _nettrace(env, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    return env


def test_paper_replay_makes_the_backtests_trades(
    home: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    data = str(shared_data / FILE)
    backtest = _nettrace(home, "backtest", "--strategy", "sniper", "--fill", "maker", "--data",
                         data, "--export", str(tmp_path / "bt.json"))  # fmt: skip
    assert backtest.returncode == 0, backtest.stderr
    run = _nettrace(home, "run", "--paper", "--replay", data, "--speed", "max",
                    "--export", str(tmp_path / "run.json"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    bt = json.loads((tmp_path / "bt.json").read_text())
    paper = json.loads((tmp_path / "run.json").read_text())
    assert len(paper["trades"]) == len(bt["trades"]) >= 5
    assert paper["fingerprint"] == bt["fingerprint"]
    # What a user watching sees: orders, fills, round trips and the fingerprint.
    assert " order " in run.stdout
    assert " fill " in run.stdout
    assert f"trade fingerprint: {bt['fingerprint']}" in run.stdout

    # The same account, continued: it resumes after the file's last bar, and its summary is
    # this run's alone (it used to repeat the first run's round trips as its own).
    again = _nettrace(home, "run", "--replay", data, "--quiet", "--export",
                      str(tmp_path / "again.json"))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "resuming paper account" in again.stdout
    continued = json.loads((tmp_path / "again.json").read_text())
    assert continued["trades"] == []
    assert continued["net_profit"] == 0
    assert continued["bars"] == 1  # only the last bar, ticked again (idempotent)
    assert f"last bar matched {continued['last_bar']}" in again.stdout
    assert continued["equity"] == pytest.approx(paper["equity"])
    assert continued["account"]["fingerprint"] == bt["fingerprint"]
    _audit_clean(home)
    assert "clean" in backtest.stdout  # the backtest audited its own result too


@pytest.mark.parametrize(
    ("args", "extra_env", "message"),
    [
        (["--live"], {}, "--live needs --exchange"),
        (["--live", "--exchange", "kraken"], {}, "NETTRACE_KRAKEN_API_KEY"),
        (["--live", "--exchange", "kraken"],
         {"NETTRACE_KRAKEN_API_KEY": "key-value-1", "NETTRACE_KRAKEN_SECRET": "s3cr3t-value"},
         "--i-accept-live-risk"),
        (["--replay", "no-such-file.parquet"], {}, "does not exist"),
        (["--replay", "{data}", "--speed", "fast"], {}, "--speed must be"),
        (["--replay", "{data}", "--max-volume-share", "2"], {}, "--max-volume-share"),
        (["--replay", "{data}"], {"FLY_REGION": "lhr"}, "not the primary region"),
        ([], {}, "--replay FILE"),
    ],
)  # fmt: skip
def test_refusals_are_one_line_and_exit_2(
    home: dict[str, str],
    shared_data: Path,
    args: list[str],
    extra_env: dict[str, str],
    message: str,
) -> None:
    argv = [a.replace("{data}", str(shared_data / FILE)) for a in args]
    done = _nettrace({**home, **extra_env}, "run", *argv)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert "Traceback" not in done.stderr
    assert "s3cr3t-value" not in done.stdout + done.stderr  # secrets never printed


# --- Killed at random points, 20 times ---------------------------------------------------------


def _books_agree(home: dict[str, str], state: Path) -> tuple[int, int]:
    """Restart the engine in process on the killed run's files (what the next run does first)
    and check the books: returns (orders on the exchange, fills)."""
    data_dir = Path(home["NETTRACE_DATA_DIR"])
    settings = Settings(region="ewr", primary_region="ewr", data_dir=data_dir)
    database = Database(settings.resolved_database_url())
    try:
        exchange = PaperExchange(fees=settings.fees(KILL_VENUE), state_path=state)
        engine = QuantEngine(
            settings=settings, database=database, exchange=exchange, sniper=SniperAgent(),
            config=EngineConfig(symbols=(KILL_PAIR,), exchange=KILL_VENUE,
                                quote_currency=KILL_QUOTE),
        )  # fmt: skip
        report = engine.start(exchange.last_bar_ms(KILL_PAIR))
        raw = json.loads(state.read_text())
        on_exchange = {o["client_order_id"]: o for o in raw["orders"]}
        with database.session() as session:
            ours = {o.client_order_id: o for o in session.scalars(select(OrderRow))}
        # No orphan: every order the exchange has, we stored first (and none was cancelled
        # as an orphan: the store-before-send order makes them impossible).
        assert set(on_exchange) <= set(ours)
        assert report.orphans_cancelled == []
        # No duplicate: one exchange order per client id, one client id per decision attempt.
        keys = [(o.decision_id, o.client_order_id) for o in ours.values()]
        assert len({k[1] for k in keys}) == len(keys)
        # Nothing left unsettled, and what is live here is live there, and only that.
        for cid, order in ours.items():
            assert order.state not in ("pending_submit", "unknown"), (cid, order.state)
            live_here = order.state in ("open", "partially_filled")
            live_there = on_exchange.get(cid, {}).get("status") == ExchangeStatus.OPEN.value
            assert live_here == live_there, (cid, order.state, on_exchange.get(cid))
        # Positions equal the exchange's balances; our fills are the exchange's trades.
        balances = exchange.fetch_balance()
        position = engine.portfolio.position(KILL_PAIR)
        held = position.amount if position is not None else 0.0
        assert held == pytest.approx(balances.get(KILL_BASE, 0.0), rel=1e-9, abs=1e-12)
        assert engine.portfolio.cash == pytest.approx(balances[KILL_QUOTE], rel=1e-9)
        assert {t.id for t in exchange.fetch_my_trades()} == engine.fills.trade_ids()
        return len(on_exchange), len(engine.fills.trade_ids())
    finally:
        database.dispose()


def test_killed_twenty_times_the_books_always_agree_and_the_trades_are_the_same(
    home: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    data = str(shared_data / KILL_FILE)
    assert _nettrace({**home, "NETTRACE_DATA_DIR": str(tmp_path / "clean")}, "db",
                     "upgrade").returncode == 0  # fmt: skip
    elsewhere = {**home, "NETTRACE_DATA_DIR": str(tmp_path / "clean")}
    reference = _nettrace(elsewhere, "run", "--replay", data, "--quiet",
                          "--export", str(tmp_path / "ref.json"))  # fmt: skip
    assert reference.returncode == 0, reference.stderr

    state = tmp_path / "account.json"
    args = [*CLI, "run", "--replay", data, "--quiet", "--account", str(state)]
    rng = random.Random(20261125)
    kinds = []
    for i in range(20):
        if i < 10:  # killed right after the exchange accepted an order, before the ack
            env = {**home, "NETTRACE_PAPER_KILL_AFTER_ORDERS": str(rng.randint(1, 12))}
            done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300,
                                  check=False)  # fmt: skip
            assert done.returncode in (-signal.SIGKILL, 0), done.stderr
            kinds.append("after-submit" if done.returncode else "finished")
        else:  # killed from outside at a random moment
            process = subprocess.Popen(args, env=home, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.PIPE, text=True)  # fmt: skip
            time.sleep(rng.uniform(3.0, 6.0))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=60)
            kinds.append("random")
        assert state.exists()
        _books_agree(home, state)
        _audit_clean(home)  # every money invariant holds after every crash and restart
    assert kinds.count("after-submit") == 10  # each of them died mid-replay

    final = subprocess.run([*args, "--export", str(tmp_path / "final.json")], env=home,
                           capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert final.returncode == 0, final.stderr
    orders, fills = _books_agree(home, state)
    assert orders > 20
    assert fills >= 10
    ref = json.loads((tmp_path / "ref.json").read_text())
    got = json.loads((tmp_path / "final.json").read_text())
    # The account's trades over all twenty-one runs (each run's summary holds only its own).
    assert got["account"]["fingerprint"] == ref["fingerprint"] == ref["account"]["fingerprint"]
    assert os.path.getsize(state) > 0
    _audit_clean(home)
    _audit_clean(elsewhere)


def _audit_clean(env: dict[str, str]) -> None:
    """``nettrace audit`` over the stored ledger: exit 0 and no breach (issue 10)."""
    done = _nettrace(env, "audit", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["breaches"] == []


def test_an_unreachable_or_unmigrated_database_is_refused_before_any_account_is_written(
    env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    data = str(shared_data / FILE)
    account = Path(env["NETTRACE_DATA_DIR"]) / "paper" / "bitstamp_BTC-USD.json"
    unreachable = {**env, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nettrace"}
    unmigrated = {**env, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}"}
    for environment, needle in ((unreachable, "cannot use"), (unmigrated, "nettrace db upgrade")):
        done = _nettrace(environment, "run", "--replay", data, "--quiet")
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert needle in done.stderr
        assert not account.exists()  # it used to be written before the database failed


def test_the_default_database_is_migrated_and_said_so(
    env: dict[str, str], shared_data: Path
) -> None:
    done = _nettrace(env, "run", "--replay", str(shared_data / FILE), "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("migrated sqlite:///")
    assert "to the current schema" in done.stdout.splitlines()[0]


def test_ctrl_c_ends_a_paced_replay_with_its_summary(
    home: dict[str, str], shared_data: Path
) -> None:
    # Ten replayed days per wall second: a 1,220-bar replay would take two minutes.
    process = subprocess.Popen(
        [*CLI, "run", "--replay", str(shared_data / FILE), "--speed", "864000", "--quiet"],
        env=home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(6.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "stopped (Ctrl-C)" in out
    assert "trade fingerprint:" in out
    bars = int(next(line for line in out.splitlines() if "│ bars" in line).split("│")[2])
    assert 0 < bars < 1220


def test_a_replay_file_of_any_name_takes_exchange_and_symbol(
    home: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    import pandas as pd

    csv = tmp_path / "btc daily.csv"  # issue 11: refused for not being named ..._1d.parquet
    pd.read_parquet(shared_data / FILE).head(300).to_csv(csv, index=False)
    refused = _nettrace(home, "run", "--replay", str(csv))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert str(csv) in line
    assert line.endswith("or pass --exchange and --symbol")
    export = tmp_path / "run.json"
    done = _nettrace(home, "run", "--replay", str(csv), "--exchange", "bitstamp", "--symbol",
                     "BTC/USD", "--quiet", "--export", str(export))  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(export.read_text())
    # the timeframe comes from the bars, not the live feed's 5m default
    assert (summary["exchange"], summary["pair"], summary["timeframe"]) == (
        "bitstamp", "BTC/USD", "1d",
    )  # fmt: skip
    assert summary["bars"] == 300
