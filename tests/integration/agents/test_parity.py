"""A paper replay makes exactly the backtest's trades (DESIGN §3: "a backtest and a paper replay
of the same data produce the same trades"), on real candles, through the whole engine: the
sniper, GoalValidator approvals stored in the database, post-only orders with their brackets on
the paper exchange, fills and the portfolio."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from nettrace.agents.quant_engine import EngineConfig, QuantEngine
from nettrace.agents.sniper import SniperAgent
from nettrace.backtest.audit import audit_backtest
from nettrace.backtest.engine import BacktestConfig, run_backtest
from nettrace.backtest.results import fingerprint
from nettrace.config.settings import Settings
from nettrace.execution.paper import PaperExchange
from nettrace.market.candles import CandleKey, Candles
from nettrace.store.database import Database
from nettrace.store.migrate import upgrade
from nettrace.strategies.sniper import Sniper
from tests.integration.agents.conftest import assert_ledger_clean, bars_of


@pytest.mark.parametrize("name", ["binance_DASH-BTC_5m.parquet", "binance_NEO-BTC_4h.parquet"])
def test_paper_replay_fingerprint_equals_the_backtests(
    shared_data: Path, tmp_path: Path, name: str
) -> None:
    candles = Candles.from_frame(pd.read_parquet(shared_data / name), CandleKey.from_filename(name))
    settings = Settings(region="ewr", primary_region="ewr")
    fees = settings.fees(candles.key.exchange)
    backtest = run_backtest(Sniper(), candles, BacktestConfig(fill="maker", fees=fees))

    url = f"sqlite:///{tmp_path / 'n.db'}"
    upgrade(url)
    quote = candles.key.pair.split("/")[1]
    exchange = PaperExchange(fees=fees, initial_balances={quote: 10_000.0},
                             state_path=tmp_path / "paper.json")  # fmt: skip
    agent = SniperAgent(Sniper())
    agent.load(candles)
    engine = QuantEngine(
        settings=settings, database=Database(url), exchange=exchange, sniper=agent,
        config=EngineConfig(symbols=(candles.key.pair,), exchange=candles.key.exchange,
                            quote_currency=quote),
    )  # fmt: skip
    for bar in bars_of(candles):
        exchange.on_bar(bar)
        engine.on_bar(bar)

    assert len(backtest.trades) >= 5
    assert [t[:3] for t in engine.trades] == [t[:3] for t in backtest.trades]
    assert fingerprint(engine.trades) == backtest.fingerprint
    reasons = Counter(t.exit_reason for t in engine.trades)
    assert reasons["stop_loss"] > 0
    assert reasons["take_profit"] > 0
    # Both sides of the parity keep every rule: the backtest's own audit, and the ledger's.
    assert audit_backtest(backtest).clean, audit_backtest(backtest).breaches
    assert_ledger_clean(engine.database)
