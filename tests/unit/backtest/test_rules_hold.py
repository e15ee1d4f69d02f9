"""Issue 10 in the backtest: an approval binds its price on every fill model.

The reproducers (an exit approved at 101.5 repriced down to 98.6; a next-open exit filled
after a gap down; an exit judged with the maker fee while the fill model charges the taker's)
are named tests here, and a hypothesis property runs random candle streams -- gaps, spikes,
flat runs, crashes -- with random signal scripts through both fill models: no signal or
take-profit round trip ever closes below zero after fees, every entry fills at or below its
approval's bound and every signal exit at or above its own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nettrace.agents.agent_goals import breakeven_exit_price
from nettrace.agents.risk_controller import RiskController, RiskLimits
from nettrace.backtest.engine import BacktestConfig, FillModel, run_backtest
from nettrace.backtest.results import EXIT_REASONS
from nettrace.domain.fees import FeeSchedule
from tests.unit.backtest.test_engine import GatedScript, bars

MAKER = FeeSchedule()
#: Relative slack for comparing prices that went through float arithmetic.
TOL = 1e-9


def test_a_signal_exit_approved_at_101_5_is_never_repriced_below_break_even() -> None:
    """Reproducer 1: entry 100, exit approved at 101.5, price slides to 98.6 and comes back.

    Before issue 10 the kernel re-posted the exit at every close and filled it at 98.6: a
    round trip of -21.94 USD tagged ``signal``. Now it waits at the break-even bound."""
    rows = [
        (100.0, 100.0, 100.0, 100.0),  # 0: entry decided at 100
        (100.5, 101.0, 99.0, 101.5),  # 1: the entry fills at 100; exit decided at 101.5
        (101.0, 101.2, 99.5, 99.8),  # 2: not traded through 101.5 (post-only at the touch)
        (99.8, 100.0, 98.5, 98.6),  # 3: repriced -- at the bound, not at 99.8
        (98.6, 99.5, 98.0, 99.0),  # 4: 98.6 would have been traded through here
        (99.0, 100.5, 98.9, 100.4),  # 5: still below break-even (100.803...)
        (100.4, 101.0, 100.2, 100.9),  # 6: traded through the bound: filled there
        (100.9, 101.0, 100.5, 100.8),
    ]
    result = run_backtest(
        GatedScript(entries=(0,), exits=(1,), move=0.05), bars(rows), BacktestConfig(fill="maker")
    )
    [trade] = result.trades
    bound = breakeven_exit_price(100.0, MAKER.maker, MAKER)
    assert trade.exit_reason == "signal"
    assert trade.exit_price == pytest.approx(bound, rel=TOL)
    assert trade.profit >= -TOL * 100.0 * trade.amount
    assert trade.exit_time == bars(rows).time_at(6)


def test_a_next_open_exit_is_not_filled_below_its_bound_after_a_gap_down() -> None:
    """Reproducer 2: with ``--fill next_open`` the approved exit was a market order at the
    next open, and a gap down turned it into -41.82. It is now a limit at max(bound, open),
    judged with the taker fee the fill model charges."""
    rows = [
        (100.0, 100.0, 100.0, 100.0),  # 0: entry decided
        (100.0, 103.0, 99.5, 103.0),  # 1: entry fills at the open, 100; exit decided at 103
        (97.0, 98.0, 96.5, 97.5),  # 2: gaps down to 97: no fill below break-even
        (97.5, 101.0, 97.0, 100.9),  # 3: below the taker break-even (101.207...): waits
        (100.9, 101.5, 100.5, 101.3),  # 4: trades through the bound: filled there
        (101.3, 101.5, 101.0, 101.2),
    ]
    result = run_backtest(
        GatedScript(entries=(0,), exits=(1,), move=0.05), bars(rows),
        BacktestConfig(fill="next_open"),
    )  # fmt: skip
    [trade] = result.trades
    taker = MAKER.taker
    bound = breakeven_exit_price(100.0, taker, MAKER, taker)
    assert trade.exit_price == pytest.approx(bound, rel=TOL)
    assert trade.exit_price > breakeven_exit_price(100.0, taker, MAKER)  # the taker's bound
    assert trade.profit >= -TOL * 100.0 * trade.amount
    [sell] = [d for d in result.decisions if d.approved and d.proposal.side == "SELL"]
    assert sell.proposal.exit_fee_rate == taker  # judged with the fee it will pay


def test_a_next_open_entry_above_its_bound_waits_instead_of_filling() -> None:
    rows = [(100.0, 100.0, 100.0, 100.0), (110.0, 111.0, 109.0, 110.0), FLAT_ROW, FLAT_ROW]
    result = run_backtest(GatedScript(entries=(0,), move=0.05), bars(rows), BacktestConfig())
    [buy] = [d for d in result.decisions if d.approved and d.proposal.side == "BUY"]
    assert buy.price_bound is not None
    assert buy.price_bound < 110.0
    assert result.trades == []
    assert result.exposure == 0.0


FLAT_ROW = (100.0, 100.0, 100.0, 100.0)


def test_the_exit_reprice_limit_comes_from_the_risk_controller() -> None:
    rows = [FLAT_ROW, (100.5, 101.0, 99.0, 102.0)] + [(99.0, 99.5, 98.5, 99.0)] * 10
    few = RiskController(RiskLimits(max_exit_reprices=2))
    result = run_backtest(
        GatedScript(entries=(0,), exits=(1,), move=0.05), bars(rows),
        BacktestConfig(fill="maker"), risk=few,
    )  # fmt: skip
    assert result.trades == []  # never sold at a loss; gave up after two reprices


# --- The property -------------------------------------------------------------------------------


@st.composite
def candle_rows(draw: st.DrawFn) -> list[tuple[float, float, float, float]]:
    """A random stream: drifts, gaps, spikes, flat runs and crashes."""
    n = draw(st.integers(8, 60))
    price = 100.0
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(["drift", "drift", "gap", "spike", "flat", "crash"]))
        move = {
            "drift": draw(st.floats(-0.02, 0.02)),
            "gap": draw(st.floats(-0.08, 0.08)),
            "spike": draw(st.floats(-0.01, 0.01)),
            "flat": 0.0,
            "crash": -draw(st.floats(0.1, 0.45)),
        }[kind]
        open_ = price * (1 + (move if kind in ("gap", "crash") else 0.0))
        close = open_ * (1 + (move if kind == "drift" else 0.0))
        wick = draw(st.floats(0.0, 0.05)) if kind == "spike" else draw(st.floats(0.0, 0.01))
        high = max(open_, close) * (1 + wick)
        low = min(open_, close) * (1 - (0.0 if kind == "flat" else wick))
        rows.append((open_, high, low, close))
        price = close
    return rows


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=candle_rows(),
    data=st.data(),
    fill=st.sampled_from(["maker", "next_open"]),
    move=st.floats(0.0, 0.08),
)
def test_no_signal_or_take_profit_round_trip_closes_below_zero(
    rows: list[tuple[float, float, float, float]], data: st.DataObject, fill: str, move: float
) -> None:
    n = len(rows)
    entries = tuple(data.draw(st.sets(st.integers(0, n - 1), max_size=n // 2)))
    exits = tuple(data.draw(st.sets(st.integers(0, n - 1), max_size=n // 2)))
    fill_model: FillModel = "maker" if fill == "maker" else "next_open"
    result = run_backtest(
        GatedScript(entries=entries, exits=exits, move=move), bars(rows),
        BacktestConfig(fill=fill_model),
    )  # fmt: skip
    records = result.records
    assert records.stop_price is not None
    assert records.entry_bound is not None
    assert records.exit_bound is not None
    for k in range(len(records)):
        reason = EXIT_REASONS[int(records.reason[k])]
        notional = records.entry_price[k] * records.amount[k]
        if reason in ("signal", "take_profit"):
            assert records.profit[k] >= -TOL * notional, (reason, records.profit[k])
        else:  # a loss only at the stored stop, or a worse (gapped) fill of it
            assert records.exit_price[k] <= records.stop_price[k] * (1 + TOL)
        assert records.entry_price[k] <= records.entry_bound[k] * (1 + TOL)
        if reason == "signal":
            assert records.exit_price[k] >= records.exit_bound[k] * (1 - TOL)
        else:
            assert math.isnan(records.exit_bound[k])
    assert np.all(np.isfinite(result.equity))
