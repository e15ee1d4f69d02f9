"""A small Binance spot REST emulator on 127.0.0.1 for ccxt's order calls, with fault injection.

It plays what ccxt 4.5's ``binance`` sends and parses (``/work/shared/reference/
ccxt_emulation.md`` §4a, §5): ``GET /api/v3/exchangeInfo``, ``POST/GET/DELETE /api/v3/order``,
``GET /api/v3/openOrders``, ``GET /api/v3/myTrades``, ``GET /api/v3/account``. Signed requests
are accepted whatever their signature: what is under test is the adapter, not the HMAC.

Venue behaviour kept because the adapter depends on it:

* a post-only (``LIMIT_MAKER``) order that would cross the book is refused with ``-2010 "Order
  would immediately match and take."`` and nothing is stored;
* a ``newClientOrderId`` equal to an *open* order's is refused with ``-2010 "Duplicate order
  sent."``; a finished order's id is accepted again (Binance's real, non-idempotent rule);
* unknown order: ``-2013 "Order does not exist."`` (query), ``-2011 "Unknown order sent."``
  (cancel, also for a finished order);
* market orders fill at once against ``best_bid``/``best_ask``; ``fill()`` fills resting orders.

Faults: ``failures`` answers the next requests (any but ``exchangeInfo``) with given replies,
``post_failures`` only the next order placements (a ``bytes`` body is sent as-is, as text);
``store_then_sleep_s`` stores a new order and then answers only after that delay (the client
times out although the order exists: the "unknown outcome" case).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

import ccxt

Reply = tuple[int, object]

MARKET = {
    "symbol": "BTCUSDT",
    "status": "TRADING",
    "baseAsset": "BTC",
    "quoteAsset": "USDT",
    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "TAKE_PROFIT"],
    "filters": [
        {"filterType": "PRICE_FILTER", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "stepSize": "0.00001", "minQty": "0.00001"},
    ],
}
T0 = 1_700_000_000_000
FEE_RATE = 0.001


def _err(code: int, msg: str) -> Reply:
    return 400, {"code": code, "msg": msg}


@dataclass
class FakeBinance:
    """The venue's state and the faults still to serve. Methods are called under ``lock``."""

    best_bid: float = 99.0
    best_ask: float = 101.0
    balances: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"BTC": ("1.5", "0.25"), "USDT": ("10000", "0"), "ETH": ("0", "0")}
    )
    orders: dict[int, dict[str, Any]] = field(default_factory=dict)
    trades: list[dict[str, Any]] = field(default_factory=list)
    failures: list[Reply] = field(default_factory=list)
    post_failures: list[Reply] = field(default_factory=list)
    store_then_sleep_s: float = 0.0
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    clock_ms: int = T0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _tick(self) -> int:
        self.clock_ms += 1000
        return self.clock_ms

    # -- endpoints ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, params: dict[str, str]) -> tuple[Reply, float]:
        """The reply to one request and how long to wait before sending it."""
        with self.lock:
            self.requests.append((method, path, params))
            if path == "/api/v3/exchangeInfo":
                return (200, {"symbols": [MARKET]}), 0.0
            if self.failures:
                return self.failures.pop(0), 0.0
            if path == "/api/v3/order" and method == "POST":
                if self.post_failures:
                    return self.post_failures.pop(0), 0.0
                reply = self._create(params)
                delay = self.store_then_sleep_s if reply[0] == 200 else 0.0
                return reply, delay
            if path == "/api/v3/order" and method == "GET":
                return self._query(params), 0.0
            if path == "/api/v3/order" and method == "DELETE":
                return self._cancel(params), 0.0
            if path == "/api/v3/openOrders":
                symbol = params.get("symbol")
                rows = [
                    o
                    for o in self.orders.values()
                    if o["status"] in ("NEW", "PARTIALLY_FILLED")
                    and (symbol is None or o["symbol"] == symbol)
                ]
                return (200, rows), 0.0
            if path == "/api/v3/myTrades":
                return self._my_trades(params), 0.0
            if path == "/api/v3/account":
                rows = [
                    {"asset": a, "free": f, "locked": lk} for a, (f, lk) in self.balances.items()
                ]
                return (200, {"balances": rows}), 0.0
            return (404, {"code": -1, "msg": f"no route {method} {path}"}), 0.0

    def _create(self, p: dict[str, str]) -> Reply:
        cid = p["newClientOrderId"]
        if any(o["clientOrderId"] == cid for o in self._open()):
            return _err(-2010, "Duplicate order sent.")
        kind, side = p["type"], p["side"]
        qty = float(p["quantity"])
        price = float(p.get("price", "0"))
        if kind == "LIMIT_MAKER" and (
            (side == "BUY" and price >= self.best_ask)
            or (side == "SELL" and price <= self.best_bid)
        ):
            return _err(-2010, "Order would immediately match and take.")
        now = self._tick()
        order_id = len(self.orders) + 1
        order = {
            "symbol": p["symbol"],
            "orderId": order_id,
            "clientOrderId": cid,
            "price": p.get("price", "0.00000000"),
            "origQty": p["quantity"],
            "executedQty": "0",
            "cummulativeQuoteQty": "0",
            "status": "NEW",
            "timeInForce": p.get("timeInForce", "GTC"),
            "type": kind,
            "side": side,
            "stopPrice": p.get("stopPrice", "0.00000000"),
            "time": now,
            "updateTime": now,
            "transactTime": now,
        }
        self.orders[order_id] = order
        if kind == "MARKET":
            self._fill(order, qty, self.best_ask if side == "BUY" else self.best_bid, maker=False)
        return 200, dict(order)

    def _find(self, p: dict[str, str]) -> dict[str, Any] | None:
        if "origClientOrderId" in p:
            # Binance answers with the newest order holding that client id
            found = [
                o for o in self.orders.values() if o["clientOrderId"] == p["origClientOrderId"]
            ]
            return found[-1] if found else None
        return self.orders.get(int(p.get("orderId", "0")))

    def _query(self, p: dict[str, str]) -> Reply:
        order = self._find(p)
        if order is None or order["symbol"] != p.get("symbol"):
            return _err(-2013, "Order does not exist.")
        return 200, dict(order)

    def _cancel(self, p: dict[str, str]) -> Reply:
        order = self._find(p)
        if order is None or order["status"] not in ("NEW", "PARTIALLY_FILLED"):
            return _err(-2011, "Unknown order sent.")
        order["status"] = "CANCELED"
        order["updateTime"] = self._tick()
        return 200, dict(order)

    def _my_trades(self, p: dict[str, str]) -> Reply:
        if "symbol" not in p:
            return _err(-1102, "Mandatory parameter 'symbol' was not sent.")
        start = int(p.get("startTime", "0"))
        limit = int(p.get("limit", "500"))
        rows = [t for t in self.trades if t["symbol"] == p["symbol"] and t["time"] >= start]
        return 200, rows[:limit]

    # -- test controls -----------------------------------------------------------------------

    def _open(self) -> list[dict[str, Any]]:
        return [o for o in self.orders.values() if o["status"] in ("NEW", "PARTIALLY_FILLED")]

    def _fill(self, order: dict[str, Any], qty: float, price: float, *, maker: bool) -> None:
        now = self._tick()
        executed = float(order["executedQty"]) + qty
        order["executedQty"] = f"{executed:.8f}"
        order["cummulativeQuoteQty"] = f"{float(order['cummulativeQuoteQty']) + qty * price:.8f}"
        full = executed >= float(order["origQty"]) - 1e-12
        order["status"] = "FILLED" if full else "PARTIALLY_FILLED"
        order["updateTime"] = now
        buy = order["side"] == "BUY"
        self.trades.append(
            {
                "symbol": order["symbol"],
                "id": len(self.trades) + 1,
                "orderId": order["orderId"],
                "price": f"{price:.8f}",
                "qty": f"{qty:.8f}",
                "quoteQty": f"{qty * price:.8f}",
                # Binance charges a buy's fee in the base asset, a sell's in the quote
                "commission": f"{(qty if buy else qty * price) * FEE_RATE:.8f}",
                "commissionAsset": "BTC" if buy else "USDT",
                "time": now,
                "isBuyer": buy,
                "isMaker": maker,
                "isBestMatch": True,
            }
        )

    def fill(self, client_order_id: str, qty: float, price: float | None = None) -> None:
        """A resting order trades (as maker) ``qty`` at its limit price or ``price``."""
        with self.lock:
            order = next(o for o in self._open() if o["clientOrderId"] == client_order_id)
            self._fill(order, qty, price or float(order["price"]), maker=True)

    def orders_with(self, client_order_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(o) for o in self.orders.values() if o["clientOrderId"] == client_order_id]

    def order_posts(self) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.requests if m == "POST" and p == "/api/v3/order")


