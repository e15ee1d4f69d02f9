"""Download OHLCV history through ccxt into the candle store, resumably and politely.

Resumable means the store is the only bookmark: a run continues after the last stored bar
(and fills in before the first one if asked for an earlier start), so an interrupted download
is finished by running the same command again and nothing stored is fetched twice. Bars are
flushed to the store every few pages and when the run stops for any reason.

Polite means ccxt's own throttle (``enableRateLimit``) plus bounded exponential backoff on
rate-limit and network errors, honouring ``Retry-After`` when the exchange sends one.

Times are bar open times in ms UTC. The bar still forming (open + timeframe > now) is never
stored: its close and volume would change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ccxt
import numpy as np
import numpy.typing as npt
import pandas as pd

from nettrace.market.candles import COLUMNS, CandleKey, Candles, timeframe_ms
from nettrace.market.store import CandleStore
from nettrace.market.validation import grid_offset_ms

DEFAULT_PAGE_LIMIT = 1000
DEFAULT_MAX_RETRIES = 5
#: Flush to disk after this many downloaded bars; bounds both lost work and rewrite cost.
FLUSH_EVERY_BARS = 50_000
_BASE_DELAY_S = 1.0
_MAX_DELAY_S = 60.0
_RETRYABLE = (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.NetworkError)


class DownloadError(RuntimeError):
    """A download that could not finish; what was fetched before it is already stored."""


@dataclass(frozen=True, slots=True)
class DownloadProgress:
    """Passed to the progress callback after each page; ``done_ms`` of ``total_ms`` covered."""

    key: CandleKey
    bars: int
    done_ms: int
    total_ms: int


@dataclass(frozen=True, slots=True)
class DownloadReport:
    """What one run fetched and stored. First/last are bar open ms UTC of the stored file."""

    key: CandleKey
    bars_downloaded: int
    bars_added: int
    bars_already_present: int
    pages: int
    retries: int
    rows_total: int
    first_ms: int | None
    last_ms: int | None
    gaps: int
    missing_bars: int


def make_exchange(
    exchange_id: str,
    *,
    timeout_ms: int = 30_000,
    api_urls: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """A public (key-less) ccxt instance with rate limiting on; ``ValueError`` if unknown.

    ``api_urls`` replaces the exchange's whole ``urls['api']`` table (a mirror or a local
    emulator): sections it does not name are gone, so no call can fall back to the venue's
    real host. ``options`` is merged into ccxt's ``options`` (e.g. which market types
    ``load_markets`` fetches).
    """
    if exchange_id not in ccxt.exchanges:
        close = [name for name in ccxt.exchanges if name.startswith(exchange_id[:3])][:5]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(f"unknown exchange {exchange_id!r}: not a ccxt exchange id{hint}")
    exchange_class = getattr(ccxt, exchange_id)
    exchange = exchange_class({"enableRateLimit": True, "timeout": timeout_ms})
    if api_urls is not None:
        exchange.urls["api"] = dict(api_urls)
    if options is not None:
        exchange.options.update(options)
    return exchange


def download_candles(
    exchange: Any,
    key: CandleKey,
    since_ms: int,
    store: CandleStore,
    *,
    until_ms: int | None = None,
    progress: Callable[[DownloadProgress], None] | None = None,
    limit: int = DEFAULT_PAGE_LIMIT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    now_ms: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadReport:
    """Fetch ``key``'s bars with open time in ``[since_ms, until_ms)`` into ``store``.

    ``exchange`` is a ccxt ``Exchange`` (``make_exchange`` for the real ones; tests pass one
    pointed at a loopback server). ``key.pair`` is the ccxt symbol. ``now_ms`` and ``sleep``
    exist for tests. Raises ``DownloadError`` (one line) when the pair is unknown, the
    exchange has no OHLCV, or retries run out; bars fetched until then are kept.
    """
    tf = timeframe_ms(key.timeframe)
    now = int(time.time() * 1000) if now_ms is None else now_ms
    end = min(until_ms if until_ms is not None else now, now - tf + 1)
    offset = grid_offset_ms(key.timeframe)
    start = -(-(since_ms - offset) // tf) * tf + offset  # first bar open at or after since_ms
    run = _Run(exchange, key, store, limit, max_retries, sleep, progress)
    run.check_symbol()
    windows = _windows(store, key, start, end, tf)
    run.total_ms = sum(hi - lo for lo, hi, _ in windows)
    try:
        for lo, hi, before_stored in windows:
            # Bars before the stored ones are committed only once their window is complete:
            # a partial flush would leave a hole between them and the stored bars that a
            # rerun, which resumes from the store's first and last bar, could not see.
            run.hold = before_stored
            run.fetch_window(lo, hi, tf)
            run.hold = False
            run.flush()
    finally:
        if run.hold:
            run.discard()  # an interrupted window before the stored bars (see above)
        run.flush()
    info = store.info(key)
    return DownloadReport(
        key=key,
        bars_downloaded=run.downloaded,
        bars_added=run.added,
        bars_already_present=run.present,
        pages=run.pages,
        retries=run.retries,
        rows_total=info.rows if info else 0,
        first_ms=info.first_ms if info else None,
        last_ms=info.last_ms if info else None,
        gaps=info.gaps if info else 0,
        missing_bars=info.missing_bars if info else 0,
    )


def _windows(
    store: CandleStore, key: CandleKey, start: int, end: int, tf: int
) -> list[tuple[int, int, bool]]:
    """The ``[lo, hi)`` ranges still to fetch, before the stored bars and after them, each
    with whether it lies before the stored bars."""
    if start >= end:
        return []
    info = store.info(key)
    if info is None or info.first_ms is None or info.last_ms is None:
        return [(start, end, False)]
    windows = []
    if start < info.first_ms:
        windows.append((start, min(info.first_ms, end), True))
    after = max(start, info.last_ms + tf)
    if after < end:
        windows.append((after, end, False))
    return windows


class _Run:
    """One download's state: buffered bars, counters, and the retrying fetch."""

    def __init__(
        self,
        exchange: Any,
        key: CandleKey,
        store: CandleStore,
        limit: int,
        max_retries: int,
        sleep: Callable[[float], None],
        progress: Callable[[DownloadProgress], None] | None,
    ) -> None:
        self.exchange = exchange
        self.key = key
        self.store = store
        self.limit = limit
        self.max_retries = max_retries
        self.sleep = sleep
        self.progress = progress
        self.buffer: list[npt.NDArray[np.float64]] = []  # one (n, 6) array per page
        self.buffered = 0
        #: While true, ``flush`` keeps the buffer (see ``download_candles``); an interrupted
        #: held window is dropped rather than stored with a hole after it.
        self.hold = False
        self.downloaded = self.added = self.present = self.pages = self.retries = 0
        self.done_ms = self.total_ms = 0

    def check_symbol(self) -> None:
        if not self.exchange.has.get("fetchOHLCV"):
            raise DownloadError(f"{self.exchange.id} does not offer OHLCV candles through ccxt")
        markets = self._call(self.exchange.load_markets)
        if self.key.pair not in markets:
            quote = self.key.pair.split("/")[1]
            same_quote = sorted(s for s in markets if s.endswith(f"/{quote}"))[:5]
            hint = f" (e.g. {', '.join(same_quote)})" if same_quote else ""
            raise DownloadError(f"{self.exchange.id} has no market {self.key.pair}{hint}")

    def fetch_window(self, lo: int, hi: int, tf: int) -> None:
        cursor = lo
        while cursor < hi:
            rows = self._call(
                self.exchange.fetch_ohlcv, self.key.pair, self.key.timeframe, cursor, self.limit
            )
            self.pages += 1
            fresh = [row for row in rows if cursor <= row[0] < hi]
            if not fresh:
                break  # the exchange has nothing at or after the cursor in this window
            fresh.sort(key=lambda row: row[0])
            self.buffer.append(np.array([row[:6] for row in fresh], dtype=np.float64))
            self.buffered += len(fresh)
            self.downloaded += len(fresh)
            self.done_ms += min(int(fresh[-1][0]) + tf, hi) - cursor
            cursor = int(fresh[-1][0]) + tf
            if self.buffered >= FLUSH_EVERY_BARS:
                self.flush()
            if self.progress is not None:
                self.progress(
                    DownloadProgress(self.key, self.downloaded, self.done_ms, self.total_ms)
                )
        self.done_ms += max(0, hi - cursor)

    def flush(self) -> None:
        if not self.buffer or self.hold:
            return
        array = np.concatenate(self.buffer)
        self.buffer, self.buffered = [], 0
        frame = pd.DataFrame(array, columns=list(COLUMNS))
        frame["timestamp"] = array[:, 0].astype(np.int64)
        frame = frame.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
        source = f"ccxt {self.exchange.id} fetch_ohlcv"
        saved = self.store.save(Candles.from_frame(frame, self.key, source=source))
        self.added += saved.rows_added
        self.present += saved.rows_already_present

    def discard(self) -> None:
        """Drop the buffered bars and stop holding; a rerun fetches them again."""
        self.buffer, self.buffered = [], 0
        self.hold = False

    def _call(self, func: Callable[..., Any], *args: Any) -> Any:
        """``func(*args)`` with bounded exponential backoff on rate-limit and network errors."""
        for attempt in range(self.max_retries + 1):
            # ccxt keeps the last response's headers; clear them so a stale Retry-After from
            # an earlier reply cannot steer the wait after a connection error.
            self.exchange.last_response_headers = None
            try:
                return func(*args)
            except _RETRYABLE as exc:
                if attempt == self.max_retries:
                    raise DownloadError(
                        f"{self.exchange.id} {self.key.pair} {self.key.timeframe}: gave up after "
                        f"{self.max_retries} retries: {_first_line(exc)}"
                    ) from exc
                self.retries += 1
                self.sleep(self._delay(attempt))
            except ccxt.BaseError as exc:
                raise DownloadError(
                    f"{self.exchange.id} {self.key.pair} {self.key.timeframe}: {_first_line(exc)}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _delay(self, attempt: int) -> float:
        """Seconds to wait: the server's ``Retry-After`` if it sent one, else 1, 2, 4 ... s."""
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        retry_after = headers.get("Retry-After") if hasattr(headers, "get") else None
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), _MAX_DELAY_S)
            except ValueError:
                pass  # an HTTP date; fall back to our own backoff
        return float(min(_BASE_DELAY_S * 2**attempt, _MAX_DELAY_S))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."
