"""Regime detector: long trends are labelled as such, a range is neutral, labels fit the rules."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from nettrace.agents.agent_goals import GoalValidator
from nettrace.domain.types import Regime, parse_regime
from nettrace.market.candles import Candles
from nettrace.signals.regime import REGIME_NAMES, detect_regime

WARMUP = 199 + 20  # EMA200 is defined from bar 199, its 20-bar change from bar 219


@pytest.mark.parametrize(("drift", "expected"), [(0.001, 1), (-0.001, -1)])
def test_labels_a_long_trend(
    build_candles: Callable[..., Candles],
    path: Callable[..., np.ndarray],
    drift: float,
    expected: int,
) -> None:
    regime = detect_regime(build_candles(path(2_000, drift, 0.002, seed=12)))
    assert regime.dtype == np.int8
    assert np.mean(regime[WARMUP:] == expected) > 0.9
    assert not np.any(regime == -expected)


def test_range_is_neutral(build_candles: Callable[..., Candles]) -> None:
    rng = np.random.default_rng(13)
    regime = detect_regime(build_candles(100.0 * (1.0 + 0.003 * rng.standard_normal(2_000))))
    assert np.mean(regime == 0) > 0.95


def test_warmup_is_neutral(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    regime = detect_regime(build_candles(path(400, 0.003, 0.001, seed=14)))
    assert np.all(regime[:WARMUP] == 0)
    assert regime[WARMUP] == 1


def test_a_strong_trend_below_the_slope_floor_is_neutral(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    # 0.001 % a bar is 0.02 % over 20 bars, under the 0.05 % default floor, however clean.
    candles = build_candles(path(1_000, 0.00001, 0.0, seed=15), wick=0.0)
    assert np.all(detect_regime(candles) == 0)
    assert np.mean(detect_regime(candles, min_slope_pct=0.0)[WARMUP:] == 1) > 0.9


def test_names_are_the_rules_regimes() -> None:
    assert set(REGIME_NAMES) == {1, -1, 0}
    assert parse_regime(REGIME_NAMES[1]) is Regime.UPTREND
    assert parse_regime(REGIME_NAMES[-1]) is Regime.DOWNTREND
    assert parse_regime(REGIME_NAMES[0]) is Regime.NEUTRAL
    # The rule that uses it: no BUY in a downtrend, BUY allowed otherwise.
    validator = GoalValidator()
    assert not validator.should_trade(0.9, 3, "BUY", REGIME_NAMES[-1])
    assert validator.should_trade(0.9, 3, "BUY", REGIME_NAMES[1])


@pytest.mark.parametrize(
    "kwargs", [{"ema_period": 1}, {"slope_window": 0}, {"min_slope_pct": -1.0}]
)
def test_rejects_nonsense_parameters(
    build_candles: Callable[..., Candles], kwargs: dict[str, float]
) -> None:
    with pytest.raises(ValueError, match="detect_regime needs"):
        detect_regime(build_candles(np.full(10, 1.0)), **kwargs)
