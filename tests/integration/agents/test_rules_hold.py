"""Issue 10 in the engine on the paper exchange: the rules hold on every path.

An exit is never repriced below the break-even its approval binds; a stop is the stop stored
with the entry; HARDSTOP keeps (and after a restart re-arms) each position's stop and, with the
``flatten`` action, closes every position at market with reason HARDSTOP.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from nettrace.agents.agent_goals import breakeven_exit_price
from nettrace.config.rules import RulesInForce
from nettrace.domain.fees import FeeSchedule
from nettrace.domain.types import OrderState, TradingState
from nettrace.market.candles import Candles
from nettrace.store.database import Database
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.models import DecisionRow, OrderRow
from tests.integration.agents.conftest import PAIR, RigFactory, Scripted, bars_of, candles_from
from tests.unit.backtest.test_rules_hold import candle_rows


def _orders(db: Database) -> list[OrderRow]:
    with db.session() as session:
        return list(session.scalars(select(OrderRow).order_by(OrderRow.id)))


def _rows(candles: Candles, rows: list[tuple[float, float, float, float]]) -> Candles:
    data = np.array(rows, dtype=np.float64)
    return type(candles)(
        candles.key, candles.timestamp[: len(rows)], data[:, 0].copy(), data[:, 1].copy(),
        data[:, 2].copy(), data[:, 3].copy(), candles.volume[: len(rows)], synthetic=True,
    )  # fmt: skip


#: Entry decided at bar 0 (close 100), filled at 100 in bar 1; ATR 1% -> stop 98, target 103.
ENTERED = [(100.0, 100.0, 100.0, 100.0), (100.5, 101.0, 99.0, 100.5)]


def test_an_exit_approved_at_101_5_waits_at_break_even_instead_of_selling_at_98_6(
    rig: RigFactory,
) -> None:
    """Reproducer 1 in the engine (``_place_exit_attempt`` re-posted at every close)."""
    rows = [
        *ENTERED[:1],
        (100.5, 101.0, 99.0, 101.5),  # the entry fills at 100; the exit is decided at 101.5
        (101.0, 101.2, 99.5, 99.8),
        (99.8, 100.0, 98.5, 98.6),
        (98.6, 99.5, 98.1, 99.0),
        (99.0, 100.5, 98.9, 100.4),
        (100.4, 101.0, 100.2, 100.9),  # traded through the bound: filled there
        (100.9, 101.0, 100.5, 100.8),
    ]
    candles = _rows(candles_from([100.0] * len(rows)), rows)
    r = rig(Scripted(entries=frozenset({0}), exits=frozenset({1})), candles)
    for bar in bars_of(candles):
        r.tick(bar)
    bound = breakeven_exit_price(100.0, 0.004, FeeSchedule())
    exits = [o for o in _orders(r.database) if o.side == "SELL" and o.order_type == "limit"]
    assert len(exits) >= 4  # the first placement and its reprices
    assert all(o.price is not None and o.price >= bound * (1 - 1e-12) for o in exits)
    assert [e.price for e in exits][1:] == [pytest.approx(bound)] * (len(exits) - 1)
    [trip] = r.engine.round_trips
    assert trip.reason == "signal"
    assert trip.exit_price == pytest.approx(bound)
    assert trip.profit >= -1e-9 * trip.entry_price * trip.amount


def _position_with_bracket(rig: RigFactory, crash_rows: int = 6, **kwargs: object):  # type: ignore[no-untyped-def]
    """BTC entered at 100 with its stop at 98 and target at 103, then flat bars, then a bar
    opening 40% lower (the crash)."""
    flat = [(100.5, 100.8, 100.2, 100.5)] * crash_rows
    crash = [(60.0, 61.0, 59.0, 60.0), (60.0, 60.5, 59.5, 60.0)]
    rows = ENTERED + flat + crash
    candles = _rows(candles_from([100.0] * len(rows)), rows)
    r = rig(Scripted(entries=frozenset({0})), candles, **kwargs)
    bars = bars_of(candles)
    for bar in bars[:3]:
        r.tick(bar)
    kinds = {o.kind for o in r.exchange.fetch_open_orders()}
    assert kinds == {"stop_loss", "take_profit"}, kinds  # filled, bracket armed
    return r, bars


@pytest.mark.parametrize("source", ["operator", "handoff", "unreadable_handoff"])
def test_hardstop_keeps_the_stop_armed_and_it_fires_on_the_crash_bar(
    rig: RigFactory, tmp_path: Path, source: str
) -> None:
    """Reproducer 3: ``_halt`` cancelled the position's stop too, and the position rode a
    -40% bar with no protection. Now only the take-profit goes; the stop fills at the crash."""
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text("# all good\n")
    r, bars = _position_with_bracket(rig, handoff=handoff)
    r.engine.guard.latch_recheck_s = 0.0
    if source == "operator":
        HardstopLatch(r.database).raise_("operator", "incident")
    elif source == "handoff":
        handoff.write_text("HARDSTOP: stop everything\n")
    else:
        handoff.unlink()
        handoff.mkdir()  # unreadable: a directory where the file should be
    tick = r.tick(bars[3])
    assert tick.state is TradingState.HALTED
    latch = HardstopLatch(r.database).state()
    assert latch.active
    assert latch.source == ("operator" if source == "operator" else "handoff")
    working = r.exchange.fetch_open_orders()
    assert [o.kind for o in working] == ["stop_loss"]  # the target went, the stop stays
    for bar in bars[4:]:
        r.tick(bar)
    [trip] = r.engine.round_trips
    assert trip.reason == "stop_loss"
    assert trip.exit_price == 60.0  # the gap's open: a worse fill of the stored stop (98)
    stops = [o for o in _orders(r.database) if o.order_type == "stop_loss"]
    with r.database.session() as session:
        entry = session.scalars(select(DecisionRow).where(DecisionRow.side == "BUY")).one()
    assert {o.price for o in stops} == {entry.stop_price}


def test_a_restart_while_halted_re_arms_the_stop(rig: RigFactory) -> None:
    r, bars = _position_with_bracket(rig)
    r.engine.guard.latch_recheck_s = 0.0
    HardstopLatch(r.database).raise_("operator", "incident")
    r.tick(bars[3])
    [stop] = r.exchange.fetch_open_orders()
    # The stop is lost (the venue dropped it while we were down); the restart must notice.
    r.exchange.cancel_order(stop.client_order_id, PAIR)
    r.engine.router.refresh(r.engine.book.get(stop.client_order_id))  # type: ignore[arg-type]
    assert r.exchange.fetch_open_orders() == []
    r.restart()
    for bar in bars[4:]:
        assert r.tick(bar).state is TradingState.HALTED
    [trip] = r.engine.round_trips
    assert trip.reason == "stop_loss"
    assert r.engine.reconcile_report.brackets_restored
    assert len([o for o in _orders(r.database) if o.order_type == "stop_loss"]) == 2


@pytest.mark.parametrize("how", ["setting", "raise"])
def test_flatten_closes_at_market_with_reason_hardstop(rig: RigFactory, how: str) -> None:
    kwargs = {"hardstop_action": "flatten"} if how == "setting" else {}
    r, bars = _position_with_bracket(rig, **kwargs)
    r.engine.guard.latch_recheck_s = 0.0
    HardstopLatch(r.database).raise_("operator", "flatten all", flatten=how == "raise")
    r.tick(bars[3])
    flatten = [o for o in _orders(r.database) if o.order_type == "market"]
    assert [(o.side, o.urgency, o.hardstop_active) for o in flatten] == [("SELL", "critical", True)]
    r.tick(bars[4])  # the market order fills at this bar's open
    [trip] = r.engine.round_trips
    assert trip.reason == "hardstop"
    assert trip.exit_price == bars[4].open
    assert r.exchange.fetch_open_orders() == []  # the stop went with the position
    left = r.engine.portfolio.position(PAIR)
    assert left is None or left.amount == 0
    states = {o.state for o in _orders(r.database) if o.order_type == "market"}
    assert states == {OrderState.FILLED.value}


def test_settings_reach_the_engine(rig: RigFactory) -> None:
    """``NETTRACE_MIN_CONFIDENCE=0.99``: a 0.9 signal no longer enters; the rows record it."""
    candles = _rows(candles_from([100.0] * 3), [*ENTERED, (100.5, 100.8, 100.2, 100.5)])
    r = rig(Scripted(entries=frozenset({0})), candles, min_confidence=0.99)
    for bar in bars_of(candles):
        r.tick(bar)
    assert _orders(r.database) == []
    with r.database.session() as session:
        [decision] = session.scalars(select(DecisionRow)).all()
    assert decision.approved is False
    assert decision.thresholds["min_confidence"] == 0.99
    # One object: what ``nettrace rules`` prints (RulesInForce.from_settings) is what decides.
    in_force = RulesInForce.from_settings(r.settings)
    assert r.engine.rules == in_force
    assert r.engine.validator.thresholds == in_force.thresholds
    assert r.engine.risk.limits == in_force.limits


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rows=candle_rows(), data=st.data())
def test_on_random_streams_no_signal_or_take_profit_round_trip_loses(
    fresh_rig: RigFactory, rows: list[tuple[float, float, float, float]], data: st.DataObject
) -> None:
    """The engine on the paper exchange over random gaps, spikes, flat runs and crashes with a
    random signal script: every signal or take-profit round trip closes at or above zero after
    fees, every loss is a stop (the ledger audit runs on each example's database as well)."""
    n = len(rows)
    entries = data.draw(st.frozensets(st.integers(0, n - 1), max_size=n // 2))
    exits = data.draw(st.frozensets(st.integers(0, n - 1), max_size=n // 2))
    candles = _rows(candles_from([100.0] * n), rows)
    r = fresh_rig(Scripted(entries=entries, exits=exits), candles)
    for bar in bars_of(candles):
        r.tick(bar)
    for trip in r.engine.round_trips:
        if trip.reason in ("signal", "take_profit"):
            assert trip.profit >= -1e-9 * trip.entry_price * trip.amount, trip
        else:
            assert trip.reason == "stop_loss", trip
