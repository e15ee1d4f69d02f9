"""Signal 1, trend: follow the side of a fast/slow EMA cross, but only while ADX sees a trend.

An EMA cross alone flips back and forth in a range and each flip costs two maker fees; ADX
measures trend strength regardless of direction, so it filters out the flips of a sideways
market. Strength comes from ADX because a stronger trend is the better reason to follow it.

This module also owns :func:`rescaled_prices`, which the other TA-Lib-based generators use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib

from nettrace.market.candles import Candles
from nettrace.signals.base import FloatArray, GeneratorOutput

#: Prices handed to TA-Lib are expressed in basis points of the first close (about 1e4).
PRICE_SCALE = 1e4


@dataclass(frozen=True, slots=True)
class RescaledPrices:
    """open/high/low/close multiplied by one constant, so they sit near ``PRICE_SCALE``."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray


def rescaled_prices(candles: Candles) -> RescaledPrices:
    """OHLC in basis points of the first positive close, for TA-Lib.

    TA-Lib tests some intermediate sums against an *absolute* epsilon of 1e-8 (``TA_IS_ZERO``),
    so on pairs quoted in BTC (prices near 1e-5) ADX's directional movement is silently zeroed
    and ADX comes out several points wrong. Every indicator used here is scale invariant
    (ratios, crosses, z-scores), so multiplying all prices by one constant changes nothing but
    that. The constant comes from the first bar only, so truncating the series at the end never
    changes it and the no-look-ahead property is kept.
    """
    close = candles.close
    positive = np.flatnonzero(np.isfinite(close) & (close > 0))
    factor = PRICE_SCALE / float(close[positive[0]]) if positive.size else 1.0
    return RescaledPrices(
        open=candles.open * factor,
        high=candles.high * factor,
        low=candles.low * factor,
        close=close * factor,
    )


@dataclass(frozen=True)
class TrendGenerator:
    """Votes with the EMA cross while ADX is at or above ``adx_threshold``.

    Defaults suit 5-minute bars: EMA 20 vs EMA 50 (about 1.7 h vs 4 h), Wilder's ADX over 14
    bars, a trend counted from ADX 25 (the customary "trending" level). Strength is
    ``ADX / adx_full`` clipped to [0, 1], so a just-qualifying trend (ADX 25) has strength 0.5
    and ADX 50 or more is full strength.
    """

    # Not a dataclass field: the name is the generator's stable id, never a parameter.
    name = "trend"

    fast_period: int = 20
    slow_period: int = 50
    adx_period: int = 14
    adx_threshold: float = 25.0
    adx_full: float = 50.0

    def __post_init__(self) -> None:
        if not 2 <= self.fast_period < self.slow_period:
            raise ValueError("trend needs 2 <= fast_period < slow_period")
        if self.adx_period < 2:
            raise ValueError("trend needs adx_period >= 2")
        if not 0.0 <= self.adx_threshold < self.adx_full <= 100.0:
            raise ValueError("trend needs 0 <= adx_threshold < adx_full <= 100")

    def compute(self, candles: Candles) -> GeneratorOutput:
        prices = rescaled_prices(candles)
        fast = talib.EMA(prices.close, timeperiod=self.fast_period)
        slow = talib.EMA(prices.close, timeperiod=self.slow_period)
        adx = talib.ADX(prices.high, prices.low, prices.close, timeperiod=self.adx_period)
        trending = np.isfinite(fast) & np.isfinite(slow) & (adx >= self.adx_threshold)
        up = trending & (fast > slow)
        down = trending & (fast < slow)
        direction = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
        strength = np.where(direction != 0, np.clip(adx / self.adx_full, 0.0, 1.0), 0.0)
        return GeneratorOutput(self.name, direction, strength.astype(np.float64))
