"""No look-ahead: truncating the candles at any bar never changes a decision before it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from nettrace.backtest.engine import BacktestConfig, run_backtest
from nettrace.market.candles import CandleKey, Candles, FloatArray
from nettrace.strategies.base import Strategy, StrategySignals, crossed_above, crossed_below
from nettrace.strategies.ema_cross import EmaCross
from nettrace.strategies.sniper import Sniper

NAME = "binance_ETH-BTC_5m.parquet"


@pytest.fixture(scope="module")
def candles(shared_data: Path) -> Candles:
    frame = pd.read_parquet(shared_data / NAME).iloc[:6000]
    return Candles.from_frame(frame, CandleKey.from_filename(NAME))


def _cuts(n: int, count: int = 8) -> list[int]:
    rng = np.random.default_rng(20261125)
    return sorted(int(c) for c in rng.integers(100, n - 1, size=count))


def assert_no_lookahead(strategy: Strategy, candles: Candles) -> None:
    full_signals = strategy.run(candles)
    full = run_backtest(strategy, candles, BacktestConfig(fee=0.004))
    assert len(full.trades) >= 5, "too few trades for the truncation check to mean anything"
    for cut in _cuts(len(candles)):
        part = candles.slice(0, cut)
        signals = strategy.run(part)
        np.testing.assert_array_equal(signals.entry, full_signals.entry[:cut])
        np.testing.assert_array_equal(signals.exit, full_signals.exit[:cut])
        for name in ("confidence", "signal_count", "regime", "expected_move", "atr"):
            mine, theirs = getattr(signals, name), getattr(full_signals, name)
            if theirs is not None:
                np.testing.assert_array_equal(mine, theirs[:cut], err_msg=name)
        truncated = run_backtest(strategy, part, BacktestConfig(fee=0.004))
        # Every trade the truncated run closed is the same trade in the full run.
        assert truncated.trades == full.trades[: len(truncated.trades)]
        np.testing.assert_array_equal(truncated.equity, full.equity[:cut])


def test_ema_cross_has_no_lookahead(candles: Candles) -> None:
    assert_no_lookahead(EmaCross(), candles)


def test_sniper_has_no_lookahead(candles: Candles) -> None:
    # 6,000 bars: the ML forecast is fitted at bars 2,500 and 5,000, so cuts fall both before
    # and after a refit, and its walk-forward schedule is exercised as well as the indicators.
    assert_no_lookahead(Sniper(), candles)


def test_the_lookahead_check_would_catch_a_peek(candles: Candles) -> None:
    """The check is not vacuous: a strategy that reads one bar ahead fails it."""

    @dataclass
    class Peeking(EmaCross):
        name: ClassVar[str] = "peeking"

        def signals(
            self, candles: Candles, indicators: Mapping[str, FloatArray]
        ) -> StrategySignals:
            fast, slow = indicators["ema_fast"], indicators["ema_slow"]
            ahead = np.r_[fast[1:], fast[-1]]  # tomorrow's EMA
            return StrategySignals(
                entry=crossed_above(ahead, slow), exit=crossed_below(ahead, slow)
            )

    with pytest.raises(AssertionError):
        assert_no_lookahead(Peeking(), candles)
