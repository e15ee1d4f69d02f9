"""Signal 7, network latency anomaly: an exchange answering far slower than usual votes risk-off.

A venue whose round-trip time jumps far above its own recent median is usually overloaded
(a crash or a squeeze in progress) or degrading; orders placed there may fill late or not at
all, and a maker's resting quotes may be stale. So the generator never votes BUY: a moderate
anomaly is a HOLD (don't open anything now), a severe one a SELL (reduce exposure). Comparing
with the venue's *own* median makes the rule scale-free: a far-away venue is not anomalous
for being far away.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Final

from nettrace.signals.base import NONE, SELL, SnapshotVote

NAME: Final = "latency_anomaly"


def latency_vote(
    rtt_ms: float,
    history_ms: Sequence[float],
    *,
    multiple: float = 3.0,
    severe_multiple: float = 6.0,
    min_samples: int = 10,
) -> SnapshotVote:
    """Judge one round-trip time (ms) against the median of earlier ones (ms).

    ``ratio = rtt_ms / median(history_ms)``. Below ``multiple``: no opinion. From ``multiple``
    to ``severe_multiple``: HOLD (direction 0) with strength ``(ratio - 1) /
    (severe_multiple - 1)``. From ``severe_multiple``: SELL with strength 1. With fewer than
    ``min_samples`` finite positive samples there is no baseline and no opinion.
    """
    if not 1.0 < multiple <= severe_multiple or min_samples < 1:
        raise ValueError("latency needs 1 < multiple <= severe_multiple and min_samples >= 1")
    samples = [s for s in history_ms if math.isfinite(s) and s > 0.0]
    if len(samples) < min_samples:
        return SnapshotVote(NAME, NONE, 0.0, f"baseline needs {min_samples} samples")
    if not (math.isfinite(rtt_ms) and rtt_ms >= 0.0):
        return SnapshotVote(NAME, NONE, 0.0, "invalid round-trip time")
    median = statistics.median(samples)
    ratio = rtt_ms / median
    detail = f"rtt {rtt_ms:.1f} ms = {ratio:.2f}x the median {median:.1f} ms"
    if ratio < multiple:
        return SnapshotVote(NAME, NONE, 0.0, f"normal: {detail}")
    if ratio >= severe_multiple:
        return SnapshotVote(NAME, SELL, 1.0, f"risk-off (severe): {detail}")
    strength = (ratio - 1.0) / (severe_multiple - 1.0)
    return SnapshotVote(NAME, NONE, strength, f"risk-off (hold): {detail}")
