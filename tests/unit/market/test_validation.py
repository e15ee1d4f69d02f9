"""Every kind of bad bar is refused with the file, the row and the problem; repair says what it
changed and changes exactly that."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nettrace.market.candles import TIMEFRAME_MS
from nettrace.market.validation import (
    CandleDataError,
    DataProblem,
    iso_utc,
    raise_on_errors,
    repair_frame,
    validate_frame,
)

TF = "5m"
STEP = TIMEFRAME_MS[TF]
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
SOURCE = "data/binance_BTC-USDT_5m.csv"


def good_frame(n: int = 8) -> pd.DataFrame:
    close = 100.0 + np.arange(n, dtype=np.float64)
    return pd.DataFrame(
        {
            "timestamp": T0 + STEP * np.arange(n, dtype=np.int64),
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.5,
            "close": close,
            "volume": 10.0 + np.arange(n, dtype=np.float64),
        }
    )


def errors(frame: pd.DataFrame, timeframe: str | None = TF) -> list[DataProblem]:
    return [p for p in validate_frame(frame, SOURCE, timeframe) if p.is_error]


def the_error(frame: pd.DataFrame, timeframe: str | None = TF) -> CandleDataError:
    with pytest.raises(CandleDataError) as info:
        raise_on_errors(validate_frame(frame, SOURCE, timeframe))
    return info.value


def test_a_clean_frame_has_no_problem_at_all() -> None:
    assert validate_frame(good_frame(), SOURCE, TF) == []


def _set(frame: pd.DataFrame, row: int, **values: float) -> pd.DataFrame:
    out = frame.copy()
    for name, value in values.items():
        out.loc[row, name] = value
    return out


BAD_CASES = [
    # (check, how to break row 3 of a good frame, words the message must contain)
    ("not-finite-close", {"close": np.nan}, "close is NaN"),
    ("not-finite-open", {"open": np.inf}, "open is inf"),
    ("not-finite-volume", {"volume": -np.inf}, "volume is -inf"),
    ("non-positive-low", {"low": 0.0}, "low 0.0 is not positive"),
    ("non-positive-open", {"open": -2.0, "low": -3.0}, "open -2.0 is not positive"),
    ("high-below-low", {"high": 90.0, "low": 95.0}, "high 90.0 < low 95.0"),
    ("high-below-body", {"high": 102.9}, "< max(open"),
    ("low-above-body", {"low": 102.9}, "> min(open"),
    ("negative-volume", {"volume": -1.0}, "volume -1.0 is negative"),
]


@pytest.mark.parametrize(("check", "change", "words"), BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_each_bad_value_names_file_row_time_and_problem(
    check: str, change: dict[str, float], words: str
) -> None:
    frame = _set(good_frame(), 3, **change)
    error = the_error(frame)
    assert next(p.check for p in error.problems) == check
    problem = error.problems[0]
    assert (problem.row, problem.timestamp_ms) == (3, T0 + 3 * STEP)
    message = str(error)
    assert message.startswith(f"{SOURCE}: row 3 ({iso_utc(T0 + 3 * STEP)}):")
    assert words in message
    assert "\n" not in message


def test_unsorted_rows_point_at_the_first_row_that_goes_back_in_time() -> None:
    frame = good_frame()
    order = [0, 1, 2, 4, 3, 5, 6, 7]
    frame = frame.iloc[order].reset_index(drop=True)
    error = the_error(frame)
    assert error.problems[0].check == "unsorted"
    assert error.problems[0].row == 4
    assert str(error).startswith(f"{SOURCE}: row 4 (2024-01-01T00:15:00Z): timestamp is earlier")


def test_duplicate_timestamps_name_the_repeated_row_and_count_them() -> None:
    frame = good_frame()
    frame.loc[5, "timestamp"] = frame.loc[4, "timestamp"]
    frame.loc[7, "timestamp"] = frame.loc[6, "timestamp"]
    (problem,) = errors(frame)
    assert problem.check == "duplicate-timestamp"
    assert problem.row == 5
    assert problem.count == 2
    assert "timestamp appears more than once (and 1 more row like it)" in problem.describe()


def test_a_gap_is_a_warning_that_says_where_and_never_an_error() -> None:
    frame = good_frame(10).drop(index=[4, 5, 6]).reset_index(drop=True)
    problems = validate_frame(frame, SOURCE, TF)
    assert [(p.check, p.severity) for p in problems] == [("gap", "warning")]
    text = problems[0].describe()
    assert "1 gap, 3 missing bars" in text
    assert f"from {iso_utc(T0 + 3 * STEP)} to {iso_utc(T0 + 7 * STEP)}" in text
    raise_on_errors(problems)  # warnings alone pass


def test_gaps_are_not_checked_without_a_timeframe() -> None:
    frame = good_frame(10).drop(index=[4, 5]).reset_index(drop=True)
    assert validate_frame(frame, SOURCE, None) == []


def test_misaligned_timestamp_is_an_error_that_suggests_the_timeframe() -> None:
    frame = good_frame()
    frame.loc[2:, "timestamp"] += 60_000
    (problem,) = errors(frame)
    assert problem.check == "misaligned"
    assert problem.row == 2
    assert "not on the 5m grid (60,000 ms past a bar open; wrong timeframe?)" in problem.message


def test_seconds_instead_of_milliseconds_is_caught() -> None:
    frame = good_frame()
    frame["timestamp"] //= 1000
    problem = errors(frame, None)[0]
    assert problem.check == "timestamp-range"
    assert problem.row == 0
    assert "seconds or microseconds?" in problem.message


def test_missing_columns_are_named() -> None:
    frame = good_frame().drop(columns=["high", "volume"])
    error = the_error(frame)
    assert str(error) == (
        f"{SOURCE}: missing column(s) high, volume (need timestamp, open, high, low, close, volume)"
    )


def test_a_text_cell_in_a_price_column_names_its_row_and_value() -> None:
    frame = good_frame().astype({"close": object})
    frame.loc[6, "close"] = "n/a"
    error = the_error(frame)
    assert error.problems[0].check == "not-numeric"
    assert error.problems[0].row == 6
    assert str(error) == f"{SOURCE}: row 6: close 'n/a' is not a number"


def test_a_column_of_the_wrong_type_is_named_with_its_dtype() -> None:
    frame = good_frame()
    frame["volume"] = pd.date_range("2024-01-01", periods=len(frame), freq="5min")
    error = the_error(frame)
    assert str(error).startswith(f"{SOURCE}: column volume is not numeric (dtype datetime64[")


def test_several_kinds_are_all_kept_and_the_message_counts_the_rest() -> None:
    frame = _set(good_frame(), 2, volume=-5.0)
    frame = _set(frame, 6, close=np.nan)
    error = the_error(frame)
    assert {p.check for p in error.problems} == {"not-finite-close", "negative-volume"}
    assert str(error).endswith("; 1 more kind(s) of error")


# --- repair ------------------------------------------------------------------------------


def test_repair_drops_exactly_the_untrustworthy_rows_and_says_so() -> None:
    frame = good_frame(12)
    frame = _set(frame, 1, close=np.nan)
    frame = _set(frame, 4, low=-1.0)
    frame = _set(frame, 7, volume=-3.0)
    repaired, notes = repair_frame(frame, TF)
    assert notes[:3] == [
        "dropped 1 row with NaN, infinite or non-numeric values",
        "dropped 1 row with a price <= 0",
        "dropped 1 row with negative volume",
    ]
    expected = good_frame(12).drop(index=[1, 4, 7]).reset_index(drop=True)
    pd.testing.assert_frame_equal(repaired, expected)
    # the dropped rows leave gaps, and repair says it left them unfilled
    assert notes[3] == (
        "left 3 gaps (3 missing 5m bars) unfilled: gaps are never filled with invented bars"
    )
    assert not any(p.is_error for p in validate_frame(repaired, SOURCE, TF))


def test_repair_sorts_and_keeps_the_last_duplicate_in_file_order() -> None:
    frame = good_frame(6)
    later = frame.loc[[2]].assign(close=102.25, volume=99.0)
    shuffled = pd.concat([frame.iloc[[0, 3, 1, 2, 4, 5]], later], ignore_index=True)
    repaired, notes = repair_frame(shuffled, TF)
    assert notes == [
        "sorted rows by timestamp (2 rows were out of order)",
        "dropped 1 row with a duplicate timestamp (kept the last of each)",
    ]
    expected = frame.copy()
    expected.loc[2, ["close", "volume"]] = [102.25, 99.0]
    pd.testing.assert_frame_equal(repaired, expected)


def test_repair_widens_high_and_low_to_the_body_and_touches_no_other_row() -> None:
    frame = good_frame(6)
    frame = _set(frame, 1, high=90.0, low=95.0)  # high < low
    frame = _set(frame, 3, high=102.0)  # below close 103
    repaired, notes = repair_frame(frame, TF)
    assert notes == [
        "widened high/low to cover open and close in 2 rows (high = max of OHLC, low = min of OHLC)"
    ]
    assert list(np.flatnonzero((repaired != frame).any(axis=1))) == [1, 3]
    assert (repaired.loc[1, "high"], repaired.loc[1, "low"]) == (101.0, 90.0)
    assert (repaired.loc[3, "high"], repaired.loc[3, "low"]) == (103.0, 101.5)
    assert not any(p.is_error for p in validate_frame(repaired, SOURCE, TF))


def test_repair_of_a_clean_frame_changes_nothing_and_says_nothing() -> None:
    repaired, notes = repair_frame(good_frame(), TF)
    assert notes == []
    pd.testing.assert_frame_equal(repaired, good_frame())


def test_repair_never_moves_misaligned_bars_and_says_it_left_them() -> None:
    frame = good_frame()
    frame.loc[5, "timestamp"] += 1_000
    repaired, notes = repair_frame(frame, TF)
    assert notes == [
        "left 1 row not aligned to the 5m grid as they are "
        "(moving bars in time would fabricate history; is the timeframe right?)"
    ]
    assert repaired["timestamp"].tolist() == frame["timestamp"].tolist()
    assert errors(repaired)[0].check == "misaligned"


def test_repair_parses_text_cells_and_drops_those_that_are_not_numbers() -> None:
    frame = good_frame().astype({"open": object})
    frame.loc[2, "open"] = "oops"
    frame.loc[3, "open"] = "103.5"  # text, but a number: kept (it is within high/low)
    repaired, notes = repair_frame(frame, TF)
    assert notes[0] == "dropped 1 row with NaN, infinite or non-numeric values"
    assert repaired["timestamp"].tolist() == good_frame().drop(index=2)["timestamp"].tolist()
    assert repaired.loc[2, "open"] == 103.5


def test_repair_refuses_a_frame_without_the_columns() -> None:
    with pytest.raises(CandleDataError, match="cannot repair: missing column"):
        repair_frame(good_frame().drop(columns=["close"]), TF)
