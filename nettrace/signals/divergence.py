"""Signal 6, cross-exchange divergence and lead-lag: a venue out of line with its peers.

Liquid venues are arbitraged together, so when one venue's mid moves and another's has not
yet followed, the laggard tends to catch up (lead-lag); when one venue's price sits away from
its peers', it tends to converge (divergence). Either is worth a vote only if the gap is wider
than the round-trip fees: a gap that fees would eat is noise to a maker who pays them.

All prices are mids in quote per unit of base on the *same* symbol; gaps and fees are
fractions (0.008 = 0.80%).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Final

from nettrace.signals.base import BUY, NONE, SELL, SnapshotVote

NAME: Final = "cross_exchange_divergence"


def _strength(gap: float, threshold: float, full_multiple: float) -> float:
    # Linear from 0 at the threshold to 1 at ``full_multiple`` x the threshold.
    return min(1.0, (abs(gap) - threshold) / (threshold * (full_multiple - 1.0)))


def _check(round_trip_fee: float, margin: float, full_multiple: float) -> float:
    if round_trip_fee < 0.0 or margin < 0.0 or round_trip_fee + margin <= 0.0:
        raise ValueError("divergence needs fees + margin > 0 (a zero threshold votes on noise)")
    if full_multiple <= 1.0:
        raise ValueError("divergence needs full_multiple > 1")
    return round_trip_fee + margin


def lead_lag_vote(
    leader: Sequence[float],
    follower: Sequence[float],
    *,
    round_trip_fee: float,
    margin: float = 0.0,
    full_multiple: float = 3.0,
) -> SnapshotVote:
    """Vote for ``follower`` to catch up with ``leader`` over the same window.

    ``leader`` and ``follower`` are mids sampled at the same moments, oldest first. The gap is
    ``leader's return - follower's return`` over the window; beyond ``round_trip_fee + margin``
    the vote is its sign (the follower should move the way the leader already has), with
    strength rising linearly to 1 at ``full_multiple`` x that threshold.
    """
    threshold = _check(round_trip_fee, margin, full_multiple)
    if len(leader) != len(follower) or len(leader) < 2:
        return SnapshotVote(NAME, NONE, 0.0, "need two aligned windows of at least 2 mids")
    ends = (leader[0], leader[-1], follower[0], follower[-1])
    if not all(math.isfinite(p) and p > 0.0 for p in ends):
        return SnapshotVote(NAME, NONE, 0.0, "non-positive or non-finite mid")
    leader_move = leader[-1] / leader[0] - 1.0
    follower_move = follower[-1] / follower[0] - 1.0
    gap = leader_move - follower_move
    detail = (
        f"leader {leader_move:+.4%} vs follower {follower_move:+.4%} "
        f"(gap {gap:+.4%}, fees+margin {threshold:.4%})"
    )
    if abs(gap) <= threshold:
        return SnapshotVote(NAME, NONE, 0.0, f"within fees: {detail}")
    direction = BUY if gap > 0 else SELL
    return SnapshotVote(NAME, direction, _strength(gap, threshold, full_multiple), detail)


def price_divergence_vote(
    local_mid: float,
    peer_mids: Mapping[str, float],
    *,
    round_trip_fee: float,
    margin: float = 0.0,
    full_multiple: float = 3.0,
) -> SnapshotVote:
    """Vote on the local venue converging to the median of its peers' mids.

    ``gap = median(peers) / local_mid - 1``: positive means the local venue is cheap (BUY here),
    negative that it is rich (SELL here). Beyond ``round_trip_fee + margin`` the vote is the
    gap's sign, strength rising linearly to 1 at ``full_multiple`` x that threshold.
    """
    threshold = _check(round_trip_fee, margin, full_multiple)
    peers = {name: mid for name, mid in peer_mids.items() if math.isfinite(mid) and mid > 0.0}
    if not peers:
        return SnapshotVote(NAME, NONE, 0.0, "no peer prices")
    if not (math.isfinite(local_mid) and local_mid > 0.0):
        return SnapshotVote(NAME, NONE, 0.0, "non-positive or non-finite local mid")
    reference = statistics.median(peers.values())
    gap = reference / local_mid - 1.0
    detail = (
        f"local {local_mid:g} vs peer median {reference:g} ({', '.join(sorted(peers))}): "
        f"gap {gap:+.4%}, fees+margin {threshold:.4%}"
    )
    if abs(gap) <= threshold:
        return SnapshotVote(NAME, NONE, 0.0, f"within fees: {detail}")
    direction = BUY if gap > 0 else SELL
    return SnapshotVote(NAME, direction, _strength(gap, threshold, full_multiple), detail)
