"""The strategies NetTrace ships, by name (``nettrace backtest --strategy NAME``)."""

from __future__ import annotations

from collections.abc import Callable

from nettrace.strategies.base import Strategy
from nettrace.strategies.ema_cross import EmaCross


def _sniper() -> Strategy:
    from nettrace.strategies.sniper import Sniper

    return Sniper()


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "ema_cross": EmaCross,
    "sniper": _sniper,
}


def strategy_by_name(name: str) -> Strategy:
    """A fresh default instance of strategy ``name``; ``ValueError`` names the valid ones."""
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r} (choose from {', '.join(sorted(STRATEGIES))})"
        ) from None
    return factory()
