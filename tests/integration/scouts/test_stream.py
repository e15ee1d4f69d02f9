"""``StreamFeed`` end to end: the real ccxt.pro binance client against a fake Binance websocket
server on 127.0.0.1 (aiohttp), with the fake REST venue of conftest.py for markets and the
order-book snapshot.

The websocket server speaks the minimum ccxt.pro needs: it answers ``SUBSCRIBE`` with
``{"result": null, "id": ...}`` and pushes ``@bookTicker``, ``@trade`` and ``depthUpdate``
events to the connections subscribed to them. ``watch_order_book`` fetches its snapshot from
the REST venue (``lastUpdateId`` = ``FakeVenue.update_id``) and applies the diffs that follow,
so diffs here continue that id. Diffs do *not* change the REST venue's book: a stream-built
book and a REST-fetched one then differ, which is how the tests tell which one the monitor used.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro
import pytest
from aiohttp import WSMsgType, web

from nettrace.scouts.monitor import ExchangeMonitor
from nettrace.scouts.outbox import Outbox
from nettrace.scouts.stream import BOOK, TICKER, TRADES, StreamFeed, has_stream, stream_support

SYMBOL = "BTC/USDT"


class FakeBinanceWs:
    """Binance spot's public streams on 127.0.0.1; ``port`` stays the same across down/up."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = 0
        self.runner: web.AppRunner | None = None
        self.sockets: dict[web.WebSocketResponse, set[str]] = {}
        self.connects = 0
        #: Accept each connection and close it at once (a venue that flaps).
        self.flapping = False
        self.lock = threading.Lock()
        self.up()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def up(self) -> None:
        self._call(self._up())

    async def _up(self) -> None:
        app = web.Application()
        app.router.add_get("/ws/{index}", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(timeout=2.0)
        await ws.prepare(request)
        with self.lock:
            self.sockets[ws] = set()
            self.connects += 1
            flapping = self.flapping
        if flapping:
            with self.lock:
                self.sockets.pop(ws, None)
            await ws.close()
            return ws
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                request_body = json.loads(msg.data)
                if request_body.get("method") == "SUBSCRIBE":
                    with self.lock:
                        self.sockets[ws].update(request_body["params"])
                await ws.send_json({"result": None, "id": request_body.get("id")})
        finally:
            with self.lock:
                self.sockets.pop(ws, None)
        return ws

    def subscribed(self, stream: str) -> int:
        """How many open connections are subscribed to ``stream``."""
        with self.lock:
            return sum(stream in subs for subs in self.sockets.values())

    def send(self, stream: str, payload: dict[str, Any]) -> int:
        """Push ``payload`` to every connection subscribed to ``stream``; how many got it."""

        async def push() -> int:
            with self.lock:
                targets = [ws for ws, subs in self.sockets.items() if stream in subs]
            for ws in targets:
                await ws.send_json(payload)
            return len(targets)

        return int(self._call(push()))

    def book_ticker(self, bid: str, ask: str) -> int:
        return self.send(
            "btcusdt@bookTicker", {"u": 1, "s": "BTCUSDT", "b": bid, "B": "1", "a": ask, "A": "1"}
        )

    def trade(self, trade_id: int, price: str) -> int:
        now_ms = int(time.time() * 1000)
        return self.send(
            "btcusdt@trade",
            {"e": "trade", "E": now_ms, "s": "BTCUSDT", "t": trade_id, "p": price, "q": "0.5",
             "T": now_ms, "m": True},
        )  # fmt: skip

    def depth(self, venue: Any, bids: list[list[str]], asks: list[list[str]]) -> int:
        """One diff continuing the venue's update id (the venue's REST book is left alone)."""
        with venue.lock:
            venue.update_id += 1
            uid = venue.update_id
        return self.send(
            "btcusdt@depth@100ms",
            {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": uid, "u": uid, "b": bids, "a": asks},
        )

    def drop(self) -> None:
        """Close every socket from the server's side; the server keeps listening."""

        async def close_all() -> None:
            with self.lock:
                targets = list(self.sockets)
            await asyncio.gather(*(ws.close() for ws in targets), return_exceptions=True)

        self._call(close_all())

    def down(self) -> None:
        """Close every socket and stop listening: connections to ``port`` are refused."""
        if self.runner is not None:
            self.drop()
            self._call(self.runner.cleanup())
            self.runner = None

    def shutdown(self) -> None:
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def ws_server() -> Iterator[FakeBinanceWs]:
    server = FakeBinanceWs()
    try:
        yield server
    finally:
        server.shutdown()


def pro_client(rest_base: str, ws_port: int) -> Any:
    """The real ccxt.pro binance client: REST to the fake venue, websockets to the fake server."""
    exchange = ccxt.pro.binance(
        {"timeout": 2_000, "options": {"fetchMarkets": {"types": ["spot"]},
                                       "fetchCurrencies": False, "fetchMargins": False}}
    )  # fmt: skip
    exchange.urls["api"] = {
        "public": f"{rest_base}/api/v3",
        "private": f"{rest_base}/api/v3",
        "ws": {"spot": f"ws://127.0.0.1:{ws_port}/ws"},
    }
    return exchange


@pytest.fixture
def feed(venue: Any, ws_server: FakeBinanceWs) -> Iterator[StreamFeed]:
    stream = StreamFeed(
        pro_client(venue[1], ws_server.port), [SYMBOL], depth=5, trades_kept=3,
        backoff_base_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip
    try:
        yield stream
    finally:
        assert stream.stop(), "the feed's thread did not end"


def wait_until(condition: Callable[[], Any], timeout_s: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or condition}")


def subscribed_to_all(server: FakeBinanceWs) -> bool:
    return all(
        server.subscribed(s) == 1
        for s in ("btcusdt@bookTicker", "btcusdt@trade", "btcusdt@depth@100ms")
    )


def bring_up(
    feed: StreamFeed, server: FakeBinanceWs, bid: str = "99.98", ask: str = "100.02"
) -> None:
    """Wait for the feed's subscriptions, push a top of book, wait until the feed is fresh."""
    wait_until(lambda: subscribed_to_all(server), what="subscriptions")
    wait_until(
        lambda: server.book_ticker(bid, ask) and feed.snapshot(SYMBOL).fresh,
        what="a fresh snapshot",
    )


def test_has_stream_follows_ccxt_pro_has_flags() -> None:
    assert has_stream("binance")
    assert {"watchTicker", "watchOrderBook", "watchTrades"} <= stream_support("binance")
    assert not has_stream("no-such-venue")
    assert stream_support("no-such-venue") == frozenset()
    rest_only = sorted(set(ccxt.exchanges) - set(ccxt.pro.exchanges))
    assert rest_only, "ccxt has no REST-only exchange left to check against"
    assert not has_stream(rest_only[0])


def test_snapshot_reflects_what_the_server_sends(
    venue: Any, ws_server: FakeBinanceWs, feed: StreamFeed
) -> None:
    fake, _ = venue
    assert feed.streams == (TICKER, BOOK, TRADES)
    assert not feed.snapshot(SYMBOL).fresh  # not started: nothing known
    feed.start()
    bring_up(feed, ws_server, bid="99.97", ask="100.03")
    snap = feed.snapshot(SYMBOL)
    assert (snap.ticker or {})["bid"] == pytest.approx(99.97)
    assert (snap.ticker or {})["ask"] == pytest.approx(100.03)
    # The book is the REST snapshot (depth 5) ...
    assert snap.book is not None
    assert snap.book["bids"] == [[99.99, 1.0], [99.95, 1.0]]
    assert snap.book["nonce"] == fake.update_id
    # ... then moved by the diffs that follow it: a level changed, one removed, one added.
    ws_server.depth(fake, bids=[["99.99", "9"], ["99.95", "0"]], asks=[["100.02", "4"]])
    wait_until(lambda: (feed.snapshot(SYMBOL).book or {}).get("nonce") == fake.update_id)
    book = feed.snapshot(SYMBOL).book or {}
    assert book["bids"] == [[99.99, 9.0]]
    assert book["asks"] == [[100.01, 1.0], [100.02, 4.0], [100.05, 1.0]]
    # Trades: only the newest ``trades_kept`` (3), oldest first.
    for i, price in enumerate(["100.1", "100.2", "100.3", "100.4"]):
        ws_server.trade(500 + i, price)
    wait_until(lambda: len(feed.snapshot(SYMBOL).trades) == 3, what="three trades")
    wait_until(lambda: feed.snapshot(SYMBOL).trades[-1]["price"] == pytest.approx(100.4))
    assert [t["id"] for t in feed.snapshot(SYMBOL).trades] == ["501", "502", "503"]
    assert feed.snapshot("ETH/USDT").fresh is False  # a symbol the feed does not stream


def test_a_dropped_socket_reconnects_by_itself_and_data_flows_again(
    venue: Any, ws_server: FakeBinanceWs, feed: StreamFeed
) -> None:
    feed.start()
    bring_up(feed, ws_server)
    connects = ws_server.connects
    ws_server.drop()
    # Stale from the drop until the stream delivers again -- never fresh on old data.
    wait_until(lambda: not feed.snapshot(SYMBOL).fresh, what="stale after the drop")
    assert "down" in feed.snapshot(SYMBOL).reason
    wait_until(lambda: subscribed_to_all(ws_server), what="resubscribed")
    assert ws_server.connects >= connects + 3  # a new connection per stream
    assert all(feed.errors[s] >= 1 for s in feed.streams)
    bring_up(feed, ws_server, bid="101.00", ask="101.10")  # new data after the reconnect
    assert (feed.snapshot(SYMBOL).ticker or {})["bid"] == pytest.approx(101.0)
    assert ws_server.trade(900, "101.05") == 1
    wait_until(
        lambda: [t["id"] for t in feed.snapshot(SYMBOL).trades] == ["900"], what="a new trade"
    )


def test_while_the_server_is_down_the_monitor_polls_rest_and_resumes_the_stream_after(
    tmp_path: Path, venue: Any, exchange: Any, ws_server: FakeBinanceWs, feed: StreamFeed
) -> None:
    fake, _ = venue
    outbox = Outbox(
        tmp_path / "outbox.db", region="lhr", push_url="http://127.0.0.1:9/x", token="t"
    )
    monitor = ExchangeMonitor(exchange, [SYMBOL], region="lhr", outbox=outbox, stream=feed)
    feed.start()
    bring_up(feed, ws_server)
    # The stream's book turns bid-heavy; the REST venue's book stays balanced.
    ws_server.depth(fake, bids=[["99.99", "9"]], asks=[])
    wait_until(lambda: (feed.snapshot(SYMBOL).book or {}).get("nonce") == fake.update_id)

    def depth_calls() -> int:
        with fake.lock:
            return fake.paths.count("/api/v3/depth")

    before = depth_calls()
    signals = {s.source: s for s in monitor.poll_once()}
    assert depth_calls() == before  # the book came from the stream, not a REST fetch
    book = signals["orderbook_imbalance"]
    assert book.meta["feed"] == "stream"
    assert (book.side, book.confidence) == ("BUY", pytest.approx((10 - 2) / 12))
    assert book.meta["rtt_ms"] > 0  # RTT is still a REST round trip

    ws_server.down()
    wait_until(lambda: not feed.snapshot(SYMBOL).fresh, what="stale while down")
    time.sleep(0.6)  # reconnect attempts against a refused port fail; nothing crashes
    assert feed.running
    before = depth_calls()
    signals = {s.source: s for s in monitor.poll_once()}
    assert depth_calls() == before + 1  # REST fallback for this poll
    assert "orderbook_imbalance" not in signals  # REST's balanced book has no opinion
    assert len(monitor.rtt_history_ms) == 2  # both polls measured a REST round trip
    assert [s["source"] for s in outbox.pending()] == ["orderbook_imbalance"]

    ws_server.up()  # same port: the feed finds it on its own
    bring_up(feed, ws_server)
    ws_server.depth(fake, bids=[["99.99", "9"]], asks=[])
    wait_until(lambda: (feed.snapshot(SYMBOL).book or {}).get("nonce") == fake.update_id)
    assert monitor.poll_once()[0].meta["feed"] == "stream"


def test_a_venue_that_accepts_and_drops_every_connection_is_retried_with_backoff(
    ws_server: FakeBinanceWs, feed: StreamFeed
) -> None:
    # ccxt backs off only failed *dials*; a handshake that succeeds and is closed at once
    # would be redialled at full speed without the feed's own backoff (0.05 s doubling to
    # 0.2 s here): in 1.2 s that allows about 8 attempts per stream, not hundreds.
    ws_server.flapping = True
    feed.start()
    time.sleep(1.2)
    assert 3 <= ws_server.connects <= 3 * 10
    assert all(2 <= feed.errors[s] <= 10 for s in feed.streams), feed.errors
    assert not feed.snapshot(SYMBOL).fresh
    ws_server.flapping = False  # the venue recovers: the feed comes back on its own
    bring_up(feed, ws_server)


def test_stop_ends_the_thread_and_loop_and_closes_the_sockets(
    ws_server: FakeBinanceWs, feed: StreamFeed
) -> None:
    feed.start()
    bring_up(feed, ws_server)
    thread = feed._thread
    loop = feed._loop
    assert thread is not None
    assert loop is not None
    started = time.monotonic()
    assert feed.stop(timeout_s=5.0)
    assert time.monotonic() - started < 3.0
    assert not thread.is_alive()
    assert loop.is_closed()
    assert not feed.running
    snap = feed.snapshot(SYMBOL)
    assert (snap.fresh, snap.reason) == (False, "feed not running")
    wait_until(lambda: not ws_server.sockets, timeout_s=3.0, what="server sees sockets closed")
    assert feed.stop()  # twice is fine
    assert not [t for t in threading.enumerate() if t.name.startswith("stream_feed:")]
