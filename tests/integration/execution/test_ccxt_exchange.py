"""``CcxtExchange`` end to end through the real ccxt ``binance`` client against a loopback fake
Binance spot server (``fake_binance.py`` beside this file), with injected faults.

What matters is what the engine relies on: every lookup works from our client order id alone,
a refused order leaves nothing behind, a lost answer is reported as *unknown* and resolved by
``fetch_order``, and a retried placement never makes a second order.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nettrace.domain.types import Side
from nettrace.execution.ccxt_exchange import CcxtExchange
from nettrace.execution.client_ids import client_order_id
from nettrace.execution.exchange import (
    Exchange,
    ExchangeError,
    ExchangeStatus,
    ExchangeUnavailable,
    OrderNotFound,
    OrderRejected,
    OrderRequest,
)


def _load_fake() -> Any:
    # --import-mode=importlib puts no test folder on sys.path: load the sibling module by path.
    spec = importlib.util.spec_from_file_location(
        "_nettrace_fake_binance", Path(__file__).with_name("fake_binance.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fake_binance = _load_fake()
SYMBOL = "BTC/USDT"

Venue = Any  # fake_binance.FakeBinance
MakeClient = Callable[..., CcxtExchange]


@pytest.fixture
def venue() -> Venue:
    return fake_binance.FakeBinance()


@pytest.fixture
def base(venue: Venue) -> Iterator[str]:
    with fake_binance.serve(venue) as url:
        yield url


@pytest.fixture
def make(base: str) -> MakeClient:
    """A fresh adapter (fresh caches, like a restarted engine) over a fresh ccxt client."""

    def build(*, timeout_ms: int = 2000, **kwargs: Any) -> CcxtExchange:
        return CcxtExchange(fake_binance.binance_client(base, timeout_ms=timeout_ms), **kwargs)

    return build


def limit(cid: str, price: float, *, side: Side = Side.BUY, amount: float = 0.5) -> OrderRequest:
    return OrderRequest(cid, SYMBOL, side, "limit", amount, price=price, post_only=True)


def sent(venue: Venue, method: str) -> list[dict[str, str]]:
    return [p for m, path, p in venue.requests if m == method and path == "/api/v3/order"]


def test_create_fetch_cancel_round_trip_by_client_id(venue: Venue, make: MakeClient) -> None:
    ex = make()
    assert isinstance(ex, Exchange)
    assert ex.name == "binance"
    cid = client_order_id("decision-1")

    placed = ex.create_order(limit(cid, 100.0))
    assert placed.client_order_id == cid
    assert placed.status is ExchangeStatus.OPEN
    assert (placed.kind, placed.side, placed.symbol) == ("limit", Side.BUY, SYMBOL)
    assert (placed.amount, placed.price, placed.filled, placed.post_only) == (0.5, 100.0, 0, True)
    assert placed.ts_ms > 0
    (post,) = sent(venue, "POST")
    assert post["newClientOrderId"] == cid
    assert post["type"] == "LIMIT_MAKER"  # ccxt's unified postOnly on Binance spot

    fetched = make().fetch_order(cid, SYMBOL)  # a restarted engine knows only the client id
    assert fetched.id == placed.id
    assert fetched.status is ExchangeStatus.OPEN
    assert all(p.get("origClientOrderId") == cid for p in sent(venue, "GET"))
    assert [o.client_order_id for o in ex.fetch_open_orders()] == [cid]
    assert [o.client_order_id for o in ex.fetch_open_orders(SYMBOL)] == [cid]

    cancelled = ex.cancel_order(cid, SYMBOL)
    assert (cancelled.id, cancelled.status) == (placed.id, ExchangeStatus.CANCELED)
    assert sent(venue, "DELETE")[0]["origClientOrderId"] == cid
    assert ex.fetch_open_orders() == []
    # cancelling again: Binance says "Unknown order sent."; the adapter returns it unchanged
    again = ex.cancel_order(cid, SYMBOL)
    assert (again.id, again.status, again.filled) == (placed.id, ExchangeStatus.CANCELED, 0.0)


def test_cancel_of_a_filled_order_returns_it_filled(venue: Venue, make: MakeClient) -> None:
    ex = make()
    cid = client_order_id("decision-filled")
    ex.create_order(limit(cid, 100.0))
    venue.fill(cid, 0.5)
    done = ex.cancel_order(cid, SYMBOL)
    assert (done.status, done.filled, done.average) == (ExchangeStatus.CLOSED, 0.5, 100.0)


def test_post_only_that_would_cross_is_rejected_and_nothing_stored(
    venue: Venue, make: MakeClient
) -> None:
    ex = make()
    cid = client_order_id("decision-cross")
    with pytest.raises(OrderRejected, match="immediately match"):
        ex.create_order(limit(cid, 101.5))  # the ask is 101
    assert venue.orders_with(cid) == []
    with pytest.raises(OrderNotFound, match=cid):
        ex.fetch_order(cid, SYMBOL)
    with pytest.raises(OrderNotFound):
        ex.cancel_order(cid, SYMBOL)


def test_timeout_is_unknown_then_fetch_finds_the_order_and_a_retry_adds_none(
    venue: Venue, make: MakeClient
) -> None:
    ex = make(timeout_ms=300)
    cid = client_order_id("decision-timeout")
    venue.store_then_sleep_s = 1.0  # the venue stores the order, the answer comes too late
    with pytest.raises(ExchangeUnavailable, match="outcome unknown"):
        ex.create_order(limit(cid, 100.0))
    assert len(venue.orders_with(cid)) == 1  # it did arrive: the outcome really was unknown
    venue.store_then_sleep_s = 0.0

    found = ex.fetch_order(cid, SYMBOL)
    assert (found.client_order_id, found.status) == (cid, ExchangeStatus.OPEN)
    posts = venue.order_posts()
    retried = ex.create_order(limit(cid, 100.0))
    assert retried.id == found.id
    assert venue.order_posts() == posts  # answered from the lookup, nothing sent
    assert len(venue.orders_with(cid)) == 1


def test_retry_after_fill_returns_the_filled_order(venue: Venue, make: MakeClient) -> None:
    """Binance accepts a finished order's client id again: only the lookup keeps it single."""
    cid = client_order_id("decision-retry")
    first = make().create_order(limit(cid, 100.0))
    venue.fill(cid, 0.5)
    retried = make().create_order(limit(cid, 100.0))
    assert (retried.id, retried.status, retried.filled) == (first.id, ExchangeStatus.CLOSED, 0.5)
    assert len(venue.orders_with(cid)) == 1
    # the venue rule that makes the lookup necessary: without it a second order is placed
    make(look_before_create=False).create_order(limit(cid, 100.0))
    assert len(venue.orders_with(cid)) == 2


