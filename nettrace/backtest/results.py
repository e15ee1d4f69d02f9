"""What a backtest produces: the trade list, the equity curve, and a fingerprint of the trades.

The fingerprint (sha256 over the ordered trade list) makes any change that alters trades
visible: two runs with equal fingerprints made the same trades at the same prices.

Trades are kept in columns (``TradeRecords``, numpy arrays, like vectorbt's records) and turned
into ``Trade`` objects only when something reads ``BacktestResult.trades``: a strategy search
runs thousands of backtests and needs only their metrics, which come straight from the columns,
while building tens of thousands of Python objects (and two datetimes each) was most of the
cost of a 1M-bar run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from nettrace.agents.agent_goals import TradeDecision
from nettrace.market.candles import Candles, FloatArray, IntArray

#: Significant digits of prices and amounts that enter the fingerprint. Enough to see any real
#: change; few enough that the last-ulp differences of another CPU do not change it.
FINGERPRINT_DIGITS = 12
#: Why a trade closed, indexed by ``TradeRecords.reason`` (the kernel's ``EXIT_*`` codes).
EXIT_REASONS: tuple[str, ...] = ("signal", "stop_loss", "take_profit")


class Trade(NamedTuple):
    """One closed round trip, long only.

    A named tuple rather than a frozen dataclass: a 1M-bar backtest builds tens of thousands
    of these, and a tuple is built in one C call where a frozen dataclass sets each field
    through ``object.__setattr__`` (measured: about 40% of the whole ema_cross run at 1M bars).

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


@dataclass(frozen=True, eq=False)
class TradeRecords:
    """Closed trades in columns, one row per trade in the order they closed.

    ``pair`` indexes ``pairs``; ``reason`` indexes ``EXIT_REASONS``; times are the fill bars'
    open times in ms UTC; units as on ``Trade``.
    """

    pairs: tuple[str, ...]
    pair: IntArray
    entry_ms: IntArray
    exit_ms: IntArray
    entry_price: FloatArray
    exit_price: FloatArray
    amount: FloatArray
    fee: FloatArray
    profit: FloatArray
    reason: IntArray
    #: What the rules bound each trade with (NaN where nothing did, e.g. an ungated baseline
    #: or a trade imported from an export): the stop in force, the entry approval's highest
    #: entry price and the signal exit approval's lowest exit price. ``backtest.audit`` reads
    #: them to check every trade against its approvals.
    stop_price: FloatArray | None = None
    entry_bound: FloatArray | None = None
    exit_bound: FloatArray | None = None

    def __len__(self) -> int:
        return len(self.pair)

    @property
    def return_fraction(self) -> FloatArray:
        """Each trade's net profit as a fraction of its entry notional (0 where that is 0)."""
        cost = self.entry_price * self.amount
        return np.divide(self.profit, cost, out=np.zeros_like(self.profit), where=cost != 0)

    def to_trades(self) -> list[Trade]:
        """The rows as ``Trade`` objects.

        The columns go to Python lists in one C call each (per-element numpy indexing is many
        times slower), and each time is ``datetime.fromtimestamp(ms / 1000, UTC)``.
        """
        to_datetime = datetime.fromtimestamp
        pairs, reasons = self.pairs, EXIT_REASONS
        floats = np.column_stack(
            (self.entry_price, self.exit_price, self.amount, self.fee, self.profit)
        ).tolist()
        rows = zip(
            self.pair.tolist(),
            self.entry_ms.tolist(),
            self.exit_ms.tolist(),
            self.reason.tolist(),
            floats,
            strict=True,
        )
        return [
            Trade(
                pairs[j],
                to_datetime(a / 1000, UTC),
                to_datetime(b / 1000, UTC),
                f[0],
                f[1],
                f[2],
                f[3],
                f[4],
                reasons[r],
            )
            for j, a, b, r, f in rows
        ]

    @classmethod
    def from_trades(cls, trades: Sequence[Trade]) -> TradeRecords:
        """Columns from ``Trade`` objects (hand-built results, imports of exported runs)."""
        pairs = tuple(sorted({t.pair for t in trades}))
        index = {p: i for i, p in enumerate(pairs)}

        def ms(moment: datetime) -> int:
            return round(moment.timestamp() * 1000)

        def floats(name: str) -> FloatArray:
            return np.array([getattr(t, name) for t in trades], dtype=np.float64)

        return cls(
            pairs=pairs,
            pair=np.array([index[t.pair] for t in trades], dtype=np.int64),
            entry_ms=np.array([ms(t.entry_time) for t in trades], dtype=np.int64),
            exit_ms=np.array([ms(t.exit_time) for t in trades], dtype=np.int64),
            entry_price=floats("entry_price"),
            exit_price=floats("exit_price"),
            amount=floats("amount"),
            fee=floats("fee"),
            profit=floats("profit"),
            reason=np.array([EXIT_REASONS.index(t.exit_reason) for t in trades], dtype=np.int64),
        )


def fingerprint(trades: Sequence[Trade]) -> str:
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
    records: TradeRecords
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

    @cached_property
    def trades(self) -> list[Trade]:
        """The closed trades as objects, built on first use (see the module docstring)."""
        return self.records.to_trades()

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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
