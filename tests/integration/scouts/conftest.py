"""Loopback stand-ins for the scouts' two counterparts, both driven by real HTTP clients.

``FakePrimary`` plays the primary's ``POST /api/v1/signals/push``: it stores each signal id
once, answers ``{"accepted", "duplicates"}``, and can be told to fail the next requests (any
status, any headers) or to go down entirely (its port then refuses connections) and come back
on the same port. ``FakeVenue`` plays Binance spot for ccxt's ``load_markets``,
``fetch_ticker`` and ``fetch_order_book`` (see tests/integration/market/test_download.py),
with a book and a response delay that tests set.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from nettrace.market.download import make_exchange

Reply = tuple[int, object, dict[str, str]]


def _send(
    handler: BaseHTTPRequestHandler, status: int, body: object, headers: dict[str, str]
) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


class FakePrimary:
    """The primary's push endpoint on 127.0.0.1; ``url`` stays the same across down/up."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str | None] = []
        self.failures: list[Reply] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self.up()
        self.url = f"http://127.0.0.1:{self.port}/api/v1/signals/push"

    @property
    def signal_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r.get("signals")]

    @property
    def heartbeats(self) -> list[dict[str, Any]]:
        return [r["heartbeat"] for r in self.requests if "heartbeat" in r]

    def handle(self, auth: str | None, payload: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append(payload)
            self.auth.append(auth)
            if self.failures:
                return self.failures.pop(0)
            accepted = duplicates = 0
            for signal in payload.get("signals", []):
                if signal["id"] in self.stored:
                    duplicates += 1
                else:
                    self.stored[signal["id"]] = signal
                    accepted += 1
            return 200, {"accepted": accepted, "duplicates": duplicates}, {}

    def up(self) -> None:
        primary = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length))
                status, body, headers = primary.handle(self.headers.get("Authorization"), payload)
                _send(self, status, body, headers)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def primary() -> Iterator[FakePrimary]:
    fake = FakePrimary()
    try:
        yield fake
    finally:
        fake.down()


MARKET = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "MARKET"],
    "filters": [
        {"filterType": "PRICE_FILTER", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "stepSize": "0.00001", "minQty": "0.00001"},
    ],
}


@dataclass
class FakeVenue:
    """Binance spot's public market data; ``bids``/``asks`` as [price, amount] strings."""

    bids: list[list[str]] = field(default_factory=lambda: [["99.99", "1"], ["99.95", "1"]])
    asks: list[list[str]] = field(default_factory=lambda: [["100.01", "1"], ["100.05", "1"]])
    delay_s: float = 0.0
    #: The book's ``lastUpdateId``: a websocket depth stream's diffs continue from it.
    update_id: int = 1
    failures: list[Reply] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reply(self, path: str, query: dict[str, list[str]]) -> Reply:
        with self.lock:
            self.paths.append(path)
            if path == "/api/v3/exchangeInfo":
                return 200, {"symbols": [MARKET]}, {}
            if self.failures:
                return self.failures.pop(0)
            delay = self.delay_s
        if delay:
            time.sleep(delay)
        if path == "/api/v3/ticker/24hr":
            return 200, {
                "symbol": "BTCUSDT", "lastPrice": "100", "bidPrice": self.bids[0][0],
                "askPrice": self.asks[0][0], "closeTime": 1_700_000_000_000,
            }, {}  # fmt: skip
        if path == "/api/v3/depth":
            with self.lock:
                book = {"lastUpdateId": self.update_id, "bids": self.bids, "asks": self.asks}
                return 200, json.loads(json.dumps(book)), {}
        return 404, {"code": -1, "msg": f"no {path}"}, {}


@pytest.fixture
def venue() -> Iterator[tuple[FakeVenue, str]]:
    fake = FakeVenue()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            _send(self, *fake.reply(url.path, parse_qs(url.query)))

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def binance_client(base: str) -> Any:
    """The real ccxt binance client pointed at the fake venue, markets loaded."""
    exchange = make_exchange(
        "binance",
        timeout_ms=2_000,
        api_urls={"public": f"{base}/api/v3", "private": f"{base}/api/v3"},
        options={"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                 "fetchMargins": False},
    )  # fmt: skip
    exchange.session.trust_env = False  # never route loopback through an environment proxy
    exchange.rateLimit = 1
    exchange.load_markets()
    return exchange


class FakeClock:
    """Epoch seconds that only move when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def exchange(venue: tuple[FakeVenue, str]) -> Any:
    return binance_client(venue[1])
