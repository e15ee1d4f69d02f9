"""Signal 2, momentum: vote with the recent move when RSI and ROC agree on its side.

RSI is a smoothed balance of up versus down closes; ROC is the raw percentage change over a
window. Either alone is noisy (one spike moves ROC, a slow grind moves RSI), so a vote needs
both: RSI clearly past 50 *and* ROC with the same sign. Requiring ROC also keeps a flat market
silent: TA-Lib reports RSI 0 when there were no price changes at all, which would otherwise
read as maximally oversold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib

from nettrace.market.candles import Candles
from nettrace.signals.base import GeneratorOutput


@dataclass(frozen=True)
class MomentumGenerator:
    """Buy when RSI > 50 + ``rsi_band`` and ROC > ``min_roc_pct``; sell on the mirror image.

    Defaults suit 5-minute bars: RSI over 14 bars, ROC over 10 bars (50 minutes), a 5-point
    dead band around RSI 50 and any non-zero ROC. ROC is in percent. Strength is
    ``|RSI - 50| / rsi_full_distance`` clipped to [0, 1]: with the default 30, RSI 80 (or 20) is
    full strength and the weakest vote (RSI 55) has strength 1/6.
    """

    # Not a dataclass field: the name is the generator's stable id, never a parameter.
    name = "momentum"

    rsi_period: int = 14
    roc_period: int = 10
    rsi_band: float = 5.0
    min_roc_pct: float = 0.0
    rsi_full_distance: float = 30.0

    def __post_init__(self) -> None:
        if self.rsi_period < 2 or self.roc_period < 1:
            raise ValueError("momentum needs rsi_period >= 2 and roc_period >= 1")
        if not 0.0 <= self.rsi_band < 50.0:
            raise ValueError("momentum needs 0 <= rsi_band < 50")
        if self.min_roc_pct < 0.0:
            raise ValueError("momentum needs min_roc_pct >= 0")
        if not 0.0 < self.rsi_full_distance <= 50.0:
            raise ValueError("momentum needs 0 < rsi_full_distance <= 50")

    def compute(self, candles: Candles) -> GeneratorOutput:
        # RSI and ROC are ratios of price differences, so unlike ADX they need no rescaling.
        rsi = talib.RSI(candles.close, timeperiod=self.rsi_period)
        roc = talib.ROC(candles.close, timeperiod=self.roc_period)
        up = (rsi > 50.0 + self.rsi_band) & (roc > self.min_roc_pct)
        down = (rsi < 50.0 - self.rsi_band) & (roc < -self.min_roc_pct)
        direction = np.where(up, 1, np.where(down, -1, 0)).astype(np.int8)
        distance = np.clip(np.abs(rsi - 50.0) / self.rsi_full_distance, 0.0, 1.0)
        strength = np.where(direction != 0, distance, 0.0)
        return GeneratorOutput(self.name, direction, strength.astype(np.float64))
