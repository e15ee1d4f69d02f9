"""Track-record weights: earned from past votes only, higher for the right, lower for the wrong."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nettrace.signals.aggregate import aggregate
from nettrace.signals.base import GeneratorOutput
from nettrace.signals.track_record import WEIGHT_CAP, WEIGHT_FLOOR, track_record_weights

RISING = np.linspace(100.0, 200.0, 50)


def test_a_generator_without_votes_weighs_one() -> None:
    weights = track_record_weights(np.zeros(50, dtype=np.int8), RISING, horizon=1, window=10)
    np.testing.assert_array_equal(weights, np.ones(50))


def test_always_right_earns_more_and_always_wrong_less_only_once_outcomes_are_known() -> None:
    right = track_record_weights(np.ones(50, dtype=np.int8), RISING, horizon=3, window=10)
    wrong = track_record_weights(-np.ones(50, dtype=np.int8), RISING, horizon=3, window=10)
    # Bars 0..2: no vote has been judged yet (horizon 3), so both weigh 1.
    np.testing.assert_array_equal(right[:3], 1.0)
    np.testing.assert_array_equal(wrong[:3], 1.0)
    # Bar 3 judges the vote of bar 0: 1 of 1 right -> (1 + 1) / (1 + 2) -> 2 x 2/3.
    assert right[3] == pytest.approx(4 / 3)
    assert wrong[3] == pytest.approx(2 / 3)
    # After a full window of judged votes: 10 of 10 -> 11/12 -> 1.83, capped; 0 of 10 -> floor.
    assert right[-1] == WEIGHT_CAP
    assert wrong[-1] == pytest.approx(max(WEIGHT_FLOOR, 2 * 1 / 12))


@settings(max_examples=50, deadline=None)
@given(
    votes=st.lists(st.sampled_from([-1, 0, 1]), min_size=30, max_size=30),
    moves=st.lists(st.floats(-0.05, 0.05), min_size=30, max_size=30),
    cut=st.integers(5, 29),
)
def test_the_weight_at_a_bar_never_depends_on_later_bars(
    votes: list[int], moves: list[float], cut: int
) -> None:
    direction = np.array(votes, dtype=np.int8)
    close = 100.0 * np.cumprod(1.0 + np.array(moves))
    full = track_record_weights(direction, close, horizon=2, window=7)
    truncated = track_record_weights(direction[:cut], close[:cut], horizon=2, window=7)
    np.testing.assert_array_equal(full[:cut], truncated)
    assert np.all((full >= WEIGHT_FLOOR) & (full <= WEIGHT_CAP))


def test_per_bar_weights_aggregate_as_the_scalar_weights_of_each_bar() -> None:
    rng = np.random.default_rng(5)
    outputs = [
        GeneratorOutput(name, rng.integers(-1, 2, 20).astype(np.int8), rng.uniform(0, 1, 20))
        for name in ("a", "b", "c")
    ]
    per_bar = {"a": rng.uniform(0.5, 1.5, 20), "b": rng.uniform(0.5, 1.5, 20), "c": 1.0}
    together = aggregate(outputs, per_bar)
    for t in range(20):
        one = [GeneratorOutput(o.name, o.direction[t : t + 1], o.strength[t : t + 1])
               for o in outputs]  # fmt: skip
        alone = aggregate(one, {k: float(np.broadcast_to(v, 20)[t]) for k, v in per_bar.items()})
        assert together.side[t] == alone.side[0]
        assert together.confidence[t] == pytest.approx(alone.confidence[0], abs=1e-12)
        assert together.signal_count[t] == alone.signal_count[0]


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="horizon"):
        track_record_weights(np.zeros(3, dtype=np.int8), np.ones(3), horizon=0)
    with pytest.raises(ValueError, match="bars"):
        track_record_weights(np.zeros(2, dtype=np.int8), np.ones(3))
    out = [GeneratorOutput("a", np.ones(3, dtype=np.int8), np.ones(3))]
    with pytest.raises(ValueError, match="finite"):
        aggregate(out, {"a": np.array([1.0, np.nan, 1.0])})
