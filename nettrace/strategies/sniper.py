"""``sniper``: the default strategy -- the candle-derived sniper generators, gated by the rules.

DESIGN §3 names eight generators; five of them can be computed from candles alone (1 trend,
2 momentum, 3 mean reversion, 4 volume surge, 8 ML forecast) and those are what a backtest
has. The other three (order-book imbalance, cross-exchange divergence, latency anomaly) come
from the scouts at run time and join the same aggregation there.

Per bar, at its close:

* every generator votes (direction, strength); ``signals.aggregate`` turns the votes into a
  side, a confidence (weighted mean strength, reduced by disagreement) and the number of
  distinct agreeing generators;
* the regime detector labels the bar uptrend / downtrend / neutral;
* a BUY side on a flat pair is an entry candidate, a SELL side on an open one an exit
  candidate. The strategy itself filters nothing: GoalValidator (confidence, agreeing count,
  no buys in a downtrend, fees) and the risk controller (size, ATR stop, exposure) judge every
  candidate, through the same ``strategies.decision`` calls paper and live trading make;
* the *expected move* that rule 2 checks against the round-trip fees is the strategy's own
  estimate, a declared parameter: ``move_atr_multiple`` x NATR (``expected_move_method``). A
  quiet market whose expected move cannot pay two fees plus the margin gets no entry at all --
  which is rule 2 doing its job. The take-profit is not this estimate by definition: the risk
  controller sets it (``RiskLimits.take_profit_atr_multiple`` ATRs, with its 2-ATR stop a
  1.5 : 1 reward to risk by default), and each entry decision records both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import talib

from nettrace.market.candles import Candles, FloatArray
from nettrace.signals.aggregate import aggregate
from nettrace.signals.base import BUY, SELL, GeneratorOutput
from nettrace.signals.catalog import GENERATOR_NAMES, generator_by_name
from nettrace.signals.regime import detect_regime
from nettrace.signals.track_record import DEFAULT_HORIZON, DEFAULT_WINDOW, track_record_weights
from nettrace.signals.trend import rescaled_prices
from nettrace.strategies.base import Strategy, StrategySignals

#: The configured weights; with ``weighting="track_record"`` each is scaled by the generator's
#: past hit rate at every bar.
DEFAULT_WEIGHTS: Mapping[str, float] = {name: 1.0 for name in GENERATOR_NAMES}


@dataclass
class Sniper(Strategy):
    """The gated default strategy (see the module docstring).

    ``weights`` maps generator names to their aggregation weights (0 silences one);
    ``atr_period`` is the ATR window in bars; ``move_atr_multiple`` the expected move (rule 2's
    input) in ATRs.
    """

    name: ClassVar[str] = "sniper"
    gated: ClassVar[bool] = True
    generators: ClassVar[Mapping[str, float]] = DEFAULT_WEIGHTS
    weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    expected_move_method: ClassVar[str] = "move_atr_multiple x NATR(atr_period)"
    atr_period: int = 14
    move_atr_multiple: float = 3.0
    #: "track_record": each weight above is scaled, bar by bar, by the generator's past hit
    #: rate (``signals.track_record``); "fixed": the weights as given.
    weighting: str = "track_record"
    track_record_horizon: int = DEFAULT_HORIZON
    track_record_window: int = DEFAULT_WINDOW

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(GENERATOR_NAMES))
        if unknown:
            raise ValueError(
                f"sniper: unknown generator(s) {', '.join(unknown)} "
                f"(use {', '.join(GENERATOR_NAMES)})"
            )
        if not any(w > 0 for w in self.weights.values()):
            raise ValueError("sniper: at least one generator needs a positive weight")
        if self.atr_period < 2:
            raise ValueError(f"sniper: atr_period must be >= 2, got {self.atr_period}")
        if self.weighting not in ("track_record", "fixed"):
            raise ValueError(
                f"sniper: weighting must be 'track_record' or 'fixed', got {self.weighting!r}"
            )
        if self.track_record_horizon < 1 or self.track_record_window < 1:
            raise ValueError("sniper: track_record_horizon and track_record_window must be >= 1")
        if not self.move_atr_multiple > 0:
            raise ValueError(f"sniper: move_atr_multiple must be > 0, got {self.move_atr_multiple}")

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        """Each generator's signed vote (direction x strength), the regime and ATR.

        The signed vote keeps one column per generator, so a report or ``nettrace why`` can show
        what each one said at a bar; ``signals`` splits it back into direction and strength.
        """
        columns: dict[str, FloatArray] = {}
        for name, weight in self.weights.items():
            if weight <= 0:
                continue  # silenced: not even computed (the ML fit is the costly one)
            out = generator_by_name(name).compute(candles)
            columns[f"vote_{name}"] = out.direction.astype(np.float64) * out.strength
            if self.weighting == "track_record":
                earned = track_record_weights(
                    out.direction, candles.close, horizon=self.track_record_horizon,
                    window=self.track_record_window,
                )  # fmt: skip
                columns[f"weight_{name}"] = weight * earned
        columns["regime"] = detect_regime(candles).astype(np.float64)
        prices = rescaled_prices(candles)
        # NATR: ATR as a fraction of the close, computed on rescaled prices (TA-Lib's absolute
        # epsilon breaks on BTC-quoted pairs) and scale-free, so it converts back exactly.
        columns["natr"] = (
            talib.NATR(prices.high, prices.low, prices.close, timeperiod=self.atr_period) / 100.0
        )
        return columns

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        outputs = []
        for key, vote in indicators.items():
            if not key.startswith("vote_"):
                continue
            direction = np.sign(vote).astype(np.int8)
            outputs.append(GeneratorOutput(key.removeprefix("vote_"), direction, np.abs(vote)))
        agg = aggregate(outputs, self.bar_weights(indicators))
        natr = indicators["natr"]
        return StrategySignals(
            entry=agg.side == BUY,
            exit=agg.side == SELL,
            confidence=agg.confidence,
            signal_count=agg.signal_count,
            regime=indicators["regime"].astype(np.int8),
            expected_move=natr * self.move_atr_multiple,
            atr=natr * candles.close,
        )

    def bar_weights(self, indicators: Mapping[str, FloatArray]) -> dict[str, float | FloatArray]:
        """Each generator's weight: per bar (track record) when computed, else as configured."""
        return {
            name: indicators.get(f"weight_{name}", weight) for name, weight in self.weights.items()
        }

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "generators": dict(self.weights),
            "atr_period": self.atr_period,
            "move_atr_multiple": self.move_atr_multiple,
            "weighting": self.weighting,
            "track_record_horizon": self.track_record_horizon,
            "track_record_window": self.track_record_window,
        }
