"""The replay feed: prices from the candle at the replay clock, venues that differ, labels."""

from __future__ import annotations

from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

from nettrace.market.candles import CandleKey, Candles
from nettrace.market.replay import (
    MAX_LAG_S,
    REPLAY_ANCHOR_ENV,
    REPLAY_SPEED_ENV,
    SCOUT_FEED_ENV,
    ReplayExchange,
    ReplaySource,
    VenueProfile,
    feed_from_env,
    intrabar_path,
    load_replay_source,
)
from nettrace.market.shared_data import shared_data_dir

HOUR_MS = 3_600_000
T0_MS = 1_700_000_000_000 - 1_700_000_000_000 % HOUR_MS


def _candles(symbol: str = "BTC/USD") -> Candles:
    """Four hand-made hourly bars: up, down, up, flat."""
    frame = pd.DataFrame(
        {
            "timestamp": [T0_MS + i * HOUR_MS for i in range(4)],
            "open": [100.0, 110.0, 90.0, 95.0],
            "high": [112.0, 111.0, 99.0, 95.0],
            "low": [98.0, 88.0, 89.0, 95.0],
            "close": [110.0, 90.0, 95.0, 95.0],
            "volume": [50.0, 80.0, 20.0, 10.0],
        }
    )
    return Candles.from_frame(frame, CandleKey("testex", symbol, "1h"), source="test")


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


NO_LAG = VenueProfile(lag_s=MAX_LAG_S, skew=0.0, rtt_ms=50.0)  # at the anchor: bar 0, open


def _venue(
    clock: FakeClock, profile: VenueProfile = NO_LAG, exchange_id: str = "kraken"
) -> ReplayExchange:
    source = ReplaySource(_candles(), "test", "BTC/USD")
    return ReplayExchange(
        exchange_id,
        ["BTC/USD"],
        sources={"BTC/USD": source},
        speed=60.0,
        anchor=clock.now,
        profile=profile,
        clock=clock,
        sleep=clock.sleep,
    )


def test_price_is_the_candle_at_the_replay_clock() -> None:
    clock = FakeClock()
    venue = _venue(clock)
    assert venue.fetch_ticker("BTC/USD")["last"] == pytest.approx(100.0)  # bar 0 open
    clock.now += 60.0  # 60 wall s x 60 = one replay hour: bar 1 opens
    ticker = venue.fetch_ticker("BTC/USD")
    assert ticker["last"] == pytest.approx(110.0)
    assert ticker["info"]["bar_ts"] == T0_MS + HOUR_MS
    assert ticker["timestamp"] == T0_MS + HOUR_MS
    clock.now += 59.999  # the end of bar 1 (a down bar) is its close
    assert venue.fetch_ticker("BTC/USD")["last"] == pytest.approx(90.0, rel=1e-4)


def test_intrabar_path_visits_the_bar_extremes_and_stays_inside() -> None:
    clock = FakeClock()
    venue = _venue(clock)
    seen = []
    for _ in range(60):  # one replay hour in one-second steps through bar 0 (up bar)
        ticker = venue.fetch_ticker("BTC/USD")
        seen.append(ticker["last"])
        assert ticker["low"] <= ticker["last"] <= ticker["high"]
        clock.now += 1.0
    assert min(seen) == pytest.approx(98.0, abs=0.5)  # the low comes first in an up bar
    assert max(seen) == pytest.approx(112.0, abs=0.5)
    assert seen.index(min(seen)) < seen.index(max(seen))
    assert intrabar_path(110.0, 111.0, 88.0, 90.0) == (110.0, 111.0, 88.0, 90.0)


def test_replay_wraps_to_the_first_bar_instead_of_stopping() -> None:
    clock = FakeClock()
    venue = _venue(clock)
    clock.now += 4 * 60.0  # four bars later: past the last bar of a four-bar file
    assert venue.fetch_ticker("BTC/USD")["last"] == pytest.approx(100.0)


def test_same_inputs_same_outputs() -> None:
    a, b = FakeClock(), FakeClock()
    one = _venue(a, VenueProfile.for_exchange("kraken"))
    two = _venue(b, VenueProfile.for_exchange("kraken"))
    for _ in range(5):
        assert one.fetch_ticker("BTC/USD") == two.fetch_ticker("BTC/USD")
        assert one.fetch_order_book("BTC/USD", 5) == two.fetch_order_book("BTC/USD", 5)
        a.now += 7.0
        b.now += 7.0
    assert a.slept == b.slept  # the simulated round trips are seeded too


