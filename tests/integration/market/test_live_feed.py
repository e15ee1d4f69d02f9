"""The live candle feed against a Binance-speaking server on 127.0.0.1, through real ccxt, and
the paper engine ticking on it (``nettrace run --exchange ... --symbol ...``)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from nettrace.agents.quant_engine import EngineConfig, QuantEngine
from nettrace.agents.sniper import SniperAgent
from nettrace.cli.run import run_live
from nettrace.config.settings import Settings
from nettrace.execution.paper import PaperExchange
from nettrace.market.live import LiveCandles
from nettrace.store.database import Database
from nettrace.store.migrate import upgrade
from tests.integration.market.test_download import (  # the loopback venue and its client
    KEY,
    N_BARS,
    NOW,
    STEP,
    T0,
    FakeBinance,
    client,
    venue,
)

__all__ = ["venue"]  # the fixture, used by name


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000


def test_warm_up_returns_closed_bars_only_and_poll_returns_each_new_bar_once(
    venue: tuple[FakeBinance, str],
) -> None:
    fake, base = venue
    clock = Clock(NOW)
    feed = LiveCandles(client(base), KEY, clock=clock)
    candles = feed.warm_up(100)
    assert len(candles) == 100
    assert int(candles.timestamp[-1]) == T0 + (N_BARS - 1) * STEP  # the forming bar is not in
    assert int(candles.timestamp[0]) == T0 + (N_BARS - 100) * STEP
    assert feed.poll() == []  # nothing closed since
    clock.ms = NOW + STEP  # the forming bar has now closed
    (row,) = feed.poll()
    assert int(row[0]) == T0 + N_BARS * STEP
    assert row[4] == float(fake.bars[N_BARS][4])
    assert feed.poll() == []
    assert len(feed.candles) == 101


def test_the_paper_engine_ticks_on_the_live_feed(
    venue: tuple[FakeBinance, str], tmp_path: Path
) -> None:
    _, base = venue
    url = f"sqlite:///{tmp_path / 'n.db'}"
    upgrade(url)
    database = Database(url)
    clock = Clock(NOW)
    feed = LiveCandles(client(base), KEY, clock=clock)
    agent = SniperAgent()
    agent.load(feed.warm_up(200))
    settings = Settings(region="ewr", primary_region="ewr")
    exchange = PaperExchange(initial_balances={"USDT": 10_000.0}, state_path=tmp_path / "p.json")
    engine = QuantEngine(
        settings=settings, database=database, exchange=exchange, sniper=agent,
        config=EngineConfig(symbols=("BTC/USDT",), exchange="binance", quote_currency="USDT"),
    )  # fmt: skip
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:  # the bar closes while we wait
        sleeps.append(seconds)
        clock.ms += STEP

    out = Console(file=io.StringIO(), width=200)
    summary = run_live(engine, exchange, feed, 3.0, 1, False, out, sleep=sleep)
    assert summary["bars"] == 1
    assert sleeps == [3.0]  # polled once with nothing new, slept, then the bar closed
    assert exchange.last_bar_ms("BTC/USDT") == T0 + N_BARS * STEP
    assert summary["equity"] == 10_000.0  # flat: nothing could have filled yet
    snapshots = engine.snapshots.latest("ewr")
    assert [s.total_equity for s in snapshots] == [10_000.0]  # the tick stored its snapshot
