"""Importers: CSV, Parquet and Freqtrade feather/json files land in the store as the same bars,
and a bad file is refused (or repaired on request) before anything is stored."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nettrace.market.candles import COLUMNS, TIMEFRAME_MS, CandleKey
from nettrace.market.importers import import_file, read_frame, resolve_key
from nettrace.market.store import CandleStore, load_candles
from nettrace.market.validation import CandleDataError

STEP = TIMEFRAME_MS["5m"]
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
KEY = CandleKey("binance", "BTC/USDT", "5m")


def bars(n: int = 6, start: int = T0) -> pd.DataFrame:
    rng = np.random.default_rng(n)
    close = 40_000 + np.cumsum(rng.normal(0, 50, n))
    open_ = np.concatenate(([40_000.0], close[:-1]))
    return pd.DataFrame(
        {
            "timestamp": start + STEP * np.arange(n, dtype=np.int64),
            "open": open_,
            "high": np.maximum(open_, close) + 10.0,
            "low": np.minimum(open_, close) - 10.0,
            "close": close,
            "volume": rng.uniform(1, 5, n),
        }
    )


def stored(store: CandleStore, key: CandleKey = KEY) -> pd.DataFrame:
    return store.load(key)[0].to_frame()


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path / "store")


def _freqtrade_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "user_data" / "data" / "binance"
    folder.mkdir(parents=True)
    return folder


def write_csv_ms(path: Path, frame: pd.DataFrame) -> None:
    frame.to_csv(path, index=False)


def write_csv_iso(path: Path, frame: pd.DataFrame) -> None:
    out = frame.drop(columns="timestamp")
    dates = pd.to_datetime(frame["timestamp"], unit="ms").dt.strftime("%Y-%m-%d %H:%M:%S")
    out.insert(0, "Date", dates)  # naive ISO dates, taken as UTC; capitalised header
    out.to_csv(path, index=False)


def write_parquet_plain(path: Path, frame: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def write_feather(path: Path, frame: pd.DataFrame) -> None:
    out = frame.drop(columns="timestamp")
    out.insert(0, "date", pd.to_datetime(frame["timestamp"], unit="ms", utc=True))
    out.to_feather(path)


def write_json(path: Path, frame: pd.DataFrame) -> None:
    path.write_text(json.dumps(frame[list(COLUMNS)].to_numpy().tolist()))


def write_json_gz(path: Path, frame: pd.DataFrame) -> None:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(frame[list(COLUMNS)].to_numpy().tolist(), handle)


FORMATS = [
    ("binance_BTC-USDT_5m.csv", write_csv_ms),
    ("binance_BTC-USDT_5m.csv", write_csv_iso),
    ("binance_BTC-USDT_5m.parquet", write_parquet_plain),
    ("BTC_USDT-5m.feather", write_feather),
    ("BTC_USDT-5m.json", write_json),
    ("BTC_USDT-5m.json.gz", write_json_gz),
]


@pytest.mark.parametrize(
    ("name", "writer"), FORMATS, ids=["csv-ms", "csv-iso", "parquet", "feather", "json", "json.gz"]
)
def test_every_format_imports_the_same_bars_under_the_key_in_its_name(
    tmp_path: Path, store: CandleStore, name: str, writer: object
) -> None:
    frame = bars()
    path = _freqtrade_dir(tmp_path) / name
    writer(path, frame)  # type: ignore[operator]
    report = import_file(path, store)
    assert report.key == KEY
    assert (report.rows_read, report.rows_added, report.rows_total) == (6, 6, 6)
    assert report.repairs == []
    assert report.warnings == []
    got = stored(store)
    assert got["timestamp"].dtype == np.int64
    np.testing.assert_array_equal(got["timestamp"], frame["timestamp"])
    for column in COLUMNS[1:]:
        np.testing.assert_allclose(got[column], frame[column], rtol=1e-12)
    candles, _ = store.load(KEY)
    assert candles.synthetic is False
    assert candles.source == f"imported from {name}"


def test_feather_with_a_non_utc_zone_lands_on_utc_bar_times(tmp_path: Path) -> None:
    frame = bars()
    path = tmp_path / "BTC_USDT-5m.feather"
    out = frame.drop(columns="timestamp")
    out.insert(
        0,
        "date",
        pd.to_datetime(frame["timestamp"], unit="ms", utc=True).dt.tz_convert("Asia/Tokyo"),
    )
    out.to_feather(path)
    got, _ = read_frame(path)
    np.testing.assert_array_equal(got["timestamp"], frame["timestamp"])


def test_reimport_merges_without_duplicates_and_the_file_wins(
    tmp_path: Path, store: CandleStore
) -> None:
    first = bars(6)
    path = tmp_path / "binance_BTC-USDT_5m.csv"
    write_csv_ms(path, first)
    import_file(path, store)
    second = bars(10)
    second.loc[2, "close"] = second.loc[2, "close"] + 1.0  # a corrected bar
    write_csv_ms(path, second)
    report = import_file(path, store)
    assert (report.rows_added, report.rows_already_present, report.rows_total) == (4, 6, 10)
    got = stored(store)
    assert got["timestamp"].is_unique
    assert got["timestamp"].is_monotonic_increasing
    assert got.loc[2, "close"] == second.loc[2, "close"]


def test_a_bad_csv_is_refused_with_file_row_and_problem_and_nothing_is_stored(
    tmp_path: Path, store: CandleStore
) -> None:
    frame = bars(8)
    frame.loc[5, "volume"] = -2.5
    path = tmp_path / "binance_BTC-USDT_5m.csv"
    write_csv_ms(path, frame)
    with pytest.raises(CandleDataError) as info:
        import_file(path, store)
    assert str(info.value).startswith(f"{path}: row 5 (2024-01-01T00:25:00Z): volume -2.5")
    assert not store.exists(KEY)


def test_a_bad_csv_with_repair_stores_the_rest_and_lists_the_change(
    tmp_path: Path, store: CandleStore
) -> None:
    frame = bars(8)
    frame.loc[5, "volume"] = -2.5
    path = tmp_path / "binance_BTC-USDT_5m.csv"
    write_csv_ms(path, frame)
    report = import_file(path, store, repair=True)
    assert report.repairs[0] == "dropped 1 row with negative volume"
    assert report.rows_added == 7
    assert any("1 gap, 1 missing bars" in w for w in report.warnings)
    assert stored(store)["timestamp"].tolist() == frame.drop(index=5)["timestamp"].tolist()


def test_an_unparsable_date_is_reported_at_its_row(tmp_path: Path) -> None:
    path = tmp_path / "binance_BTC-USDT_5m.csv"
    write_csv_iso(path, bars())
    lines = path.read_text().splitlines()
    lines[3] = "yesterday" + lines[3][lines[3].index(",") :]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CandleDataError, match=r": row 2: timestamp is NaN"):
        load_candles(path)


def test_a_csv_with_a_text_cell_names_row_and_value(tmp_path: Path) -> None:
    path = tmp_path / "binance_BTC-USDT_5m.csv"
    frame = bars().astype({"high": object})
    frame.loc[4, "high"] = "12,5"
    frame.to_csv(path, index=False)
    with pytest.raises(CandleDataError) as info:
        load_candles(path)
    assert str(info.value) == f"{path}: row 4: high '12,5' is not a number"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"open": 1}', "expected a JSON list of [ms, open, high, low, close, volume] rows"),
        ("[[1704067200000, 1, 2, 0.5, 1.5]]", "row 0 has 5 values, expected 6"),
        ("[[1704067200000, 1, 2", "cannot read file"),
    ],
)
def test_malformed_freqtrade_json_is_a_one_line_error(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "BTC_USDT-5m.json"
    path.write_text(content)
    with pytest.raises(CandleDataError) as info:
        read_frame(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_no_time_column_and_unknown_suffix_are_named(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    bars().drop(columns="timestamp").to_csv(path, index=False)
    with pytest.raises(CandleDataError, match="no time column"):
        read_frame(path)
    other = tmp_path / "x.xlsx"
    other.write_text("")
    with pytest.raises(CandleDataError, match="unknown file type"):
        read_frame(other)


def test_key_resolution_from_names_and_options(tmp_path: Path) -> None:
    folder = _freqtrade_dir(tmp_path)
    assert resolve_key(folder / "ETH_BTC-1h.feather") == CandleKey("binance", "ETH/BTC", "1h")
    assert resolve_key(tmp_path / "kraken_XBT-EUR_1d.csv") == CandleKey("kraken", "XBT/EUR", "1d")
    with pytest.raises(ValueError, match=r"cannot tell the exchange of BTC_USDT_USDT-1h-futures"):
        resolve_key(folder / "BTC_USDT_USDT-1h-futures.feather")
    assert resolve_key(
        folder / "BTC_USDT_USDT-1h-futures.feather", exchange="binance-usdm"
    ) == CandleKey("binance-usdm", "BTC/USDT", "1h")
    with pytest.raises(ValueError, match="is a Freqtrade mark file, not trade candles"):
        resolve_key(folder / "BTC_USDT_USDT-1h-mark.feather")
    with pytest.raises(ValueError, match="give --exchange --pair --timeframe"):
        resolve_key(tmp_path / "bars.csv")
