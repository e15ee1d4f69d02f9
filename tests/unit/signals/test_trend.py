"""Trend generator: follows a clear trend, keeps quiet in a range, strength from ADX."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import talib

from nettrace.market.candles import Candles
from nettrace.signals.trend import PRICE_SCALE, TrendGenerator, rescaled_prices

UP, DOWN = 0.002, -0.002  # per-bar log drift of the synthetic trends (noise 0.002)


@pytest.mark.parametrize(("drift", "expected"), [(UP, 1), (DOWN, -1)])
def test_follows_a_steady_trend(
    build_candles: Callable[..., Candles],
    path: Callable[..., np.ndarray],
    drift: float,
    expected: int,
) -> None:
    out = TrendGenerator().compute(build_candles(path(1_500, drift, 0.002, seed=1)))
    after_warmup = out.direction[100:]
    # A drift as large as the noise keeps EMA20 on the trend's side and ADX far above 25.
    assert np.mean(after_warmup == expected) > 0.95
    assert not np.any(after_warmup == -expected)


def test_adx_filter_silences_a_range(build_candles: Callable[..., Candles]) -> None:
    rng = np.random.default_rng(7)
    ranging = build_candles(100.0 * (1.0 + 0.003 * rng.standard_normal(2_000)))
    filtered = TrendGenerator().compute(ranging).direction[100:]
    unfiltered = TrendGenerator(adx_threshold=0.0).compute(ranging).direction[100:]
    # Without the filter the EMA cross always has a side; with it, noise around a level is
    # rarely a trend.
    assert np.all(unfiltered != 0)
    assert np.mean(filtered != 0) < 0.1


def test_strength_is_adx_over_fifty(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    candles = build_candles(path(1_000, 0.001, 0.003, seed=3))
    out = TrendGenerator().compute(candles)
    adx = talib.ADX(candles.high, candles.low, candles.close, timeperiod=14)
    voting = out.direction != 0
    assert voting.sum() > 100
    np.testing.assert_allclose(out.strength[voting], np.minimum(adx[voting] / 50.0, 1.0), 1e-9)
    assert np.all(adx[voting] >= 25.0)
    assert np.all(out.strength[~voting] == 0.0)


def test_warmup_has_no_opinion(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    out = TrendGenerator().compute(build_candles(path(300, UP, 0.002, seed=1)))
    # EMA50 is defined from bar 49 on (index slow_period - 1).
    assert np.all(out.direction[:49] == 0)
    assert np.all(out.strength[:49] == 0.0)
    assert out.direction[49] == 1


def test_tiny_prices_give_the_same_votes(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    """A pair quoted near 1e-6 BTC must trend like the same chart at 100 (TA-Lib's epsilon)."""
    close = path(1_500, 0.0005, 0.003, seed=4)
    normal = TrendGenerator().compute(build_candles(close))
    tiny = TrendGenerator().compute(build_candles(close * 1e-8))
    np.testing.assert_array_equal(tiny.direction, normal.direction)
    np.testing.assert_allclose(tiny.strength, normal.strength, atol=1e-9)


def test_rescaled_prices_are_relative_to_the_first_close(
    build_candles: Callable[..., Candles],
) -> None:
    candles = build_candles([2e-5, 4e-5, 1e-5])
    scaled = rescaled_prices(candles)
    np.testing.assert_allclose(scaled.close, [PRICE_SCALE, 2 * PRICE_SCALE, 0.5 * PRICE_SCALE])
    np.testing.assert_allclose(scaled.high / scaled.close, candles.high / candles.close)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fast_period": 50, "slow_period": 50},
        {"fast_period": 1},
        {"adx_threshold": 60.0},
        {"adx_full": 120.0},
    ],
)
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="trend needs"):
        TrendGenerator(**kwargs)
