"""A scout's exchange monitor: polls one venue through ccxt and turns what it sees into signals 5-7.

Each poll, per symbol: ``fetch_ticker`` (timed: its round-trip is the latency sample),
``fetch_order_book`` (top ``depth`` levels), then the three snapshot generators -- order-book
imbalance (5), divergence from the other venues this scout watches (6) and latency anomaly (7)
-- divergence now, and lead-lag over the last polls against the other venues' consensus --
-- and every vote with an opinion goes into the outbox, tagged with the scout's region. The
monitor never talks to the primary; the outbox's pusher does, so a slow primary cannot stall
measurement and a slow venue cannot stall delivery.

With a ``StreamFeed`` (nettrace.scouts.stream) whose snapshot of the symbol is fresh, the
order book and the mid come from the websocket stream instead (``meta["feed"] == "stream"``):
no ``fetch_order_book``. The timed ``fetch_ticker`` still runs every poll, because it *is* the
latency probe: signal 7 is about the request path this scout's region has to the venue's REST
API, which a stream's push timing or its ping/pong does not measure. A stale stream (socket
down, reconnecting, or quiet for too long) means a plain REST poll for that symbol
(``meta["feed"] == "rest"``), so a dropped websocket costs freshness, never signals.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ccxt

from nettrace.domain.fees import DEFAULT_MAKER_FEE
from nettrace.observability.log import get_logger
from nettrace.scouts.outbox import Outbox
from nettrace.scouts.signal import ScoutSignal
from nettrace.scouts.stream import StreamFeed
from nettrace.signals.base import NONE, SnapshotVote
from nettrace.signals.divergence import NAME as LEAD_LAG_NAME
from nettrace.signals.divergence import lead_lag_vote, price_divergence_vote
from nettrace.signals.latency import latency_vote
from nettrace.signals.orderbook import orderbook_imbalance_vote

_log = get_logger(__name__)


#: Mids kept per venue and symbol for lead-lag (a few minutes of polls).
BOARD_HISTORY = 64


@dataclass
class MidBoard:
    """The recent mids per (exchange, symbol) across one scout's monitors, for signal 6.

    Shared by the monitors of a region; thread-safe. Times are epoch seconds.
    """

    _mids: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    _history: dict[tuple[str, str], deque[tuple[float, float]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def update(self, exchange: str, symbol: str, mid: float, at: float) -> None:
        with self._lock:
            self._mids[(exchange, symbol)] = (mid, at)
            self._history.setdefault((exchange, symbol), deque(maxlen=BOARD_HISTORY)).append(
                (at, mid)
            )

    def history(self, exchange: str, symbol: str) -> list[tuple[float, float]]:
        """``(at, mid)`` of this venue's recent polls, oldest first."""
        with self._lock:
            return list(self._history.get((exchange, symbol), ()))

    def peer_path(
        self, exchange: str, symbol: str, times: Sequence[float], max_age_s: float
    ) -> list[float] | None:
        """The median of the other venues' mids at each of ``times`` (each venue's newest mid
        at or before that time, no older than ``max_age_s``); ``None`` where no peer had one.

        Why the median of the peers and not one venue: the market the laggard follows is the
        consensus, and one venue's hiccup must not read as a lead.
        """
        with self._lock:
            peers = {
                other: list(path)
                for (other, sym), path in self._history.items()
                if sym == symbol and other != exchange
            }
        if not peers:
            return None
        out: list[float] = []
        for t in times:
            mids = []
            for path in peers.values():
                seen = [mid for at, mid in path if at <= t and t - at <= max_age_s]
                if seen:
                    mids.append(seen[-1])
            if not mids:
                return None
            out.append(float(statistics.median(mids)))
        return out

    def peers(self, exchange: str, symbol: str, now: float, max_age_s: float) -> dict[str, float]:
        """Other exchanges' mids for ``symbol`` no older than ``max_age_s`` seconds."""
        with self._lock:
            return {
                other: mid
                for (other, sym), (mid, at) in self._mids.items()
                if sym == symbol and other != exchange and now - at <= max_age_s
            }


