"""``download_candles`` end to end through the real ccxt ``binance`` client against a small fake
Binance spot server on 127.0.0.1 (``GET /api/v3/exchangeInfo`` and ``/api/v3/klines``).

The server keeps every bar up to its clock, including the one still forming, logs each
request and can be told to answer the next klines calls with an error.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest

from nettrace.market.candles import TIMEFRAME_MS, CandleKey
from nettrace.market.download import DownloadError, download_candles, make_exchange
from nettrace.market.store import CandleStore

TF = "5m"
STEP = TIMEFRAME_MS[TF]
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the first bar the venue has
KEY = CandleKey("binance", "BTC/USDT", TF)
N_BARS = 240  # complete bars; the server's clock sits inside the next one (still forming)
NOW = T0 + N_BARS * STEP + 90_000
INVALID = (400, {"code": -1121, "msg": "Invalid symbol."}, {})  # ccxt: BadSymbol, no retry
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
class FakeBinance:
    """The venue's state: its bars, the requests it saw and the failures still to serve."""

    bars: list[list[str | int]]
    klines_calls: list[dict[str, int]] = field(default_factory=list)
    served: Counter[int] = field(default_factory=Counter)
    failures: list[tuple[int, dict[str, object], dict[str, str]]] = field(default_factory=list)
    #: klines call number (0-based, over the server's life) that is answered with this error
    fail_at: dict[int, tuple[int, dict[str, object], dict[str, str]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def klines(self, query: dict[str, list[str]]) -> tuple[int, object, dict[str, str]]:
        with self.lock:
            params = {k: int(v[0]) for k, v in query.items() if k in ("startTime", "limit")}
            self.klines_calls.append(params)
            if len(self.klines_calls) - 1 in self.fail_at:
                return self.fail_at.pop(len(self.klines_calls) - 1)
            if self.failures:
                return self.failures.pop(0)
            start = params.get("startTime", 0)
            rows = [b for b in self.bars if int(b[0]) >= start][: params.get("limit", 500)]
            self.served.update(int(b[0]) for b in rows)
            return 200, rows, {}


def make_bars() -> list[list[str | int]]:
    """Binance-shaped klines (strings for numbers, 12 fields) for bars T0 .. NOW's open."""
    rng = np.random.default_rng(11)
    rows: list[list[str | int]] = []
    price = 42_000.0
    for i in range(N_BARS + 1):  # + the bar still forming at NOW
        close = price * float(np.exp(rng.normal(0, 0.002)))
        high, low = max(price, close) * 1.001, min(price, close) * 0.999
        open_ms = T0 + i * STEP
        rows.append(
            [open_ms, f"{price:.2f}", f"{high:.2f}", f"{low:.2f}", f"{close:.2f}",
             f"{rng.uniform(1, 9):.5f}", open_ms + STEP - 1, "0", 10, "0", "0", "0"]
        )  # fmt: skip
        price = close
    return rows


@pytest.fixture
def venue() -> Iterator[tuple[FakeBinance, str]]:
    fake = FakeBinance(make_bars())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/api/v3/exchangeInfo":
                status, body, headers = 200, {"symbols": [MARKET]}, {}
            elif url.path == "/api/v3/klines":
                status, body, headers = fake.klines(parse_qs(url.query))
            else:
                status, body, headers = 404, {"code": -1, "msg": f"no {url.path}"}, {}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def client(base: str) -> object:
    exchange = make_exchange(
        "binance",
        timeout_ms=5_000,
        api_urls={"public": f"{base}/api/v3", "private": f"{base}/api/v3"},
        options={"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False,
                 "fetchMargins": False},
    )  # fmt: skip
    exchange.session.trust_env = False  # never route loopback through an environment proxy
    exchange.rateLimit = 1  # ccxt's throttle stays on; 1 ms keeps the test fast
    return exchange


@pytest.fixture
def store(tmp_path: Path) -> CandleStore:
    return CandleStore(tmp_path / "candles")


def expected_timestamps(first: int = 0, last: int = N_BARS) -> list[int]:
    return [T0 + i * STEP for i in range(first, last)]


def test_make_exchange_points_every_api_section_at_the_given_urls() -> None:
    exchange = make_exchange("binance", api_urls={"public": "http://127.0.0.1:9/api/v3"})
    assert exchange.urls["api"] == {"public": "http://127.0.0.1:9/api/v3"}
    with pytest.raises(ValueError, match="unknown exchange 'binanse'"):
        make_exchange("binanse")


def test_pages_through_history_and_never_stores_the_forming_bar(
    venue: tuple[FakeBinance, str], store: CandleStore
) -> None:
    fake, base = venue
    seen: list[tuple[int, int]] = []
    report = download_candles(
        client(base), KEY, T0 - 3 * STEP, store, limit=50, now_ms=NOW,
        progress=lambda p: seen.append((p.done_ms, p.total_ms)),
    )  # fmt: skip
    stored = store.load(KEY)[0]
    assert stored.timestamp.tolist() == expected_timestamps()
    assert fake.bars[N_BARS][0] == NOW - 90_000  # the forming bar exists on the venue ...
    assert NOW - 90_000 not in stored.timestamp  # ... and is not stored
    # 240 bars in pages of 50: 5 pages, each starting right after the previous page
    starts = [call["startTime"] for call in fake.klines_calls]
    assert starts == [T0 - 3 * STEP, T0 + 50 * STEP, T0 + 100 * STEP, T0 + 150 * STEP,
                      T0 + 200 * STEP]  # fmt: skip
    assert all(call["limit"] == 50 for call in fake.klines_calls)
    assert (report.pages, report.bars_downloaded, report.bars_added) == (5, N_BARS, N_BARS)
    assert (report.first_ms, report.last_ms, report.gaps) == (T0, T0 + (N_BARS - 1) * STEP, 0)
    assert len(seen) == 5
    assert seen == sorted(seen)
    assert seen[-1][0] == seen[-1][1]  # the progress bar ends full
    # prices are the venue's, parsed from its strings
    assert stored.close[7] == float(fake.bars[7][4])
    assert stored.volume[-1] == float(fake.bars[N_BARS - 1][5])
    assert stored.synthetic is False
    assert stored.source == "ccxt binance fetch_ohlcv"


def test_resume_after_an_interruption_fetches_no_bar_twice(
    venue: tuple[FakeBinance, str], store: CandleStore
) -> None:
    fake, base = venue
    exchange = client(base)
    fake.fail_at[2] = INVALID  # the third klines call fails; not worth retrying
    with pytest.raises(DownloadError, match=r"binance BTC/USDT 5m: .*Invalid symbol"):
        download_candles(exchange, KEY, T0, store, limit=50, now_ms=NOW, sleep=lambda s: None)
    partial = store.load(KEY)[0]
    assert partial.timestamp.tolist() == expected_timestamps(0, 100)  # two pages were kept

    report = download_candles(exchange, KEY, T0, store, limit=50, now_ms=NOW)
    assert store.load(KEY)[0].timestamp.tolist() == expected_timestamps()
    assert max(fake.served.values()) == 1  # no bar was served twice over both runs
    assert fake.klines_calls[3]["startTime"] == T0 + 100 * STEP  # resumed after the last bar
    assert (report.bars_downloaded, report.bars_added, report.bars_already_present) == (
        140, 140, 0,
    )  # fmt: skip

    again = download_candles(exchange, KEY, T0, store, limit=50, now_ms=NOW)
    assert (again.pages, again.bars_downloaded) == (0, 0)  # up to date: nothing asked for


def test_an_interrupted_earlier_window_leaves_no_hidden_hole(
    venue: tuple[FakeBinance, str], store: CandleStore
) -> None:
    fake, base = venue
    exchange = client(base)
    download_candles(exchange, KEY, T0 + 150 * STEP, store, limit=50, now_ms=NOW)
    assert store.info(KEY).first_ms == T0 + 150 * STEP  # type: ignore[union-attr]
    # now ask for the earlier bars too, and fail on the second page of that window
    fake.fail_at[len(fake.klines_calls) + 1] = INVALID
    with pytest.raises(DownloadError):
        download_candles(exchange, KEY, T0, store, limit=50, now_ms=NOW)
    assert fake.served[T0] == 1  # the first page of the earlier window was fetched
    # the first page of the earlier window was not stored with a hole after it ...
    info = store.info(KEY)
    assert (info.first_ms, info.gaps) == (T0 + 150 * STEP, 0)  # type: ignore[union-attr]
    # ... so running the same command again completes the whole range without gaps
    download_candles(exchange, KEY, T0, store, limit=50, now_ms=NOW)
    stored = store.load(KEY)[0]
    assert stored.timestamp.tolist() == expected_timestamps()


def test_a_429_is_retried_after_the_servers_retry_after_then_backoff(
    venue: tuple[FakeBinance, str], store: CandleStore
) -> None:
    fake, base = venue
    fake.failures.extend(
        [
            (429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "7"}),
            (429, {"code": -1003, "msg": "Too many requests"}, {}),
            (429, {"code": -1003, "msg": "Too many requests"}, {}),
        ]
    )
    waits: list[float] = []
    report = download_candles(
        client(base), KEY, T0, store, limit=100, now_ms=NOW, sleep=waits.append
    )
    assert waits == [7.0, 2.0, 4.0]  # Retry-After first, then 1 s doubling per attempt
    assert report.retries == 3
    assert store.load(KEY)[0].timestamp.tolist() == expected_timestamps()
    assert len(fake.klines_calls) == 3 + 3  # 3 refused + 3 pages of 100


def test_retries_run_out_into_a_one_line_error_and_keep_earlier_pages(
    venue: tuple[FakeBinance, str], store: CandleStore
) -> None:
    fake, base = venue
    exchange = client(base)
    download_candles(exchange, KEY, T0, store, limit=50, now_ms=T0 + 60 * STEP)
    fake.failures.extend([(429, {"code": -1003, "msg": "Too many requests"}, {})] * 3)
    waits: list[float] = []
    with pytest.raises(DownloadError) as info:
        download_candles(
            exchange, KEY, T0, store, limit=50, now_ms=NOW, max_retries=2, sleep=waits.append
        )
    assert waits == [1.0, 2.0]
    assert "gave up after 2 retries" in str(info.value)
    assert "\n" not in str(info.value)
    assert store.info(KEY).rows == 60  # type: ignore[union-attr]


def test_an_unknown_pair_is_named_with_suggestions(
    venue: tuple[FakeBinance, str], store: CandleStore
) -> None:
    _, base = venue
    with pytest.raises(DownloadError, match=r"binance has no market ETH/USDT \(e\.g\. BTC/USDT\)"):
        download_candles(client(base), CandleKey("binance", "ETH/USDT", TF), T0, store, now_ms=NOW)
    assert store.list() == []
