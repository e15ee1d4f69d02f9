"""Aggregation (DESIGN §3): many generators' opinions become one side, confidence and count per bar.

At each bar the outputs with an opinion (direction != 0) are split by side. The side with the
larger total ``weight * strength`` wins; an exact tie (including "nobody has an opinion") is no
trade. Confidence is the weighted mean strength of the winning side, multiplied by
``1 - opposing_weight / total_weight_with_opinion`` so that disagreement costs confidence even
when the majority is strong. ``signal_count`` counts *distinct* generator names on the winning
side: two outputs from one source are one source, so they cannot fake the corroboration that
GoalValidator's ``signal_count >= 2`` asks for. (Both outputs still enter the weighted sums,
each being a signal in its own right.)

Weights are each generator's track record, supplied by the caller -- one number, or one per bar
(``signals.track_record``); a missing name weighs 1.0 and a weight of 0 silences that
generator entirely (its opinion is ignored, not counted).

Risk-off votes (``risk_off``: signal 7's HOLD, "don't open anything now") take no side, so they
cannot win, but they oppose every *buy*: each adds ``weight * strength`` to the opposing weight
of a winning BUY side and so lowers its confidence by the same disagreement factor. A sell
(reducing exposure) is what risk-off asks for, so it is not opposed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nettrace.signals.base import FloatArray, GeneratorOutput, Int8Array

DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True, eq=False)
class Aggregate:
    """Per bar: ``side`` (+1 buy, -1 sell, 0 none), ``confidence`` in [0, 1] (0 when side is 0)
    and ``signal_count``, the number of distinct generators agreeing with ``side``."""

    side: Int8Array
    confidence: FloatArray
    signal_count: npt.NDArray[np.int64]


def aggregate(
    outputs: Sequence[GeneratorOutput],
    weights: Mapping[str, float | FloatArray] | None = None,
    risk_off: Sequence[GeneratorOutput] = (),
) -> Aggregate:
    """Combine generator outputs bar by bar, vectorised over bars (see the module docstring)."""
    if not outputs:
        raise ValueError("aggregate needs at least one generator output")
    lengths = {out.direction.shape for out in outputs}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError("aggregate needs one-dimensional outputs of equal length")
    weights = {} if weights is None else weights
    for name, value in weights.items():
        if not np.all(np.isfinite(value) & (np.asarray(value) >= 0.0)):
            raise ValueError(f"weight for {name!r} must be finite and >= 0, got {value!r}")

    direction = np.stack([out.direction for out in outputs]).astype(np.int8)  # (generators, bars)
    strength = np.stack([out.strength for out in outputs]).astype(np.float64)
    if np.any(np.abs(direction) > 1):
        raise ValueError("directions must be -1, 0 or +1")
    if not np.all((strength >= 0.0) & (strength <= 1.0)):
        raise ValueError("strengths must be in [0, 1] (and not NaN)")
    n_bars = direction.shape[1]
    weight = np.stack(
        [
            np.broadcast_to(np.asarray(weights.get(out.name, DEFAULT_WEIGHT), np.float64), n_bars)
            for out in outputs
        ]
    )

    heard = weight > 0.0
    buy = (direction == 1) & heard
    sell = (direction == -1) & heard
    buy_score = np.sum(np.where(buy, weight * strength, 0.0), axis=0)
    sell_score = np.sum(np.where(sell, weight * strength, 0.0), axis=0)
    buy_weight = np.sum(np.where(buy, weight, 0.0), axis=0)
    sell_weight = np.sum(np.where(sell, weight, 0.0), axis=0)

    side = np.where(buy_score > sell_score, 1, np.where(sell_score > buy_score, -1, 0))
    side = side.astype(np.int8)
    agree_score = np.where(side == 1, buy_score, sell_score)
    agree_weight = np.where(side == 1, buy_weight, sell_weight)
    oppose_weight = np.where(side == 1, sell_weight, buy_weight)
    if risk_off:
        hold = np.stack([np.asarray(out.strength, np.float64) for out in risk_off])
        if hold.shape[1] != n_bars or not np.all((hold >= 0.0) & (hold <= 1.0)):
            raise ValueError("risk-off strengths must be in [0, 1], one per bar")
        hold_weight = np.stack(
            [
                np.broadcast_to(
                    np.asarray(weights.get(out.name, DEFAULT_WEIGHT), np.float64), n_bars
                )
                for out in risk_off
            ]
        )
        oppose_weight = oppose_weight + np.where(side == 1, np.sum(hold_weight * hold, axis=0), 0.0)
    total_weight = agree_weight + oppose_weight
    chosen = side != 0  # a winning side has a positive score, hence a positive weight
    mean_strength = np.divide(
        agree_score, agree_weight, out=np.zeros_like(agree_score), where=chosen
    )
    agreement = 1.0 - np.divide(
        oppose_weight, total_weight, out=np.ones_like(total_weight), where=chosen
    )
    confidence = np.clip(mean_strength * agreement, 0.0, 1.0)

    # Distinct names: a source agrees if any of its outputs does (a loop over names, not bars).
    names = np.array([out.name for out in outputs])
    agreeing = np.where(side == 1, buy, np.where(side == -1, sell, False))
    by_source = np.stack([agreeing[names == name].any(axis=0) for name in np.unique(names)])
    signal_count = by_source.sum(axis=0).astype(np.int64)
    return Aggregate(side=side, confidence=confidence, signal_count=signal_count)
