"""Signal 5, order-book imbalance: resting size near the touch leans towards the side it backs.

Size resting within a few basis points of the mid is the liquidity a market order would meet
next; when bids there far outweigh asks, buyers are queueing and the price tends to tick up
(and the reverse). Only depth within ``window_bps`` of the mid counts, because orders far from
the touch are cheap to place, easy to pull and say little about the next move.

Unlike the candle generators (one value per bar, ``signals.base``), the scout-measured
generators 5-7 judge one *snapshot* at a time, so they return one ``SnapshotVote``: the same
direction (+1 / -1 / 0) and strength in [0, 1] as ``base.GeneratorOutput``, plus a reason a
person can read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from nettrace.signals.base import BUY, NONE, SELL, SnapshotVote

NAME: Final = "orderbook_imbalance"

#: A price level: (price in quote per unit of base, amount in base units).
Level = tuple[float, float] | Sequence[float]


def depth_within(levels: Sequence[Level], mid: float, window_bps: float, *, bids: bool) -> float:
    """Total base amount of ``levels`` priced within ``window_bps`` (1 bp = 0.01%) of ``mid``."""
    edge = mid * window_bps / 10_000.0
    total = 0.0
    for level in levels:
        price, amount = float(level[0]), float(level[1])
        if not (math.isfinite(price) and math.isfinite(amount)) or amount <= 0.0:
            continue
        inside = price >= mid - edge if bids else price <= mid + edge
        if inside:
            total += amount
    return total


def orderbook_imbalance_vote(
    bids: Sequence[Level],
    asks: Sequence[Level],
    *,
    window_bps: float = 10.0,
    threshold: float = 0.3,
) -> SnapshotVote:
    """Vote on ``imbalance = (bid_depth - ask_depth) / (bid_depth + ask_depth)``.

    ``bids`` best first (highest price), ``asks`` best first (lowest); prices in quote, amounts
    in base. Depth counts levels within ``window_bps`` of the mid. ``imbalance`` is in [-1, 1];
    at or beyond ``threshold`` (a fraction, 0.3 = bids 65% of the depth) the vote is its sign
    with strength ``|imbalance|``. An empty, crossed or non-finite book has no opinion.
    """
    if window_bps <= 0.0 or not 0.0 < threshold <= 1.0:
        raise ValueError("orderbook imbalance needs window_bps > 0 and 0 < threshold <= 1")
    if not bids or not asks:
        return SnapshotVote(NAME, NONE, 0.0, "empty book side")
    best_bid, best_ask = float(bids[0][0]), float(asks[0][0])
    if not (math.isfinite(best_bid) and math.isfinite(best_ask)) or best_bid <= 0.0:
        return SnapshotVote(NAME, NONE, 0.0, "invalid top of book")
    if best_bid >= best_ask:
        return SnapshotVote(NAME, NONE, 0.0, f"crossed book: bid {best_bid} >= ask {best_ask}")
    mid = (best_bid + best_ask) / 2.0
    bid_depth = depth_within(bids, mid, window_bps, bids=True)
    ask_depth = depth_within(asks, mid, window_bps, bids=False)
    total = bid_depth + ask_depth
    if total <= 0.0:
        return SnapshotVote(NAME, NONE, 0.0, f"no depth within {window_bps:g} bps")
    imbalance = (bid_depth - ask_depth) / total
    detail = f"bid depth {bid_depth:g} vs ask depth {ask_depth:g} within {window_bps:g} bps"
    if abs(imbalance) < threshold:
        return SnapshotVote(NAME, NONE, 0.0, f"balanced: imbalance {imbalance:+.3f}, {detail}")
    direction = BUY if imbalance > 0 else SELL
    return SnapshotVote(
        NAME, direction, min(1.0, abs(imbalance)), f"imbalance {imbalance:+.3f}, {detail}"
    )
