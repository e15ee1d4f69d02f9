"""Checks and honest repairs for OHLCV frames before anything trades on them.

A backtest on a bar with ``high < low`` or a NaN close produces numbers that look fine and mean
nothing, so every load validates and an error stops it. Gaps are the exception: real exchange
history has outages, so a gap is a warning and is never filled with invented bars.

All checks are vectorised numpy over whole columns (no per-row Python) so that validating a
million bars costs milliseconds. Timestamps are bar open times in integer ms, UTC; prices are
quote per base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, SupportsFloat

import numpy as np
import numpy.typing as npt
import pandas as pd

from nettrace.market.candles import COLUMNS, timeframe_ms

Severity = Literal["error", "warning"]
PRICE_COLUMNS = ("open", "high", "low", "close")

#: Bar open times before this are almost surely seconds, not milliseconds (1973-03-03).
_MIN_PLAUSIBLE_MS = 100_000_000_000
#: ... and after this (2096-10-02) almost surely microseconds or garbage.
_MAX_PLAUSIBLE_MS = 4_000_000_000_000
#: 1970-01-01 was a Thursday; exchanges open weekly bars on Monday, four days later.
_WEEK_OFFSET_MS = 4 * 86_400_000


@dataclass(frozen=True, slots=True)
class DataProblem:
    """One kind of defect found in a frame: where it first occurs and how many rows share it.

    One problem per kind (not per row) keeps a report on a million bad rows readable and cheap.
    """

    source: str
    severity: Severity
    check: str
    message: str
    row: int | None = None
    timestamp_ms: int | None = None
    count: int = 1

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def describe(self) -> str:
        """One line: ``source: row 17 (2024-01-01T01:25:00Z): high 99.5 < low 100.1``."""
        where = ""
        if self.row is not None:
            where = f" row {self.row}"
            if self.timestamp_ms is not None:
                where += f" ({iso_utc(self.timestamp_ms)})"
            where += ":"
        more = ""
        if self.count > 1 and self.row is not None:
            others = self.count - 1
            more = f" (and {others:,} more row{'s' if others != 1 else ''} like it)"
        return f"{self.source}:{where} {self.message}{more}"


class CandleDataError(ValueError):
    """Candle data that must not be used as it is. The message is one line naming the file, the
    first bad row (position and time) and the problem; ``problems`` holds every error found."""

    def __init__(self, message: str, problems: Sequence[DataProblem] = ()) -> None:
        super().__init__(message)
        self.problems: tuple[DataProblem, ...] = tuple(problems)

    @classmethod
    def from_problems(cls, problems: Sequence[DataProblem]) -> CandleDataError:
        # Whole-column problems first, then by the row where each kind first occurs, so the
        # message names the first bad row in the file.
        errors = sorted(
            (p for p in problems if p.is_error), key=lambda p: (p.row is not None, p.row or 0)
        )
        if not errors:
            raise ValueError("CandleDataError needs at least one error-level problem")
        message = errors[0].describe()
        if len(errors) > 1:
            message += f"; {len(errors) - 1} more kind(s) of error"
        return cls(message, errors)


def iso_utc(timestamp_ms: int) -> str:
    """``2024-01-01T01:25:00Z`` (seconds precision; milliseconds shown only when non-zero)."""
    moment = datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if timestamp_ms % 1000:
        text += f".{timestamp_ms % 1000:03d}"
    return text + "Z"


def grid_offset_ms(timeframe: str) -> int:
    """Where the timeframe's grid starts relative to the epoch (weekly bars open on Monday)."""
    return _WEEK_OFFSET_MS if timeframe == "1w" else 0


