"""OHLCV candles as column arrays: the one shape every backtest, generator and chart reads.

Columns are numpy arrays, not a DataFrame, because the backtest kernel and the signal
generators work on arrays and a DataFrame per access costs more than the work itself.
Timestamps are bar *open* times in integer milliseconds since the epoch, UTC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Timeframe codes and their length in milliseconds (ccxt's spelling).
TIMEFRAME_MS: dict[str, int] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
_FILENAME = re.compile(
    r"^(?P<exchange>[a-z0-9-]+)_(?P<base>[A-Za-z0-9]+)-(?P<quote>[A-Za-z0-9]+)_(?P<tf>\d+[mhdw])$"
)


def timeframe_ms(timeframe: str) -> int:
    """Length of ``timeframe`` in milliseconds; ``ValueError`` naming the valid codes if unknown."""
    try:
        return TIMEFRAME_MS[timeframe]
    except KeyError:
        raise ValueError(
            f"unknown timeframe {timeframe!r} (use one of {', '.join(TIMEFRAME_MS)})"
        ) from None


def infer_timeframe(timestamps: npt.ArrayLike) -> str:
    """The timeframe code of bars opening at ``timestamps`` (ms): their median spacing.

    The median, not the smallest step, so gaps (missing bars) and a stray duplicate or
    misordered row do not change the answer. ``ValueError`` if there are fewer than two bars
    or the spacing is not one of ``TIMEFRAME_MS``.
    """
    stamps = np.asarray(timestamps, dtype=np.float64)
    stamps = np.sort(stamps[np.isfinite(stamps)])
    steps = np.diff(stamps)
    steps = steps[steps > 0]
    if len(steps) == 0:
        raise ValueError("fewer than two distinct bar times, so no timeframe can be inferred")
    median = float(np.median(steps))
    for code, length in TIMEFRAME_MS.items():
        if median == length:
            return code
    raise ValueError(
        f"bars are {median / 60_000:g} minutes apart (median), which is no timeframe "
        f"({', '.join(TIMEFRAME_MS)})"
    )


@dataclass(frozen=True, slots=True)
class CandleKey:
    """Which candles: exchange id (ccxt), pair in ccxt form (``BTC/USD``) and timeframe."""

    exchange: str
    pair: str
    timeframe: str

    def __post_init__(self) -> None:
        timeframe_ms(self.timeframe)
        if self.pair.count("/") != 1 or not all(self.pair.split("/")):
            raise ValueError(f"pair {self.pair!r} must look like BASE/QUOTE, e.g. BTC/USD")

    @property
    def filename(self) -> str:
        """The Parquet file name used by the store and ../shared/data: ``ex_BASE-QUOTE_tf``."""
        base, quote = self.pair.split("/")
        return f"{self.exchange}_{base}-{quote}_{self.timeframe}.parquet"

    @classmethod
    def from_filename(cls, name: str) -> CandleKey:
        stem = name.removesuffix(".parquet")
        match = _FILENAME.match(stem)
        if match is None:
            raise ValueError(f"file name {name!r} is not EXCHANGE_BASE-QUOTE_TIMEFRAME.parquet")
        return cls(
            exchange=match["exchange"],
            pair=f"{match['base']}/{match['quote']}",
            timeframe=match["tf"],
        )

    def __str__(self) -> str:
        return f"{self.exchange} {self.pair} {self.timeframe}"


@dataclass(frozen=True, eq=False)
class Candles:
    """A contiguous run of candles for one key. Arrays are read-only views; do not mutate.

    ``synthetic`` marks generated data; every report and export that shows these candles must
    say so.
    """

    key: CandleKey
    timestamp: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    synthetic: bool = False
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        n = len(self.timestamp)
        for name in COLUMNS[1:]:
            if len(getattr(self, name)) != n:
                raise ValueError(f"column {name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.timestamp)

    @classmethod
    def from_frame(
        cls, frame: pd.DataFrame, key: CandleKey, *, synthetic: bool = False, source: str = ""
    ) -> Candles:
        """Build from a frame with the ``COLUMNS`` (timestamp in ms). Does not validate."""
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"candles are missing column(s): {', '.join(missing)}")
        return cls(
            key=key,
            timestamp=np.ascontiguousarray(frame["timestamp"].to_numpy(dtype=np.int64)),
            open=np.ascontiguousarray(frame["open"].to_numpy(dtype=np.float64)),
            high=np.ascontiguousarray(frame["high"].to_numpy(dtype=np.float64)),
            low=np.ascontiguousarray(frame["low"].to_numpy(dtype=np.float64)),
            close=np.ascontiguousarray(frame["close"].to_numpy(dtype=np.float64)),
            volume=np.ascontiguousarray(frame["volume"].to_numpy(dtype=np.float64)),
            synthetic=synthetic,
            source=source,
        )

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: getattr(self, name) for name in COLUMNS})

    def slice(self, start: int, stop: int) -> Candles:
        """Rows ``start:stop`` (positions, not timestamps)."""
        return Candles(
            key=self.key,
            timestamp=self.timestamp[start:stop],
            open=self.open[start:stop],
            high=self.high[start:stop],
            low=self.low[start:stop],
            close=self.close[start:stop],
            volume=self.volume[start:stop],
            synthetic=self.synthetic,
            source=self.source,
        )

    def between(self, start_ms: int | None, end_ms: int | None) -> Candles:
        """Bars whose open time is in ``[start_ms, end_ms)``; ``None`` leaves a side open."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.timestamp, start_ms, "left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.timestamp, end_ms, "left"))
        return self.slice(lo, hi)

    def time_at(self, index: int) -> datetime:
        return datetime.fromtimestamp(int(self.timestamp[index]) / 1000, tz=UTC)
