"""Momentum generator: votes with the move when RSI and ROC agree, silent on a flat market."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import talib

from nettrace.market.candles import Candles
from nettrace.signals.momentum import MomentumGenerator


@pytest.mark.parametrize(("drift", "expected"), [(0.002, 1), (-0.002, -1)])
def test_follows_a_steady_move(
    build_candles: Callable[..., Candles],
    path: Callable[..., np.ndarray],
    drift: float,
    expected: int,
) -> None:
    out = MomentumGenerator().compute(build_candles(path(1_500, drift, 0.002, seed=2)))
    after_warmup = out.direction[50:]
    assert np.mean(after_warmup == expected) > 0.9
    assert not np.any(after_warmup == -expected)


def test_sign_flips_when_the_move_reverses(build_candles: Callable[..., Candles]) -> None:
    # 200 bars up 0.3 % a bar, then 200 bars down 0.3 % a bar (no noise).
    steps = np.concatenate((np.full(200, 0.003), np.full(200, -0.003)))
    out = MomentumGenerator().compute(build_candles(100.0 * np.exp(np.cumsum(steps))))
    # RSI and ROC(10) need a few bars after the turn to change side; 30 is ample.
    assert np.all(out.direction[30:200] == 1)
    assert np.all(out.direction[230:] == -1)
    # Pure up-moves mean RSI 100, so the strength is capped at 1.
    np.testing.assert_allclose(out.strength[30:200], 1.0)


def test_flat_market_has_no_opinion(build_candles: Callable[..., Candles]) -> None:
    # TA-Lib reports RSI 0 for a series without changes; ROC 0 must keep that from voting.
    out = MomentumGenerator().compute(build_candles(np.full(300, 42.0)))
    assert np.all(out.direction == 0)
    assert np.all(out.strength == 0.0)


def test_strength_is_rsi_distance_and_needs_roc_agreement(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    candles = build_candles(path(2_000, 0.0, 0.004, seed=5))
    out = MomentumGenerator().compute(candles)
    rsi = talib.RSI(candles.close, timeperiod=14)
    roc = talib.ROC(candles.close, timeperiod=10)
    want_up = (rsi > 55.0) & (roc > 0.0)
    want_down = (rsi < 45.0) & (roc < 0.0)
    np.testing.assert_array_equal(out.direction == 1, want_up)
    np.testing.assert_array_equal(out.direction == -1, want_down)
    # A random walk has bars where RSI leans one way and ROC the other: those stay silent.
    disagree = ((rsi > 55.0) & (roc < 0.0)) | ((rsi < 45.0) & (roc > 0.0))
    assert disagree.sum() > 10
    assert np.all(out.direction[disagree] == 0)
    voting = out.direction != 0
    np.testing.assert_allclose(out.strength[voting], np.minimum(np.abs(rsi - 50) / 30, 1)[voting])
    assert np.all(out.strength[~voting] == 0.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"rsi_period": 1}, {"roc_period": 0}, {"rsi_band": 50.0}, {"rsi_full_distance": 0.0}],
)
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="momentum needs"):
        MomentumGenerator(**kwargs)
