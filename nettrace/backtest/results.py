"""What a backtest produces: the trade list, the equity curve, and a fingerprint of the trades.

The fingerprint (sha256 over the ordered trade list) makes any change that alters trades
visible: two runs with equal fingerprints made the same trades at the same prices.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from nettrace.agents.agent_goals import TradeDecision
from nettrace.market.candles import Candles, FloatArray, IntArray

#: Significant digits of prices and amounts that enter the fingerprint. Enough to see any real
#: change; few enough that the last-ulp differences of another CPU do not change it.
FINGERPRINT_DIGITS = 12


@dataclass(frozen=True, slots=True)
class Trade:
    """One closed round trip, long only.

    Prices are quote per unit of base; ``amount`` is base units; ``fee`` is the total of both
    legs' fees in quote; ``profit`` is net of fees, in quote. Times are bar times (UTC) at
    which the entry and exit orders filled.
    """

    pair: str
    entry_time: datetime
    exit_time: datetime
    entry_price: float
    exit_price: float
    amount: float
    fee: float
    profit: float
    exit_reason: str = "signal"

    @property
    def return_fraction(self) -> float:
        """Net profit as a fraction of the entry notional."""
        cost = self.entry_price * self.amount
        return self.profit / cost if cost else 0.0

    def to_export(self) -> dict[str, Any]:
        return {
            "pair": self.pair,
            "entry_time": _iso(self.entry_time),
            "exit_time": _iso(self.exit_time),
            "entry_price": self.entry_price,
            "exit_price": self.exit_price,
            "amount": self.amount,
            "fee": self.fee,
            "profit": self.profit,
            "exit_reason": self.exit_reason,
        }


def fingerprint(trades: list[Trade]) -> str:
    """sha256 over the ordered trades (pair, times, prices, amount, fee, profit)."""
    digest = hashlib.sha256()
    g = f".{FINGERPRINT_DIGITS}g"
    for t in trades:
        line = "|".join(
            (
                t.pair,
                _iso(t.entry_time),
                _iso(t.exit_time),
                format(t.entry_price, g),
                format(t.exit_price, g),
                format(t.amount, g),
                format(t.fee, g),
                format(t.profit, g),
            )
        )
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class BacktestResult:
    """Everything one backtest run produced.

    ``equity`` is mark-to-market account value in quote currency at each bar's close, aligned
    with ``timestamps`` (ms, UTC). ``candles`` holds the input per pair (for charts).
    ``synthetic`` is True if any input was generated data: reports must say so.
    """

    strategy: str
    timeframe: str
    initial_cash: float
    trades: list[Trade]
    timestamps: IntArray
    equity: FloatArray
    fees_paid: float
    candles: dict[str, Candles] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    synthetic: bool = False
    #: Fraction of bars with at least one open position.
    exposure: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    #: Every GoalValidator decision a gated run made (empty for ungated baselines).
    decisions: list[TradeDecision] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.trades)

    @property
    def final_equity(self) -> float:
        return float(self.equity[-1]) if len(self.equity) else self.initial_cash

    def to_export(self) -> dict[str, Any]:
        """The ``--export`` JSON document: metrics, fingerprint and trades (ISO-8601 UTC)."""
        return {
            "strategy": self.strategy,
            "timeframe": self.timeframe,
            "pairs": sorted(self.candles),
            "synthetic": self.synthetic,
            "params": self.params,
            "metrics": {k: _finite_or_none(v) for k, v in self.metrics.items()},
            "fingerprint": self.fingerprint,
            "trades": [t.to_export() for t in self.trades],
        }


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
