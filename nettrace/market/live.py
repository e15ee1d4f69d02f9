"""A live candle feed: closed bars from an exchange's public OHLCV, through ccxt, by polling.

Polling rather than a websocket kline stream because every venue ccxt supports answers
``fetch_ohlcv`` the same way, and a bar closes only once per timeframe: a poll every few seconds
sees it within seconds of its close. The bar still forming is never returned -- the engine
decides at a bar's close, exactly as the backtest does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nettrace.market.candles import CandleKey, Candles, timeframe_ms


class LiveCandles:
    """The closed bars of one ``key`` (exchange, pair, timeframe) from a ccxt ``exchange``."""

    def __init__(
        self,
        exchange: Any,
        key: CandleKey,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._exchange = exchange
        self.key = key
        self._tf = timeframe_ms(key.timeframe)
        self._clock = clock
        self._rows: list[list[float]] = []

    @property
    def candles(self) -> Candles:
        """Every closed bar seen so far, oldest first."""
        rows = np.asarray(self._rows, dtype=np.float64).reshape(-1, 6)
        return Candles(
            key=self.key,
            timestamp=rows[:, 0].astype(np.int64),
            open=rows[:, 1].copy(),
            high=rows[:, 2].copy(),
            low=rows[:, 3].copy(),
            close=rows[:, 4].copy(),
            volume=rows[:, 5].copy(),
            source=f"live:{self.key.exchange}",
        )

    def warm_up(self, bars: int = 500) -> Candles:
        """The last ``bars`` closed bars (the history the signals need before the first tick)."""
        since = int(self._clock() * 1000) - (bars + 1) * self._tf
        raw = self._exchange.fetch_ohlcv(self.key.pair, self.key.timeframe, since=since,
                                         limit=bars + 1)  # fmt: skip
        self._take(raw)
        del self._rows[:-bars]
        return self.candles

    def poll(self) -> list[list[float]]:
        """Bars that closed since the last call, oldest first (empty when none did)."""
        since = int(self._rows[-1][0]) + 1 if self._rows else None
        raw = self._exchange.fetch_ohlcv(self.key.pair, self.key.timeframe, since=since)
        return self._take(raw)

    def _take(self, raw: list[list[Any]]) -> list[list[float]]:
        now_ms = int(self._clock() * 1000)
        last = int(self._rows[-1][0]) if self._rows else None
        fresh = []
        for row in sorted(raw, key=lambda r: int(r[0])):
            open_ms = int(row[0])
            if last is not None and open_ms <= last:
                continue  # already have it (a poll overlaps the previous one)
            if open_ms + self._tf > now_ms:
                break  # still forming: decided on only once it has closed
            values = [float(open_ms), *(float(v) for v in row[1:6])]
            fresh.append(values)
            last = open_ms
        self._rows.extend(fresh)
        return fresh
