"""The order-book depth a ``StreamFeed`` asks ccxt.pro for is one the venue accepts.

Issue 11: kraken's ``watchOrderBook`` refuses ``limit=20`` (MonitorParams.depth), so its book
stream never started. These tests run ccxt.pro's own ``watch_order_book`` -- its argument
checks are the behaviour under test -- with the methods that would reach the network
(``load_markets``, ``watch*``) replaced, so nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ccxt
import ccxt.pro
import pytest

from nettrace.scouts.monitor import MonitorParams
from nettrace.scouts.stream import BOOK, WATCH_BOOK_DEPTHS, StreamFeed, watch_book_depth

SYMBOL = "BTC/USDT"
_MARKET = {
    "id": "BTCUSDT", "symbol": SYMBOL, "base": "BTC", "quote": "USDT", "baseId": "BTC",
    "quoteId": "USDT", "type": "spot", "spot": True, "option": False, "swap": False,
    "future": False, "contract": False, "active": True, "precision": {}, "limits": {},
}  # fmt: skip


class ReachedNetworkError(Exception):
    """ccxt got past its argument checks and would now talk to the venue."""


async def _network(*args: Any, **kwargs: Any) -> Any:
    raise ReachedNetworkError


def offline(exchange_id: str) -> Any:
    exchange = getattr(ccxt.pro, exchange_id)()
    for name in ("load_markets", "watch", "watch_multiple", "watch_multi_helper"):
        setattr(exchange, name, _network)
    exchange.set_markets([dict(_MARKET)])
    return exchange


def ccxt_refuses(exchange_id: str, limits: list[int]) -> dict[int, bool]:
    """Per limit, whether ccxt.pro's ``watch_order_book`` of ``exchange_id`` rejects it."""

    async def call() -> dict[int, bool]:
        exchange = offline(exchange_id)
        refused = {}
        try:
            for limit in limits:
                try:
                    await exchange.watch_order_book(SYMBOL, limit)
                except ccxt.BaseError:  # NotSupported / BadRequest / ExchangeError: the check
                    refused[limit] = True
                except Exception:  # ReachedNetworkError, or a failure past the checks
                    refused[limit] = False
                else:
                    refused[limit] = False
        finally:
            await exchange.close()
        return refused

    return asyncio.run(call())


def test_kraken_is_asked_for_a_depth_it_accepts() -> None:
    depth = MonitorParams().depth
    chosen = watch_book_depth("kraken", depth)
    assert chosen == 25
    # the defect: the monitor's 20 is refused by ccxt; the chosen depth is not
    assert ccxt_refuses("kraken", [depth, chosen]) == {depth: True, chosen: False}


@pytest.mark.parametrize("exchange_id", sorted(WATCH_BOOK_DEPTHS))
def test_the_chosen_depth_passes_ccxts_own_check(exchange_id: str) -> None:
    accepted = WATCH_BOOK_DEPTHS[exchange_id]
    chosen = {depth: watch_book_depth(exchange_id, depth) for depth in (1, 20, 60, 5000)}
    for depth, limit in chosen.items():
        assert limit in accepted
        assert limit >= depth or limit == max(accepted)
    # and the table is no wider than ccxt: a depth just off every accepted value is refused
    off = next(d for d in (21, 26, 151, 3) if d not in accepted)
    refused = ccxt_refuses(exchange_id, [*sorted(set(chosen.values())), off])
    assert refused.pop(off) is True
    assert not any(refused.values()), refused


def test_a_venue_without_a_list_gets_the_depth_asked_for() -> None:
    assert watch_book_depth("bitstamp", 20) == 20
    assert ccxt_refuses("bitstamp", [20]) == {20: False}


def test_a_kraken_feed_streams_its_book_with_the_default_depth() -> None:
    exchange = offline("kraken")
    asked: list[Any] = []

    async def helper(unified: str, channel: str, symbols: list[str], sub: Any, params: Any) -> Any:
        asked.append(params.get("depth"))
        await asyncio.sleep(0.01)
        levels = 30
        return exchange.order_book(
            {
                "bids": [[100.0 - i, 1.0] for i in range(levels)],
                "asks": [[101.0 + i, 1.0] for i in range(levels)],
            }
        )

    exchange.watch_multi_helper = helper
    feed = StreamFeed(exchange, ["BTC/USD"], depth=MonitorParams().depth, streams=[BOOK])
    feed.start()
    try:
        deadline = time.monotonic() + 2.0
        while not feed.snapshot("BTC/USD").fresh and time.monotonic() < deadline:
            time.sleep(0.01)
        snap = feed.snapshot("BTC/USD")
    finally:
        feed.stop()
    assert snap.fresh, snap.reason
    assert feed.errors[BOOK] == 0
    assert asked
    assert set(asked) == {25}
    assert snap.book is not None
    assert len(snap.book["bids"]) == len(snap.book["asks"]) == 20
