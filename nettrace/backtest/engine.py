"""The backtest engine: vectorised signals in, the compiled kernel for fills, results out.

One code path for every strategy. An ungated baseline runs through the kernel in one call. A
gated strategy makes the kernel pause at each bar where it wants to act; the engine then asks
``strategies.decision`` -- the GoalValidator and the risk controller, the same calls the live
engine makes -- and resumes the kernel with the approved orders.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from nettrace.agents.agent_goals import (
    LAW,
    GoalThresholds,
    GoalValidator,
    MemoryDecisionRecorder,
    TradeDecision,
)
from nettrace.agents.risk_controller import AccountState, RiskController
from nettrace.backtest import kernel
from nettrace.backtest.results import BacktestResult, TradeRecords
from nettrace.domain.fees import FeeSchedule
from nettrace.market.candles import Candles
from nettrace.strategies.base import Strategy, StrategySignals
from nettrace.strategies.decision import ChargedFees, decide_entry, decide_exit

FillModel = Literal["next_open", "maker"]
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BacktestConfig:
    """How to simulate. Money in quote currency; fee rates are fractions (0.004 = 0.40%).

    ``fee`` (the CLI's ``--fee``) charges one rate on every fill; otherwise ``next_open`` fills
    pay the taker rate (they are market orders at the open), ``maker`` fills the maker rate,
    stops the taker rate and take-profits the maker rate.
    """

    initial_cash: float = 10_000.0
    fees: FeeSchedule = field(default_factory=FeeSchedule)
    fee: float | None = None
    fill: FillModel = "next_open"
    max_open_positions: int | None = None

    def charged(self) -> ChargedFees:
        """What each leg will really pay: what the rules must judge with."""
        rates = self.fee_rates()
        return ChargedFees(
            entry=float(rates[kernel.FEE_ENTRY]),
            exit=float(rates[kernel.FEE_EXIT]),
            take_profit=float(rates[kernel.FEE_TAKE_PROFIT]),
        )

    def judged_fees(self) -> FeeSchedule:
        """The fee schedule the validator judges with: ``--fee`` replaces both rates."""
        return self.fees if self.fee is None else FeeSchedule(maker=self.fee, taker=self.fee)

    def fee_rates(self) -> np.ndarray:
        if self.fee is not None:
            return np.full(4, self.fee, dtype=np.float64)
        fill_rate = self.fees.maker if self.fill == "maker" else self.fees.taker
        rates = [0.0] * 4
        rates[kernel.FEE_ENTRY] = fill_rate
        rates[kernel.FEE_EXIT] = fill_rate
        rates[kernel.FEE_STOP] = self.fees.taker
        rates[kernel.FEE_TAKE_PROFIT] = self.fees.maker
        return np.array(rates, dtype=np.float64)


@dataclass
class _Book:
    """The kernel's mutable state, kept between pauses."""

    n_bars: int
    n_pairs: int
    capacity: int
    cash: np.ndarray = field(init=False)
    pos: np.ndarray = field(init=False)
    pos_bar: np.ndarray = field(init=False)
    pending: np.ndarray = field(init=False)
    pending_f: np.ndarray = field(init=False)
    last_close: np.ndarray = field(init=False)
    trades_f: np.ndarray = field(init=False)
    trades_i: np.ndarray = field(init=False)
    n_trades: np.ndarray = field(init=False)
    equity: np.ndarray = field(init=False)
    in_market: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.cash = np.zeros(1)
        self.pos = np.zeros((self.n_pairs, kernel.POS_COLUMNS))
        self.pos[:, kernel.POS_STOP :] = np.nan
        self.pos_bar = np.zeros(self.n_pairs, dtype=np.int64)
        self.pending = np.zeros((self.n_pairs, 2), dtype=np.int64)
        self.pending_f = np.full((self.n_pairs, kernel.PENDING_COLUMNS), np.nan)
        self.last_close = np.full(self.n_pairs, np.nan)
        self.trades_f = np.empty((self.capacity, kernel.TRADE_COLUMNS))
        self.trades_i = np.empty((self.capacity, 4), dtype=np.int64)
        self.n_trades = np.zeros(1, dtype=np.int64)
        self.equity = np.empty(self.n_bars)
        self.in_market = np.zeros(1, dtype=np.int64)


def run_backtest(
    strategy: Strategy,
    candles: Candles | Mapping[str, Candles],
    config: BacktestConfig | None = None,
    *,
    validator: GoalValidator | None = None,
    risk: RiskController | None = None,
    thresholds: GoalThresholds | None = None,
    progress: Progress | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` on one or several pairs sharing one wallet.

    Pairs are aligned on the union of their bar times; a pair without a bar at some time simply
    has nothing happen then. Gated decisions are recorded by ``validator`` (an in-memory
    recorder when none is given) and returned on the result. ``validator`` and ``risk`` are
    the rules in force (``config.rules.RulesInForce`` builds both from the settings); the
    defaults are the law's own thresholds and limits.
    """
    config = config or BacktestConfig()
    by_pair = {candles.key.pair: candles} if isinstance(candles, Candles) else dict(candles)
    if not by_pair:
        raise ValueError("no candles to backtest")
    timeframes = {c.key.timeframe for c in by_pair.values()}
    if len(timeframes) != 1:
        raise ValueError(f"all pairs must share one timeframe, got {sorted(timeframes)}")
    if any(len(c) == 0 for c in by_pair.values()):
        empty = [p for p, c in by_pair.items() if len(c) == 0]
        raise ValueError(f"no candles for {', '.join(empty)} in the chosen range")
    pairs = sorted(by_pair)
    risk = risk or RiskController()
    recorder = MemoryDecisionRecorder()
    if validator is None:
        validator = GoalValidator(thresholds or LAW, fees=config.judged_fees(), recorder=recorder)
    max_open = config.max_open_positions or (
        risk.limits.max_open_positions if strategy.gated else len(pairs)
    )

    timestamps, columns = _align(by_pair, pairs)
    n_bars, n_pairs = len(timestamps), len(pairs)
    signals = {pair: strategy.run(by_pair[pair]) for pair in pairs}
    entry = _stack(pairs, by_pair, timestamps, {p: s.entry for p, s in signals.items()}, False)
    exit_ = _stack(pairs, by_pair, timestamps, {p: s.exit for p, s in signals.items()}, False)
    # Constant per run: read-only broadcast views (no (bars, pairs) copies; the kernel only reads).
    size = _constant(strategy.stake_fraction, n_bars, n_pairs)
    stop = _constant(strategy.stop_loss or np.nan, n_bars, n_pairs)
    target = _constant(strategy.take_profit or np.nan, n_bars, n_pairs)
    capacity = int(np.count_nonzero(entry)) + n_pairs + 1
    book = _Book(n_bars, n_pairs, capacity)
    book.cash[0] = config.initial_cash
    fees = config.fee_rates()
    maker = config.fill == "maker"
    # Only gated runs pause for decisions, the sole users of the row map.
    row_of = {p: _rows(by_pair[p].timestamp, timestamps) for p in pairs} if strategy.gated else {}

    t = 0
    peak = config.initial_cash
    while True:
        paused = kernel.run(
            columns["open"],
            columns["high"],
            columns["low"],
            columns["close"],
            entry,
            exit_,
            size,
            stop,
            target,
            fees,
            maker,
            max_open,
            strategy.gated,
            risk.limits.max_exit_reprices,
            risk.limits.entry_ttl_bars,
            t,
            book.cash,
            book.pos,
            book.pos_bar,
            book.pending,
            book.pending_f,
            book.last_close,
            book.trades_f,
            book.trades_i,
            book.n_trades,
            book.equity,
            book.in_market,
        )
        if paused == kernel.DONE:
            break
        peak = max(peak, float(book.equity[t : paused + 1].max()))
        _decide(
            strategy,
            signals,
            pairs,
            row_of,
            paused,
            columns["close"],
            entry,
            exit_,
            book,
            peak,
            config.charged(),
            validator,
            risk,
        )
        if progress is not None:
            progress(paused + 1, n_bars)
        t = paused + 1
    if progress is not None:
        progress(n_bars, n_bars)

    records = _records(book, pairs, timestamps)
    decisions: list[TradeDecision] = list(recorder.decisions)
    result = BacktestResult(
        strategy=strategy.name,
        timeframe=timeframes.pop(),
        initial_cash=config.initial_cash,
        records=records,
        timestamps=timestamps,
        equity=book.equity,
        fees_paid=float(records.fee.sum() + book.pos[:, 2].sum()),
        candles=by_pair,
        params={**strategy.params(), "fill": config.fill, "fee": config.fee,
                "max_open_positions": max_open},
        synthetic=any(c.synthetic for c in by_pair.values()),
        exposure=float(book.in_market[0]) / n_bars,
        decisions=decisions,
    )  # fmt: skip
    return result


def _decide(
    strategy: Strategy,
    signals: Mapping[str, StrategySignals],
    pairs: list[str],
    row_of: Mapping[str, np.ndarray],
    bar: int,
    close: np.ndarray,
    entry: np.ndarray,
    exit_: np.ndarray,
    book: _Book,
    peak: float,
    charged: ChargedFees,
    validator: GoalValidator,
    risk: RiskController,
) -> None:
    """Judge every candidate at ``bar``'s close through the shared decision functions."""
    equity = float(book.equity[bar])
    exposure = float(sum(book.pos[j, 0] * book.last_close[j] for j in range(len(pairs))))
    open_positions = int(np.count_nonzero(book.pos[:, 0] > 0.0))
    for j, pair in enumerate(pairs):
        price = close[bar, j]
        if math.isnan(price):
            continue
        row = int(row_of[pair][bar])
        if book.pos[j, 0] > 0.0:
            if exit_[bar, j] and book.pending[j, 1] == 0:
                entry_price = book.pos[j, kernel.POS_PRICE]
                decision = decide_exit(
                    signals[pair], row, pair, price, entry_price,
                    book.pos[j, kernel.POS_FEE] / (book.pos[j, kernel.POS_AMOUNT] * entry_price),
                    validator, exit_fee_rate=charged.exit,
                )  # fmt: skip
                if decision.approved and decision.price_bound is not None:
                    book.pending[j, 1] = 1
                    # The approval binds the exit: never below its bound, reprices included.
                    book.pos[j, kernel.POS_EXIT_BOUND] = decision.price_bound
                    book.pending_f[j, kernel.P_LIMIT] = max(price, decision.price_bound)
        elif entry[bar, j] and book.pending[j, 0] == 0:
            account = AccountState(
                equity=equity, peak_equity=peak, open_positions=open_positions, exposure=exposure
            )
            plan = decide_entry(
                strategy, signals[pair], row, pair, price, account, validator, risk,
                charged=charged,
            )  # fmt: skip
            if plan.place and plan.price_bound > 0.0:
                book.pending[j, 0] = risk.limits.entry_ttl_bars
                book.pending_f[j] = (
                    plan.size_fraction,
                    plan.stop_fraction,
                    plan.take_profit_fraction,
                    min(price, plan.price_bound),
                    plan.stop_price,
                    plan.price_bound,
                    np.nan,
                )


def _align(
    by_pair: Mapping[str, Candles], pairs: list[str]
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The union of bar times and each OHLC column as a (bars, pairs) array, NaN where absent."""
    if len(pairs) == 1:
        only = by_pair[pairs[0]]
        return only.timestamp, {
            name: np.ascontiguousarray(getattr(only, name).reshape(-1, 1))
            for name in ("open", "high", "low", "close")
        }
    timestamps = np.unique(np.concatenate([by_pair[p].timestamp for p in pairs]))
    columns = {}
    for name in ("open", "high", "low", "close"):
        values = {p: getattr(by_pair[p], name) for p in pairs}
        columns[name] = _stack(pairs, by_pair, timestamps, values, np.nan)
    return timestamps, columns


def _stack(
    pairs: list[str],
    by_pair: Mapping[str, Candles],
    timestamps: np.ndarray,
    values: Mapping[str, np.ndarray],
    fill: float | bool,
) -> np.ndarray:
    if len(pairs) == 1:
        return np.ascontiguousarray(values[pairs[0]].reshape(-1, 1))
    dtype = np.bool_ if isinstance(fill, bool) else np.float64
    out: np.ndarray = np.full((len(timestamps), len(pairs)), fill, dtype=dtype)
    for j, pair in enumerate(pairs):
        out[np.searchsorted(timestamps, by_pair[pair].timestamp), j] = values[pair]
    return out


def _rows(own: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """For each aligned bar, the row of this pair's own candles at or before it."""
    return np.clip(np.searchsorted(own, timestamps, side="right") - 1, 0, None)


def _constant(value: float, n_bars: int, n_pairs: int) -> np.ndarray:
    return np.broadcast_to(np.float64(value), (n_bars, n_pairs))


def _records(book: _Book, pairs: list[str], timestamps: np.ndarray) -> TradeRecords:
    """The kernel's trade rows as columns (copies: the book's buffers are over-allocated)."""
    n = int(book.n_trades[0])
    ints, floats = book.trades_i[:n], book.trades_f[:n]
    return TradeRecords(
        pairs=tuple(pairs),
        pair=ints[:, 0].copy(),
        entry_ms=timestamps[ints[:, 1]],
        exit_ms=timestamps[ints[:, 2]],
        entry_price=floats[:, 0].copy(),
        exit_price=floats[:, 1].copy(),
        amount=floats[:, 2].copy(),
        fee=floats[:, 3].copy(),
        profit=floats[:, 4].copy(),
        reason=ints[:, 3].copy(),
        stop_price=floats[:, 5].copy(),
        entry_bound=floats[:, 6].copy(),
        exit_bound=floats[:, 7].copy(),
    )
