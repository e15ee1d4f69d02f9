"""Each generator's track record as an aggregation weight (DESIGN §3: "weights from each
generator's track record").

At bar ``t`` a generator's weight is its hit rate over its last ``window`` votes whose outcome
is already known at ``t``: a vote at bar ``s`` is judged by the move from ``s`` to
``s + horizon``, so only votes at ``s <= t - horizon`` count -- the weight never looks ahead,
and a backtest and a live run compute the same weight at the same bar. The rate is smoothed
towards a coin flip (Laplace: (hits + 1) / (votes + 2)), so a generator with no record weighs
1.0, and mapped to ``2 x rate`` clipped to ``[floor, cap]``: a generator that is right 75% of
the time counts 1.5 times, one that is right 25% of the time half.

Written here because it is a few vectorised lines over our own vote arrays; no indicator
library computes a forecaster's rolling hit rate.
"""

from __future__ import annotations

import numpy as np

from nettrace.signals.base import FloatArray, Int8Array

DEFAULT_HORIZON = 3
DEFAULT_WINDOW = 288
WEIGHT_FLOOR = 0.5
WEIGHT_CAP = 1.5


def track_record_weights(
    direction: Int8Array,
    close: FloatArray,
    *,
    horizon: int = DEFAULT_HORIZON,
    window: int = DEFAULT_WINDOW,
) -> FloatArray:
    """Per bar, the weight earned by ``direction``'s votes (see the module docstring)."""
    if horizon < 1 or window < 1:
        raise ValueError(f"horizon and window must be >= 1, got {horizon}, {window}")
    n = len(close)
    if len(direction) != n:
        raise ValueError(f"direction has {len(direction)} bars, close {n}")
    judged_vote = np.zeros(n, dtype=np.int8)  # the vote whose outcome bar t reveals
    outcome = np.zeros(n, dtype=np.int8)
    if n > horizon:
        judged_vote[horizon:] = direction[:-horizon]
        outcome[horizon:] = np.sign(close[horizon:] - close[:-horizon]).astype(np.int8)
    voted = judged_vote != 0
    hit = voted & (judged_vote == outcome)
    votes = _rolling_sum(voted, window)
    hits = _rolling_sum(hit, window)
    rate = (hits + 1.0) / (votes + 2.0)
    return np.clip(2.0 * rate, WEIGHT_FLOOR, WEIGHT_CAP)


def _rolling_sum(flags: np.ndarray, window: int) -> FloatArray:
    total = np.cumsum(flags, dtype=np.float64)
    out = total.copy()
    out[window:] -= total[:-window]
    return out
