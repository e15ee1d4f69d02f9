"""Signal 4, volume surge: a bar traded far above its usual volume votes with its own body.

Unusual volume means someone informed or large is acting; the bar's close versus open says
which way. The baseline is the average of the *previous* bars, not including the surge bar
itself, so a single spike is measured against normal trading and not diluted by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import talib

from nettrace.market.candles import Candles
from nettrace.signals.base import GeneratorOutput


@dataclass(frozen=True)
class VolumeSurgeGenerator:
    """Votes sign(close - open) when volume / SMA(previous ``period`` volumes) >= ``multiple``.

    Defaults: a 20-bar baseline, a surge from 2.5x that baseline, full strength at
    ``full_ratio`` 5x. Strength is ``ratio / full_ratio`` clipped to [0, 1], so the weakest surge
    has strength 0.5. A doji (close == open) or a zero baseline gives no opinion.
    """

    # Not a dataclass field: the name is the generator's stable id, never a parameter.
    name = "volume"

    period: int = 20
    multiple: float = 2.5
    full_ratio: float = 5.0

    def __post_init__(self) -> None:
        if self.period < 1:
            raise ValueError("volume needs period >= 1")
        if not 1.0 < self.multiple <= self.full_ratio:
            raise ValueError("volume needs 1 < multiple <= full_ratio")

    def compute(self, candles: Candles) -> GeneratorOutput:
        volume = candles.volume
        sma = talib.SMA(volume, timeperiod=self.period)
        # Shift by one bar so the baseline for bar i is bars i-period..i-1 (still past-only).
        baseline = np.concatenate(([np.nan], sma[:-1])) if len(sma) else sma
        usable = np.isfinite(baseline) & (baseline > 0.0) & np.isfinite(volume)
        ratio = np.divide(volume, baseline, out=np.zeros_like(volume), where=usable)
        body = np.sign(candles.close - candles.open)
        surge = (ratio >= self.multiple) & np.isfinite(body)
        direction = np.where(surge, body, 0.0).astype(np.int8)
        strength = np.where(direction != 0, np.clip(ratio / self.full_ratio, 0.0, 1.0), 0.0)
        return GeneratorOutput(self.name, direction, strength.astype(np.float64))
