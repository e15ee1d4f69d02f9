"""Seeded synthetic candles, for tests and for benchmarks that need more bars than exist.

Everything made here is labelled ``synthetic=True`` with a ``source`` that says how (seed
included), because a backtest result on invented prices must never be mistaken for one on
market history. Both generators are fully vectorised: a million bars take well under a second.

Timestamps are bar open times in ms UTC on the timeframe grid; prices are quote per base.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from nettrace.market.candles import CandleKey, Candles, timeframe_ms
from nettrace.market.validation import grid_offset_ms

#: 2024-01-01T00:00:00Z, a Monday, so it is on every timeframe's grid including weekly.
DEFAULT_START_MS = 1_704_067_200_000
_T = TypeVar("_T", bound=np.generic)
_YEAR_MS = 365 * 86_400_000
#: Bootstrap block length in bars: long enough to keep volatility clusters, short enough to mix.
DEFAULT_BLOCK_BARS = 288


def synthetic_candles(
    key: CandleKey,
    n: int,
    seed: int,
    *,
    start_ms: int = DEFAULT_START_MS,
    start_price: float = 100.0,
    annual_volatility: float = 0.8,
    annual_drift: float = 0.0,
) -> Candles:
    """``n`` bars of geometric Brownian motion with wicks and volume; same seed, same bars.

    Each bar opens at the previous close; wicks extend beyond the body by a half-normal
    fraction of the bar's volatility; volume is log-normal and rises with the size of the
    move, as it does in real markets. The defaults (80 % a year) suit crypto majors.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if start_price <= 0 or annual_volatility < 0:
        raise ValueError("start_price must be positive and annual_volatility non-negative")
    tf = timeframe_ms(key.timeframe)
    _require_on_grid(start_ms, key.timeframe)
    rng = np.random.default_rng(seed)
    dt = tf / _YEAR_MS
    sigma = annual_volatility * np.sqrt(dt)
    mu = (annual_drift - 0.5 * annual_volatility**2) * dt
    returns = rng.normal(mu, sigma, n)
    close = start_price * np.exp(np.cumsum(returns))
    open_ = np.empty(n)
    open_[0] = start_price
    open_[1:] = close[:-1]
    wick_scale = 0.5 * sigma
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, wick_scale, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, wick_scale, n)))
    move = np.abs(returns - mu) / sigma if sigma > 0 else np.zeros(n)
    volume = 100.0 * rng.lognormal(0.0, 0.5, n) * (1.0 + move)
    if not (np.isfinite(close).all() and (low > 0).all() and np.isfinite(high).all()):
        raise ValueError(
            f"{n:,} bars at {annual_volatility:.0%} a year drift the price out of float range; "
            "use fewer bars or a lower volatility"
        )
    return Candles(
        key=key,
        timestamp=start_ms + tf * np.arange(n, dtype=np.int64),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        synthetic=True,
        source=f"synthetic (seed={seed})",
    )


def extend_with_continuation(
    real: Candles, n_total: int, seed: int, *, block_bars: int = DEFAULT_BLOCK_BARS
) -> Candles:
    """All of ``real`` followed by a seeded continuation up to ``n_total`` bars.

    The continuation is a block bootstrap of the real bars: blocks of consecutive log returns
    (so volatility clustering survives) with each source bar's open/high/low relative to its
    close and its volume. Returns are demeaned first: compounding the sample's drift over many
    times its length would invent a trend the market never showed. Returns across a gap in the
    real data are left out, since they span more than one bar. If ``n_total`` is not above
    ``len(real)`` the real candles come back unchanged (and unlabelled: nothing was invented).
    """
    n_real = len(real)
    if n_real < 2:
        raise ValueError("need at least 2 real bars to continue from")
    extra = n_total - n_real
    if extra <= 0:
        return real
    tf = timeframe_ms(real.key.timeframe)
    pool = np.flatnonzero(np.diff(real.timestamp) == tf) + 1  # bars whose return is one step
    if len(pool) < 1:
        raise ValueError("the real bars have no consecutive pair to take returns from")
    rng = np.random.default_rng(seed)
    block = max(1, min(block_bars, len(pool)))
    n_blocks = -(-extra // block)
    starts = rng.integers(0, len(pool) - block + 1, n_blocks)
    picks = pool[(starts[:, None] + np.arange(block)[None, :]).ravel()[:extra]]

    log_returns = np.log(real.close[pool] / real.close[pool - 1])
    drift = float(log_returns.mean())
    step = np.log(real.close[picks] / real.close[picks - 1]) - drift
    close = float(real.close[-1]) * np.exp(np.cumsum(step))
    ref = real.close[picks]
    open_ = close * (real.open[picks] / ref)
    high = close * (real.high[picks] / ref)
    low = close * (real.low[picks] / ref)
    timestamp = int(real.timestamp[-1]) + tf * np.arange(1, extra + 1, dtype=np.int64)
    label = real.source or real.key.filename
    return Candles(
        key=real.key,
        timestamp=_join(real.timestamp, timestamp),
        open=_join(real.open, open_),
        high=_join(real.high, high),
        low=_join(real.low, low),
        close=_join(real.close, close),
        volume=_join(real.volume, real.volume[picks]),
        synthetic=True,
        source=(f"{label}: {n_real:,} real bars + {extra:,} seeded continuation (seed={seed})"),
    )


def _join(head: npt.NDArray[_T], tail: npt.NDArray[_T]) -> npt.NDArray[_T]:
    return np.ascontiguousarray(np.concatenate((head, tail)))


def _require_on_grid(start_ms: int, timeframe: str) -> None:
    tf = timeframe_ms(timeframe)
    if (start_ms - grid_offset_ms(timeframe)) % tf:
        raise ValueError(f"start_ms {start_ms} is not a {timeframe} bar open time")
