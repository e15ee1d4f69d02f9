"""Mean reversion: votes against a close beyond the Bollinger band, stronger further out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from nettrace.market.candles import Candles
from nettrace.signals.mean_reversion import MeanReversionGenerator


def _quiet_then(jump: float, n: int = 300, at: int = 200) -> np.ndarray:
    """Small seeded noise around 100, then one bar at ``at`` moved by ``jump`` (a fraction)."""
    rng = np.random.default_rng(11)
    close = 100.0 * (1.0 + 0.001 * rng.standard_normal(n))
    close[at] *= 1.0 + jump
    return close


def _z(close: np.ndarray, i: int, period: int = 20) -> float:
    """Bollinger z of bar ``i``, computed independently with numpy (population std)."""
    window = close[i - period + 1 : i + 1]
    return float((close[i] - window.mean()) / window.std(ddof=0))


def test_buys_after_a_sharp_drop(build_candles: Callable[..., Candles]) -> None:
    close = _quiet_then(-0.05)
    out = MeanReversionGenerator().compute(build_candles(close))
    z = _z(close, 200)
    assert z < -4.0  # a 5 % drop in 0.1 % noise is about as far out as 20 bars allow
    assert out.direction[200] == 1
    assert out.strength[200] == pytest.approx(min(abs(z) / 4.0, 1.0))
    # Before the drop the quiet series stays inside the bands most of the time.
    assert np.mean(out.direction[20:200] == 0) > 0.85


def test_sells_after_a_sharp_spike(build_candles: Callable[..., Candles]) -> None:
    close = _quiet_then(+0.05)
    out = MeanReversionGenerator().compute(build_candles(close))
    assert out.direction[200] == -1
    assert out.strength[200] > 0.9


def test_matches_an_independent_z_score(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    close = path(1_000, 0.0, 0.003, seed=8)
    out = MeanReversionGenerator().compute(build_candles(close))
    z = np.array([_z(close, i) for i in range(19, len(close))])
    direction = out.direction[19:]
    np.testing.assert_array_equal(direction == 1, z < -2.0)
    np.testing.assert_array_equal(direction == -1, z > 2.0)
    assert np.sum(direction != 0) > 20
    voting = direction != 0
    np.testing.assert_allclose(out.strength[19:][voting], np.minimum(np.abs(z) / 4, 1)[voting])
    assert np.all(out.strength[19:][~voting] == 0.0)
    assert np.all(out.direction[:19] == 0)


def test_flat_window_has_no_opinion(build_candles: Callable[..., Candles]) -> None:
    close = np.concatenate((np.full(100, 5e-6), [4e-6], np.full(50, 5e-6)))
    out = MeanReversionGenerator().compute(build_candles(close))
    assert np.all(out.direction[:100] == 0)  # zero spread: no band, no stretch
    assert out.direction[100] == 1  # the drop out of a flat window is a stretch
    assert np.all(np.isfinite(out.strength))


def test_tiny_prices_give_the_same_votes(
    build_candles: Callable[..., Candles], path: Callable[..., np.ndarray]
) -> None:
    close = path(1_000, 0.0, 0.002, seed=9)
    normal = MeanReversionGenerator().compute(build_candles(close))
    tiny = MeanReversionGenerator().compute(build_candles(close * 1e-7))
    np.testing.assert_array_equal(tiny.direction, normal.direction)
    np.testing.assert_allclose(tiny.strength, normal.strength, atol=1e-9)


@pytest.mark.parametrize("kwargs", [{"period": 1}, {"k": 0.0}, {"k": 5.0}])
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="mean_reversion needs"):
        MeanReversionGenerator(**kwargs)