@dataclass(frozen=True)
class MonitorParams:
    """Tuning of one monitor. Fees and gaps are fractions; times in seconds unless ``_ms``."""

    depth: int = 20
    window_bps: float = 10.0
    imbalance_threshold: float = 0.3
    #: A divergence must beat this round trip (two maker fills) to be worth a vote.
    round_trip_fee: float = 2 * DEFAULT_MAKER_FEE
    peer_max_age_s: float = 30.0
    ttl_s: int = 60
    rtt_history: int = 120
    latency_min_samples: int = 10
    #: Polls the lead-lag vote compares (the local venue's path against its peers').
    lead_lag_window: int = 6


class ExchangeMonitor:
    """Polls one ccxt exchange for ``symbols`` and puts signals 5-7 in ``outbox``.

    ``exchange`` is a ready ccxt instance (its ``id`` names the venue in every signal);
    ``clock`` gives epoch seconds for signal times, ``timer`` a monotonic clock for RTTs.
    ``stream``, if given, is a started ``StreamFeed`` of the same venue: used while fresh.
    """

    def __init__(
        self,
        exchange: Any,
        symbols: Sequence[str],
        *,
        region: str,
        outbox: Outbox,
        board: MidBoard | None = None,
        params: MonitorParams | None = None,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
        stream: StreamFeed | None = None,
    ) -> None:
        self.exchange = exchange
        self.stream = stream
        self.exchange_id = str(exchange.id)
        self.symbols = tuple(symbols)
        self.region = region
        self.outbox = outbox
        self.board = board if board is not None else MidBoard()
        self.params = params or MonitorParams()
        self._clock = clock
        self._timer = timer
        # One RTT history per venue: latency is a property of the venue and the path to it.
        self._rtts: deque[float] = deque(maxlen=self.params.rtt_history)

    @property
    def rtt_history_ms(self) -> list[float]:
        return list(self._rtts)

    def poll_once(self) -> list[ScoutSignal]:
        """One round over every symbol; the signals put in the outbox (already stored)."""
        signals: list[ScoutSignal] = []
        for symbol in self.symbols:
            signals.extend(self._poll_symbol(symbol))
        for signal in signals:
            self.outbox.put(signal)
        return signals

    def _poll_symbol(self, symbol: str) -> list[ScoutSignal]:
        p = self.params
        started = self._timer()
        try:
            ticker = self.exchange.fetch_ticker(symbol)
        except ccxt.RequestTimeout as exc:
            # A timeout *is* a latency sample (a lower bound of it): judge it, fetch no more.
            rtt_ms = (self._timer() - started) * 1000.0
            _log.warning("scout_request_timeout", exchange=self.exchange_id, symbol=symbol)
            vote = self._latency(rtt_ms, note=f"request timed out: {exc}")
            return self._signals(symbol, [vote], {"rtt_ms": round(rtt_ms, 3)})
        except ccxt.BaseError as exc:
            _log.warning(
                "scout_fetch_failed",
                exchange=self.exchange_id,
                symbol=symbol,
                error=f"{type(exc).__name__}: {exc}",
            )
            return []
        rtt_ms = (self._timer() - started) * 1000.0
        votes = [self._latency(rtt_ms)]
        snap = self.stream.snapshot(symbol) if self.stream is not None else None
        feed = "rest"
        if snap is not None and snap.fresh and snap.book is not None:
            book, feed = snap.book, "stream"
        else:
            book = self._fetch_book(symbol)
        if snap is not None and snap.fresh and snap.ticker is not None:
            # The stream's best bid/ask is newer than the REST ticker; keep REST's other fields.
            ticker = {**ticker, "bid": snap.ticker.get("bid"), "ask": snap.ticker.get("ask")}
            feed = "stream"
        bids, asks = book.get("bids") or [], book.get("asks") or []
        votes.append(
            orderbook_imbalance_vote(
                bids, asks, window_bps=p.window_bps, threshold=p.imbalance_threshold
            )
        )
        mid = _mid(bids, asks, ticker)
        meta: dict[str, Any] = {"rtt_ms": round(rtt_ms, 3), "feed": feed}
        if snap is not None and not snap.fresh:
            meta["stream_stale"] = snap.reason[:200]
        info = ticker.get("info")
        if isinstance(info, dict) and info.get("replay") is True:
            meta["replay"] = True  # a replayed feed (nettrace.market.replay), never live prices
        if mid is not None:
            now = self._clock()
            meta["mid"] = mid
            peers = self.board.peers(self.exchange_id, symbol, now, p.peer_max_age_s)
            self.board.update(self.exchange_id, symbol, mid, now)
            if peers:
                votes.append(price_divergence_vote(mid, peers, round_trip_fee=p.round_trip_fee))
            votes.append(self._lead_lag(symbol))
        return self._signals(symbol, votes, meta)

    def _lead_lag(self, symbol: str) -> SnapshotVote:
        """Signal 6's lead-lag half: this venue's last polls against its peers' consensus."""
        p = self.params
        own = self.board.history(self.exchange_id, symbol)[-p.lead_lag_window :]
        if len(own) < p.lead_lag_window:
            return SnapshotVote(LEAD_LAG_NAME, NONE, 0.0, "lead-lag needs more polls")
        leader = self.board.peer_path(
            self.exchange_id, symbol, [at for at, _ in own], p.peer_max_age_s
        )
        if leader is None:
            return SnapshotVote(LEAD_LAG_NAME, NONE, 0.0, "no peer path to lead")
        return lead_lag_vote(leader, [mid for _, mid in own], round_trip_fee=p.round_trip_fee)

    def _fetch_book(self, symbol: str) -> dict[str, Any]:
        try:
            book: dict[str, Any] = self.exchange.fetch_order_book(symbol, self.params.depth)
        except ccxt.BaseError as exc:
            _log.warning(
                "scout_fetch_failed",
                exchange=self.exchange_id,
                symbol=symbol,
                error=f"{type(exc).__name__}: {exc}",
            )
            return {"bids": [], "asks": []}
        return book

    def _latency(self, rtt_ms: float, note: str = "") -> SnapshotVote:
        p = self.params
        vote = latency_vote(rtt_ms, list(self._rtts), min_samples=p.latency_min_samples)
        self._rtts.append(rtt_ms)
        if note:
            vote = SnapshotVote(vote.name, vote.direction, vote.strength, f"{vote.reason}; {note}")
        return vote

    def _signals(
        self, symbol: str, votes: Sequence[SnapshotVote], meta: dict[str, Any]
    ) -> list[ScoutSignal]:
        ts = datetime.fromtimestamp(self._clock(), UTC)
        return [
            ScoutSignal(
                source=vote.name,
                source_region=self.region,
                exchange=self.exchange_id,
                symbol=symbol,
                side=vote.side,
                confidence=vote.strength,
                ts=ts,
                ttl_s=self.params.ttl_s,
                meta={**meta, "reason": vote.reason[:300]},
            )
            for vote in votes
            if vote.has_opinion
        ]


