"""Which candles a file holds when its name does not say (issue 11).

``load_candles`` takes the exchange, pair and timeframe from options where the file name lacks
them, and infers the timeframe from the bars' median spacing when neither gives it. The bars
are real ones from the developer data set, written under other names in a temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrace.market.candles import CandleKey, infer_timeframe
from nettrace.market.store import load_candles

NAMED = {  # real files of every timeframe in the data set, including gaps
    "bittrex_ETH-BTC_1m.parquet": "1m",
    "binance_ETH-BTC_5m.parquet": "5m",
    "bittrex_ETH-BTC_30m.parquet": "30m",
    "coinbase_BTC-USD_1h.parquet": "1h",
    "binance_BTC-USDT_4h.parquet": "4h",  # one gap of 12,596 bars
    "binance_ETH-BTC_4h.parquet": "4h",  # a 7-bar gap
    "binance-usdm_XRP-USDT_8h.parquet": "8h",
    "bitstamp_BTC-USD_1d.parquet": "1d",
}


@pytest.fixture
def daily(shared_data: Path) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "bitstamp_BTC-USD_1d.parquet").head(300)


@pytest.mark.parametrize(("name", "timeframe"), NAMED.items())
def test_the_timeframe_is_inferred_from_real_bars(
    shared_data: Path, name: str, timeframe: str
) -> None:
    stamps = pd.read_parquet(shared_data / name, columns=["timestamp"])["timestamp"].to_numpy()
    assert infer_timeframe(stamps) == timeframe


def test_an_irregular_spacing_is_no_timeframe() -> None:
    with pytest.raises(ValueError, match="7 minutes apart"):
        infer_timeframe(np.arange(10, dtype=np.int64) * 420_000)
    with pytest.raises(ValueError, match="fewer than two"):
        infer_timeframe(np.array([0], dtype=np.int64))


def test_a_csv_with_any_name_loads_with_exchange_and_pair(
    tmp_path: Path, daily: pd.DataFrame
) -> None:
    path = tmp_path / "btc daily.csv"
    daily.to_csv(path, index=False)
    candles, notes = load_candles(path, exchange="bitstamp", pair="BTC/USD")
    assert candles.key == CandleKey("bitstamp", "BTC/USD", "1d")  # timeframe from the bars
    assert notes == []
    assert len(candles) == 300
    assert candles.close[-1] == daily["close"].iloc[-1]


def test_a_parquet_with_any_name_loads_too(tmp_path: Path, daily: pd.DataFrame) -> None:
    path = tmp_path / "candles.parquet"
    daily.to_parquet(path)
    candles, _ = load_candles(path, exchange="bitstamp", pair="BTC/USD", timeframe="1d")
    assert candles.key == CandleKey("bitstamp", "BTC/USD", "1d")


def test_a_name_without_the_exchange_needs_only_the_exchange(
    tmp_path: Path, daily: pd.DataFrame
) -> None:
    path = tmp_path / "BTC-USD_1d.csv"
    daily.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"cannot tell the exchange of") as info:
        load_candles(path)
    assert str(info.value).endswith("or pass --exchange")
    candles, _ = load_candles(path, exchange="kraken")
    assert candles.key == CandleKey("kraken", "BTC/USD", "1d")


def test_the_refusal_is_one_line_naming_the_file_and_what_is_missing(
    tmp_path: Path, daily: pd.DataFrame
) -> None:
    path = tmp_path / "bars.csv"
    daily.to_csv(path, index=False)
    with pytest.raises(ValueError, match="cannot tell") as info:
        load_candles(path)
    assert str(info.value) == (
        f"{path}: cannot tell the exchange and pair of these candles from the file name; "
        "name it EXCHANGE_BASE-QUOTE_TIMEFRAME.csv or pass --exchange and --pair"
    )
    with pytest.raises(ValueError, match=r"or pass --symbol$"):  # the option `run` has
        load_candles(path, exchange="kraken", flags={"pair": "--symbol"})


def test_given_parts_win_over_the_file_name(shared_data: Path) -> None:
    path = shared_data / "bitstamp_BTC-USD_1d.parquet"
    assert load_candles(path)[0].key == CandleKey("bitstamp", "BTC/USD", "1d")
    candles, _ = load_candles(path, exchange="kraken", pair="XBT/USD")
    assert candles.key == CandleKey("kraken", "XBT/USD", "1d")


def test_bars_of_no_timeframe_ask_for_one(tmp_path: Path, daily: pd.DataFrame) -> None:
    path = tmp_path / "bars.csv"
    odd = daily.assign(timestamp=daily["timestamp"].iloc[0] + np.arange(len(daily)) * 420_000)
    odd.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"bars.csv: cannot infer the timeframe: .*--timeframe$"):
        load_candles(path, exchange="kraken", pair="BTC/USD")
