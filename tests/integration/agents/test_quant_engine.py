"""The trading engine on a paper exchange: approvals, primary-only, HARDSTOP, brackets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from nettrace.domain.types import OrderState, TradingState
from nettrace.execution.exchange import ExchangeStatus
from nettrace.store.database import Database
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.models import DecisionRow, OrderRow, OrderTransitionRow
from nettrace.store.orders import NotPrimaryRegionError
from tests.integration.agents.conftest import (
    PAIR,
    RigFactory,
    Scripted,
    bars_of,
    candles_from,
)

FLAT = [100.0] * 40


def _orders(db: Database) -> list[OrderRow]:
    with db.session() as session:
        return list(session.scalars(select(OrderRow).order_by(OrderRow.id)))


def _decision(db: Database, decision_id: str) -> DecisionRow | None:
    with db.session() as session:
        return session.get(DecisionRow, decision_id)


# --- Every order the exchange sees has a stored approval ---------------------------------------


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    entries=st.frozensets(st.integers(0, 39), max_size=12),
    exits=st.frozensets(st.integers(0, 39), max_size=12),
    confidence=st.lists(st.floats(0.0, 1.0), min_size=40, max_size=40),
    count=st.lists(st.integers(0, 4), min_size=40, max_size=40),
    regime=st.lists(st.sampled_from([-1, 0, 1]), min_size=40, max_size=40),
    moves=st.lists(st.floats(-0.03, 0.03), min_size=40, max_size=40),
)
def test_no_order_reaches_the_exchange_without_a_stored_approval(
    fresh_rig: RigFactory,
    entries: frozenset[int],
    exits: frozenset[int],
    confidence: list[float],
    count: list[int],
    regime: list[int],
    moves: list[float],
) -> None:
    closes = [100.0]
    for move in moves[1:]:
        closes.append(closes[-1] * (1 + move))
    candles = candles_from(closes, spread=0.01)
    strategy = Scripted(entries=entries, exits=exits, confidence=confidence, count=count,
                        regime=regime)  # fmt: skip
    r = fresh_rig(strategy, candles)  # each example its own books
    for bar in bars_of(candles):
        r.tick(bar)
    sent = r.exchange.fetch_open_orders() + [
        r.exchange.fetch_order(o.client_order_id, PAIR) for o in _orders(r.database)
        if o.exchange_order_id is not None
    ]  # fmt: skip
    by_client_id = {o.client_order_id: o for o in _orders(r.database)}
    for order in sent:
        stored = by_client_id[order.client_order_id]  # the exchange knows nothing we did not store
        decision = _decision(r.database, stored.decision_id)
        assert decision is not None
        assert decision.approved
        assert decision.symbol == PAIR
        assert decision.side == order.side.value
        if order.side.value == "BUY":  # the gate: >= 70%, >= 2 agreeing, no buy in a downtrend
            assert decision.confidence is not None
            assert decision.confidence >= 0.70
            assert decision.signal_count is not None
            assert decision.signal_count >= 2
            assert decision.regime != "downtrend"


def test_refused_decisions_are_recorded_and_place_nothing(rig: RigFactory) -> None:
    candles = candles_from(FLAT)
    r = rig(Scripted(entries=frozenset({3, 5}), confidence=0.5), candles)
    for bar in bars_of(candles):
        r.tick(bar)
    with r.database.session() as session:
        refused = list(session.scalars(select(DecisionRow).where(DecisionRow.approved.is_(False))))
    assert len(refused) == 2
    assert all(any(x["code"] == "confidence_below_threshold" for x in d.refusals)
               for d in refused)  # fmt: skip
    assert _orders(r.database) == []
    assert r.exchange.fetch_open_orders() == []


# --- Only the primary places orders -----------------------------------------------------------


def test_outside_the_primary_region_nothing_reaches_the_exchange(rig: RigFactory) -> None:
    candles = candles_from(FLAT)
    r = rig(Scripted(entries=frozenset({2})), candles, region="lhr")
    with pytest.raises(NotPrimaryRegionError, match="not the primary region"):
        r.tick(bars_of(candles)[0])
    assert r.exchange.fetch_open_orders() == []
    assert _orders(r.database) == []


def test_the_router_refuses_outside_the_primary_even_when_called_directly(
    rig: RigFactory,
) -> None:
    from nettrace.domain.types import Side
    from nettrace.execution.orders import OrderIntent

    r = rig(Scripted(), candles_from(FLAT), region="sin")
    intent = OrderIntent("paper", PAIR, Side.BUY, 1.0, 100.0)
    with pytest.raises(NotPrimaryRegionError):
        r.engine.router.submit(intent, "any-decision")
    assert r.exchange.fetch_open_orders() == []


# --- Orders: maker entry with its bracket, expiry, stop-loss -----------------------------------


def test_an_approved_entry_is_a_post_only_limit_at_the_close_with_its_bracket(
    rig: RigFactory,
) -> None:
    candles = candles_from(FLAT)
    r = rig(Scripted(entries=frozenset({2})), candles)
    bars = bars_of(candles)
    for bar in bars[:3]:
        r.tick(bar)
    entry, stop, target = _orders(r.database)
    wanted = ("BUY", "limit", True, 100.0)
    assert (entry.side, entry.order_type, entry.post_only, entry.price) == wanted
    # Sized by the risk controller within its 10% of equity, never more cash than there is.
    assert 0 < entry.amount * entry.price <= 0.10 * 10_000.0 + 1e-9
    assert stop.order_type == "stop_loss"
    assert stop.price < 100.0
    assert target.order_type == "take_profit"
    assert target.price > 100.0
    # Each bracket order has an approval of its own, recorded as a planned exit.
    for child, reason in ((stop, "stop_loss"), (target, "take_profit")):
        decision = _decision(r.database, child.decision_id)
        assert decision is not None
        assert decision.approved
        assert decision.side == "SELL"
        assert decision.inputs["exit_reason"] == reason
    # The flat next bar opens at the limit: a post-only buy there would take; the venue
    # cancels it, the engine records why, and the bracket goes with it.
    r.tick(bars[3])
    states = {o.order_type: o.state for o in _orders(r.database)}
    assert states == {"limit": "cancelled", "stop_loss": "cancelled", "take_profit": "cancelled"}


def test_a_filled_entry_is_stopped_out_at_the_stop_on_the_same_bar(rig: RigFactory) -> None:
    # Bar 3 opens above the limit (so the post-only buy rests), trades through it and on down
    # through the stop: the entry fills and the stop fires inside the one bar.
    closes = [100.0, 100.0, 100.0, 90.0] + [90.0] * 5
    candles = candles_from(closes, spread=0.0)
    opens = candles.open.copy()
    opens[3] = 100.5
    highs = candles.high.copy()
    highs[3] = 100.5
    candles = type(candles)(candles.key, candles.timestamp, opens, highs, candles.low,
                            candles.close, candles.volume, synthetic=True)  # fmt: skip
    r = rig(Scripted(entries=frozenset({2}), atr_fraction=0.01), candles)
    for bar in bars_of(candles)[:4]:
        r.tick(bar)
    trades = r.engine.trades
    assert len(trades) == 1
    (trade,) = trades
    assert trade.exit_reason == "stop_loss"
    assert trade.entry_price == 100.0
    assert trade.exit_price == pytest.approx(98.0)  # 2 ATR (1% each) below the entry
    fees = r.settings.fees("paper")
    expected = trade.amount * 98.0 * (1 - fees.taker) - trade.amount * 100.0 * (1 + fees.maker)
    assert trade.profit == pytest.approx(expected, rel=1e-9)
    balances = r.exchange.fetch_balance()
    assert balances.get("BTC", 0.0) == pytest.approx(0.0, abs=1e-12)
    assert balances["USD"] == pytest.approx(10_000.0 + trade.profit, rel=1e-12)
    assert r.engine.portfolio.cash == pytest.approx(balances["USD"], rel=1e-12)


# --- HARDSTOP --------------------------------------------------------------------------------


def _crash_rig(rig: RigFactory, crash: float, **kwargs: object):  # type: ignore[no-untyped-def]
    """30% of the equity in ETH (adopted from the exchange: no stop), a BTC entry order working
    at bar 9, and ETH's bar 10 closing ``crash`` below: equity falls by 0.3 x crash, unrealised.

    Returns the rig and the time steps, each a list of bars (ETH's first, then BTC's).
    """
    btc = candles_from([100.0] * 21, spread=0.0)
    btc_open = btc.open.copy()
    btc_open[10] = 101.0  # the working buy at 100 rests below this open (no post-only cross)
    btc = type(btc)(btc.key, btc.timestamp, btc_open, np.maximum(btc_open, btc.close),
                    btc.low, btc.close, btc.volume, synthetic=True)  # fmt: skip
    eth = candles_from([100.0] * 10 + [100.0 * (1 - crash)] * 11, spread=0.0, pair="ETH/USD")
    entries = frozenset({9, 11, 12, 13, 14, 15})
    r = rig(Scripted(entries=entries), [eth, btc],
            balances={"USD": 7_000.0, "ETH": 30.0}, **kwargs)  # fmt: skip
    steps = [[e, b] for e, b in zip(bars_of(eth), bars_of(btc), strict=True)]
    return r, steps


def test_a_crash_past_five_percent_halts_within_the_tick_cancels_and_stays_halted(
    rig: RigFactory,
) -> None:
    r, steps = _crash_rig(rig, crash=0.171)  # 30 ETH x 100 x -17.1% = -5.13% of 10,000
    for step in steps[:10]:
        for bar in step:
            assert r.tick(bar).state is TradingState.ACTIVE
    assert r.engine.reconcile_report.adopted == {"ETH/USD": 30.0}
    working = r.exchange.fetch_open_orders()
    assert {o.kind for o in working} == {"limit", "stop_loss", "take_profit"}

    crash = r.tick(steps[10][0])  # ETH's crash bar: the first tick that sees it halts
    assert crash.equity == pytest.approx(10_000.0 - 30 * 17.1)
    assert crash.state is TradingState.HALTED
    latch = HardstopLatch(r.database).state()
    assert latch.active
    assert latch.source == "daily_loss"
    assert r.exchange.fetch_open_orders() == []  # cancelled in the same tick
    for order in _orders(r.database):
        assert order.state == OrderState.CANCELLED.value
    with r.database.session() as session:
        reasons = list(session.scalars(select(OrderTransitionRow.detail)))
    assert any("HARDSTOP" in str(d.get("reason", "")) for d in reasons)

    placed = len(_orders(r.database))
    for step in steps[11:14]:  # BTC entry signals keep coming: nothing is placed
        for bar in step:
            assert r.tick(bar).state is TradingState.HALTED
    assert len(_orders(r.database)) == placed

    r.restart()  # a new process on the same database and paper account
    for step in steps[14:]:
        for bar in step:
            assert r.tick(bar).state is TradingState.HALTED
    assert len(_orders(r.database)) == placed
    assert r.exchange.fetch_open_orders() == []


def test_a_loss_of_4_9_percent_does_not_halt(rig: RigFactory) -> None:
    r, steps = _crash_rig(rig, crash=0.163)  # -4.89%
    states = [r.tick(bar).state for step in steps[:12] for bar in step]
    assert TradingState.HALTED not in states
    assert not HardstopLatch(r.database).state().active


def test_a_hardstop_line_in_handoff_halts_and_cancels(rig: RigFactory, tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text("# Handoff\nall good\n")
    r, steps = _crash_rig(rig, crash=0.0, handoff=handoff)
    for step in steps[:10]:
        for bar in step:
            r.tick(bar)
    assert r.exchange.fetch_open_orders() != []
    handoff.write_text("# Handoff\nHARDSTOP: exchange API keys leaked, stop now\n")
    tick = r.tick(steps[10][0])
    assert tick.state is TradingState.HALTED
    assert HardstopLatch(r.database).state().source == "handoff"
    assert r.exchange.fetch_open_orders() == []
    placed = len(_orders(r.database))
    r.restart()
    for step in steps[11:]:
        for bar in step:
            r.tick(bar)
    assert len(_orders(r.database)) == placed


def test_the_operator_clearing_hardstop_lets_trading_resume(rig: RigFactory) -> None:
    r, steps = _crash_rig(rig, crash=0.0)
    r.engine.guard.latch_recheck_s = 0.0  # read the latch every tick (default: once a second)
    HardstopLatch(r.database).raise_("operator", "maintenance")
    assert r.tick(steps[0][0]).state is TradingState.HALTED
    HardstopLatch(r.database).clear("operator", "done")
    assert r.tick(steps[1][0]).state is TradingState.ACTIVE


def test_an_operator_raise_reaches_the_loop_within_the_recheck_interval(rig: RigFactory) -> None:
    r, steps = _crash_rig(rig, crash=0.0)
    clock = [0.0]
    r.engine.guard._clock = lambda: clock[0]
    assert r.tick(steps[0][0]).state is TradingState.ACTIVE
    HardstopLatch(r.database).raise_("operator", "from the API, another process")
    clock[0] = 0.5
    assert r.tick(steps[0][1]).state is TradingState.ACTIVE  # not re-read yet (cached 0.5 s)
    clock[0] = 1.0
    assert r.tick(steps[1][0]).state is TradingState.HALTED


def test_an_operator_raise_the_loop_has_not_read_yet_still_stops_the_next_order(
    rig: RigFactory,
) -> None:
    r, steps = _crash_rig(rig, crash=0.0)
    r.engine.guard._clock = lambda: 0.0  # the loop's copy of the latch never goes stale
    for step in steps[:9]:
        for bar in step:
            assert r.tick(bar).state is TradingState.ACTIVE
    assert _orders(r.database) == []
    HardstopLatch(r.database).raise_("operator", "from the API, another process")
    # Bar 9 brings an approved BTC entry: its own transaction refuses it, and the loop halts
    # in the same tick although its cached latch still said "down".
    eth_bar, btc_bar = steps[9]
    r.tick(eth_bar)
    tick = r.tick(btc_bar)
    assert tick.state is TradingState.HALTED
    assert any(e.kind == "hardstop" for e in tick.events)
    assert _orders(r.database) == []
    assert r.exchange.fetch_open_orders() == []
    with r.database.session() as session:  # the refused order's approval stays on record
        approvals = session.scalars(select(DecisionRow).where(DecisionRow.approved.is_(True))).all()
    assert [d.symbol for d in approvals] == ["BTC/USD"]


# --- Restart and reconciliation ---------------------------------------------------------------


def test_an_order_sent_but_never_acknowledged_is_found_by_client_id_after_restart(
    rig: RigFactory,
) -> None:
    candles = candles_from(FLAT)
    r = rig(Scripted(entries=frozenset({2})), candles)
    bars = bars_of(candles)
    for bar in bars[:2]:
        r.tick(bar)
    # Crash between submit and acknowledgement: the exchange took the order, our row still
    # says pending_submit.
    original = r.engine.router.apply

    def lose_answer(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed before the acknowledgement was stored")

    r.engine.router.apply = lose_answer  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        r.tick(bars[2])
    r.engine.router.apply = original  # type: ignore[method-assign]
    (pending,) = [o for o in _orders(r.database) if o.state == "pending_submit"]
    assert r.exchange.fetch_order(pending.client_order_id, PAIR).status is ExchangeStatus.OPEN

    r.restart()
    report = r.engine.start(bars[2].ts_ms)
    assert any(pending.client_order_id in line for line in report.resolved)
    assert r.engine.book.get(pending.client_order_id).state == "open"  # type: ignore[union-attr]
    client_ids = [o.client_order_id for o in _orders(r.database)]
    assert len(client_ids) == len(set(client_ids))
    exchange_ids = {o.client_order_id for o in r.exchange.fetch_open_orders()}
    assert exchange_ids <= set(client_ids)


def test_orders_unknown_to_the_database_are_cancelled_as_orphans(rig: RigFactory) -> None:
    from nettrace.domain.types import Side
    from nettrace.execution.client_ids import client_order_id
    from nettrace.execution.exchange import OrderRequest

    r = rig(Scripted(), candles_from(FLAT))
    ours = client_order_id("lost-decision", 0)
    r.exchange.create_order(OrderRequest(ours, PAIR, Side.BUY, "limit", 1.0, 90.0, True))
    foreign = r.exchange.create_order(
        OrderRequest("operator-manual-1", PAIR, Side.BUY, "limit", 1.0, 80.0)
    )
    report = r.engine.start(0)
    assert report.orphans_cancelled == [ours]
    assert report.foreign_orders == [foreign.client_order_id]
    assert r.exchange.fetch_order(ours, PAIR).status is ExchangeStatus.CANCELED
    assert r.exchange.fetch_order("operator-manual-1", PAIR).status is ExchangeStatus.OPEN


def test_a_holding_smaller_than_our_books_switches_to_reducing(rig: RigFactory) -> None:
    r, steps = _crash_rig(rig, crash=0.0)
    for bar in steps[0]:
        r.tick(bar)  # adopts the 30 ETH the exchange holds
    # 1 ETH leaves the account outside the system (a withdrawal, a manual sale).
    state = json.loads(r.state_path.read_text())
    state["balances"]["ETH"] = 29.0
    r.state_path.write_text(json.dumps(state))
    r.restart()
    tick = r.tick(steps[1][0])
    assert r.engine.reconcile_report.short == {"ETH/USD": pytest.approx(1.0)}
    assert r.engine.reconcile_report.adopted == {}  # the 30 adopted before are remembered
    assert tick.state is TradingState.REDUCING
    for step in steps[2:12]:  # BTC entry signals at 9 and 11: exits only, nothing is bought
        for bar in step:
            r.tick(bar)
    assert [o for o in _orders(r.database) if o.side == "BUY"] == []


# --- The engine on a database of its own (restart from scratch) --------------------------------


def test_portfolio_equals_exchange_balances_after_a_run(rig: RigFactory) -> None:
    closes = [100.0, 100.0, 100.0] + [100.0 - 0.1 * i for i in range(1, 30)]
    candles = candles_from(closes, spread=0.003)
    r = rig(Scripted(entries=frozenset(range(2, 30, 3)), exits=frozenset(range(4, 30, 3)),
                     atr_fraction=0.002), candles)  # fmt: skip
    for bar in bars_of(candles):
        r.tick(bar)
    balances = r.exchange.fetch_balance()
    position = r.engine.portfolio.position(PAIR)
    held = position.amount if position is not None else 0.0
    assert held == pytest.approx(balances.get("BTC", 0.0), abs=1e-9)
    assert r.engine.portfolio.cash == pytest.approx(balances["USD"], rel=1e-12)
    r.restart()
    r.engine.start(int(candles.timestamp[-1]))
    assert r.engine.portfolio.cash == pytest.approx(balances["USD"], rel=1e-12)
    assert r.engine.reconcile_report.clean
