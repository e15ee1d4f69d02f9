"""Risk-off votes (signal 7's HOLD) in the aggregation: they oppose buys, never sells."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nettrace.signals.aggregate import aggregate
from nettrace.signals.base import GeneratorOutput


def one(name: str, direction: int, strength: float) -> GeneratorOutput:
    return GeneratorOutput(
        name, np.array([direction], dtype=np.int8), np.array([strength], dtype=np.float64)
    )


votes = st.lists(
    st.tuples(
        st.sampled_from(["trend", "momentum", "volume", "orderbook_imbalance"]),
        st.sampled_from([-1, 0, 1]),
        st.floats(0.0, 1.0),
    ),
    min_size=1,
    max_size=6,
)


@given(votes, st.lists(st.floats(0.0, 1.0), min_size=1, max_size=3))
def test_a_hold_never_raises_a_buy_never_flips_a_side_and_leaves_sells_alone(
    cast: list[tuple[str, int, float]], holds: list[float]
) -> None:
    outputs = [one(name, d, s) for name, d, s in cast]
    risk_off = [one("latency_anomaly", 0, h) for h in holds]
    plain = aggregate(outputs)
    held = aggregate(outputs, risk_off=risk_off)
    assert held.side[0] == plain.side[0]
    assert held.signal_count[0] == plain.signal_count[0]  # a hold agrees with nobody
    if plain.side[0] == 1:
        assert held.confidence[0] <= plain.confidence[0] + 1e-12
    else:
        assert held.confidence[0] == pytest.approx(plain.confidence[0])


def test_the_hold_counts_as_opposing_weight_times_its_strength() -> None:
    outputs = [one("trend", 1, 0.8), one("momentum", 1, 0.8)]
    held = aggregate(outputs, risk_off=[one("latency_anomaly", 0, 0.8)])
    assert held.confidence[0] == pytest.approx(0.8 * (1 - 0.8 / 2.8))
    silenced = aggregate(
        outputs, {"latency_anomaly": 0.0}, risk_off=[one("latency_anomaly", 0, 1.0)]
    )
    assert silenced.confidence[0] == pytest.approx(0.8)  # a zero weight silences it too


def test_a_risk_off_strength_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="risk-off strengths"):
        aggregate([one("trend", 1, 0.8)], risk_off=[one("latency_anomaly", 0, 1.5)])
