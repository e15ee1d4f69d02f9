"""The strategy interface: small, like Freqtrade's -- indicators, entries, exits, risk.

A strategy is pure computation over candles: it returns, per bar, what it would do at that
bar's close. It never places orders, sizes positions or checks rules itself; the engine does
that through ``strategies.decision`` -- the same functions paper and live trading call -- so
the same strategy object runs unchanged in backtest, paper and live mode.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from nettrace.market.candles import Candles, FloatArray

BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]
Int64Array = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class StrategySignals:
    """What the strategy would do at each bar's close.

    ``entry`` / ``exit`` are the raw wishes. A gated strategy also gives the inputs the rules
    need: ``confidence`` (fraction), ``signal_count`` (agreeing generators), ``regime``
    (+1 up, -1 down, 0 neutral), ``expected_move`` (fraction of price) and ``atr`` (quote per
    unit, for stops and sizing).
    """

    entry: BoolArray
    exit: BoolArray
    confidence: FloatArray | None = None
    signal_count: Int64Array | None = None
    regime: Int8Array | None = None
    expected_move: FloatArray | None = None
    atr: FloatArray | None = None

    def __post_init__(self) -> None:
        n = len(self.entry)
        for name in ("exit", "confidence", "signal_count", "regime", "expected_move", "atr"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"signals.{name} has {len(value)} rows, expected {n}")


class Strategy(ABC):
    """Base class. Subclasses set ``name`` and implement ``indicators`` and ``signals``.

    ``gated`` strategies have every entry and exit judged by GoalValidator and sized by the
    risk controller. An ungated strategy (a research baseline such as ``ema_cross``, which has
    one signal source and so could never pass the >= 2 agreeing signals rule) trades its raw
    signals with ``stake_fraction`` of equity; it can be backtested but never promoted past
    COLD, so no order of it can reach an exchange.
    """

    name: ClassVar[str]
    gated: ClassVar[bool] = True
    #: Sniper signal generators used and their weights (DESIGN §3).
    generators: ClassVar[Mapping[str, float]] = {}
    #: Stop-loss below entry, as a fraction (0.05 = 5%); None: none (gated: ATR stop).
    stop_loss: float | None = None
    #: Take-profit above entry, as a fraction; None: none.
    take_profit: float | None = None
    #: Ungated only: fraction of equity per entry; inf means all available cash.
    stake_fraction: float = math.inf
    #: How ``StrategySignals.expected_move`` -- the move rule 2 checks against the fees -- is
    #: estimated; recorded with every entry decision beside the take-profit distance.
    expected_move_method: ClassVar[str] = "none"

    @abstractmethod
    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        """Indicator columns, each computed from bars up to and including its own bar."""

    @abstractmethod
    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        """Entry/exit wishes at each bar's close, from the indicators."""

    def run(self, candles: Candles) -> StrategySignals:
        return self.signals(candles, self.indicators(candles))

    def params(self) -> dict[str, Any]:
        """The parameters that define this variant (for exports, fingerprints of configs)."""
        return {
            "gated": self.gated,
            "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
            "stake_fraction": None if math.isinf(self.stake_fraction) else self.stake_fraction,
            "generators": dict(self.generators),
        }


def crossed_above(fast: FloatArray, slow: FloatArray) -> BoolArray:
    """True at bars where ``fast`` moves from at-or-below ``slow`` to above it.

    Both bars must be defined (NaN warm-up never counts as a cross). Written here because it
    is a two-line comparison, not an indicator a library offers.
    """
    above = fast > slow
    crossed = np.zeros(len(fast), dtype=np.bool_)
    crossed[1:] = above[1:] & (fast[:-1] <= slow[:-1])
    return crossed


def crossed_below(fast: FloatArray, slow: FloatArray) -> BoolArray:
    """True at bars where ``fast`` moves from at-or-above ``slow`` to below it."""
    return crossed_above(slow, fast)