def gap_stats(timestamp: npt.NDArray[np.int64], timeframe: str) -> tuple[int, int]:
    """``(gaps, missing_bars)`` in sorted, unique timestamps: steps with room for at least one
    whole bar between them (a misaligned step of one bar and a bit is not a gap)."""
    if len(timestamp) < 2:
        return 0, 0
    tf = timeframe_ms(timeframe)
    steps = np.diff(timestamp)
    long_steps = steps[steps >= 2 * tf]
    return len(long_steps), int(np.sum(long_steps // tf - 1))


def raise_on_errors(problems: Sequence[DataProblem]) -> None:
    """Raise ``CandleDataError`` if any problem is an error; warnings pass."""
    if any(p.is_error for p in problems):
        raise CandleDataError.from_problems(problems)


def validate_frame(frame: pd.DataFrame, source: str, timeframe: str | None) -> list[DataProblem]:
    """Every defect in ``frame`` (columns ``COLUMNS``), errors first in a fixed order.

    ``source`` names the data in messages (usually the file). With ``timeframe`` the grid is
    checked too: alignment (error) and gaps (warning). Positions are 0-based row numbers of
    ``frame`` as given, so they point at the line a user can find in the file.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        return [
            DataProblem(
                source,
                "error",
                "missing-column",
                f"missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})",
            )
        ]
    problems: list[DataProblem] = []
    columns: dict[str, npt.NDArray[np.float64]] = {}
    for name in COLUMNS:
        values, bad_row = _numeric(frame[name])
        if values is None:
            problems.append(
                DataProblem(
                    source,
                    "error",
                    "not-numeric",
                    f"column {name} is not numeric (dtype {frame[name].dtype})",
                )
            )
        elif bad_row is not None:
            count = int(np.sum(~frame[name].isna().to_numpy() & np.isnan(values)))
            problems.append(
                DataProblem(
                    source,
                    "error",
                    "not-numeric",
                    f"{name} {str(frame[name].iloc[bad_row])[:40]!r} is not a number",
                    row=bad_row,
                    count=count,
                )
            )
        else:
            columns[name] = values
    if problems:
        return problems
    ts_float = columns["timestamp"]
    ts_finite = np.isfinite(ts_float)
    ts = np.where(ts_finite, ts_float, 0).astype(np.int64)

    def problem(check: str, mask: npt.NDArray[np.bool_], describe: str | None = None) -> None:
        """Record ``check`` if any row matches ``mask``; the message describes the first row."""
        rows = np.flatnonzero(mask)
        if len(rows) == 0:
            return
        first = int(rows[0])
        stamp = int(ts[first]) if ts_finite[first] else None
        problems.append(
            DataProblem(
                source,
                "error",
                check,
                describe if describe is not None else _describe_row(check, columns, first),
                row=first,
                timestamp_ms=stamp,
                count=len(rows),
            )
        )

    for name in COLUMNS:
        values = columns[name]
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.argmax(bad))
            problem(f"not-finite-{name}", bad, f"{name} is {_fmt(values[first])}")
    if ts_finite.all():  # a NaN/inf timestamp is already reported above
        fractional = ts_float != np.floor(ts_float)
        problem("fractional-timestamp", fractional)

    plausible = (ts >= _MIN_PLAUSIBLE_MS) & (ts <= _MAX_PLAUSIBLE_MS)
    problem("timestamp-range", ts_finite & ~plausible)

    for name in PRICE_COLUMNS:
        problem(f"non-positive-{name}", columns[name] <= 0)
    high, low, open_, close = columns["high"], columns["low"], columns["open"], columns["close"]
    problem("high-below-low", high < low)
    problem("high-below-body", (high >= low) & (high < np.maximum(open_, close)))
    problem("low-above-body", (high >= low) & (low > np.minimum(open_, close)))
    problem("negative-volume", columns["volume"] < 0)

    valid_ts = ts[ts_finite]
    positions = np.flatnonzero(ts_finite)
    steps = np.diff(valid_ts)
    unsorted = np.zeros(len(ts), dtype=bool)
    unsorted[positions[1:][steps < 0]] = True
    problem("unsorted", unsorted)

    if np.all(steps > 0):  # the usual case: skip the sort, there can be no duplicates
        sorted_ts = valid_ts
    else:
        order = np.argsort(valid_ts, kind="stable")
        sorted_ts = valid_ts[order]
        duplicate = np.zeros(len(ts), dtype=bool)
        duplicate[positions[order[1:][sorted_ts[1:] == sorted_ts[:-1]]]] = True
        problem("duplicate-timestamp", duplicate)

    if timeframe is not None:
        tf = timeframe_ms(timeframe)
        misaligned = ts_finite & ((ts - grid_offset_ms(timeframe)) % tf != 0)
        problem(
            "misaligned",
            misaligned,
            None if not misaligned.any() else _misaligned_message(ts, misaligned, timeframe),
        )
        unique_ts = sorted_ts[np.concatenate(([True], sorted_ts[1:] != sorted_ts[:-1]))]
        gaps, missing_bars = gap_stats(unique_ts, timeframe)
        if gaps:
            problems.append(_gap_warning(source, unique_ts, tf, gaps, missing_bars))
    problems.sort(key=lambda p: not p.is_error)
    return problems


def repair_frame(frame: pd.DataFrame, timeframe: str | None) -> tuple[pd.DataFrame, list[str]]:
    """Fix what can be fixed without inventing prices, and say in sentences what changed.

    Rows that cannot be trusted (NaN/inf, a price <= 0, negative volume) are dropped rather
    than patched, because any patched value would be a guess. Duplicates keep the last row in
    file order (the later write is usually the corrected one). Misaligned timestamps and gaps
    are left alone: moving a bar in time or filling a gap would fabricate history.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise CandleDataError(
            f"cannot repair: missing column(s) {', '.join(missing)} (need {', '.join(COLUMNS)})"
        )
    notes: list[str] = []
    data = {
        name: pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64) for name in COLUMNS
    }
    keep = np.ones(len(frame), dtype=bool)

    def drop(mask: npt.NDArray[np.bool_], why: str) -> None:
        nonlocal keep
        hits = int(np.sum(mask & keep))
        if hits:
            notes.append(f"dropped {_rows(hits)} {why}")
            keep &= ~mask

    finite = np.ones(len(frame), dtype=bool)
    for name in COLUMNS:
        finite &= np.isfinite(data[name])
    drop(~finite, "with NaN, infinite or non-numeric values")
    prices_ok = np.ones(len(frame), dtype=bool)
    for name in PRICE_COLUMNS:
        prices_ok &= ~(data[name] <= 0)
    drop(~prices_ok, "with a price <= 0")
    drop(data["volume"] < 0, "with negative volume")

    cols = {name: values[keep] for name, values in data.items()}
    ts_float = cols["timestamp"]
    fractional = ts_float != np.floor(ts_float)
    ts = ts_float.astype(np.int64)
    out_of_order = int(np.sum(np.diff(ts) < 0))
    order = np.argsort(ts, kind="stable")
    if out_of_order:
        verb = "was" if out_of_order == 1 else "were"
        notes.append(f"sorted rows by timestamp ({_rows(out_of_order)} {verb} out of order)")
    cols = {name: values[order] for name, values in cols.items()}
    ts = ts[order]

    last_of_run = np.concatenate((ts[1:] != ts[:-1], [True])) if len(ts) else np.ones(0, bool)
    dupes = int(len(ts) - np.sum(last_of_run))
    if dupes:
        notes.append(f"dropped {_rows(dupes)} with a duplicate timestamp (kept the last of each)")
        cols = {name: values[last_of_run] for name, values in cols.items()}
        ts = ts[last_of_run]

    prices = np.vstack([cols[name] for name in PRICE_COLUMNS])
    new_high, new_low = prices.max(axis=0), prices.min(axis=0)
    changed = int(np.sum((new_high != cols["high"]) | (new_low != cols["low"])))
    if changed:
        notes.append(
            f"widened high/low to cover open and close in {_rows(changed)} "
            "(high = max of OHLC, low = min of OHLC)"
        )
    cols["high"], cols["low"] = new_high, new_low

    repaired = pd.DataFrame({"timestamp": ts, **{n: cols[n] for n in COLUMNS[1:]}})
    if fractional[order].any():
        notes.append("left fractional timestamps as they are (not repairable)")
    if timeframe is not None:
        tf = timeframe_ms(timeframe)
        misaligned = int(np.sum((ts - grid_offset_ms(timeframe)) % tf != 0))
        if misaligned:
            notes.append(
                f"left {_rows(misaligned)} not aligned to the {timeframe} grid as they are "
                "(moving bars in time would fabricate history; is the timeframe right?)"
            )
        gaps, missing_bars = gap_stats(ts, timeframe)
        if gaps:
            notes.append(
                f"left {gaps:,} gap{'s' if gaps != 1 else ''} ({missing_bars:,} missing "
                f"{timeframe} bars) unfilled: gaps are never filled with invented bars"
            )
    return repaired, notes


def _numeric(series: pd.Series) -> tuple[npt.NDArray[np.float64] | None, int | None]:
    """The column as float64 and the first row holding text that is not a number.

    Numeric dtypes convert as they are; text columns (a CSV with one bad cell) are parsed
    value by value so the bad row can be named. ``(None, None)`` for other dtypes (dates).
    """
    if series.dtype.kind in "iuf":
        return series.to_numpy(dtype=np.float64, na_value=np.nan), None
    if series.dtype.kind not in "OUS" and not isinstance(series.dtype, pd.StringDtype):
        return None, None
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    unparsed = np.isnan(values) & ~series.isna().to_numpy()
    return values, (int(np.argmax(unparsed)) if unparsed.any() else None)


def _describe_row(check: str, cols: dict[str, npt.NDArray[np.float64]], row: int) -> str:
    o, h, lo, c = (float(cols[n][row]) for n in PRICE_COLUMNS)
    ts = cols["timestamp"][row]
    if check.startswith("non-positive-"):
        name = check.removeprefix("non-positive-")
        return f"{name} {_fmt(cols[name][row])} is not positive"
    messages = {
        "high-below-low": f"high {_fmt(h)} < low {_fmt(lo)}",
        "high-below-body": f"high {_fmt(h)} < max(open {_fmt(o)}, close {_fmt(c)})",
        "low-above-body": f"low {_fmt(lo)} > min(open {_fmt(o)}, close {_fmt(c)})",
        "negative-volume": f"volume {_fmt(cols['volume'][row])} is negative",
        "unsorted": "timestamp is earlier than the row before it (rows are not sorted)",
        "duplicate-timestamp": "timestamp appears more than once",
        "fractional-timestamp": f"timestamp {_fmt(ts)} is not a whole number of milliseconds",
        "timestamp-range": (
            f"timestamp {int(ts)} is not milliseconds since 1970 in a plausible range "
            "(seconds or microseconds?)"
        ),
    }
    return messages[check]


def _misaligned_message(
    ts: npt.NDArray[np.int64], mask: npt.NDArray[np.bool_], timeframe: str
) -> str:
    first = int(np.argmax(mask))
    off = int((ts[first] - grid_offset_ms(timeframe)) % timeframe_ms(timeframe))
    return (
        f"timestamp is not on the {timeframe} grid ({off:,} ms past a bar open; wrong timeframe?)"
    )


def _gap_warning(
    source: str, unique_ts: npt.NDArray[np.int64], tf: int, gaps: int, missing: int
) -> DataProblem:
    steps = np.diff(unique_ts)
    widest = int(np.argmax(steps))
    return DataProblem(
        source,
        "warning",
        "gap",
        f"{gaps:,} gap{'s' if gaps != 1 else ''}, {missing:,} missing bars; largest "
        f"{int(steps[widest] // tf - 1):,} bars from {iso_utc(int(unique_ts[widest]))} "
        f"to {iso_utc(int(unique_ts[widest + 1]))} (gaps are kept, never filled)",
        count=gaps,
    )


def _fmt(value: SupportsFloat) -> str:
    """Shortest round-trip text for a number so a message shows the exact stored value."""
    number = float(value)
    if np.isnan(number):
        return "NaN"
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number)) if abs(number) >= 1e6 else repr(number)
    return repr(number)


def _rows(count: int) -> str:
    return f"{count:,} row{'s' if count != 1 else ''}"
