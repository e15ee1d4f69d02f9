"""The exchange monitor end to end: the real ccxt binance client against a fake venue on
127.0.0.1, signals into a real outbox, pushed to a fake primary on 127.0.0.1."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from nettrace.scouts.monitor import ExchangeMonitor, ExchangeMonitorAgent, MidBoard, MonitorParams
from nettrace.scouts.outbox import Outbox, OutboxPusher


@pytest.fixture
def outbox(tmp_path: Path, primary: Any) -> Outbox:
    session = requests.Session()
    session.trust_env = False
    return Outbox(
        tmp_path / "outbox-lhr.db", region="lhr", push_url=primary.url, token="t-lhr",
        session=session, backoff_base_s=0.02, backoff_max_s=0.1, rng=random.Random(1),
    )  # fmt: skip


def by_source(signals: list[Any]) -> dict[str, Any]:
    return {s.source: s for s in signals}


def test_a_bid_heavy_book_becomes_a_buy_signal_that_reaches_the_primary(
    venue: Any, exchange: Any, outbox: Outbox, primary: Any
) -> None:
    fake, _ = venue
    fake.bids = [["99.99", "9"], ["99.98", "3"], ["90", "100"]]  # 90 is far outside 10 bps
    fake.asks = [["100.01", "2"], ["100.02", "1"]]
    monitor = ExchangeMonitor(exchange, ["BTC/USDT"], region="lhr", outbox=outbox)
    signals = by_source(monitor.poll_once())
    book = signals["orderbook_imbalance"]
    # (12 - 3) / (12 + 3) = 0.6
    assert (book.side, book.confidence) == ("BUY", pytest.approx(0.6))
    assert (book.source_region, book.exchange, book.symbol) == ("lhr", "binance", "BTC/USDT")
    assert book.meta["mid"] == pytest.approx(100.0)
    assert book.meta["rtt_ms"] > 0
    assert "latency_anomaly" not in signals  # no baseline yet: no opinion
    assert [s["source"] for s in outbox.pending()] == ["orderbook_imbalance"]
    assert outbox.push_once().outcome == "acked"
    assert [s["source"] for s in primary.stored.values()] == ["orderbook_imbalance"]
    assert {"/api/v3/ticker/24hr", "/api/v3/depth"} <= set(fake.paths)


def test_a_venue_priced_below_its_peers_beyond_fees_votes_buy(
    exchange: Any, outbox: Outbox
) -> None:
    board = MidBoard()
    board.update("kraken", "BTC/USDT", 102.0, time.time())  # 2% above the venue's 100
    board.update("bitstamp", "ETH/USDT", 50.0, time.time())  # another symbol: ignored
    monitor = ExchangeMonitor(exchange, ["BTC/USDT"], region="lhr", outbox=outbox, board=board)
    divergence = by_source(monitor.poll_once())["cross_exchange_divergence"]
    assert divergence.side == "BUY"
    assert "kraken" in divergence.meta["reason"]
    # the venue's own mid is now on the board for the other monitors
    assert board.peers("kraken", "BTC/USDT", time.time(), 30) == {"binance": 100.0}


def test_a_slow_venue_votes_risk_off(venue: Any, exchange: Any, outbox: Outbox) -> None:
    fake, _ = venue
    monitor = ExchangeMonitor(
        exchange, ["BTC/USDT"], region="lhr", outbox=outbox,
        params=MonitorParams(latency_min_samples=5),
    )  # fmt: skip
    for _ in range(5):
        assert "latency_anomaly" not in by_source(monitor.poll_once())
    baseline = sorted(monitor.rtt_history_ms)[2]
    fake.delay_s = max(0.25, baseline * 12 / 1000.0)  # far beyond 6x the median
    latency = by_source(monitor.poll_once())["latency_anomaly"]
    assert (latency.side, latency.confidence) == ("SELL", 1.0)
    assert "risk-off" in latency.meta["reason"]


def test_a_failing_venue_yields_no_signals_and_no_crash(
    venue: Any, exchange: Any, outbox: Outbox
) -> None:
    fake, _ = venue
    fake.failures.append((502, "<html>bad gateway</html>", {}))  # ccxt: ExchangeNotAvailable
    monitor = ExchangeMonitor(exchange, ["BTC/USDT"], region="lhr", outbox=outbox)
    assert monitor.poll_once() == []
    assert outbox.pending() == []


def test_agents_keep_measuring_while_the_primary_is_down_and_deliver_everything_later(
    venue: Any, exchange: Any, outbox: Outbox, primary: Any
) -> None:
    fake, _ = venue
    fake.bids = [["99.99", "9"]]
    fake.asks = [["100.01", "1"]]
    primary.down()
    monitor = ExchangeMonitor(exchange, ["BTC/USDT"], region="lhr", outbox=outbox)
    agents = [ExchangeMonitorAgent(monitor, interval_s=0.02), OutboxPusher(outbox, idle_s=0.02)]
    for agent in agents:
        agent.start()
    try:
        deadline = time.monotonic() + 5
        while len(outbox.pending()) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(outbox.pending()) >= 5  # measured and kept while the primary is down
        primary.up()
        agents[0].stop()  # stop measuring, then everything measured must arrive
        produced = outbox.stats().last_seq
        deadline = time.monotonic() + 5
        while outbox.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        for agent in reversed(agents):
            agent.stop()
    assert outbox.pending() == []
    seqs = sorted(s["meta"]["seq"] for s in primary.stored.values())
    assert seqs == list(range(1, produced + 1))  # every one, exactly once


def test_a_venue_lagging_its_peers_move_beyond_fees_votes_to_follow(
    exchange: Any, outbox: Outbox
) -> None:
    """Signal 6's lead-lag half: the peers rose 3% over the last six polls while this venue
    (mid 100 throughout) did not move; the laggard should follow: BUY."""
    board = MidBoard()
    start = time.time()
    times = [start + 5.0 * i for i in range(6)]
    now = [times[0]]
    monitor = ExchangeMonitor(
        exchange, ["BTC/USDT"], region="lhr", outbox=outbox, board=board,
        clock=lambda: now[0],
    )  # fmt: skip
    found: list[Any] = []
    for i, at in enumerate(times):
        now[0] = at
        board.update("kraken", "BTC/USDT", 100.0 * (1 + 0.006 * i), at - 0.1)
        found = [s for s in monitor.poll_once() if "leader" in s.meta["reason"]]
        if i < 5:
            assert found == []  # fewer than six polls of its own: no lead-lag opinion yet
    (lead_lag,) = found
    assert (lead_lag.source, lead_lag.side) == ("cross_exchange_divergence", "BUY")
    assert "leader +3.0000% vs follower +0.0000%" in lead_lag.meta["reason"]
    assert lead_lag.confidence > 0.5


def test_peers_moving_with_this_venue_give_no_lead_lag_vote(exchange: Any, outbox: Outbox) -> None:
    board = MidBoard()
    start = time.time()
    times = [start + 5.0 * i for i in range(6)]
    now = [times[0]]
    monitor = ExchangeMonitor(
        exchange, ["BTC/USDT"], region="lhr", outbox=outbox, board=board,
        clock=lambda: now[0],
    )  # fmt: skip
    for at in times:
        now[0] = at
        board.update("kraken", "BTC/USDT", 100.2, at - 0.1)  # flat, like the venue
        signals = [s for s in monitor.poll_once() if "leader" in s.meta["reason"]]
    assert signals == []
