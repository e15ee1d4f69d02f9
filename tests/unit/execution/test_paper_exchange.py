"""The paper exchange: post-only, trade-through fills, fees, brackets, partial fills, balances,
idempotency and persistence -- the matching model of ``execution/paper.py``, which must mirror
the backtest kernel's maker fill model (``backtest/kernel.py``).

Every number is computed by hand in the comments. Fees: maker 0.1 %, taker 0.2 %, in USDT.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nettrace.domain.fees import FeeSchedule
from nettrace.domain.types import Side
from nettrace.execution.exchange import (
    Exchange,
    ExchangeStatus,
    ExchangeTrade,
    OrderKind,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
)
from nettrace.execution.paper import Bar, PaperExchange

SYM = "BTC/USDT"
MAKER = 0.001
TAKER = 0.002
FEES = FeeSchedule(maker=MAKER, taker=TAKER)
CASH = 10_000.0
OPEN = ExchangeStatus.OPEN
CLOSED = ExchangeStatus.CLOSED
CANCELED = ExchangeStatus.CANCELED
BUY = Side.BUY
SELL = Side.SELL


def bar(
    o: float,
    h: float,
    lo: float,
    *,
    ts: int = 60_000,
    v: float = 1e9,
    symbol: str = SYM,
) -> Bar:
    return Bar(symbol=symbol, ts_ms=ts, open=o, high=h, low=lo, close=o, volume=v)


def make(
    balances: dict[str, float] | None = None,
    *,
    fees: FeeSchedule = FEES,
    share: float | None = None,
    state_path: Path | None = None,
) -> PaperExchange:
    return PaperExchange(
        fees=fees,
        initial_balances={"USDT": CASH} if balances is None else balances,
        max_volume_share=share,
        state_path=state_path,
    )


def limit(
    cid: str,
    side: Side,
    amount: float,
    price: float,
    *,
    post_only: bool = True,
    symbol: str = SYM,
) -> OrderRequest:
    return OrderRequest(cid, symbol, side, "limit", amount, price=price, post_only=post_only)


def market(cid: str, side: Side, amount: float) -> OrderRequest:
    return OrderRequest(cid, SYM, side, "market", amount)


def child(cid: str, kind: OrderKind, amount: float, trigger: float, parent: str) -> OrderRequest:
    return OrderRequest(
        cid, SYM, SELL, kind, amount, trigger_price=trigger, parent_client_order_id=parent
    )


def bracket(
    ex: PaperExchange, amount: float = 1.0, price: float = 99.0, sl: float = 95.0, tp: float = 105.0
) -> None:
    """Entry ``e`` (post-only buy), its stop ``sl`` and its take-profit ``tp``."""
    ex.create_order(limit("e", BUY, amount, price))
    ex.create_order(child("sl", "stop_loss", amount, sl, "e"))
    ex.create_order(child("tp", "take_profit", amount, tp, "e"))


def test_it_speaks_the_exchange_interface() -> None:
    assert isinstance(make(), Exchange)


# --- Post-only ---------------------------------------------------------------------------------


@pytest.mark.parametrize("price", [100.0, 100.5])
def test_a_post_only_buy_at_or_above_the_open_is_cancelled(price: float) -> None:
    ex = make()
    placed = ex.create_order(limit("b", BUY, 1.0, price))
    assert placed.status is OPEN  # accepted; judged only when it reaches the book
    assert ex.on_bar(bar(100.0, 102.0, 90.0)) == []  # the low trades far through it: still no
    order = ex.fetch_order("b", SYM)
    assert order.status is CANCELED
    assert "post-only" in order.reason
    assert order.filled == 0.0
    assert ex.fetch_balance() == {"USDT": CASH}
    assert ex.fetch_my_trades() == []
    assert ex.fetch_open_orders() == []


@pytest.mark.parametrize("price", [100.0, 99.5])
def test_a_post_only_sell_at_or_below_the_open_is_cancelled(price: float) -> None:
    ex = make({"BTC": 2.0, "USDT": 0.0})
    ex.create_order(limit("s", SELL, 1.0, price))
    assert ex.on_bar(bar(100.0, 110.0, 99.0)) == []
    order = ex.fetch_order("s", SYM)
    assert order.status is CANCELED
    assert "post-only" in order.reason
    assert ex.fetch_balance() == {"BTC": 2.0, "USDT": 0.0}


def test_a_post_only_buy_below_the_open_rests_and_fills() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 1.0, 99.5))
    (trade,) = ex.on_bar(bar(100.0, 101.0, 99.0))
    assert (trade.price, trade.amount, trade.is_maker) == (99.5, 1.0, True)
    assert ex.fetch_order("b", SYM).status is CLOSED


def test_a_post_only_sell_above_the_open_rests_and_fills() -> None:
    ex = make({"BTC": 2.0, "USDT": 0.0})
    ex.create_order(limit("s", SELL, 1.0, 100.5))
    (trade,) = ex.on_bar(bar(100.0, 101.0, 99.0))
    assert (trade.side, trade.price, trade.amount) == (SELL, 100.5, 1.0)
    # 100.5 - 0.1005 maker fee
    assert ex.fetch_balance() == pytest.approx({"BTC": 1.0, "USDT": 100.3995})


def test_post_only_is_judged_at_arrival_only_a_resting_order_is_then_run_through() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 1.0, 99.0))
    assert ex.on_bar(bar(100.0, 101.0, 99.5, ts=60_000)) == []  # rests, not traded through
    assert ex.fetch_order("b", SYM).status is OPEN
    # The next bar opens below the limit: a resting maker order is simply run through.
    (trade,) = ex.on_bar(bar(98.0, 98.5, 97.0, ts=120_000))
    assert (trade.price, trade.is_maker, trade.ts_ms) == (99.0, True, 120_000)


def test_a_plain_limit_is_not_subject_to_post_only() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 1.0, 100.0, post_only=False))
    (trade,) = ex.on_bar(bar(100.0, 101.0, 99.0))
    assert trade.price == 100.0


# --- Trade-through fills and fees ------------------------------------------------------------


def test_a_buy_fills_at_the_limit_only_when_the_low_trades_through_it() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 2.0, 99.0))
    assert ex.on_bar(bar(100.0, 101.0, 99.0, ts=60_000)) == []  # touched, not through
    assert ex.fetch_order("b", SYM).status is OPEN
    assert ex.fetch_balance() == {"USDT": CASH}
    (trade,) = ex.on_bar(bar(100.0, 101.0, 98.99, ts=120_000))
    # 2 x 99 = 198 notional; maker fee 198 x 0.001 = 0.198 USDT
    assert trade.side is BUY
    assert (trade.price, trade.amount) == (99.0, 2.0)
    assert trade.fee == pytest.approx(0.198)
    assert (trade.fee_currency, trade.is_maker, trade.ts_ms) == ("USDT", True, 120_000)
    assert (trade.client_order_id, trade.order_id) == ("b", ex.fetch_order("b", SYM).id)
    assert ex.fetch_balance() == pytest.approx({"USDT": 9_801.802, "BTC": 2.0})
    order = ex.fetch_order("b", SYM)
    assert (order.status, order.filled, order.average, order.remaining) == (CLOSED, 2.0, 99.0, 0)


def test_a_sell_fills_at_the_limit_only_when_the_high_trades_through_it() -> None:
    ex = make({"BTC": 3.0, "USDT": 10.0})
    ex.create_order(limit("s", SELL, 2.0, 101.0))
    assert ex.on_bar(bar(100.0, 101.0, 99.0, ts=60_000)) == []
    (trade,) = ex.on_bar(bar(100.0, 101.01, 99.0, ts=120_000))
    # 2 x 101 = 202; maker fee 0.202; USDT 10 + 202 - 0.202 = 211.798
    assert (trade.price, trade.amount, trade.is_maker) == (101.0, 2.0, True)
    assert trade.fee == pytest.approx(0.202)
    assert ex.fetch_balance() == pytest.approx({"BTC": 1.0, "USDT": 211.798})


def test_a_market_buy_fills_at_the_next_open_at_the_taker_fee() -> None:
    ex = make()
    ex.create_order(market("m", BUY, 0.5))
    (trade,) = ex.on_bar(bar(100.0, 120.0, 80.0))
    # 0.5 x 100 = 50; taker 50 x 0.002 = 0.1; USDT 10000 - 50.1
    assert (trade.price, trade.amount, trade.is_maker) == (100.0, 0.5, False)
    assert trade.fee == pytest.approx(0.1)
    assert ex.fetch_balance() == pytest.approx({"USDT": 9_949.9, "BTC": 0.5})
    assert ex.fetch_order("m", SYM).status is CLOSED


def test_a_market_sell_fills_at_the_next_open_at_the_taker_fee() -> None:
    ex = make({"BTC": 1.0, "USDT": 0.0})
    ex.create_order(market("m", SELL, 1.0))
    (trade,) = ex.on_bar(bar(200.0, 250.0, 150.0))
    # 200 - 0.4 taker fee
    assert (trade.price, trade.is_maker) == (200.0, False)
    assert ex.fetch_balance() == pytest.approx({"BTC": 0.0, "USDT": 199.6})


def test_sells_are_matched_first_so_their_cash_funds_a_buy_in_the_same_bar() -> None:
    ex = make({"BTC": 1.0, "USDT": 0.0})
    ex.create_order(limit("b", BUY, 0.5, 99.0))  # placed first, but needs the sale's cash
    ex.create_order(limit("s", SELL, 1.0, 101.0))
    trades = ex.on_bar(bar(100.0, 102.0, 98.0))
    assert [t.client_order_id for t in trades] == ["s", "b"]
    # +101 - 0.101, then -(49.5 + 0.0495): 51.3495
    assert ex.fetch_balance()["USDT"] == pytest.approx(51.3495)
    assert ex.fetch_balance()["BTC"] == pytest.approx(0.5)


def test_a_bar_of_another_symbol_does_not_touch_the_order() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 1.0, 99.0))
    assert ex.on_bar(bar(100.0, 101.0, 50.0, symbol="ETH/USDT")) == []
    assert ex.fetch_order("b", SYM).status is OPEN


# --- Brackets ---------------------------------------------------------------------------------


def test_bracket_children_wait_for_the_parent_to_fill() -> None:
    ex = make()
    bracket(ex)
    # The high passes the target, but the entry (99) was not traded through: nothing happens.
    assert ex.on_bar(bar(100.0, 110.0, 99.5)) == []
    for cid in ("e", "sl", "tp"):
        assert ex.fetch_order(cid, SYM).status is OPEN
    assert ex.fetch_balance() == {"USDT": CASH}


def test_a_stop_can_trigger_on_the_bar_its_parent_fills() -> None:
    ex = make()
    bracket(ex)
    entry, stop = ex.on_bar(bar(100.0, 101.0, 94.0))
    assert (entry.client_order_id, entry.price, entry.is_maker) == ("e", 99.0, True)
    assert (stop.client_order_id, stop.side, stop.price, stop.is_maker) == ("sl", SELL, 95.0, False)
    assert stop.fee == pytest.approx(0.19)  # 95 x 0.002
    tp = ex.fetch_order("tp", SYM)
    assert (tp.status, tp.filled) == (CANCELED, 0.0)
    assert tp.reason in ("position closed", "one-cancels-other: sl filled")
    # 10000 - 99 - 0.099 + 95 - 0.19
    assert ex.fetch_balance() == pytest.approx({"USDT": 9_995.711, "BTC": 0.0})
    assert ex.fetch_open_orders() == []


def test_a_take_profit_can_trigger_on_the_bar_its_parent_fills() -> None:
    ex = make()
    bracket(ex)
    _, tp = ex.on_bar(bar(100.0, 106.0, 98.0))
    assert (tp.client_order_id, tp.price, tp.is_maker) == ("tp", 105.0, True)
    assert ex.fetch_order("sl", SYM).status is CANCELED


def _entered() -> PaperExchange:
    """A bracket whose entry filled (1 BTC at 99) on a quiet bar; USDT 10000 - 99.099."""
    ex = make()
    bracket(ex)
    (entry,) = ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000))
    assert entry.client_order_id == "e"
    assert [o.client_order_id for o in ex.fetch_open_orders()] == ["sl", "tp"]
    return ex


def test_when_stop_and_target_both_trigger_in_one_bar_the_stop_wins() -> None:
    ex = _entered()
    (trade,) = ex.on_bar(bar(100.0, 110.0, 90.0, ts=120_000))
    assert (trade.client_order_id, trade.price) == ("sl", 95.0)
    tp = ex.fetch_order("tp", SYM)
    assert (tp.status, tp.filled) == (CANCELED, 0.0)
    assert tp.reason  # "position closed" (the sweep after a sell) or one-cancels-other


def test_one_cancels_other_even_when_more_is_held_than_the_bracket_covers() -> None:
    # 5 BTC held besides the bracket's 1: the position-closed sweep cannot be what cancels.
    ex = make({"USDT": CASH, "BTC": 5.0})
    bracket(ex)
    ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000))
    (trade,) = ex.on_bar(bar(100.0, 110.0, 90.0, ts=120_000))
    assert (trade.client_order_id, trade.amount, trade.price) == ("sl", 1.0, 95.0)
    tp = ex.fetch_order("tp", SYM)
    assert (tp.status, tp.filled) == (CANCELED, 0.0)
    assert "one-cancels-other" in tp.reason
    assert ex.fetch_balance()["BTC"] == pytest.approx(5.0)
    assert ex.on_bar(bar(100.0, 110.0, 99.0, ts=180_000)) == []


def test_a_stop_triggers_when_the_low_touches_it_and_fills_at_the_trigger() -> None:
    ex = _entered()
    (trade,) = ex.on_bar(bar(100.0, 101.0, 95.0, ts=120_000))
    assert (trade.price, trade.is_maker) == (95.0, False)


def test_a_stop_gapped_through_fills_at_the_worse_open_at_the_taker_fee() -> None:
    ex = _entered()
    (trade,) = ex.on_bar(bar(93.0, 94.0, 90.0, ts=120_000))
    assert (trade.client_order_id, trade.price, trade.is_maker) == ("sl", 93.0, False)
    assert trade.fee == pytest.approx(0.186)  # 93 x 0.002
    # 10000 - 99.099 + 93 - 0.186
    assert ex.fetch_balance() == pytest.approx({"USDT": 9_993.715, "BTC": 0.0})
    assert ex.fetch_order("sl", SYM).status is CLOSED
    assert ex.fetch_order("tp", SYM).status is CANCELED


def test_a_take_profit_needs_the_high_to_pass_the_target() -> None:
    ex = _entered()
    assert ex.on_bar(bar(100.0, 105.0, 99.0, ts=120_000)) == []
    (trade,) = ex.on_bar(bar(100.0, 105.5, 99.0, ts=180_000))
    assert (trade.client_order_id, trade.price, trade.is_maker) == ("tp", 105.0, True)
    assert trade.fee == pytest.approx(0.105)  # 105 x 0.001
    assert ex.fetch_balance() == pytest.approx({"USDT": 10_005.796, "BTC": 0.0})
    sl = ex.fetch_order("sl", SYM)
    assert (sl.status, sl.filled) == (CANCELED, 0.0)
    assert sl.reason in ("position closed", "one-cancels-other: tp filled")


def test_a_take_profit_gapped_through_fills_at_the_better_open_at_the_maker_fee() -> None:
    ex = _entered()
    (trade,) = ex.on_bar(bar(107.0, 108.0, 106.0, ts=120_000))
    assert (trade.price, trade.is_maker) == (107.0, True)
    assert trade.fee == pytest.approx(0.107)


def test_cancelling_an_unfilled_parent_cancels_its_children() -> None:
    ex = make()
    bracket(ex)
    assert ex.cancel_order("e", SYM).status is CANCELED
    for cid in ("sl", "tp"):
        assert ex.fetch_order(cid, SYM).status is CANCELED
    assert ex.fetch_open_orders() == []
    assert ex.on_bar(bar(100.0, 110.0, 90.0)) == []


def test_a_post_only_cancel_of_the_parent_cancels_its_children() -> None:
    ex = make()
    bracket(ex, price=100.0)
    assert ex.on_bar(bar(100.0, 110.0, 90.0)) == []
    assert "post-only" in ex.fetch_order("e", SYM).reason
    assert {o.status for o in (ex.fetch_order("sl", SYM), ex.fetch_order("tp", SYM))} == {CANCELED}


def test_cancelling_a_partly_filled_parent_arms_the_children_with_the_filled_amount() -> None:
    ex = make(share=0.5)
    bracket(ex, amount=4.0)
    # volume 2 -> at most 1 BTC fills. The low passes the stop too, but the children are not
    # armed until the parent is done.
    (entry,) = ex.on_bar(bar(100.0, 101.0, 94.0, ts=60_000, v=2.0))
    assert (entry.client_order_id, entry.amount) == ("e", 1.0)
    assert ex.fetch_order("e", SYM).status is OPEN
    cancelled = ex.cancel_order("e", SYM)
    assert (cancelled.status, cancelled.filled) == (CANCELED, 1.0)
    sl, tp = ex.fetch_order("sl", SYM), ex.fetch_order("tp", SYM)
    assert (sl.status, sl.amount, tp.status, tp.amount) == (OPEN, 1.0, OPEN, 1.0)
    (stop,) = ex.on_bar(bar(100.0, 101.0, 94.0, ts=120_000, v=100.0))
    assert (stop.client_order_id, stop.amount, stop.price) == ("sl", 1.0, 95.0)
    assert ex.fetch_balance()["BTC"] == pytest.approx(0.0)


def test_a_child_of_an_unknown_parent_is_rejected() -> None:
    ex = make()
    with pytest.raises(OrderRejected, match="unknown"):
        ex.create_order(child("sl", "stop_loss", 1.0, 95.0, "nope"))
    with pytest.raises(OrderNotFound):
        ex.fetch_order("sl", SYM)


def test_a_child_placed_after_its_parent_filled_is_armed_at_once() -> None:
    ex = make()
    ex.create_order(limit("e", BUY, 1.0, 99.0))
    ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000))
    ex.create_order(child("sl", "stop_loss", 1.0, 95.0, "e"))
    (trade,) = ex.on_bar(bar(96.0, 97.0, 94.0, ts=120_000))
    assert (trade.client_order_id, trade.price) == ("sl", 95.0)


# --- Partial fills ------------------------------------------------------------------------------


def test_max_volume_share_caps_each_fill_and_the_rest_keeps_working() -> None:
    ex = make(share=0.1)
    ex.create_order(limit("b", BUY, 5.0, 99.0))
    amounts = []
    for i, volume in enumerate([20.0, 20.0, 50.0]):
        (trade,) = ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000 * (i + 1), v=volume))
        amounts.append(trade.amount)
        order = ex.fetch_order("b", SYM)
        assert order.filled == pytest.approx(sum(amounts))
        assert order.status is (CLOSED if i == 2 else OPEN)
    assert amounts == pytest.approx([2.0, 2.0, 1.0])  # 10 % of 20, of 20, then the last 1
    assert ex.fetch_order("b", SYM).filled == 5.0
    assert ex.on_bar(bar(100.0, 101.0, 98.0, ts=240_000, v=50.0)) == []
    # 5 x 99 x 1.001 = 495.495
    assert ex.fetch_balance() == pytest.approx({"USDT": 9_504.505, "BTC": 5.0})


def test_a_partly_filled_parent_arms_its_children_only_when_complete() -> None:
    ex = make(share=0.5)
    bracket(ex, amount=2.0)
    ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000, v=2.0))  # 1 of 2
    assert ex.on_bar(bar(100.0, 110.0, 99.5, ts=120_000, v=100.0)) == []  # no entry fill, no tp
    trades = ex.on_bar(bar(100.0, 106.0, 98.0, ts=180_000, v=100.0))  # entry completes; tp 2
    assert [(t.client_order_id, t.amount) for t in trades] == [("e", 1.0), ("tp", 2.0)]


@pytest.mark.parametrize("share", [0.0, -0.1, 1.0001, 2.0])
def test_max_volume_share_outside_zero_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="max_volume_share"):
        make(share=share)


def test_max_volume_share_of_one_is_allowed() -> None:
    assert make(share=1.0).max_volume_share == 1.0


# --- Balances -----------------------------------------------------------------------------------


def test_a_buy_that_cannot_pay_notional_plus_fee_is_cancelled() -> None:
    ex = make({"USDT": 100.0})
    ex.create_order(limit("b", BUY, 1.0, 99.95))  # 99.95 + 0.09995 = 100.04995 > 100
    assert ex.on_bar(bar(100.0, 101.0, 99.0)) == []
    order = ex.fetch_order("b", SYM)
    assert order.status is CANCELED
    assert "insufficient" in order.reason
    assert ex.fetch_balance() == {"USDT": 100.0}


def test_a_buy_that_can_just_pay_fills() -> None:
    ex = make({"USDT": 100.0})
    ex.create_order(limit("b", BUY, 1.0, 99.9))  # 99.9 + 0.0999 = 99.9999 <= 100
    (trade,) = ex.on_bar(bar(100.0, 101.0, 99.0))
    assert trade.amount == 1.0
    assert ex.fetch_balance()["USDT"] == pytest.approx(0.0001)


def test_a_market_buy_without_the_cash_is_cancelled() -> None:
    ex = make({"USDT": 100.0})
    ex.create_order(market("m", BUY, 1.0))  # 100 + 0.2 taker > 100
    assert ex.on_bar(bar(100.0, 101.0, 99.0)) == []
    assert "insufficient" in ex.fetch_order("m", SYM).reason


def test_a_sell_of_more_than_is_held_is_cancelled() -> None:
    ex = make({"BTC": 1.0, "USDT": 0.0})
    ex.create_order(limit("s", SELL, 2.0, 101.0))
    assert ex.on_bar(bar(100.0, 102.0, 99.0)) == []
    order = ex.fetch_order("s", SYM)
    assert (order.status, order.filled) == (CANCELED, 0.0)
    assert "insufficient" in order.reason
    assert ex.fetch_balance() == {"BTC": 1.0, "USDT": 0.0}


def test_an_insufficient_parent_cancels_its_children() -> None:
    ex = make({"USDT": 50.0})
    bracket(ex)
    ex.on_bar(bar(100.0, 101.0, 98.0))
    assert "insufficient" in ex.fetch_order("e", SYM).reason
    assert ex.fetch_open_orders() == []


def test_a_signal_sell_that_empties_the_position_cancels_the_armed_brackets() -> None:
    ex = _entered()
    ex.create_order(limit("x", SELL, 1.0, 101.0))
    (trade,) = ex.on_bar(bar(100.0, 102.0, 99.0, ts=120_000))
    assert (trade.client_order_id, trade.price) == ("x", 101.0)
    for cid in ("sl", "tp"):
        order = ex.fetch_order(cid, SYM)
        assert order.status is CANCELED
        assert "position closed" in order.reason
    # 10000 - 99.099 + 101 - 0.101
    assert ex.fetch_balance() == pytest.approx({"USDT": 10_001.8, "BTC": 0.0})
    assert ex.on_bar(bar(100.0, 110.0, 90.0, ts=180_000)) == []


def test_a_partly_filled_parent_cancelled_for_funds_keeps_its_protection() -> None:
    ex = make({"USDT": 500.0}, share=0.5)
    bracket(ex, amount=8.0)
    # Bar 1, volume 4: 2 BTC fill at 99 -> 198 + 0.198 fee; USDT 301.802.
    (entry,) = ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000, v=4.0))
    assert entry.amount == 2.0
    # Bar 2: the remaining 6 need 594.594 USDT > 301.802 -> the venue cancels the entry.
    assert ex.on_bar(bar(100.0, 101.0, 98.0, ts=120_000, v=100.0)) == []
    parent = ex.fetch_order("e", SYM)
    assert (parent.status, parent.filled) == (CANCELED, 2.0)
    assert ex.fetch_balance()["BTC"] == pytest.approx(2.0)
    # The 2 BTC held should stay protected, as after cancel_order of a partly filled parent.
    stop = ex.fetch_order("sl", SYM)
    assert (stop.status, stop.amount) == (OPEN, 2.0)


def test_a_buy_never_leaves_the_quote_balance_negative() -> None:
    ex = make({"USDT": 100.0}, fees=FeeSchedule(maker=0.0, taker=0.0))
    ex.create_order(limit("b", BUY, 1.0000000005, 100.0))  # needs 100.00000005 USDT
    ex.on_bar(bar(101.0, 102.0, 99.0))
    assert ex.fetch_balance()["USDT"] >= 0.0


def test_a_marketable_plain_limit_fills_within_the_bar_as_a_taker() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 1.0, 105.0, post_only=False))
    (trade,) = ex.on_bar(bar(100.0, 101.0, 99.0))  # the bar never traded above 101
    assert trade.price <= 101.0
    assert not trade.is_maker


def test_a_malformed_symbol_is_rejected_when_placed() -> None:
    ex = make()
    with pytest.raises(OrderRejected):
        ex.create_order(OrderRequest("m", "BTCUSDT", BUY, "market", 1.0))


# --- Idempotency and lookups ------------------------------------------------------------------


def test_the_same_client_id_twice_returns_the_same_order() -> None:
    ex = make()
    first = ex.create_order(limit("b", BUY, 1.0, 99.0))
    again = ex.create_order(limit("b", BUY, 3.0, 98.0))  # different terms, same client id
    assert again == first
    assert len(ex.fetch_open_orders()) == 1
    ex.on_bar(bar(100.0, 101.0, 98.5))
    done = ex.create_order(limit("b", BUY, 1.0, 99.0))
    assert (done.id, done.status, done.filled) == (first.id, CLOSED, 1.0)
    assert ex.fetch_open_orders() == []
    assert len(ex.fetch_my_trades()) == 1
    assert ex.create_order(limit("c", BUY, 1.0, 99.0)).id != first.id


def test_unknown_client_ids_raise_order_not_found() -> None:
    ex = make()
    with pytest.raises(OrderNotFound):
        ex.fetch_order("ghost", SYM)
    with pytest.raises(OrderNotFound):
        ex.cancel_order("ghost", SYM)


def test_cancelling_a_finished_order_returns_it_unchanged() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 1.0, 99.0))
    ex.on_bar(bar(100.0, 101.0, 98.0))
    filled = ex.fetch_order("b", SYM)
    assert ex.cancel_order("b", SYM) == filled
    assert filled.status is CLOSED
    ex.create_order(limit("c", BUY, 1.0, 99.0))
    first = ex.cancel_order("c", SYM)
    assert (first.status, first.reason) == (CANCELED, "cancelled on request")
    assert ex.cancel_order("c", SYM) == first


def test_fetch_open_orders_filters_by_symbol() -> None:
    ex = make()
    ex.create_order(limit("b", BUY, 1.0, 99.0))
    ex.create_order(limit("e", BUY, 1.0, 9.0, symbol="ETH/USDT"))
    ex.create_order(limit("c", BUY, 1.0, 98.0))
    assert [o.client_order_id for o in ex.fetch_open_orders(SYM)] == ["b", "c"]
    assert [o.client_order_id for o in ex.fetch_open_orders("ETH/USDT")] == ["e"]
    assert [o.client_order_id for o in ex.fetch_open_orders()] == ["b", "e", "c"]
    assert ex.fetch_open_orders("SOL/USDT") == []


def test_fetch_my_trades_filters_by_time_and_symbol() -> None:
    ex = make()
    ex.create_order(limit("a", BUY, 1.0, 99.0))
    ex.on_bar(bar(100.0, 101.0, 98.0, ts=1_000))
    ex.create_order(limit("b", BUY, 1.0, 9.0, symbol="ETH/USDT"))
    ex.on_bar(bar(10.0, 11.0, 8.0, ts=2_000, symbol="ETH/USDT"))
    ex.create_order(limit("c", BUY, 1.0, 99.0))
    ex.on_bar(bar(100.0, 101.0, 98.0, ts=3_000))
    assert [t.client_order_id for t in ex.fetch_my_trades()] == ["a", "b", "c"]
    assert [t.client_order_id for t in ex.fetch_my_trades(since_ms=2_000)] == ["b", "c"]
    assert [t.client_order_id for t in ex.fetch_my_trades(since_ms=2_001)] == ["c"]
    assert [t.client_order_id for t in ex.fetch_my_trades(SYM, since_ms=1_000)] == ["a", "c"]
    assert ex.fetch_my_trades(since_ms=3_001) == []
    assert len({t.id for t in ex.fetch_my_trades()}) == 3


# --- Persistence --------------------------------------------------------------------------------


def test_a_restart_continues_the_same_account(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    ex = make(state_path=path)
    assert path.exists()
    ex.create_order(limit("a", BUY, 1.0, 99.0))
    ex.create_order(limit("b", BUY, 1.0, 97.0))
    ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000))  # a fills; b rests (arrived, post-only passed)
    assert list(tmp_path.iterdir()) == [path]  # written by rename: no .tmp left behind

    again = make({"USDT": 1.0}, state_path=path)  # the file wins over initial balances
    assert again.fetch_balance() == ex.fetch_balance()
    assert again.fetch_balance() == pytest.approx({"USDT": 9_900.901, "BTC": 1.0})
    assert again.fetch_order("a", SYM) == ex.fetch_order("a", SYM)
    assert again.fetch_open_orders() == ex.fetch_open_orders()
    assert [o.client_order_id for o in again.fetch_open_orders()] == ["b"]
    assert again.fetch_my_trades() == ex.fetch_my_trades()
    # b keeps matching; it already passed post-only, so an open below 97 does not cancel it.
    (trade,) = again.on_bar(bar(96.5, 97.0, 96.0, ts=120_000))
    assert (trade.client_order_id, trade.price) == ("b", 97.0)
    new = again.create_order(limit("c", BUY, 1.0, 90.0))
    assert new.id not in {ex.fetch_order("a", SYM).id, ex.fetch_order("b", SYM).id}

    third = make(state_path=path)
    assert [t.client_order_id for t in third.fetch_my_trades()] == ["a", "b"]
    assert len({t.id for t in third.fetch_my_trades()}) == 2
    assert [o.client_order_id for o in third.fetch_open_orders()] == ["c"]
    assert list(tmp_path.iterdir()) == [path]


def test_brackets_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "paper.json"
    ex = make(state_path=path)
    bracket(ex)
    ex.on_bar(bar(100.0, 101.0, 98.0, ts=60_000))
    again = make(state_path=path)
    (trade,) = again.on_bar(bar(100.0, 101.0, 94.0, ts=120_000))
    assert (trade.client_order_id, trade.price) == ("sl", 95.0)
    assert again.fetch_order("tp", SYM).status is CANCELED


def test_a_failed_rename_leaves_the_previous_file_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "paper.json"
    ex = make(state_path=path)
    ex.create_order(limit("a", BUY, 1.0, 99.0))
    before = path.read_text()

    def crash(src: object, dst: object) -> None:
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)  # what paper.py renames with
    with pytest.raises(OSError, match="killed"):
        ex.create_order(limit("b", BUY, 1.0, 98.0))
    monkeypatch.undo()
    assert path.read_text() == before
    json.loads(before)  # complete JSON
    assert [o.client_order_id for o in make(state_path=path).fetch_open_orders()] == ["a"]


# --- Property: balances move exactly by the reported trades ---------------------------------


@dataclass(frozen=True)
class Step:
    side: Side
    kind: OrderKind
    amount: float
    price: float
    post_only: bool
    stop: float | None
    target: float | None
    o: float
    up: float
    down: float
    volume: float


prices = st.floats(50.0, 150.0, allow_nan=False)
steps = st.builds(
    Step,
    side=st.sampled_from([BUY, SELL]),
    kind=st.sampled_from(["limit", "limit", "limit", "market"]),
    amount=st.floats(0.01, 20.0),
    price=prices,
    post_only=st.booleans(),
    stop=st.none() | prices,
    target=st.none() | prices,
    o=prices,
    up=st.floats(0.0, 20.0),
    down=st.floats(0.0, 20.0),
    volume=st.floats(0.0, 50.0),
)


def _flows(trades: list[ExchangeTrade]) -> tuple[float, float]:
    quote = base = 0.0
    for t in trades:
        if t.side is BUY:
            quote -= t.price * t.amount + t.fee
            base += t.amount
        else:
            quote += t.price * t.amount - t.fee
            base -= t.amount
    return quote, base


@settings(max_examples=150, deadline=None)
@given(
    cash=st.floats(0.0, 3_000.0),
    held=st.floats(0.0, 20.0),
    share=st.none() | st.floats(0.05, 1.0),
    plan=st.lists(steps, min_size=1, max_size=12),
)
def test_balances_move_exactly_by_the_reported_trades(
    cash: float, held: float, share: float | None, plan: list[Step]
) -> None:
    ex = make({"USDT": cash, "BTC": held}, share=share)
    seen: list[ExchangeTrade] = []
    for i, s in enumerate(plan):
        cid = f"o{i}"
        price = s.price if s.kind == "limit" else None
        ex.create_order(
            OrderRequest(
                cid,
                SYM,
                s.side,
                s.kind,
                s.amount,
                price=price,
                post_only=s.post_only and s.kind == "limit",
            )
        )
        if s.side is BUY and s.stop is not None:
            ex.create_order(child(f"{cid}sl", "stop_loss", s.amount, s.stop, cid))
        if s.side is BUY and s.target is not None:
            ex.create_order(child(f"{cid}tp", "take_profit", s.amount, s.target, cid))
        lo = max(s.o - s.down, 1.0)
        new = ex.on_bar(bar(s.o, s.o + s.up, lo, ts=60_000 * (i + 1), v=s.volume))
        seen.extend(new)
        for t in new:
            assert t.amount > 0
            if share is not None:
                assert t.amount <= share * s.volume * (1 + 1e-12)
            # A resting limit may fill at its own price across a gap, but never at a price the
            # bar could not have given: a buy pays at least the low, a sell gets at most the high.
            assert t.price >= lo if t.side is BUY else t.price <= s.o + s.up
            rate = MAKER if t.is_maker else TAKER
            assert t.fee == pytest.approx(t.price * t.amount * rate)
        balances = ex.fetch_balance()
        assert balances["USDT"] >= 0.0
        assert balances["BTC"] >= 0.0
        for o in ex.fetch_open_orders():
            assert 0.0 <= o.filled < o.amount
    assert ex.fetch_my_trades() == seen
    quote, base = _flows(seen)
    balances = ex.fetch_balance()
    assert balances["USDT"] - cash == pytest.approx(quote, rel=1e-9, abs=1e-7)
    assert balances["BTC"] - held == pytest.approx(base, rel=1e-9, abs=1e-7)
    for t in seen:  # filled is the sum of an order's trades
        order = ex.fetch_order(t.client_order_id, SYM)
        mine = sum(x.amount for x in seen if x.client_order_id == t.client_order_id)
        assert order.filled == pytest.approx(mine)
