"""Volume surge: a bar far above its usual volume votes with its own body."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from nettrace.market.candles import Candles
from nettrace.signals.volume import VolumeSurgeGenerator

N = 60


def _candles(build: Callable[..., Candles], surge_at: int, multiple: float, body: float) -> Candles:
    """Flat volume 1.0 except ``multiple`` at ``surge_at``; that bar's close is open + ``body``."""
    close = np.full(N, 100.0)
    open_ = np.full(N, 100.0)
    close[surge_at] = 100.0 + body
    volume = np.ones(N)
    volume[surge_at] = multiple
    return build(close, volume=volume, open_=open_)


@pytest.mark.parametrize(("body", "expected"), [(0.5, 1), (-0.5, -1), (0.0, 0)])
def test_five_times_volume_votes_with_the_body(
    build_candles: Callable[..., Candles], body: float, expected: int
) -> None:
    out = VolumeSurgeGenerator().compute(_candles(build_candles, 40, 5.0, body))
    assert out.direction[40] == expected
    # Baseline is the mean of the 20 previous volumes (1.0), so the ratio is 5: full strength.
    assert out.strength[40] == (1.0 if expected else 0.0)
    # Nothing else fires: the next bar's baseline includes the surge, (19 + 5) / 20 = 1.2.
    assert np.all(np.delete(out.direction, 40) == 0)


def test_strength_grows_with_the_ratio_and_small_surges_are_ignored(
    build_candles: Callable[..., Candles],
) -> None:
    three = VolumeSurgeGenerator().compute(_candles(build_candles, 40, 3.0, 0.5))
    assert three.direction[40] == 1
    assert three.strength[40] == pytest.approx(3.0 / 5.0)
    two = VolumeSurgeGenerator().compute(_candles(build_candles, 40, 2.0, 0.5))
    assert two.direction[40] == 0  # below the 2.5x default multiple
    assert two.strength[40] == 0.0


def test_needs_a_full_baseline(build_candles: Callable[..., Candles]) -> None:
    # Bar 20 is the first with 20 previous bars; bar 19 has only 19.
    early = VolumeSurgeGenerator().compute(_candles(build_candles, 19, 5.0, 0.5))
    assert np.all(early.direction == 0)
    first = VolumeSurgeGenerator().compute(_candles(build_candles, 20, 5.0, 0.5))
    assert first.direction[20] == 1


def test_zero_volume_history_has_no_opinion(build_candles: Callable[..., Candles]) -> None:
    close = np.linspace(100.0, 110.0, N)
    volume = np.zeros(N)
    volume[45] = 10.0
    out = VolumeSurgeGenerator().compute(build_candles(close, volume=volume))
    assert np.all(out.direction == 0)
    assert np.all(np.isfinite(out.strength))


@pytest.mark.parametrize("kwargs", [{"period": 0}, {"multiple": 1.0}, {"multiple": 6.0}])
def test_rejects_nonsense_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="volume needs"):
        VolumeSurgeGenerator(**kwargs)
