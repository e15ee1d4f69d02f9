"""The Parquet store: merges without duplicates, validates on load, keeps the synthetic label."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nettrace.market.candles import COLUMNS, TIMEFRAME_MS, CandleKey, Candles
from nettrace.market.store import CandleStore, load_candles, write_parquet
from nettrace.market.synthetic import extend_with_continuation, synthetic_candles
from nettrace.market.validation import CandleDataError

KEY = CandleKey("kraken", "BTC/USD", "1h")
STEP = TIMEFRAME_MS["1h"]
T0 = 1_704_067_200_000


def candles_at(index: list[int] | np.ndarray, *, level: float = 100.0) -> Candles:
    """Valid bars at ``T0 + i * STEP`` for each i; prices depend on i and ``level``."""
    i = np.asarray(sorted(set(int(x) for x in index)), dtype=np.int64)
    close = level + i.astype(np.float64)
    return Candles(
        key=KEY,
        timestamp=T0 + STEP * i,
        open=close - 0.25,
        high=close + 1.0,
        low=close - 1.0,
        close=close,
        volume=np.full(len(i), 3.0),
        source="test bars",
    )


def test_save_then_load_round_trips_every_value(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    original = candles_at(list(range(5)))
    report = store.save(original)
    assert (report.rows_added, report.rows_total, report.path) == (5, 5, tmp_path / KEY.filename)
    loaded, notes = store.load(KEY)
    assert notes == []
    pd.testing.assert_frame_equal(loaded.to_frame(), original.to_frame())
    assert (loaded.synthetic, loaded.source) == (False, "test bars")


def test_an_overlapping_save_adds_only_new_bars_and_new_values_win(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save(candles_at(list(range(0, 10))))
    newer = candles_at(list(range(5, 15)), level=100.5)  # bars 5..9 corrected, 10..14 new
    report = store.save(newer)
    assert (report.rows_added, report.rows_already_present, report.rows_replaced) == (5, 5, 5)
    assert report.rows_total == 15
    frame = store.load(KEY)[0].to_frame()
    assert frame["timestamp"].tolist() == (T0 + STEP * np.arange(15)).tolist()
    assert frame["close"].tolist()[:5] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert frame["close"].tolist()[5:] == [100.5 + i for i in range(5, 15)]


def test_saving_the_same_bars_again_changes_nothing(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save(candles_at(list(range(4))))
    report = store.save(candles_at(list(range(4))))
    assert (report.rows_added, report.rows_already_present, report.rows_replaced) == (0, 4, 0)
    assert store.info(KEY) is not None
    assert store.info(KEY).rows == 4


@settings(max_examples=60, deadline=None)
@given(
    old=st.lists(st.integers(0, 60), min_size=1, max_size=40),
    new=st.lists(st.integers(0, 60), min_size=1, max_size=40),
)
def test_merge_keeps_every_bar_once_sorted_and_new_values_win(
    old: list[int], new: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _check_merge(CandleStore(Path(folder)), old, new)


def _check_merge(store: CandleStore, old: list[int], new: list[int]) -> None:
    store.save(candles_at(old))
    report = store.save(candles_at(new, level=500.0))
    frame = store.load(KEY)[0].to_frame()
    expected = sorted(set(old) | set(new))
    assert frame["timestamp"].tolist() == [T0 + STEP * i for i in expected]
    assert report.rows_total == len(expected)
    assert report.rows_added == len(set(new) - set(old))
    assert report.rows_already_present == len(set(new) & set(old))
    by_ts = dict(zip(frame["timestamp"], frame["close"], strict=True))
    for i in expected:
        assert by_ts[T0 + STEP * i] == (500.0 + i if i in set(new) else 100.0 + i)


def test_save_refuses_invalid_bars_and_leaves_the_file_alone(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save(candles_at(list(range(3))))
    before = (tmp_path / KEY.filename).read_bytes()
    bad = candles_at([3, 4])
    bad.high[1] = bad.low[1] - 1.0
    with pytest.raises(CandleDataError, match=r"row 1 \(2024-01-01T04:00:00Z\): high .* < low"):
        store.save(bad)
    assert (tmp_path / KEY.filename).read_bytes() == before


def test_load_validates_a_file_written_by_someone_else(tmp_path: Path) -> None:
    frame = candles_at(list(range(5))).to_frame()
    frame.loc[2, "close"] = np.nan
    path = tmp_path / KEY.filename
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    store = CandleStore(tmp_path)
    with pytest.raises(CandleDataError) as info:
        store.load(KEY)
    assert str(info.value) == f"{path}: row 2 (2024-01-01T02:00:00Z): close is NaN"
    repaired, notes = store.load(KEY, repair=True)
    assert notes[0] == "dropped 1 row with NaN, infinite or non-numeric values"
    assert repaired.timestamp.tolist() == [T0 + STEP * i for i in (0, 1, 3, 4)]


def test_an_unreadable_or_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    with pytest.raises(FileNotFoundError, match="no candles stored for kraken BTC/USD 1h"):
        store.load(KEY)
    (tmp_path / KEY.filename).write_bytes(b"not parquet")
    with pytest.raises(CandleDataError, match="cannot read Parquet file") as info:
        store.load(KEY)
    assert "\n" not in str(info.value)


def test_list_shows_range_rows_and_gaps_and_skips_stray_files(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save(candles_at([0, 1, 2, 6, 7, 10]))
    (tmp_path / "notes.parquet").write_bytes(b"")
    (info,) = store.list()
    assert info.key == KEY
    assert (info.rows, info.first_ms, info.last_ms) == (6, T0, T0 + 10 * STEP)
    assert (info.gaps, info.missing_bars) == (2, 5)
    assert info.synthetic is False


def test_synthetic_label_survives_save_load_and_list(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    key = CandleKey("synthetic", "BTC/USD", "1h")
    made = synthetic_candles(key, 50, seed=7)
    store.save(made)
    loaded, _ = store.load(key)
    assert loaded.synthetic is True
    assert loaded.source == "synthetic (seed=7)"
    (info,) = store.list()
    assert info.synthetic is True
    assert info.source == "synthetic (seed=7)"
    # the label is in the Parquet file itself, so a copy elsewhere keeps it
    meta = pq.read_schema(tmp_path / key.filename).metadata
    assert meta[b"nettrace.synthetic"] == b"true"
    copied, _ = load_candles(tmp_path / key.filename)
    assert copied.synthetic is True


def test_real_and_synthetic_bars_are_never_mixed_in_one_file(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save(candles_at(list(range(30))))
    fake = synthetic_candles(KEY, 10, seed=1, start_ms=T0 + 30 * STEP)
    with pytest.raises(ValueError, match=r"refusing to merge synthetic candles into .* real data"):
        store.save(fake)
    assert store.info(KEY).rows == 30  # type: ignore[union-attr]


def test_a_real_series_extended_with_invented_bars_is_labelled_synthetic(tmp_path: Path) -> None:
    real = candles_at(list(range(40)))
    extended = extend_with_continuation(real, 100, seed=3)
    assert extended.synthetic is True
    assert "40 real bars + 60 seeded continuation (seed=3)" in extended.source
    key = CandleKey("synthetic-ext", "BTC/USD", "1h")
    store = CandleStore(tmp_path)
    store.save(Candles.from_frame(extended.to_frame(), key, synthetic=True, source=extended.source))
    assert store.list()[0].synthetic is True
    # nothing invented, nothing labelled
    assert extend_with_continuation(real, 40, seed=3).synthetic is False


def test_write_parquet_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    frame = candles_at(list(range(3))).to_frame()
    path = tmp_path / KEY.filename
    write_parquet(path, frame, synthetic=False, source="x")
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY.filename]
    assert pq.read_table(path).column_names == list(COLUMNS)