class ExchangeMonitorAgent:
    """Runs an ``ExchangeMonitor`` every ``interval_s`` seconds on its own thread."""

    def __init__(self, monitor: ExchangeMonitor, *, interval_s: float = 5.0) -> None:
        self.monitor = monitor
        self.name = f"exchange_monitor:{monitor.exchange_id}"
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        # The feed first: a stream that fails to start only means REST polls until it does.
        stream = self.monitor.stream
        if stream is not None:
            try:
                stream.start()
            except RuntimeError:
                _log.warning("scout_stream_not_started", agent=self.name)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            # A poll in flight finishes within the exchange's own timeout (ms).
            self._thread.join(timeout=float(self.monitor.exchange.timeout) / 1000.0 + 1.0)
            self._thread = None
        if self.monitor.stream is not None:
            self.monitor.stream.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.monitor.poll_once()
            except Exception:  # one bad poll must not end monitoring
                _log.exception("scout_poll_error", agent=self.name)
            self._stop.wait(self._interval_s)


def _mid(bids: Sequence[Any], asks: Sequence[Any], ticker: dict[str, Any]) -> float | None:
    """Mid from the top of book, else the ticker's bid/ask; None if neither is usable."""
    pairs = []
    if bids and asks:
        pairs.append((bids[0][0], asks[0][0]))
    pairs.append((ticker.get("bid"), ticker.get("ask")))
    for bid, ask in pairs:
        if bid is None or ask is None:
            continue
        bid_f, ask_f = float(bid), float(ask)
        if math.isfinite(bid_f) and math.isfinite(ask_f) and 0.0 < bid_f < ask_f:
            return (bid_f + ask_f) / 2.0
    return None
