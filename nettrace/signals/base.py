"""The contract every candle-derived signal generator keeps.

A generator turns candles into, per bar, a *direction* (+1 buy, -1 sell, 0 no opinion) and a
*strength* in [0, 1]. The value at bar ``i`` may use only bars ``0..i`` (their close
included): a decision is made at bar close and must never see the future. Tests truncate the
candles at random bars and check that no earlier value changes.

The scout-measured generators (5 order-book imbalance, 6 divergence, 7 latency) judge one live
snapshot at a time rather than a candle series, so they return a ``SnapshotVote``: the same
direction and strength, plus a reason a person can read.
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


@dataclass(frozen=True)
class SnapshotVote:
    """One generator's opinion on one snapshot.

    ``direction`` is +1 (buy), -1 (sell) or 0 (no trade); ``strength`` in [0, 1]. A vote with
    direction 0 and strength > 0 is a HOLD: an opinion *against* trading now (the latency
    generator's moderate risk-off), not the absence of one.
    """

    name: str
    direction: int
    strength: float
    reason: str

    def __post_init__(self) -> None:
        if self.direction not in (BUY, SELL, NONE):
            raise ValueError(f"{self.name}: direction must be -1, 0 or +1")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"{self.name}: strength must be in [0, 1]")

    @property
    def side(self) -> str:
        """The wire side: BUY, SELL or HOLD."""
        return {BUY: "BUY", SELL: "SELL"}.get(self.direction, "HOLD")

    @property
    def has_opinion(self) -> bool:
        """True when the vote is worth sending (a direction, or a HOLD with some strength)."""
        return self.direction != NONE or self.strength > 0.0
