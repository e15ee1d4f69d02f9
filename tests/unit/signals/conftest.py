"""Fixtures for the signal tests: a slice of real candles and a builder of synthetic ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from nettrace.market.candles import CandleKey, Candles

REAL_FILE = "binance_ETH-BTC_5m.parquet"
REAL_BARS = 6_000

CandleBuilder = Callable[..., Candles]


@pytest.fixture(scope="session")
def real_candles(shared_data: Path) -> Candles:
    """The first 6,000 real 5-minute ETH/BTC bars (prices near 0.03 BTC)."""
    path = shared_data / REAL_FILE
    candles = Candles.from_frame(pd.read_parquet(path), CandleKey.from_filename(path.name))
    return candles.slice(0, REAL_BARS)


@pytest.fixture(scope="session")
def cuts() -> list[int]:
    """Seeded random truncation points inside the real slice, past every warm-up."""
    rng = np.random.default_rng(20240601)
    return sorted(int(c) for c in rng.integers(300, REAL_BARS - 1, size=5))


def _build(
    close: npt.ArrayLike,
    volume: npt.ArrayLike | None = None,
    open_: npt.ArrayLike | None = None,
    wick: float = 0.0005,
) -> Candles:
    """Candles around a close path: open = previous close, wicks ``wick`` beyond the body."""
    c = np.asarray(close, dtype=np.float64)
    o = np.concatenate(([c[0]], c[:-1])) if open_ is None else np.asarray(open_, dtype=np.float64)
    v = np.ones_like(c) if volume is None else np.asarray(volume, dtype=np.float64)
    return Candles(
        key=CandleKey("binance", "SYN/USD", "5m"),
        timestamp=np.arange(len(c), dtype=np.int64) * 300_000,
        open=o,
        high=np.maximum(o, c) * (1.0 + wick),
        low=np.minimum(o, c) * (1.0 - wick),
        close=c,
        volume=v,
        synthetic=True,
    )


@pytest.fixture(scope="session")
def build_candles() -> CandleBuilder:
    """``build_candles(close, volume=None, open_=None, wick=0.0005)`` -> synthetic Candles."""
    return _build


def drift_path(n: int, drift: float, noise: float, seed: int, start: float = 100.0) -> np.ndarray:
    """A close path with log-returns ~ N(drift, noise), seeded."""
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(drift, noise, n)))


@pytest.fixture(scope="session")
def path() -> Callable[..., np.ndarray]:
    """``path(n, drift, noise, seed, start=100.0)`` -> a seeded geometric random-walk close."""
    return drift_path
