"""Signal 3, mean reversion: bet against a close stretched beyond a Bollinger band.

The Bollinger z-score is how many rolling standard deviations the close sits from its rolling
mean. Beyond ``±k`` the move is treated as an overshoot likely to snap back, so the vote goes
against it: buy below the lower band, sell above the upper one. The further out, the stronger.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib

from nettrace.market.candles import Candles
from nettrace.signals.base import GeneratorOutput
from nettrace.signals.trend import rescaled_prices


@dataclass(frozen=True)
class MeanReversionGenerator:
    """Buy when z < -``k``, sell when z > ``k``; strength ``|z| / z_full`` clipped to [0, 1].

    Defaults are the classic Bollinger settings, 20 bars and 2 standard deviations (population
    standard deviation, as in TA-Lib's BBANDS). With ``z_full`` 4 a vote at the band has
    strength 0.5; note that over 20 bars |z| cannot exceed sqrt(19) ≈ 4.36, so full strength
    means the close is about as far out as a 20-bar window allows. The window includes the
    current close, which is known at the bar's close.
    """

    # Not a dataclass field: the name is the generator's stable id, never a parameter.
    name = "mean_reversion"

    period: int = 20
    k: float = 2.0
    z_full: float = 4.0

    def __post_init__(self) -> None:
        if self.period < 2:
            raise ValueError("mean_reversion needs period >= 2")
        if not 0.0 < self.k < self.z_full:
            raise ValueError("mean_reversion needs 0 < k < z_full")

    def compute(self, candles: Candles) -> GeneratorOutput:
        close = rescaled_prices(candles).close
        # BBANDS with a 1-sigma band gives mean and mean + sigma; z = (close - mean) / sigma.
        # (BBANDS' default moving average is the simple one, as Bollinger defined it.)
        upper, middle, _ = talib.BBANDS(close, timeperiod=self.period, nbdevup=1.0, nbdevdn=1.0)
        sigma = upper - middle
        # A flat window has sigma 0 (or a rounding crumb of it): no stretch, no opinion.
        spread = np.isfinite(sigma) & (sigma > 1e-9 * np.abs(middle))
        z = np.divide(close - middle, sigma, out=np.zeros_like(close), where=spread)
        direction = np.where(z < -self.k, 1, np.where(z > self.k, -1, 0)).astype(np.int8)
        strength = np.where(direction != 0, np.clip(np.abs(z) / self.z_full, 0.0, 1.0), 0.0)
        return GeneratorOutput(self.name, direction, strength.astype(np.float64))