def test_venues_differ_by_lag_and_skew() -> None:
    ids = ["kraken", "bitstamp", "bitflyer", "coincheck", "bitbank", "indodax", "tokocrypto"]
    profiles = [VenueProfile.for_exchange(name) for name in ids]
    assert len({p.skew for p in profiles}) == len(ids)
    assert len({p.lag_s for p in profiles}) == len(ids)
    assert all(abs(p.skew) <= 0.006 and 0.0 <= p.lag_s <= MAX_LAG_S for p in profiles)
    assert VenueProfile.for_exchange("kraken") == profiles[0]

    clock = FakeClock()
    skewed = VenueProfile(lag_s=MAX_LAG_S, skew=0.004, rtt_ms=50.0)
    ahead = VenueProfile(lag_s=MAX_LAG_S - 1800.0, skew=0.0, rtt_ms=50.0)
    plain, shifted, leading = _venue(clock), _venue(clock, skewed), _venue(clock, ahead)
    clock.now += 15.0  # a quarter of bar 0
    assert shifted.fetch_ticker("BTC/USD")["last"] == pytest.approx(
        plain.fetch_ticker("BTC/USD")["last"] * 1.004
    )
    # 1800 replay seconds less lag = half a bar ahead of the others on the same clock.
    assert plain.replay_ms("BTC/USD")[0] == leading.replay_ms("BTC/USD")[0] == 0
    assert plain.replay_ms("BTC/USD")[1] == pytest.approx(0.25)
    assert leading.replay_ms("BTC/USD")[1] == pytest.approx(0.75)
    assert leading.fetch_ticker("BTC/USD")["last"] != plain.fetch_ticker("BTC/USD")["last"]


def test_book_is_derived_ordered_and_leans_with_the_price_move() -> None:
    clock = FakeClock()
    venue = _venue(clock)
    clock.now += 30.0  # mid-way through bar 0, an up bar
    book = venue.fetch_order_book("BTC/USD", 10)
    bids, asks = np.array(book["bids"]), np.array(book["asks"])
    assert len(bids) == len(asks) == 10
    assert bids[0, 0] < asks[0, 0]
    assert (np.diff(bids[:, 0]) < 0).all()
    assert (np.diff(asks[:, 0]) > 0).all()
    assert bids[:, 1].sum() > asks[:, 1].sum()  # up bar: heavier bids
    assert book["info"]["derived_book"] is True
    mid = (bids[0, 0] + asks[0, 0]) / 2
    assert mid == pytest.approx(venue.fetch_ticker("BTC/USD")["last"])
    clock.now += 60.0  # bar 1 is a down bar
    book = venue.fetch_order_book("BTC/USD", 10)
    assert sum(a for _, a in book["asks"]) > sum(b for _, b in book["bids"])


def test_everything_is_labelled_replay() -> None:
    clock = FakeClock()
    venue = _venue(clock)
    assert venue.fetch_ticker("BTC/USD")["info"]["replay"] is True
    assert venue.fetch_order_book("BTC/USD")["info"]["replay"] is True
    market = venue.load_markets()["BTC/USD"]
    assert market["info"]["replay"] is True
    assert venue.has["createOrder"] is False
    assert "replay" in venue.name


def test_requests_take_a_simulated_round_trip() -> None:
    clock = FakeClock()
    venue = _venue(clock)
    for _ in range(50):
        venue.fetch_ticker("BTC/USD")
    assert len(clock.slept) == 50
    assert all(0.05 * 0.8 - 1e-9 <= s <= 0.05 * 1.2 * 5 + 1e-9 for s in clock.slept)
    assert len(set(clock.slept)) > 1  # jitter, not a constant


def test_unknown_symbol_is_a_ccxt_bad_symbol() -> None:
    venue = _venue(FakeClock())
    with pytest.raises(ccxt.BadSymbol):
        venue.fetch_ticker("DOGE/USD")


def test_no_data_folder_falls_back_to_labelled_synthetic(tmp_path: Path) -> None:
    source = load_replay_source("BTC/JPY", tmp_path)  # an empty folder
    assert source.synthetic
    assert source.origin.startswith("synthetic")
    assert load_replay_source("BTC/JPY", None).synthetic
    clock = FakeClock()
    venue = ReplayExchange(
        "bitflyer", ["BTC/JPY"], data_dir=tmp_path, clock=clock, sleep=clock.sleep
    )
    assert venue.fetch_ticker("BTC/JPY")["info"]["synthetic"] is True


