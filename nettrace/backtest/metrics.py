"""Performance metrics of a backtest, from its equity curve and trade list.

Every return-like metric is a *fraction* (0.031 means 3.1%), never a percent; money is in the
quote currency. Metrics that are undefined for the input (a ratio with a zero denominator, an
annualisation over less than a day) are NaN, never ``inf`` and never an exception, so one
degenerate run cannot crash a parameter sweep; ``BacktestResult.to_export`` turns NaN into JSON
``null``.

Days are UTC calendar days, bucketed by ``result.timestamps`` as given (the bar times the engine
recorded the equity at), because the HARDSTOP rule counts losses from the start of the UTC day.
Everything is vectorised: a 1M-bar equity curve takes a few tens of milliseconds.
"""

from __future__ import annotations

import math

import numpy as np

from nettrace.agents.agent_goals import FLOAT_TOLERANCE, HARDSTOP_DAILY_LOSS
from nettrace.backtest.results import BacktestResult
from nettrace.market.candles import FloatArray, IntArray

#: Milliseconds in one UTC day.
DAY_MS = 86_400_000
#: Length of the year CAGR annualises over, in days (calendar years incl. leap years).
DAYS_PER_YEAR = 365.25
#: Daily returns per year for Sharpe/Sortino: crypto trades every calendar day, not 252.
TRADING_DAYS_PER_YEAR = 365

#: The keys ``compute_metrics`` returns, in display order.
METRIC_KEYS: tuple[str, ...] = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "profit_factor",
    "exposure",
    "fees_paid",
    "trades",
    "avg_trade_return",
    "final_equity",
    "worst_day",
    "hardstop_days",
)

_NAN = float("nan")


def compute_metrics(result: BacktestResult) -> dict[str, float]:
    """All metrics of ``result`` keyed as in ``METRIC_KEYS``.

    Fractions unless noted:

    - ``total_return``: final equity / initial cash - 1.
    - ``cagr``: compound annual growth over the span from the first to the last timestamp, in
      365.25-day years. NaN if the span is under one day (annualising a few hours of noise
      gives absurd numbers) or if the result overflows a float.
    - ``sharpe`` / ``sortino``: from UTC-daily returns (last equity of each day over the last
      equity of the previous day with bars; the first day's base is the initial cash), risk-free
      rate 0, annualised with sqrt(365). Sharpe divides by the sample standard deviation
      (ddof=1); Sortino by the downside deviation sqrt(mean(min(r, 0)^2)) over all days. Both are
      NaN with fewer than two daily returns or a zero denominator (flat equity; no down days).
    - ``max_drawdown``: largest fall from a running peak, positive (0.2 = 20% below the peak).
      The initial cash counts as the first peak, so a fee paid on the first bar is a drawdown.
    - ``calmar``: cagr / max_drawdown; NaN if either is NaN or the drawdown is 0.
    - ``win_rate``: share of trades with profit > 0; NaN with no trades.
    - ``profit_factor``: gross profit / gross loss (quote over quote). NaN when no trade lost
      money (including no trades at all): the ratio would be infinite, and ``inf`` breaks
      sorting, averaging and JSON export alike.
    - ``exposure``: ``result.exposure`` (share of bars with a position open).
    - ``fees_paid``, ``final_equity``: quote currency.
    - ``trades``: number of closed trades, as a float so the dict has one value type.
    - ``avg_trade_return``: mean ``Trade.return_fraction``; NaN with no trades.
    - ``worst_day``: the deepest intraday fall of the bar-level equity below that UTC day's
      starting equity, negative (-0.031 = 3.1% below). A day starts at the last equity before
      its first bar (the initial cash for the first day). 0.0 if equity never fell below a
      day's start; NaN with no bars.
    - ``hardstop_days``: count of UTC days whose worst fall exceeded ``HARDSTOP_DAILY_LOSS``
      (strictly more, as the rule says; a fall of exactly 5% computes as 5.0000000000000044%
      in binary floating point, so ``FLOAT_TOLERANCE`` keeps it from counting).

    Raises ``ValueError`` if the initial cash is not positive, the timestamps and equity differ
    in length, or the timestamps go backwards: each would silently corrupt every metric.
    """
    timestamps = np.asarray(result.timestamps, dtype=np.int64)
    equity = np.asarray(result.equity, dtype=np.float64)
    initial = float(result.initial_cash)
    _validate(timestamps, equity, initial)

    final = float(equity[-1]) if len(equity) else initial
    profits = result.records.profit
    returns = result.records.return_fraction

    starts, start_equity = _day_bounds(timestamps, equity, initial)
    daily = _daily_returns(equity, starts, start_equity)
    sharpe, sortino = _sharpe_sortino(daily)
    worst_day, hardstop_days = _worst_day(equity, starts, start_equity)

    cagr = _cagr(timestamps, final / initial)
    max_dd = float(np.max(-drawdown_curve(equity, initial))) if len(equity) else 0.0
    max_dd = max(0.0, max_dd)
    calmar = cagr / max_dd if max_dd > 0.0 and math.isfinite(cagr) else _NAN

    gross_profit = float(profits[profits > 0.0].sum())
    gross_loss = float(-profits[profits < 0.0].sum())
    n_trades = len(profits)

    return {
        "total_return": final / initial - 1.0,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_dd,
        "calmar": calmar,
        "win_rate": float(np.count_nonzero(profits > 0.0)) / n_trades if n_trades else _NAN,
        "profit_factor": gross_profit / gross_loss if gross_loss > 0.0 else _NAN,
        "exposure": float(result.exposure),
        "fees_paid": float(result.fees_paid),
        "trades": float(n_trades),
        "avg_trade_return": float(returns.mean()) if n_trades else _NAN,
        "final_equity": final,
        "worst_day": worst_day,
        "hardstop_days": float(hardstop_days),
    }


