"""The regime detector: is this symbol in an uptrend, a downtrend, or neither, at each bar?

GoalValidator refuses a BUY in a downtrend (DESIGN §3), so this label gates entries. It uses a
long EMA's slope for the direction (slow, so one candle cannot flip it) and ADX for whether
there is a trend at all (a drifting EMA in a choppy market is not a trend). Everything is
computed from bars up to and including the current one.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import talib

from nettrace.domain.types import Regime
from nettrace.market.candles import Candles
from nettrace.signals.trend import rescaled_prices

UPTREND: Final = 1
DOWNTREND: Final = -1
NEUTRAL: Final = 0

#: Label strings, the ones GoalValidator and ``nettrace.domain.types.Regime`` understand.
REGIME_NAMES: Final[dict[int, str]] = {
    UPTREND: Regime.UPTREND.value,
    DOWNTREND: Regime.DOWNTREND.value,
    NEUTRAL: Regime.NEUTRAL.value,
}


def detect_regime(
    candles: Candles,
    *,
    ema_period: int = 200,
    slope_window: int = 20,
    min_slope_pct: float = 0.05,
    adx_period: int = 28,
    adx_threshold: float = 20.0,
) -> npt.NDArray[np.int8]:
    """Per-bar regime: +1 uptrend, -1 downtrend, 0 neutral (also during warm-up).

    Uptrend when the ``ema_period`` EMA rose by more than ``min_slope_pct`` percent over the
    last ``slope_window`` bars and ADX(``adx_period``) is at least ``adx_threshold``; downtrend
    is the mirror image. Defaults for 5-minute bars: EMA 200 (about 17 h), its change over 20
    bars (100 minutes) at least 0.05 %, and ADX over 28 bars (twice the usual period, so the
    label does not flicker with every burst) at the customary "some trend" level 20.
    """
    if ema_period < 2 or slope_window < 1 or adx_period < 2:
        raise ValueError("detect_regime needs ema_period >= 2, slope_window >= 1, adx_period >= 2")
    if min_slope_pct < 0.0 or not 0.0 <= adx_threshold <= 100.0:
        raise ValueError("detect_regime needs min_slope_pct >= 0 and 0 <= adx_threshold <= 100")
    prices = rescaled_prices(candles)
    ema = talib.EMA(prices.close, timeperiod=ema_period)
    slope_pct = talib.ROC(ema, timeperiod=slope_window)
    adx = talib.ADX(prices.high, prices.low, prices.close, timeperiod=adx_period)
    trending = adx >= adx_threshold
    up = trending & (slope_pct > min_slope_pct)
    down = trending & (slope_pct < -min_slope_pct)
    return np.where(up, UPTREND, np.where(down, DOWNTREND, NEUTRAL)).astype(np.int8)
