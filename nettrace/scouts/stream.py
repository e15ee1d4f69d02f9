"""A scout's websocket feed: ccxt.pro streams of top of book, order book and trades per symbol.

REST polling sees the book once per poll; a stream sees every change, so the order-book
signal (5) and the mid behind signal 6 are as fresh as the venue allows. ``StreamFeed`` runs a
ccxt.pro exchange in its own asyncio event loop on a background thread (the monitor and its
agent are synchronous threads) and keeps, per symbol, the latest best bid/ask
(``watch_bids_asks``, else ``watch_ticker``), the top ``depth`` levels of the order book
(``watch_order_book``, asked for a depth the venue accepts: ``watch_book_depth``) and the most
recent trades (``watch_trades``) in a lock-guarded snapshot that any thread can read.

Reconnection is explicit. ccxt.pro, when a socket closes or errors, rejects the pending
``watch_*`` futures with a ``NetworkError`` and forgets the connection; the *next* ``watch_*``
call opens a new one and subscribes again (checked against ccxt 4.5 in
tests/integration/scouts/test_stream.py). Each (stream, symbol) task here therefore loops on
its ``watch_*`` call and, after an error, waits an exponential backoff (``backoff_base_s``
doubling up to ``backoff_max_s``, reset by the next message) before calling again, so a venue
that comes back is picked up without anyone restarting the scout. ccxt 4.5 also delays its own
re-*dial* after a failed connect (0.2 s doubling to 30 s), but not after a handshake that
succeeds and is then closed or errors at once -- a flapping venue would be redialled at full
speed without the backoff here. (Both add up on a refused port: reconnecting after a long
outage can take up to about a minute with the defaults.) From the error until the stream's
next message the symbol is reported stale, and the monitor polls REST instead (see
``ExchangeMonitor``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import ccxt.pro

from nettrace.observability.log import get_logger

_log = get_logger(__name__)

#: The ccxt ``has`` flags a feed can use, by the stream they serve.
TICKER, BOOK, TRADES = "ticker", "book", "trades"
_QUOTE_STREAMS = (TICKER, BOOK)


def stream_support(exchange_id: str) -> frozenset[str]:
    """The ccxt.pro ``watch*`` flags ``exchange_id`` has among ticker, bids/asks, book, trades.

    Empty when ccxt.pro has no implementation of the exchange at all. Building the instance
    opens no connection (ccxt creates its HTTP session lazily).
    """
    if exchange_id not in ccxt.pro.exchanges:
        return frozenset()
    has = getattr(ccxt.pro, exchange_id)().has
    names = ("watchTicker", "watchBidsAsks", "watchOrderBook", "watchTrades")
    return frozenset(name for name in names if has.get(name) is True)


def has_stream(exchange_id: str) -> bool:
    """Whether a ``StreamFeed`` could stream anything for ``exchange_id``.

    True when ccxt.pro implements the exchange with ``watchTicker``, ``watchOrderBook`` or
    ``watchTrades``; the feed then streams whatever subset is there and the monitor fetches
    the rest over REST.
    """
    return bool(stream_support(exchange_id) & {"watchTicker", "watchOrderBook", "watchTrades"})


#: Order-book depths ccxt.pro's ``watch_order_book`` accepts, by venue, for the venues whose
#: ccxt.pro implementation refuses any other ``limit`` (checked against ccxt 4.5.90's
#: ``ccxt/pro/<id>.py`` and tests/unit/scouts/test_stream_depth.py, which calls the real
#: methods). Venues not listed take any depth. bybit's list is its spot/linear one (its options
#: take 25 or 100).
WATCH_BOOK_DEPTHS: Final[Mapping[str, tuple[int, ...]]] = {
    "bitfinex": (25, 100),
    "bitopro": (5, 10, 20, 50, 100, 500, 1000),
    "bittrade": (150,),
    "bybit": (1, 50, 200, 1000),
    "htx": (5, 20, 150, 400),
    "kraken": (10, 25, 100, 500, 1000),
    "kucoin": (5, 20, 50, 100),
}


def watch_book_depth(exchange_id: str, depth: int) -> int:
    """The ``limit`` to ask ``watch_order_book`` of ``exchange_id`` for to get ``depth`` levels.

    ``depth`` itself where the venue takes any limit; else the smallest accepted depth at least
    ``depth`` (the feed keeps only the top ``depth`` levels of it), or the largest accepted one
    if none is that deep. Kraken asked for 20 refuses (issue 11); it is asked for 25.
    """
    accepted = WATCH_BOOK_DEPTHS.get(exchange_id)
    if accepted is None:
        return depth
    return min((d for d in accepted if d >= depth), default=max(accepted))


@dataclass(frozen=True)
class StreamSnapshot:
    """What the feed knows about one symbol at one moment; copies, safe to keep.

    ``ticker`` is ccxt's unified ticker (from ``watch_bids_asks``: bid, ask and their sizes
    only), ``book`` ``{"bids", "asks", "nonce", "timestamp"}`` with at most ``depth`` levels,
    ``trades`` ccxt's unified trades, oldest first. ``up`` tells, per stream the feed watches,
    whether its last ``watch_*`` call delivered data (False from an error until the next
    message). ``age_s`` is the time since the last ticker or book message (None if none yet).
    """

    symbol: str
    fresh: bool
    ticker: dict[str, Any] | None
    book: dict[str, Any] | None
    trades: tuple[dict[str, Any], ...]
    up: Mapping[str, bool]
    age_s: float | None
    reason: str = ""


@dataclass
class _SymbolState:
    ticker: dict[str, Any] | None = None
    book: dict[str, Any] | None = None
    trades: deque[dict[str, Any]] = field(default_factory=deque)
    up: dict[str, bool] = field(default_factory=dict)
    quote_at: float | None = None
    last_error: str = ""


class StreamFeed:
    """Streams ``symbols`` from the ccxt.pro ``exchange`` on a background thread.

    ``exchange`` is a ccxt.pro instance (its ``urls`` already pointed where they should be);
    the feed owns it from ``start()`` on and closes it in ``stop()``. ``streams`` limits what
    is watched (default: every one of ticker/book/trades the exchange has). A symbol's
    snapshot is *fresh* when every quote stream watched (ticker, book) is up, has delivered
    data, and the newest of it is at most ``max_age_s`` old -- the age bound catches a socket
    that stays open but goes quiet, which no error would reveal. ``timer`` is monotonic.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: Sequence[str],
        *,
        depth: int = 20,
        trades_kept: int = 100,
        streams: Sequence[str] | None = None,
        max_age_s: float = 30.0,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.exchange = exchange
        self.exchange_id = str(exchange.id)
        self.symbols = tuple(symbols)
        self.depth = depth
        #: What ``watch_order_book`` is asked for: a depth the venue accepts, >= ``depth``
        #: where it can be (``watch_book_depth``); the snapshot keeps the top ``depth``.
        self.watch_depth = watch_book_depth(self.exchange_id, depth)
        self.max_age_s = max_age_s
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._timer = timer
        has = exchange.has
        available = {
            TICKER: bool(has.get("watchBidsAsks") or has.get("watchTicker")),
            BOOK: bool(has.get("watchOrderBook")),
            TRADES: bool(has.get("watchTrades")),
        }
        wanted = set(streams) if streams is not None else set(available)
        unknown = wanted - set(available)
        if unknown:
            raise ValueError(f"unknown streams {sorted(unknown)}; choose from {sorted(available)}")
        self.streams = tuple(s for s in (TICKER, BOOK, TRADES) if s in wanted and available[s])
        self._lock = threading.Lock()
        self._state = {s: _SymbolState(trades=deque(maxlen=trades_kept)) for s in self.symbols}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        #: Errors seen per stream since start (reconnect attempts follow each one).
        self.errors: dict[str, int] = dict.fromkeys(self.streams, 0)

    # -- the monitor's side ---------------------------------------------------------------

    def snapshot(self, symbol: str) -> StreamSnapshot:
        """The latest data for ``symbol``; ``fresh`` False means: poll REST this time."""
        now = self._timer()
        with self._lock:
            st = self._state.get(symbol)
            if st is None:
                return StreamSnapshot(symbol, False, None, None, (), {}, None, "not streamed")
            up = {s: st.up.get(s, False) for s in self.streams}
            age = None if st.quote_at is None else now - st.quote_at
            reason = ""
            quotes = [s for s in _QUOTE_STREAMS if s in self.streams]
            if not self.running:
                reason = "feed not running"
            elif not quotes:
                reason = "no quote stream"
            elif not all(up[s] for s in quotes):
                down = ", ".join(s for s in quotes if not up[s])
                reason = f"down: {down}" + (f" ({st.last_error})" if st.last_error else "")
            elif age is None or age > self.max_age_s:
                reason = f"no quote for {age:.1f}s" if age is not None else "no quote yet"
            return StreamSnapshot(
                symbol=symbol,
                fresh=not reason,
                ticker=dict(st.ticker) if st.ticker is not None else None,
                book=_copy_book(st.book) if st.book is not None else None,
                trades=tuple(st.trades),
                up=up,
                age_s=age,
                reason=reason,
            )

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 5.0) -> None:
        """Start the loop thread; returns once the loop runs (data arrives asynchronously)."""
        if self.running:
            return
        self._ready.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"stream_feed:{self.exchange_id}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"stream feed {self.exchange_id} did not start in {timeout_s}s")

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Cancel the watchers, close the exchange's sockets, end the loop; True if it ended.

        Safe to call twice or before ``start``.
        """
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return True
        if loop is not None and stopping is not None and not loop.is_closed():
            # RuntimeError: the loop closed between the check and the call; nothing to stop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout_s)
        ended = not thread.is_alive()
        if ended:
            self._thread = None
        else:
            _log.warning("stream_feed_stop_timeout", exchange=self.exchange_id)
        return ended

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except Exception:  # a bug here must end the feed visibly, never the process
            _log.exception("stream_feed_crashed", exchange=self.exchange_id)
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._ready.set()  # never leave start() waiting on a feed that died early

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        tasks = [
            asyncio.create_task(self._watch_loop(stream, symbol), name=f"{stream}:{symbol}")
            for symbol in self.symbols
            for stream in self.streams
        ]
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self.exchange.close()  # closes every websocket and the HTTP session
            except Exception:
                _log.exception("stream_feed_close_failed", exchange=self.exchange_id)
            with self._lock:
                for st in self._state.values():
                    st.up.clear()

    # -- the loop's side ------------------------------------------------------------------

    async def _watch_loop(self, stream: str, symbol: str) -> None:
        """Watch one stream of one symbol forever; back off and call again after any error."""
        assert self._stopping is not None  # noqa: S101 -- set by _main before the tasks start
        failures = 0
        while not self._stopping.is_set():
            try:
                data = await self._watch(stream, symbol)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # ccxt NetworkError, ExchangeError, or a parse error
                delay = min(self.backoff_max_s, self.backoff_base_s * 2.0**failures)
                failures += 1
                self.errors[stream] += 1
                with self._lock:
                    st = self._state[symbol]
                    st.up[stream] = False
                    st.last_error = f"{type(exc).__name__}: {exc}"[:200]
                _log.warning(
                    "stream_error",
                    exchange=self.exchange_id,
                    stream=stream,
                    symbol=symbol,
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    retry_in_s=round(delay, 3),
                )
                with contextlib.suppress(TimeoutError):  # wait out the backoff unless stopped
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            failures = 0
            self._store(stream, symbol, data)

    async def _watch(self, stream: str, symbol: str) -> Any:
        ex = self.exchange
        if stream == TICKER:
            if ex.has.get("watchBidsAsks"):
                tickers = await ex.watch_bids_asks([symbol])
                return tickers.get(symbol) if isinstance(tickers, dict) else None
            return await ex.watch_ticker(symbol)
        if stream == BOOK:
            book = await ex.watch_order_book(symbol, self.watch_depth)
            # Copy now, on the loop: ccxt keeps mutating its book object as deltas arrive.
            return {
                "bids": [[float(p), float(a)] for p, a, *_ in book["bids"][: self.depth]],
                "asks": [[float(p), float(a)] for p, a, *_ in book["asks"][: self.depth]],
                "nonce": book.get("nonce"),
                "timestamp": book.get("timestamp"),
            }
        return list(await ex.watch_trades(symbol))

    def _store(self, stream: str, symbol: str, data: Any) -> None:
        with self._lock:
            st = self._state[symbol]
            st.up[stream] = True
            st.last_error = ""
            if stream == TRADES:
                st.trades.extend(dict(t) for t in data)  # ccxt returns only the new ones
                return
            if data is None:
                return
            if stream == TICKER:
                st.ticker = dict(data)
            else:
                st.book = data
            st.quote_at = self._timer()


def _copy_book(book: dict[str, Any]) -> dict[str, Any]:
    bids, asks = book["bids"], book["asks"]
    return {**book, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}
