"""Portfolio snapshots: what the account is worth at one instant, in quote currency."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Holding:
    """A balance of one asset and the price used to value it (quote per unit).

    ``price`` is ``None`` when no price was available: a snapshot built from such a holding is a
    data fault, because valuing it at zero would report a fake loss (and could trip HARDSTOP).
    """

    asset: str
    amount: float
    price: float | None


@dataclass(frozen=True, slots=True)
class PortfolioSnapshot:
    """Mark-to-market equity: free ``cash`` plus every holding at its price (quote currency)."""

    ts: datetime
    cash: float
    holdings: tuple[Holding, ...] = ()
    quote_currency: str = "USD"
    region: str = "ewr"
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def positions_value(self) -> float:
        """Sum of priced holdings; NaN if any non-zero holding lacks a usable price."""
        total = 0.0
        for holding in self.holdings:
            if holding.amount == 0:
                continue
            if holding.price is None or not math.isfinite(holding.price) or holding.price <= 0:
                return math.nan
            total += holding.amount * holding.price
        return total

    @property
    def total_equity(self) -> float:
        return self.cash + self.positions_value
