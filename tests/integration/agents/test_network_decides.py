"""The network decides (issue 11): scouts push over HTTP to a primary on 127.0.0.1, and its
trading loop hears them in the bar's decision.

The primary here is the real API (``create_app`` under werkzeug on loopback) over the test's
database, and the real engine whose sniper reads that database through ``StoredScouts``; the
two scouts are two regions' bearer tokens pushing wire-form signals, as an outbox does. The
candle side is a ``Voting`` strategy whose generators' votes the test scripts, so each test
knows what the candles alone decide at the bar.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from nettrace.agents.quant_engine import EngineConfig, QuantEngine
from nettrace.agents.scout_source import ScoutClock, StoredScouts
from nettrace.agents.sniper import SniperAgent
from nettrace.agents.trading_loop import PaperSession, replay_bars
from nettrace.app import create_app
from nettrace.backtest.results import fingerprint
from nettrace.config.settings import Settings
from nettrace.execution.paper import Bar, PaperExchange
from nettrace.market.candles import Candles, FloatArray
from nettrace.signals.aggregate import aggregate
from nettrace.signals.base import GeneratorOutput
from nettrace.store.database import Database
from nettrace.store.models import DecisionRow, OrderRow
from nettrace.store.tokens import TokenStore
from nettrace.strategies.base import Strategy, StrategySignals
from tests.integration.agents.conftest import (
    assert_ledger_clean,
    bars_of,
    candles_from,
    fresh_sqlite,
)

PUSH = "/api/v1/signals/push"
STALE_AFTER_S = 120.0


@dataclass
class Voting(Strategy):
    """Two candle generators whose signed votes (direction x strength) the test scripts per bar,
    aggregated exactly as the sniper aggregates its own (``signals.aggregate``)."""

    name: ClassVar[str] = "voting"
    gated: ClassVar[bool] = True
    votes: Mapping[str, Mapping[int, float]] = field(default_factory=dict)

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        columns: dict[str, FloatArray] = {}
        for name, by_bar in self.votes.items():
            column = np.zeros(len(candles))
            for row, vote in by_bar.items():
                column[row] = vote
            columns[f"vote_{name}"] = column
        return columns

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        outputs = [
            GeneratorOutput(key.removeprefix("vote_"), np.sign(vote).astype(np.int8), np.abs(vote))
            for key, vote in indicators.items()
        ]
        agg = aggregate(outputs)
        n = len(candles)
        return StrategySignals(
            entry=agg.side == 1,
            exit=agg.side == -1,
            confidence=agg.confidence,
            signal_count=agg.signal_count,
            regime=np.zeros(n, dtype=np.int8),
            expected_move=np.full(n, 0.05),
            atr=candles.close * 0.01,
        )


@dataclass
class Primary:
    """The primary's API on loopback, over ``db``."""

    base_url: str
    db: Database
    settings: Settings

    def token(self, region: str) -> str:
        return TokenStore(self.db).issue(region, label="test")[0]

    def push(self, token: str, *signals: dict[str, Any]) -> None:
        answer = requests.post(
            self.base_url + PUSH,
            json={"signals": list(signals)},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["accepted"] == len(signals)


@pytest.fixture
def primary(migrated_db: Database) -> Iterator[Primary]:
    settings = Settings(api_rate_limit="100000/second", api_stale_after_s=STALE_AFTER_S)
    server = make_server("127.0.0.1", 0, create_app(settings, migrated_db), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Primary(f"http://127.0.0.1:{server.server_port}", migrated_db, settings)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def scout_signal(
    region: str, source: str, side: str, confidence: float, **extra: Any
) -> dict[str, Any]:
    signal: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "source": source,
        "source_region": region,
        "exchange": "kraken",
        "symbol": "BTC/USD",
        "side": side,
        "confidence": confidence,
        "ts": datetime.now(UTC).isoformat(),
        "ttl_s": 600,
        "meta": {},
    }
    signal.update(extra)
    return signal


def engine_on(
    database: Database, strategy: Strategy, candles: Candles, tmp_path: Path, *, hear: bool
) -> tuple[QuantEngine, PaperExchange]:
    settings = Settings(api_stale_after_s=STALE_AFTER_S)
    exchange = PaperExchange(
        fees=settings.fees("paper"), initial_balances={"USD": 10_000.0},
        state_path=tmp_path / f"paper-{uuid.uuid4().hex}.json",
    )  # fmt: skip
    scouts = (
        StoredScouts(database, stale_after_s=STALE_AFTER_S, max_ttl_s=settings.api_max_ttl_s)
        if hear
        else None
    )
    sniper = SniperAgent(strategy, scouts=scouts)
    sniper.load(candles)
    engine = QuantEngine(
        settings=settings, database=database, exchange=exchange, sniper=sniper,
        config=EngineConfig(symbols=("BTC/USD",)), replay_clock=True,
    )  # fmt: skip
    return engine, exchange


def decide(engine: QuantEngine, exchange: PaperExchange, bars: list[Bar], now: datetime) -> None:
    """Tick the bars before ``BAR`` at a moment no scout had spoken yet, ``BAR`` at ``now``."""
    for i, bar in enumerate(bars):
        exchange.on_bar(bar)
        engine.on_bar(bar, now if i == BAR else BEFORE)


def entry_decision(database: Database) -> DecisionRow:
    """The one entry decision: bar ``BAR``'s (the bars before it had no wish)."""
    with database.session() as session:
        rows = session.scalars(select(DecisionRow).where(DecisionRow.side == "BUY")).all()
    assert len(rows) == 1
    return rows[0]


CANDLES = candles_from([100.0] * 12)
BAR = 10  # the bar the tests decide
BEFORE = datetime(2020, 1, 1, tzinfo=UTC)  # long before any push: the scouts are silent


def test_a_scouts_strong_buy_turns_a_lone_candle_vote_into_an_approved_entry(
    primary: Primary, tmp_path: Path
) -> None:
    # The candles alone: one generator says BUY at bar 10 -- one agreeing signal, refused.
    strategy = Voting(votes={"trend": {BAR: 0.9}, "momentum": {}})
    alone = fresh_sqlite()
    engine, exchange = engine_on(alone, strategy, CANDLES, tmp_path, hear=False)
    decide(engine, exchange, bars_of(CANDLES)[: BAR + 1], datetime.now(UTC))
    lone = entry_decision(alone)
    assert (lone.approved, lone.signal_count) == (False, 1)

    # lhr's order book says BUY strongly; nrt speaks of another symbol (not this bar's).
    primary.push(primary.token("lhr"), scout_signal("lhr", "orderbook_imbalance", "BUY", 0.95))
    primary.push(
        primary.token("nrt"),
        scout_signal("nrt", "orderbook_imbalance", "SELL", 1.0, symbol="BTC/JPY"),
    )
    engine, exchange = engine_on(primary.db, strategy, CANDLES, tmp_path, hear=True)
    heard_at = datetime.now(UTC)
    decide(engine, exchange, bars_of(CANDLES)[: BAR + 1], heard_at)
    row = entry_decision(primary.db)
    assert row.approved
    assert row.signal_count == 2
    assert row.confidence == pytest.approx((0.9 + 0.95) / 2)
    (heard,) = row.inputs["context"]["scouts"]
    assert (heard["region"], heard["source"], heard["side"]) == (
        "lhr",
        "orderbook_imbalance",
        "BUY",
    )
    assert 0.0 <= heard["age_s"] < 30.0
    with primary.db.session() as session:  # the entry went out, with that approval
        orders = session.scalars(select(OrderRow).where(OrderRow.decision_id == row.id)).all()
    assert [o.side for o in orders] == ["BUY"]
    assert_ledger_clean(primary.db)


def test_a_stale_regions_signals_do_not_count(primary: Primary, tmp_path: Path) -> None:
    strategy = Voting(votes={"trend": {BAR: 0.9}, "momentum": {}})
    # nrt's BUY is inside its ttl, but nrt has said nothing since: silent past the limit.
    old = (datetime.now(UTC) - timedelta(seconds=STALE_AFTER_S + 30)).isoformat()
    primary.push(
        primary.token("nrt"),
        scout_signal("nrt", "orderbook_imbalance", "BUY", 0.95, ts=old, ttl_s=3600),
    )
    engine, exchange = engine_on(primary.db, strategy, CANDLES, tmp_path, hear=True)
    decide(engine, exchange, bars_of(CANDLES)[: BAR + 1], datetime.now(UTC))
    row = entry_decision(primary.db)
    assert (row.approved, row.signal_count) == (False, 1)
    assert row.inputs["context"]["scouts"] == []


def test_a_risk_off_latency_vote_blocks_an_entry_the_candles_alone_would_take(
    primary: Primary, tmp_path: Path
) -> None:
    strategy = Voting(votes={"trend": {BAR: 0.8}, "momentum": {BAR: 0.8}})
    alone = fresh_sqlite()
    engine, exchange = engine_on(alone, strategy, CANDLES, tmp_path, hear=False)
    decide(engine, exchange, bars_of(CANDLES)[: BAR + 1], datetime.now(UTC))
    assert entry_decision(alone).approved  # 0.80 confidence, 2 agreeing: the candles enter

    # sin's venue answers far slower than usual: signal 7 votes HOLD (risk-off).
    primary.push(primary.token("sin"), scout_signal("sin", "latency_anomaly", "HOLD", 0.8))
    engine, exchange = engine_on(primary.db, strategy, CANDLES, tmp_path, hear=True)
    decide(engine, exchange, bars_of(CANDLES)[: BAR + 1], datetime.now(UTC))
    row = entry_decision(primary.db)
    assert not row.approved
    assert row.confidence == pytest.approx(0.8 * (1 - 0.8 / 2.8))  # the hold opposes the buy
    assert "confidence_below_threshold" in str(row.refusals)
    assert [s["side"] for s in row.inputs["context"]["scouts"]] == ["HOLD"]


def test_a_recorded_paced_run_replays_twice_to_the_same_trades(
    primary: Primary, tmp_path: Path
) -> None:
    """A paced run (bars 80 ms apart on the wall clock) while two scouts push over HTTP; the
    run's database is then replayed twice, flat out, on the same clock: same trades.

    The scouts speak just before each bar's moment and agree with the trend generator there
    (alone it is one agreeing signal: no trade); a push that a loaded machine delivers late is
    missed by the run and its replays alike, which is the point."""
    n = 60
    closes = [100.0 * (1.0 + 0.02 * np.sin(i / 3.0)) for i in range(n)]
    candles = gapped(candles_from(closes))
    lone = {i: 0.9 if np.cos(i / 3.0) > 0.3 else (-0.9 if np.cos(i / 3.0) < -0.3 else 0.0)
            for i in range(n)}  # fmt: skip
    strategy = Voting(votes={"trend": lone, "momentum": {}})  # alone: never 2 agreeing
    first = 20
    bars = bars_of(candles)[first:]
    step_s = 0.08
    speed = 300.0 / step_s  # five-minute bars, one every 80 ms
    clock = ScoutClock(time.time() + 1.0, bars[0].ts_ms + 300_000, speed)

    stop = threading.Event()

    def scouts() -> None:
        tokens = {"lhr": primary.token("lhr"), "nrt": primary.token("nrt")}
        for i, bar in enumerate(bars, start=first):
            if lone[i] == 0.0:
                continue
            side = "BUY" if lone[i] > 0 else "SELL"
            if stop.wait(max(0.0, clock.epoch_s(bar.ts_ms + 300_000) - 0.04 - time.time())):
                return
            for region, strength in (("lhr", 0.9), ("nrt", 0.8)):
                primary.push(
                    tokens[region],
                    scout_signal(region, "orderbook_imbalance", side, strength, ttl_s=1),
                )

    pusher = threading.Thread(target=scouts, daemon=True)
    pusher.start()
    try:
        live = run(primary.db, strategy, candles, bars, clock, pace=True, tmp_path=tmp_path)
    finally:
        stop.set()
        pusher.join(timeout=10)
    replays = [
        run(fresh_sqlite(), strategy, candles, bars, clock, pace=False, tmp_path=tmp_path,
            heard_from=primary.db)
        for _ in range(2)
    ]  # fmt: skip
    alone = run(fresh_sqlite(), strategy, candles, bars, None, pace=False, tmp_path=tmp_path)
    assert len(replays[0]) >= 1  # the scouts made trades happen ...
    assert alone == []  # ... that the candles alone never make
    assert fingerprint(replays[0]) == fingerprint(replays[1]) == fingerprint(live)


def gapped(candles: Candles) -> Candles:
    """Each bar opens 0.1% above the last close, so a maker's limit at the close rests in the
    book (a post-only order at the open's price would be cancelled as taking)."""
    open_ = candles.open * 1.001
    return Candles(
        key=candles.key, timestamp=candles.timestamp, open=open_,
        high=np.maximum(candles.high, open_ * 1.002), low=candles.low, close=candles.close,
        volume=candles.volume, synthetic=True,
    )  # fmt: skip


def run(
    database: Database,
    strategy: Strategy,
    candles: Candles,
    bars: list[Bar],
    clock: ScoutClock | None,
    *,
    pace: bool,
    tmp_path: Path,
    heard_from: Database | None = None,
) -> list[Any]:
    settings = Settings(api_stale_after_s=STALE_AFTER_S)
    exchange = PaperExchange(
        fees=settings.fees("paper"), initial_balances={"USD": 10_000.0},
        state_path=tmp_path / f"paper-{uuid.uuid4().hex}.json",
    )  # fmt: skip
    scouts = StoredScouts(
        heard_from or database, stale_after_s=STALE_AFTER_S, max_ttl_s=settings.api_max_ttl_s
    )
    sniper = SniperAgent(strategy, scouts=scouts if clock is not None else None)
    sniper.load(candles)
    engine = QuantEngine(
        settings=settings, database=database, exchange=exchange, sniper=sniper,
        config=EngineConfig(symbols=("BTC/USD",)), replay_clock=True,
    )  # fmt: skip
    session = PaperSession(engine, exchange, candles, tmp_path / "unused.json", False)
    replay_bars(session, bars, clock=clock, pace=pace, grace_s=0.03)
    assert_ledger_clean(database)
    return engine.trades


def test_a_trading_process_away_from_the_database_hears_the_scouts_through_the_api(
    primary: Primary,
) -> None:
    from nettrace.agents.scout_source import RemoteScouts

    primary.push(primary.token("lhr"), scout_signal("lhr", "orderbook_imbalance", "BUY", 0.7))
    heard = RemoteScouts(primary.base_url, primary.token("ewr"))("BTC/USD", datetime.now(UTC))
    assert [(s.source_region, s.side, s.confidence) for s in heard] == [("lhr", "BUY", 0.7)]
    # Fail closed: what the primary does not vouch for is not heard.
    assert RemoteScouts(primary.base_url, "not-a-token")("BTC/USD", datetime.now(UTC)) == []
    assert (
        RemoteScouts("http://127.0.0.1:9", "t", timeout_s=0.5)("BTC/USD", datetime.now(UTC)) == []
    )