def drawdown_curve(equity: FloatArray, initial_cash: float) -> FloatArray:
    """Fall below the running peak at each bar, as a non-positive fraction (-0.2 = 20% below).

    The initial cash is the first peak, matching ``max_drawdown`` in ``compute_metrics``; the
    report plots this same curve so chart and metric cannot disagree.
    """
    values = np.asarray(equity, dtype=np.float64)
    if not len(values):
        return np.empty(0, dtype=np.float64)
    peak = np.maximum.accumulate(np.concatenate(([initial_cash], values)))[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        curve = np.where(peak > 0.0, values / peak - 1.0, 0.0)
    return np.minimum(curve, 0.0)


def _validate(timestamps: IntArray, equity: FloatArray, initial: float) -> None:
    if not (math.isfinite(initial) and initial > 0.0):
        raise ValueError(f"initial_cash must be a positive amount, got {initial!r}")
    if len(timestamps) != len(equity):
        raise ValueError(
            f"timestamps ({len(timestamps)}) and equity ({len(equity)}) must have equal length"
        )
    if len(timestamps) > 1 and bool(np.any(np.diff(timestamps) < 0)):
        raise ValueError("timestamps must be non-decreasing")


def _day_bounds(
    timestamps: IntArray, equity: FloatArray, initial: float
) -> tuple[IntArray, FloatArray]:
    """Index of each UTC day's first bar, and the equity the day started from."""
    if not len(timestamps):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
    day = timestamps // DAY_MS
    starts = np.flatnonzero(np.concatenate(([True], day[1:] != day[:-1]))).astype(np.int64)
    start_equity = np.concatenate(([initial], equity[starts[1:] - 1]))
    return starts, start_equity


def _daily_returns(equity: FloatArray, starts: IntArray, start_equity: FloatArray) -> FloatArray:
    if not len(starts):
        return np.empty(0, dtype=np.float64)
    day_close = equity[np.concatenate((starts[1:] - 1, [len(equity) - 1]))]
    with np.errstate(divide="ignore", invalid="ignore"):
        daily: FloatArray = day_close / start_equity - 1.0
    return daily


def _sharpe_sortino(daily: FloatArray) -> tuple[float, float]:
    if len(daily) < 2 or not bool(np.all(np.isfinite(daily))):
        return _NAN, _NAN
    scale = math.sqrt(TRADING_DAYS_PER_YEAR)
    mean = float(daily.mean())
    std = float(daily.std(ddof=1))
    downside = math.sqrt(float(np.mean(np.minimum(daily, 0.0) ** 2)))
    sharpe = mean / std * scale if std > 0.0 else _NAN
    sortino = mean / downside * scale if downside > 0.0 else _NAN
    return sharpe, sortino


def _worst_day(equity: FloatArray, starts: IntArray, start_equity: FloatArray) -> tuple[float, int]:
    if not len(starts):
        return _NAN, 0
    lowest = np.minimum.reduceat(equity, starts)
    with np.errstate(divide="ignore", invalid="ignore"):
        falls = np.where(start_equity > 0.0, lowest / start_equity - 1.0, 0.0)
    falls = np.minimum(falls, 0.0)
    breaches = int(np.count_nonzero(falls < -(HARDSTOP_DAILY_LOSS + FLOAT_TOLERANCE)))
    return float(falls.min()), breaches


def _cagr(timestamps: IntArray, growth: float) -> float:
    if len(timestamps) < 2 or growth < 0.0:
        return _NAN
    span_days = float(timestamps[-1] - timestamps[0]) / DAY_MS
    if span_days < 1.0:
        return _NAN
    with np.errstate(over="ignore"):
        cagr = float(np.power(growth, DAYS_PER_YEAR / span_days)) - 1.0
    return cagr if math.isfinite(cagr) else _NAN
