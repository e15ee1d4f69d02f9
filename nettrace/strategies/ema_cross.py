"""``ema_cross``: EMA(12) / EMA(26) on close, long only -- the reference baseline.

Enter when the fast EMA crosses above the slow one, exit when it crosses below. Ungated: one
signal source cannot satisfy the rules' >= 2 agreeing signals, so it is a research baseline
(and the benchmark against vectorbt), never a live strategy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import talib

from nettrace.market.candles import Candles, FloatArray
from nettrace.strategies.base import Strategy, StrategySignals, crossed_above, crossed_below


@dataclass
class EmaCross(Strategy):
    name: ClassVar[str] = "ema_cross"
    gated: ClassVar[bool] = False
    fast: int = 12
    slow: int = 26

    def __post_init__(self) -> None:
        if not 1 < self.fast < self.slow:
            raise ValueError(f"need 1 < fast < slow, got fast={self.fast} slow={self.slow}")

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {
            "ema_fast": talib.EMA(candles.close, timeperiod=self.fast),
            "ema_slow": talib.EMA(candles.close, timeperiod=self.slow),
        }

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        fast, slow = indicators["ema_fast"], indicators["ema_slow"]
        return StrategySignals(entry=crossed_above(fast, slow), exit=crossed_below(fast, slow))

    def params(self) -> dict[str, Any]:
        return {**super().params(), "fast": self.fast, "slow": self.slow}
