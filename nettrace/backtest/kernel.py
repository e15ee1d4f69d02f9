"""The compiled sequential kernel: positions, fills, fees and stops, bar by bar.

Signals are computed vectorised elsewhere; what cannot be vectorised honestly -- a shared
wallet, one position per pair, stops that depend on the fill price -- runs here, compiled by
numba. It is written by hand because no maintained library exposes a kernel that can *pause*
at a decision so that the real ``GoalValidator`` (Python) rules on it and the kernel resumes:
vectorbt's simulators run to the end with precomputed signals.

Fill model (long only, arrays shaped ``(bars, pairs)``; NaN marks a pair's missing bar):
- A decision at bar ``t``'s close becomes an order for bar ``t + 1`` (the next bar the pair has).
- ``next_open`` mode: the order fills at that bar's open at the entry/exit fee rate. A gated
  order is bound by its approval's price: an entry is a limit at ``min(bound, open)`` and an
  exit a limit at ``max(bound, open)``, so an open beyond the bound leaves the order resting at
  the bound (filled there if the bar trades through it) instead of filling at a price the
  GoalValidator never approved.
- ``maker`` mode: a post-only limit at the decision bar's close. A buy whose limit is at or
  above the next open would cross the book and is rejected; otherwise it fills at the limit
  only if the low trades *through* it (low < limit). Sells mirror that. Unfilled entries are
  cancelled after ``entry_ttl`` bars; an unfilled exit is repriced at the new close -- never
  below its approval's bound, where it waits instead -- up to ``max_reprices`` times, then
  left to the position's stop and take-profit until a new exit signal is approved.
- Stops fill at the stop price, or at the open if the bar gaps through it (worse), at the
  stop (taker) fee; take-profits fill at the target or at a better open, at the maker fee.
  Both are checked from the entry bar on, the stop first (the pessimistic order).
- Equity is marked to market at every bar's close.

Units: prices quote per base, amounts base, cash and fees quote, fee rates fractions.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Exit reasons recorded per trade.
EXIT_SIGNAL = 0
EXIT_STOP = 1
EXIT_TAKE_PROFIT = 2

# Columns of ``pending_f`` (the pending orders of a pair).
P_SIZE = 0
P_STOP_FRAC = 1
P_TP_FRAC = 2
P_LIMIT = 3
P_STOP_PRICE = 4
P_ENTRY_BOUND = 5
P_EXIT_BOUND = 6
PENDING_COLUMNS = 7

# Columns of ``pos`` (the open position of a pair).
POS_AMOUNT = 0
POS_PRICE = 1
POS_FEE = 2
POS_STOP = 3
POS_TARGET = 4
POS_ENTRY_BOUND = 5
POS_EXIT_BOUND = 6
POS_COLUMNS = 7

# Columns of ``trades_f``.
TRADE_COLUMNS = 8

# Indices into the ``fees`` array.
FEE_ENTRY = 0
FEE_EXIT = 1
FEE_STOP = 2
FEE_TAKE_PROFIT = 3

# Return value of ``run`` when it reached the end rather than pausing for a decision.
DONE = -1


@njit(cache=True, nogil=True)
def _record(
    trades_f: np.ndarray,
    trades_i: np.ndarray,
    n_trades: np.ndarray,
    pair: int,
    entry_bar: int,
    exit_bar: int,
    entry_price: float,
    exit_price: float,
    amount: float,
    fee: float,
    profit: float,
    reason: int,
    stop: float,
    entry_bound: float,
    exit_bound: float,
) -> None:
    k = n_trades[0]
    trades_i[k, 0] = pair
    trades_i[k, 1] = entry_bar
    trades_i[k, 2] = exit_bar
    trades_i[k, 3] = reason
    trades_f[k, 0] = entry_price
    trades_f[k, 1] = exit_price
    trades_f[k, 2] = amount
    trades_f[k, 3] = fee
    trades_f[k, 4] = profit
    trades_f[k, 5] = stop
    trades_f[k, 6] = entry_bound
    trades_f[k, 7] = exit_bound
    n_trades[0] = k + 1


@njit(cache=True, nogil=True)
def _close_position(
    j: int,
    t: int,
    price: float,
    fee_rate: float,
    reason: int,
    cash: np.ndarray,
    pos: np.ndarray,
    pos_bar: np.ndarray,
    trades_f: np.ndarray,
    trades_i: np.ndarray,
    n_trades: np.ndarray,
) -> None:
    amount = pos[j, 0]
    gross = amount * price
    exit_fee = gross * fee_rate
    cash[0] += gross - exit_fee
    total_fee = pos[j, 2] + exit_fee
    profit = gross - exit_fee - amount * pos[j, 1] - pos[j, 2]
    _record(
        trades_f,
        trades_i,
        n_trades,
        j,
        pos_bar[j],
        t,
        pos[j, 1],
        price,
        amount,
        total_fee,
        profit,
        reason,
        pos[j, POS_STOP],
        pos[j, POS_ENTRY_BOUND],
        pos[j, POS_EXIT_BOUND] if reason == EXIT_SIGNAL else np.nan,
    )
    pos[j, 0] = 0.0
    pos[j, 1] = 0.0
    pos[j, 2] = 0.0
    pos[j, 3:] = np.nan


@njit(cache=True, nogil=True)
def run(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    entry: np.ndarray,
    exit_: np.ndarray,
    size: np.ndarray,
    stop_frac: np.ndarray,
    tp_frac: np.ndarray,
    fees: np.ndarray,
    maker: bool,
    max_open: int,
    gated: bool,
    max_reprices: int,
    entry_ttl: int,
    t_start: int,
    cash: np.ndarray,
    pos: np.ndarray,
    pos_bar: np.ndarray,
    pending: np.ndarray,
    pending_f: np.ndarray,
    last_close: np.ndarray,
    trades_f: np.ndarray,
    trades_i: np.ndarray,
    n_trades: np.ndarray,
    equity: np.ndarray,
    in_market: np.ndarray,
) -> int:
    """Simulate bars ``t_start..`` and return ``DONE``, or the bar at which a gated run pauses.

    State (mutated in place, so a paused run resumes exactly where it stopped):
    ``cash[0]``; ``pos[j]`` by the ``POS_*`` columns (amount, entry price, entry fee, stop,
    target, the entry's approved bound, the working exit's approved bound);
    ``pos_bar[j]`` entry bar; ``pending[j] = (entry_bars_left, exit_attempt)``: 0 when
    nothing is pending, else the bars an entry may still wait / the exit's attempt + 1;
    ``pending_f[j]`` by the ``P_*`` columns (size fraction, stop fraction, take-profit
    fraction, limit price -- also the working exit's limit --, the stored stop price when the
    stop is absolute, the entry's bound, the exit's bound; NaN: none); ``last_close[j]``.
    Trades go to ``trades_f[k] = (entry_price, exit_price, amount, fee, profit, stop,
    entry_bound, exit_bound)`` and ``trades_i[k] = (pair, entry_bar, exit_bar, exit_reason)``.

    When ``gated`` is true the run pauses after bar ``t``'s close whenever a candidate decision
    exists (an entry signal on a flat pair or an exit signal on an open one): the caller judges
    it, sets ``pending``/``pending_f`` and resumes at ``t + 1``. Ungated runs take every
    candidate with ``size[t, j]``, ``stop_frac[t, j]`` and ``tp_frac[t, j]``.
    """
    n_bars, n_pairs = close.shape
    for t in range(t_start, n_bars):
        # --- 1. Pending orders meet this bar: exits first, so their cash funds entries. ----------
        for j in range(n_pairs):
            o = open_[t, j]
            if np.isnan(o) or pending[j, 1] == 0 or pos[j, 0] <= 0.0:
                continue
            bound = pos[j, POS_EXIT_BOUND]  # NaN: unbound (an ungated research baseline)
            limit = pending_f[j, P_LIMIT]
            if maker:  # a post-only limit: fills only when traded through, never crossing
                fill = limit if o < limit and high[t, j] > limit else np.nan
            elif bound > 0.0 and o < bound:
                # A limit at max(bound, open): rests at the bound, filled if traded through.
                fill = bound if high[t, j] > bound else np.nan
            else:
                fill = o
            if not np.isnan(fill):
                _close_position(
                    j,
                    t,
                    fill,
                    fees[FEE_EXIT],
                    EXIT_SIGNAL,
                    cash,
                    pos,
                    pos_bar,
                    trades_f,
                    trades_i,
                    n_trades,
                )
                pending[j, 1] = 0
                continue
            if not maker:
                continue  # the next-open limit keeps resting at its bound
            # Not filled: post-only rejected it at the open (a sell at or below the bid would
            # cross), or it never traded through. Reprice at the new near touch under a new
            # attempt -- never below the approval's bound -- or give up after ``max_reprices``.
            attempt = pending[j, 1]  # the next attempt's number (the first was attempt 0)
            if attempt > max_reprices:
                pending[j, 1] = 0
                continue
            pending[j, 1] = attempt + 1
            c = close[t, j]
            touch = limit if np.isnan(c) else c
            pending_f[j, P_LIMIT] = touch if not bound > touch else bound
        open_count = 0
        for j in range(n_pairs):
            if pos[j, 0] > 0.0:
                open_count += 1
        mark = cash[0]
        for j in range(n_pairs):
            if pos[j, 0] > 0.0:
                mark += pos[j, 0] * last_close[j]
        for j in range(n_pairs):
            o = open_[t, j]
            if np.isnan(o) or pending[j, 0] == 0:
                continue
            first = pending[j, 0] == entry_ttl
            pending[j, 0] -= 1  # one bar of the entry's life used; cancelled when none is left
            if pos[j, 0] > 0.0 or open_count >= max_open:
                pending[j, 0] = 0
                continue
            fee_rate = fees[FEE_ENTRY]
            price = o
            bound = pending_f[j, P_ENTRY_BOUND]
            if maker:
                limit = pending_f[j, P_LIMIT]
                if first and o <= limit:
                    pending[j, 0] = 0
                    continue  # post-only: it would have crossed the book, rejected
                if not low[t, j] < limit:
                    continue  # not traded through (yet): waits while its bars last
                price = limit
            elif bound > 0.0 and o > bound:
                # A limit at min(bound, open): rests at the bound, filled if traded through.
                if not low[t, j] < bound:
                    continue
                price = bound
            pending[j, 0] = 0
            frac = pending_f[j, P_SIZE]
            budget = cash[0] / (1.0 + fee_rate)
            notional = budget if np.isinf(frac) else min(budget, frac * mark)
            if not notional > 0.0:
                continue
            amount = notional / price
            entry_fee = notional * fee_rate
            cash[0] -= notional + entry_fee
            pos[j, 0] = amount
            pos[j, 1] = price
            pos[j, 2] = entry_fee
            if pending_f[j, P_STOP_PRICE] > 0.0:
                pos[j, POS_STOP] = pending_f[j, P_STOP_PRICE]  # the stop stored with approval
            elif pending_f[j, P_STOP_FRAC] > 0.0:
                pos[j, POS_STOP] = price * (1.0 - pending_f[j, P_STOP_FRAC])
            else:
                pos[j, POS_STOP] = np.nan
            tp = pending_f[j, P_TP_FRAC]
            pos[j, POS_TARGET] = price * (1.0 + tp) if tp > 0.0 else np.nan
            pos[j, POS_ENTRY_BOUND] = bound
            pos[j, POS_EXIT_BOUND] = np.nan
            pos_bar[j] = t
            open_count += 1

        # --- 2. Stops and targets inside the bar (stop first: the pessimistic assumption). ------
        for j in range(n_pairs):
            if pos[j, 0] <= 0.0 or np.isnan(low[t, j]):
                continue
            stop = pos[j, 3]
            target = pos[j, 4]
            o = open_[t, j]
            if not np.isnan(stop) and low[t, j] <= stop:
                price = o if o < stop else stop
                _close_position(
                    j,
                    t,
                    price,
                    fees[FEE_STOP],
                    EXIT_STOP,
                    cash,
                    pos,
                    pos_bar,
                    trades_f,
                    trades_i,
                    n_trades,
                )
                pending[j, 1] = 0
            elif not np.isnan(target) and high[t, j] > target:
                price = o if o > target else target
                _close_position(
                    j,
                    t,
                    price,
                    fees[FEE_TAKE_PROFIT],
                    EXIT_TAKE_PROFIT,
                    cash,
                    pos,
                    pos_bar,
                    trades_f,
                    trades_i,
                    n_trades,
                )
                pending[j, 1] = 0

        # --- 3. Mark to market at the close. --------------------------------------------------
        value = cash[0]
        holding = False
        for j in range(n_pairs):
            c = close[t, j]
            if not np.isnan(c):
                last_close[j] = c
            if pos[j, 0] > 0.0:
                value += pos[j, 0] * last_close[j]
                holding = True
        equity[t] = value
        if holding:
            in_market[0] += 1

        # --- 4. Decisions at the close become orders for the next bar. ------------------------
        candidate = False
        for j in range(n_pairs):
            if np.isnan(close[t, j]):
                continue
            if pos[j, 0] > 0.0:
                if exit_[t, j] and pending[j, 1] == 0:
                    candidate = True
                    if not gated:
                        pending[j, 1] = 1
                        pending_f[j, P_LIMIT] = close[t, j]
            elif entry[t, j] and pending[j, 0] == 0:
                candidate = True
                if not gated:
                    pending[j, 0] = entry_ttl
                    pending_f[j, P_SIZE] = size[t, j]
                    pending_f[j, P_STOP_FRAC] = stop_frac[t, j]
                    pending_f[j, P_TP_FRAC] = tp_frac[t, j]
                    pending_f[j, P_LIMIT] = close[t, j]
                    pending_f[j, P_STOP_PRICE] = np.nan
                    pending_f[j, P_ENTRY_BOUND] = np.nan
        if gated and candidate and t + 1 < n_bars:
            return t
    return DONE
