"""``ema_cross`` makes exactly vectorbt's trades on real candles (times equal, prices 1e-9)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrace.backtest.engine import BacktestConfig, run_backtest
from nettrace.market.candles import CandleKey, Candles
from nettrace.strategies.ema_cross import EmaCross

FILES = [
    "binance_ETH-BTC_5m.parquet",
    "bittrex_XRP-BTC_1m.parquet",
    "coinbase_BTC-USD_1h.parquet",
    "ftx-perp_BTC-USD_1m.parquet",
]


def _vectorbt():  # type: ignore[no-untyped-def]
    try:
        import vectorbt
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI installs the bench extra: vectorbt must be importable")
        pytest.skip("vectorbt (the bench extra) is not installed")
    return vectorbt


def _load(shared_data: Path, name: str) -> Candles:
    return Candles.from_frame(pd.read_parquet(shared_data / name), CandleKey.from_filename(name))


@pytest.mark.parametrize("fee", [0.004, 0.0])
@pytest.mark.parametrize("name", FILES)
def test_ema_cross_trades_equal_vectorbts(shared_data: Path, name: str, fee: float) -> None:
    vbt = _vectorbt()
    candles = _load(shared_data, name)
    ours = run_backtest(EmaCross(), candles, BacktestConfig(fee=fee, initial_cash=10_000.0))

    signals = EmaCross().run(candles)
    index = pd.to_datetime(candles.timestamp, unit="ms", utc=True)
    # Decision at bar close, fill at the next bar's open: shift signals one bar, price = open.
    entries = pd.Series(np.r_[False, signals.entry[:-1]], index=index)
    exits = pd.Series(np.r_[False, signals.exit[:-1]], index=index)
    portfolio = vbt.Portfolio.from_signals(
        pd.Series(candles.close, index=index), entries=entries, exits=exits,
        price=pd.Series(candles.open, index=index), fees=fee, init_cash=10_000.0,
    )  # fmt: skip
    records = portfolio.trades.records_arr
    closed = records[records["status"] == 1]

    assert len(ours.trades) == len(closed) > 10
    for theirs, mine in zip(closed, ours.trades, strict=True):
        assert index[theirs["entry_idx"]] == mine.entry_time
        assert index[theirs["exit_idx"]] == mine.exit_time
        assert mine.entry_price == pytest.approx(theirs["entry_price"], rel=1e-9)
        assert mine.exit_price == pytest.approx(theirs["exit_price"], rel=1e-9)
        assert mine.amount == pytest.approx(theirs["size"], rel=1e-9)
        assert mine.fee == pytest.approx(
            theirs["entry_fees"] + theirs["exit_fees"], rel=1e-9, abs=1e-12
        )
        assert mine.profit == pytest.approx(theirs["pnl"], rel=1e-9)
    assert ours.final_equity == pytest.approx(float(portfolio.final_value()), rel=1e-9)