def _handler(venue: FakeBinance) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            url = urlparse(self.path)
            params = dict(parse_qsl(url.query))
            length = int(self.headers.get("Content-Length") or "0")
            if length:
                params.update(parse_qsl(self.rfile.read(length).decode()))
            for unsigned in ("signature", "timestamp", "recvWindow"):
                params.pop(unsigned, None)
            (status, body), delay = venue.handle(method, url.path, params)
            if delay:
                time.sleep(delay)
            raw = isinstance(body, bytes)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "text/html" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client gave up waiting (the timeout fault)
                pass

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve(venue: FakeBinance) -> Iterator[str]:
    """Run ``venue`` on an ephemeral 127.0.0.1 port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(venue))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def binance_client(base: str, *, timeout_ms: int = 2000) -> Any:
    """A keyed ccxt ``binance`` whose every API section points at ``base`` (reference §2)."""
    exchange = ccxt.binance(
        {"apiKey": "test-key", "secret": "test-secret", "enableRateLimit": False}
    )
    exchange.timeout = timeout_ms
    exchange.urls["api"] = {
        "public": f"{base}/api/v3",
        "private": f"{base}/api/v3",
        "v1": f"{base}/api/v1",
        "sapi": f"{base}/sapi/v1",
    }
    exchange.options["fetchMarkets"] = {"types": ["spot"]}
    exchange.options["fetchCurrencies"] = False
    exchange.options["fetchMargins"] = False
    return exchange
