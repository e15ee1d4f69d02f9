"""The contract every candle-derived signal generator keeps.

A generator turns candles into, per bar, a *direction* (+1 buy, -1 sell, 0 no opinion) and a
*strength* in [0, 1]. The value at bar ``i`` may use only bars ``0..i`` (their close
included): a decision is made at bar close and must never see the future. Tests truncate the
candles at random bars and check that no earlier value changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from nettrace.market.candles import Candles

Int8Array = npt.NDArray[np.int8]
FloatArray = npt.NDArray[np.float64]

BUY: int = 1
SELL: int = -1
NONE: int = 0


@dataclass(frozen=True, eq=False)
class GeneratorOutput:
    """One generator's opinion at every bar. ``name`` is the generator's stable id."""

    name: str
    direction: Int8Array
    strength: FloatArray

    def __post_init__(self) -> None:
        if self.direction.shape != self.strength.shape:
            raise ValueError(f"{self.name}: direction and strength differ in shape")


class SignalGenerator(Protocol):
    """Computes one signal over a whole candle series, using only the past at each bar."""

    name: str

    def compute(self, candles: Candles) -> GeneratorOutput: ...
