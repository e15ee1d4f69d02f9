"""The candle-derived generators by name, so configuration and the CLI can refer to them as text.

Factories, not shared instances: callers get their own objects and nothing is cached across
them. (The generators are frozen today; the factories keep that an implementation detail.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

from nettrace.signals.base import SignalGenerator
from nettrace.signals.mean_reversion import MeanReversionGenerator
from nettrace.signals.ml_forecast import MLForecastGenerator
from nettrace.signals.momentum import MomentumGenerator
from nettrace.signals.trend import TrendGenerator
from nettrace.signals.volume import VolumeSurgeGenerator

#: Each generator's stable name and the factory of its default instance, in DESIGN §3 order.
GENERATOR_FACTORIES: Final[Mapping[str, Callable[[], SignalGenerator]]] = MappingProxyType(
    {
        TrendGenerator.name: TrendGenerator,
        MomentumGenerator.name: MomentumGenerator,
        MeanReversionGenerator.name: MeanReversionGenerator,
        VolumeSurgeGenerator.name: VolumeSurgeGenerator,
        MLForecastGenerator.name: MLForecastGenerator,
    }
)

GENERATOR_NAMES: Final[tuple[str, ...]] = tuple(GENERATOR_FACTORIES)


def default_generators() -> tuple[SignalGenerator, ...]:
    """Fresh default instances of all five candle-derived generators, in DESIGN §3 order."""
    return tuple(factory() for factory in GENERATOR_FACTORIES.values())


#: The factory of the default set: ``DEFAULT_GENERATORS()`` returns fresh instances.
DEFAULT_GENERATORS: Final[Callable[[], tuple[SignalGenerator, ...]]] = default_generators


def generator_by_name(name: str) -> SignalGenerator:
    """A fresh default instance of generator ``name``; ``ValueError`` naming the valid names."""
    try:
        factory = GENERATOR_FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"unknown signal generator {name!r} (use one of {', '.join(GENERATOR_NAMES)})"
        ) from None
    return factory()
