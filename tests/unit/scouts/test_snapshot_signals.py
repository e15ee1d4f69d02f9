"""Generators 5-7 on hand-computed snapshots, plus properties that must hold for any input."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nettrace.signals.base import SnapshotVote
from nettrace.signals.divergence import lead_lag_vote, price_divergence_vote
from nettrace.signals.latency import latency_vote
from nettrace.signals.orderbook import orderbook_imbalance_vote

# --- 5: order-book imbalance ------------------------------------------------------------------


def test_bid_heavy_depth_within_the_window_votes_buy() -> None:
    # mid 100; 10 bps window = [99.9, 100.1]; bids inside: 3 + 1 = 4 (99.8 is out), asks: 1
    bids = [(99.99, 3.0), (99.95, 1.0), (99.80, 50.0)]
    asks = [(100.01, 1.0), (100.20, 50.0)]
    vote = orderbook_imbalance_vote(bids, asks, window_bps=10, threshold=0.3)
    assert (vote.direction, vote.side) == (1, "BUY")
    assert vote.strength == pytest.approx((4 - 1) / (4 + 1))  # 0.6


def test_ask_heavy_votes_sell_and_a_balanced_book_has_no_opinion() -> None:
    sell = orderbook_imbalance_vote([(99.99, 1.0)], [(100.01, 4.0)], threshold=0.3)
    assert (sell.side, sell.strength) == ("SELL", pytest.approx(0.6))
    flat = orderbook_imbalance_vote([(99.99, 1.2)], [(100.01, 1.0)], threshold=0.3)
    assert (flat.direction, flat.strength, flat.has_opinion) == (0, 0.0, False)
    assert "balanced" in flat.reason


@pytest.mark.parametrize(
    ("bids", "asks", "reason"),
    [
        ([], [(100.0, 1.0)], "empty"),
        ([(101.0, 1.0)], [(100.0, 1.0)], "crossed"),
        ([(float("nan"), 1.0)], [(100.0, 1.0)], "invalid"),
    ],
)
def test_unusable_books_have_no_opinion(
    bids: list[tuple[float, float]], asks: list[tuple[float, float]], reason: str
) -> None:
    vote = orderbook_imbalance_vote(bids, asks)
    assert (vote.direction, vote.strength) == (0, 0.0)
    assert reason in vote.reason


# Offsets in 1/64 steps from a best level 1/128 off 100 on both sides: every price is exact in
# binary and the mid is exactly 100 in the book and in its mirror, so the depth window is the same
# for both and no level sits a rounding error from its edge (where the property would be false).
levels = st.lists(st.tuples(st.integers(0, 12), st.floats(0.0, 1e6)), min_size=1, max_size=20)


@given(levels, levels)
def test_swapping_the_sides_flips_the_vote(bid_offsets: list[Any], ask_offsets: list[Any]) -> None:
    # Books mirrored around 100: a bid at 100 - d mirrors an ask at 100 + d.
    bid_offsets = [(0, bid_offsets[0][1]), *bid_offsets[1:]]
    ask_offsets = [(0, ask_offsets[0][1]), *ask_offsets[1:]]
    bids = sorted(((100.0 - 1 / 128 - k / 64, a) for k, a in bid_offsets), reverse=True)
    asks = sorted((100.0 + 1 / 128 + k / 64, a) for k, a in ask_offsets)
    vote = orderbook_imbalance_vote(bids, asks, window_bps=10)
    mirrored = orderbook_imbalance_vote(
        [(200.0 - p, a) for p, a in asks], [(200.0 - p, a) for p, a in bids], window_bps=10
    )
    assert 0.0 <= vote.strength <= 1.0
    assert mirrored.direction == -vote.direction
    assert mirrored.strength == pytest.approx(vote.strength)


# --- 6: divergence and lead-lag ----------------------------------------------------------------


def test_a_leader_move_beyond_fees_is_followed() -> None:
    # leader +2%, follower +0.5%: gap 1.5% > 0.8% fees; strength (1.5-0.8)/(0.8*2) = 0.4375
    vote = lead_lag_vote([100.0, 102.0], [50.0, 50.25], round_trip_fee=0.008)
    assert vote.side == "BUY"
    assert vote.strength == pytest.approx(0.4375)
    down = lead_lag_vote([100.0, 98.0], [50.0, 50.0], round_trip_fee=0.008)
    assert down.side == "SELL"


def test_a_gap_inside_the_fees_is_noise() -> None:
    vote = lead_lag_vote([100.0, 100.5], [100.0, 100.0], round_trip_fee=0.008)
    assert (vote.direction, vote.strength) == (0, 0.0)
    assert "within fees" in vote.reason


def test_price_divergence_against_the_peer_median() -> None:
    # peers 101, 103, 200 -> median 103; local 100: gap 3% vs fees 0.8% -> (3-0.8)/1.6 > 1
    vote = price_divergence_vote(
        100.0, {"kraken": 101.0, "bitstamp": 103.0, "odd": 200.0}, round_trip_fee=0.008
    )
    assert (vote.side, vote.strength) == ("BUY", 1.0)
    rich = price_divergence_vote(101.2, {"kraken": 100.0}, round_trip_fee=0.008)
    # gap = 100/101.2 - 1 = -1.186%; strength (1.186-0.8)/1.6 = 0.241
    assert rich.side == "SELL"
    assert rich.strength == pytest.approx((1 - 100 / 101.2 - 0.008) / 0.016)
    assert price_divergence_vote(100.0, {}, round_trip_fee=0.008).has_opinion is False


def test_a_zero_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="fees"):
        lead_lag_vote([1.0, 2.0], [1.0, 1.0], round_trip_fee=0.0)


prices = st.floats(1.0, 1e6)


@given(prices, prices, prices, prices)
def test_lead_lag_is_antisymmetric_in_its_windows(
    a0: float, a1: float, b0: float, b1: float
) -> None:
    forward = lead_lag_vote([a0, a1], [b0, b1], round_trip_fee=0.008)
    backward = lead_lag_vote([b0, b1], [a0, a1], round_trip_fee=0.008)
    assert backward.direction == -forward.direction
    assert backward.strength == pytest.approx(forward.strength)
    assert 0.0 <= forward.strength <= 1.0


# --- 7: latency anomaly ------------------------------------------------------------------------

HISTORY = [10.0, 12.0, 11.0, 9.0, 10.0, 10.0, 13.0, 10.0, 10.0, 8.0]  # median 10 ms


def test_latency_normal_hold_and_severe() -> None:
    assert latency_vote(25.0, HISTORY).has_opinion is False  # 2.5x
    hold = latency_vote(40.0, HISTORY)  # 4x: HOLD, strength (4 - 1) / (6 - 1) = 0.6
    assert (hold.side, hold.strength) == ("HOLD", pytest.approx(0.6))
    assert "risk-off" in hold.reason
    severe = latency_vote(60.0, HISTORY)  # 6x: SELL
    assert (severe.side, severe.strength) == ("SELL", 1.0)


def test_latency_needs_a_baseline() -> None:
    vote = latency_vote(1000.0, HISTORY[:5])
    assert vote.has_opinion is False
    assert "baseline" in vote.reason


@given(
    st.lists(st.floats(0.1, 1e4), min_size=10, max_size=50),
    st.floats(0.0, 1e6),
    st.floats(0.01, 100.0),
)
def test_latency_is_scale_free_and_never_votes_buy(
    history: list[float], rtt: float, scale: float
) -> None:
    vote = latency_vote(rtt, history)
    scaled = latency_vote(rtt * scale, [h * scale for h in history])
    assert vote.direction in (0, -1)
    assert scaled.direction == vote.direction
    assert scaled.strength == pytest.approx(vote.strength, rel=1e-6, abs=1e-9)


@given(st.floats(0.0, 1e5), st.floats(0.0, 1e5))
def test_latency_strength_grows_with_the_round_trip(r1: float, r2: float) -> None:
    low, high = sorted((r1, r2))
    assert latency_vote(low, HISTORY).strength <= latency_vote(high, HISTORY).strength


def test_a_vote_refuses_out_of_range_values() -> None:
    with pytest.raises(ValueError, match="strength"):
        SnapshotVote("x", 1, 1.5, "")
    with pytest.raises(ValueError, match="direction"):
        SnapshotVote("x", 2, 0.5, "")