def test_file_of_the_pair_is_preferred_then_same_base(tmp_path: Path) -> None:
    candles = _candles()
    candles.to_frame().to_parquet(tmp_path / "coinbase_BTC-USD_1h.parquet")
    candles.to_frame().to_parquet(tmp_path / "ftx-perp_BTC-USD_1m.parquet")  # derivative: later
    exact = load_replay_source("BTC/USD", tmp_path)
    assert (exact.origin, exact.source_symbol, exact.synthetic) == (
        "coinbase_BTC-USD_1h.parquet",
        "BTC/USD",
        False,
    )
    other_quote = load_replay_source("BTC/JPY", tmp_path)
    assert other_quote.source_symbol == "BTC/USD"  # said, not hidden
    assert np.array_equal(other_quote.candles.close, candles.close)


@pytest.mark.skipif(shared_data_dir() is None, reason="../shared/data is absent")
def test_real_candles_are_replayed_from_shared_data() -> None:
    source = load_replay_source("BTC/USD", shared_data_dir())
    assert not source.synthetic
    assert source.origin.endswith(".parquet")
    assert "BTC-USD" in source.origin


def test_feed_from_env(tmp_path: Path) -> None:
    assert feed_from_env({}) is None
    assert feed_from_env({SCOUT_FEED_ENV: "live"}) is None
    feed = feed_from_env(
        {
            SCOUT_FEED_ENV: f"replay:{tmp_path}",
            REPLAY_SPEED_ENV: "120",
            REPLAY_ANCHOR_ENV: "1700000000.5",
        }
    )
    assert feed is not None
    assert (feed.data_dir, feed.speed, feed.anchor) == (tmp_path, 120.0, 1_700_000_000.5)
    venue = feed.exchange("kraken", ["BTC/USD"])
    assert venue.anchor == 1_700_000_000.5
    for bad in (
        {SCOUT_FEED_ENV: "paper"},
        {SCOUT_FEED_ENV: f"replay:{tmp_path / 'missing'}"},
        {SCOUT_FEED_ENV: "replay", REPLAY_SPEED_ENV: "0"},
        {SCOUT_FEED_ENV: "replay", REPLAY_SPEED_ENV: "fast"},
    ):
        with pytest.raises(ValueError, match="NETTRACE_"):
            feed_from_env(bad)


def test_scout_monitor_runs_unchanged_on_the_feed_and_labels_its_signals(tmp_path: Path) -> None:
    from nettrace.scouts.monitor import ExchangeMonitor, MidBoard
    from nettrace.scouts.outbox import Outbox

    # One liquid-looking bar (0.5% range: a 2.5 bp derived spread) rising from 100 to 100.4.
    frame = pd.DataFrame(
        {
            "timestamp": [T0_MS],
            "open": [100.0],
            "high": [100.5],
            "low": [100.0],
            "close": [100.4],
            "volume": [500.0],
        }
    )
    tight = Candles.from_frame(frame, CandleKey("testex", "BTC/USD", "1h"))
    clock = FakeClock()
    outbox = Outbox(
        tmp_path / "outbox.db", region="lhr", push_url="http://127.0.0.1:9/push", token="t"
    )
    board = MidBoard()
    plain = VenueProfile(lag_s=MAX_LAG_S, skew=0.0, rtt_ms=50.0)
    rich = VenueProfile(lag_s=MAX_LAG_S, skew=0.012, rtt_ms=50.0)  # 1.2% above: beyond fees
    monitors = []
    for name, profile in (("kraken", plain), ("bitstamp", rich)):
        venue = ReplayExchange(
            name,
            ["BTC/USD"],
            sources={"BTC/USD": ReplaySource(tight, "test", "BTC/USD")},
            anchor=clock.now,
            profile=profile,
            clock=clock,
            sleep=clock.sleep,
        )
        monitors.append(
            ExchangeMonitor(venue, ["BTC/USD"], region="lhr", outbox=outbox, board=board)
        )
    clock.now += 30.0  # mid-way through the bar, on its rising leg: the books lean to the bids
    signals = [signal for monitor in monitors for signal in monitor.poll_once()]
    outbox.close()
    by_source = {(s.source, s.exchange): s for s in signals}
    assert by_source[("orderbook_imbalance", "kraken")].side == "BUY"
    assert by_source[("cross_exchange_divergence", "bitstamp")].side == "SELL"  # rich: sell
    assert all(s.meta["replay"] is True for s in signals)