def test_venue_duplicate_answer_returns_the_existing_order(venue: Venue, make: MakeClient) -> None:
    ex = make(look_before_create=False)
    cid = client_order_id("decision-dup")
    first = ex.create_order(limit(cid, 100.0))
    again = ex.create_order(limit(cid, 100.0))  # the venue answers -2010 "Duplicate order sent."
    assert again.id == first.id
    assert venue.order_posts() == 2
    assert len(venue.orders_with(cid)) == 1


def test_a_client_id_held_by_another_order_is_refused(venue: Venue, make: MakeClient) -> None:
    ex = make()
    cid = client_order_id("decision-clash")
    ex.create_order(limit(cid, 100.0))
    with pytest.raises(OrderRejected, match="already used"):
        ex.create_order(limit(cid, 103.0, side=Side.SELL))
    assert len(venue.orders_with(cid)) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ((503, b"<html>Service Unavailable</html>"), ExchangeUnavailable),
        ((502, b"Bad Gateway"), ExchangeUnavailable),
        ((429, {"code": -1003, "msg": "Too many requests."}), ExchangeUnavailable),
        ((400, {"code": -1003, "msg": "Too much request weight used."}), ExchangeUnavailable),
        (
            (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."}),
            OrderRejected,
        ),
        ((400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"}), OrderRejected),
        ((401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions."}), ExchangeError),
    ],
)
def test_placement_errors_map_to_the_protocol(
    venue: Venue, make: MakeClient, reply: tuple[int, object], error: type[Exception]
) -> None:
    venue.post_failures.append(reply)
    cid = client_order_id("decision-fault")
    with pytest.raises(error) as raised:
        make().create_order(limit(cid, 100.0))
    assert type(raised.value) is error  # e.g. an auth failure is not a plain "rejected"
    assert venue.orders_with(cid) == []


def test_lookups_when_the_venue_is_down_are_unavailable(venue: Venue, make: MakeClient) -> None:
    ex = make()
    cid = client_order_id("decision-down")
    ex.create_order(limit(cid, 100.0))
    for call in (
        lambda: ex.fetch_order(cid, SYMBOL),
        lambda: ex.cancel_order(cid, SYMBOL),
        ex.fetch_open_orders,
        ex.fetch_balance,
        lambda: ex.fetch_my_trades(SYMBOL),
    ):
        venue.failures.append((503, b"down for maintenance"))
        with pytest.raises(ExchangeUnavailable):
            call()
    assert ex.fetch_order(cid, SYMBOL).status is ExchangeStatus.OPEN  # the cancel never landed


def test_only_a_placement_can_be_rejected(venue: Venue, make: MakeClient) -> None:
    """An unknown market refuses the order, but a query about it is an error, not a reject."""
    ex = make()
    cid = client_order_id("decision-badsymbol")
    request = OrderRequest(cid, "DOGE/USDT", Side.BUY, "limit", 1.0, price=0.1)
    with pytest.raises(OrderRejected, match="DOGE"):
        ex.create_order(request)
    for call in (ex.fetch_order, ex.cancel_order):
        with pytest.raises(ExchangeError) as raised:
            call(cid, "DOGE/USDT")
        assert not isinstance(raised.value, OrderRejected | ExchangeUnavailable | OrderNotFound)
    assert venue.order_posts() == 0


def test_market_order_trades_and_balance_mapping(venue: Venue, make: MakeClient) -> None:
    ex = make()
    buy = client_order_id("decision-market")
    sell = client_order_id("decision-maker-sell")
    market = ex.create_order(OrderRequest(buy, SYMBOL, Side.BUY, "market", 0.5))
    assert (market.kind, market.status, market.filled) == ("market", ExchangeStatus.CLOSED, 0.5)
    assert market.average == 101.0
    maker = ex.create_order(limit(sell, 102.0, side=Side.SELL, amount=0.3))
    venue.fill(sell, 0.2)

    fresh = make(symbols=[SYMBOL])  # no cache: client ids come from the venue's orders
    trades = fresh.fetch_my_trades(SYMBOL)
    assert [(t.client_order_id, t.order_id, t.side) for t in trades] == [
        (buy, market.id, Side.BUY),
        (sell, maker.id, Side.SELL),
    ]
    taker, made = trades
    assert (taker.price, taker.amount, taker.is_maker) == (101.0, 0.5, False)
    assert (taker.fee, taker.fee_currency) == (pytest.approx(0.0005), "BTC")
    assert (made.price, made.amount, made.is_maker) == (102.0, 0.2, True)
    assert (made.fee, made.fee_currency) == (pytest.approx(0.0204), "USDT")
    assert made.symbol == SYMBOL
    assert made.ts_ms > taker.ts_ms > 0
    assert len({t.id for t in trades}) == 2
    assert fresh.fetch_my_trades(SYMBOL, since_ms=made.ts_ms) == [made]
    assert fresh.fetch_my_trades() == trades  # walks the configured symbols
    with pytest.raises(ExchangeError, match="per symbol"):
        make().fetch_my_trades()

    partial = fresh.fetch_order(sell, SYMBOL)
    assert (partial.status, partial.filled, partial.remaining) == (
        ExchangeStatus.OPEN,
        pytest.approx(0.2),
        pytest.approx(0.1),
    )
    assert ex.fetch_balance() == {"BTC": 1.75, "USDT": 10000.0}  # free + locked; ETH 0 left out


def test_trades_are_paged_until_exhausted(venue: Venue, make: MakeClient) -> None:
    ex = make(trades_page_limit=2)
    cids = [client_order_id(f"decision-page-{i}") for i in range(5)]
    for cid in cids:
        ex.create_order(OrderRequest(cid, SYMBOL, Side.BUY, "market", 0.01))
    trades = ex.fetch_my_trades(SYMBOL)
    assert [t.client_order_id for t in trades] == cids
    pages = [p for m, path, p in venue.requests if path == "/api/v3/myTrades"]
    assert len(pages) >= 3
    assert all(p["limit"] == "2" for p in pages)


def test_conditional_orders_and_unsupported_requests(
    venue: Venue, base: str, make: MakeClient
) -> None:
    ex = make()
    stop = client_order_id("decision-stop")
    take = client_order_id("decision-take")
    placed_stop = ex.create_order(
        OrderRequest(stop, SYMBOL, Side.SELL, "stop_loss", 0.5, trigger_price=90.0)
    )
    placed_take = ex.create_order(
        OrderRequest(take, SYMBOL, Side.SELL, "take_profit", 0.5, trigger_price=110.0)
    )
    assert (placed_stop.kind, placed_stop.trigger_price) == ("stop_loss", 90.0)
    assert (placed_take.kind, placed_take.trigger_price) == ("take_profit", 110.0)
    posts = sent(venue, "POST")
    assert [(p["type"], p["stopPrice"], p["newClientOrderId"]) for p in posts] == [
        ("STOP_LOSS", "90", stop),
        ("TAKE_PROFIT", "110", take),
    ]
    # a restarted engine reads the kinds back from the venue's fields alone
    open_orders = make().fetch_open_orders(SYMBOL)
    assert [(o.client_order_id, o.kind, o.trigger_price) for o in open_orders] == [
        (stop, "stop_loss", 90.0),
        (take, "take_profit", 110.0),
    ]

    child = OrderRequest(
        client_order_id("decision-child"),
        SYMBOL,
        Side.SELL,
        "stop_loss",
        0.5,
        trigger_price=90.0,
        parent_client_order_id=stop,
    )
    with pytest.raises(OrderRejected, match="armed after"):
        ex.create_order(child)
    client = fake_binance.binance_client(base)
    client.has["createStopLossOrder"] = False
    no_stops = CcxtExchange(client)
    with pytest.raises(OrderRejected, match="stop-loss orders are not supported"):
        no_stops.create_order(
            OrderRequest(
                client_order_id("decision-nostop"),
                SYMBOL,
                Side.SELL,
                "stop_loss",
                0.5,
                trigger_price=90.0,
            )
        )
    assert len(sent(venue, "POST")) == 2  # neither refusal reached the venue
