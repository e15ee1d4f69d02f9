"""A replayed exchange: real candles served through the slice of ccxt's API a scout uses.

Why it exists: a local cluster (``nettrace cluster up``) and its tests must run with no
network, yet exercise the scout's monitor unchanged -- the same ``fetch_ticker`` /
``fetch_order_book`` calls, the same timing of round trips, the same signal generators. A
``ReplayExchange`` answers those calls from historical candles in ``../shared/data`` (or, with
no data folder, from seeded synthetic candles), so prices are real market history, not noise.

What is replayed and what is derived -- everything it returns says ``info["replay"] = True``:

- **Price.** Replay time runs at wall clock x ``speed`` from an ``anchor`` (epoch seconds), so
  a cluster whose scouts share one anchor replays the same market moment everywhere. The
  replay walks the file's bars in order (a gap in the file is skipped, not held, so a long gap
  cannot freeze the feed) and wraps to the first bar after the last. Inside a bar the price
  follows a path through the bar's own prices -- open, then the extreme nearer the open's side
  (low for an up bar, high for a down bar), then the other extreme, then close -- linearly in
  thirds. The path is *derived* from the candle, not recorded ticks.
- **Venue differences.** Each exchange id gets a deterministic profile (from a CRC32 of the id):
  a lag (the venue sees the market ``lag_s`` replay seconds late), a price skew (a fraction,
  within +/-0.6%), a slow dislocation wave (+/-0.4%, a 2-6 replay-hour period) and a base
  round-trip time. Venues therefore disagree the way real venues do -- by level and by timing
  -- which is what the divergence and lead-lag signal (6) looks for.
- **Top of book.** Synthetic and *derived*, not recorded: the spread is a fraction of the bar's
  range (clamped to 1-50 bp), level sizes come from the bar's volume, and the book leans to the
  side the price is moving on the current leg of the bar's path (bids heavier while it rises),
  so order-book imbalance (5) has something real to react to.
- **Round-trip time.** Simulated: every request sleeps the venue's base RTT with seeded jitter
  and an occasional spike, so the scout's latency signal (7) measures a real elapsed time.

The feed never trades: it has no order methods, and its ``id`` is the venue's real ccxt id so
the signals it feeds name the exchange they stand in for; their ``meta`` carries the scout's
own fields, and the ticker/book ``info`` says replay.
"""

from __future__ import annotations

import math
import os
import random
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import ccxt
import pandas as pd

from nettrace.market.candles import COLUMNS, CandleKey, Candles, timeframe_ms
from nettrace.market.shared_data import shared_data_dir
from nettrace.market.synthetic import synthetic_candles

#: ``replay`` (shared data, else synthetic) or ``replay:<dir>``; unset or ``live`` = ccxt.
SCOUT_FEED_ENV: Final = "NETTRACE_SCOUT_FEED"
#: Replay seconds per wall second (default ``DEFAULT_SPEED``).
REPLAY_SPEED_ENV: Final = "NETTRACE_REPLAY_SPEED"
#: Wall-clock epoch seconds at which replay time starts (default: when the feed is built).
REPLAY_ANCHOR_ENV: Final = "NETTRACE_REPLAY_ANCHOR"
#: One replay minute per wall second: a 1h bar plays out in a minute.
DEFAULT_SPEED: Final = 60.0
MAX_SKEW: Final = 0.006
#: Amplitude of each venue's slow dislocation (a fraction) and its period range (replay s).
MAX_WAVE: Final = 0.004
WAVE_PERIOD_S: Final = (7_200.0, 21_600.0)
MAX_LAG_S: Final = 1800.0
SYNTHETIC_BARS: Final = 5000
_DERIVATIVE_MARKERS: Final = ("perp", "usdm", "coinm", "swap", "future")


@dataclass(frozen=True)
class VenueProfile:
    """How one replayed venue differs from the recorded market.

    ``lag_s``: replay seconds this venue is behind; ``skew``: fractional price offset;
    ``rtt_ms``: base simulated round-trip time in milliseconds; ``wave``: amplitude (fraction)
    of a slow sinusoidal dislocation of period ``wave_period_s`` replay seconds and phase
    ``wave_phase`` (radians) -- venues drift apart and back as arbitrage lags, so the gap
    between two venues sometimes clears the 0.8% round trip and signal 6 can fire. Real majors
    rarely diverge that far: the amplitudes are chosen to exercise the signal, not to model it.
    """

    lag_s: float
    skew: float
    rtt_ms: float
    wave: float = 0.0
    wave_period_s: float = WAVE_PERIOD_S[0]
    wave_phase: float = 0.0

    def factor(self, replay_s: float) -> float:
        """The multiplier on the recorded price at this venue's replay second ``replay_s``."""
        angle = 2.0 * math.pi * replay_s / self.wave_period_s + self.wave_phase
        return 1.0 + self.skew + self.wave * math.sin(angle)

    @classmethod
    def for_exchange(cls, exchange_id: str) -> VenueProfile:
        """A deterministic profile for ``exchange_id``: same id, same profile, every run."""
        digest = zlib.crc32(exchange_id.encode("utf-8"))
        a, b, c = digest & 0x3FF, (digest >> 10) & 0x3FF, (digest >> 20) & 0x3FF
        d = zlib.crc32(exchange_id.encode("utf-8"), 0x5EED)
        low, high = WAVE_PERIOD_S
        return cls(
            lag_s=MAX_LAG_S * a / 1023.0,
            skew=MAX_SKEW * (2.0 * b / 1023.0 - 1.0),
            rtt_ms=20.0 + 130.0 * c / 1023.0,
            wave=MAX_WAVE,
            wave_period_s=low + (high - low) * (d & 0x3FF) / 1023.0,
            wave_phase=2.0 * math.pi * ((d >> 10) & 0x3FF) / 1024.0,
        )


@dataclass(frozen=True)
class _Moment:
    """One venue's view of one symbol at one instant: where in the file and at what price."""

    index: int
    frac: float
    at_ms: int
    #: Recorded-path price, before the venue factor, and the bar's low/high visited so far.
    price: float
    low: float
    high: float
    factor: float
    #: Direction of the current leg of the bar's path relative to its range, in [-1, 1].
    tilt: float


@dataclass(frozen=True)
class ReplaySource:
    """The candles replayed for one symbol and where they came from (for the labels)."""

    candles: Candles
    #: File name or ``synthetic (seed=...)``.
    origin: str
    #: The symbol of the replayed candles; differs from the watched one when no file had it.
    source_symbol: str

    @property
    def synthetic(self) -> bool:
        return self.candles.synthetic


def _candidate_files(data_dir: Path, match: Callable[[CandleKey], bool]) -> list[Path]:
    found: list[tuple[bool, int, str, Path]] = []
    for path in data_dir.glob("*.parquet"):
        try:
            key = CandleKey.from_filename(path.name)
        except ValueError:
            continue
        if not match(key):
            continue
        derivative = any(marker in key.exchange for marker in _DERIVATIVE_MARKERS)
        found.append((derivative, timeframe_ms(key.timeframe), path.name, path))
    # Spot before derivatives, finest timeframe first (the most price movement per replay
    # second), then by name so the choice never depends on directory order.
    return [path for *_, path in sorted(found)]


def load_replay_source(symbol: str, data_dir: Path | None) -> ReplaySource:
    """The candles to replay for ``symbol`` (ccxt form).

    Search order in ``data_dir``: a file of exactly this pair; else a file of the same base
    asset in another quote (prices then stay in that file's quote currency, and
    ``source_symbol`` says so); else seeded synthetic candles (labelled synthetic). One source
    per symbol for every venue, so venues differ only by their profile, not by data choice.
    """
    base = symbol.split("/")[0]
    if data_dir is not None and data_dir.is_dir():
        for match in (
            lambda key: key.pair == symbol,
            lambda key: key.pair.split("/")[0] == base,
        ):
            for path in _candidate_files(data_dir, match):
                frame = pd.read_parquet(path, columns=list(COLUMNS))
                frame = frame[(frame[["open", "high", "low", "close"]] > 0).all(axis=1)]
                if len(frame) < 2:
                    continue
                key = CandleKey.from_filename(path.name)
                candles = Candles.from_frame(frame, key, source=path.name)
                return ReplaySource(candles, path.name, key.pair)
    seed = zlib.crc32(symbol.encode("utf-8"))
    candles = synthetic_candles(CandleKey("synthetic", symbol, "1h"), SYNTHETIC_BARS, seed)
    return ReplaySource(candles, candles.source, symbol)


def intrabar_path(open_: float, high: float, low: float, close: float) -> tuple[float, ...]:
    """The four waypoints a bar's price is assumed to visit (derived, not recorded)."""
    if close >= open_:
        return (open_, low, high, close)
    return (open_, high, low, close)


def _along(path: Sequence[float], frac: float) -> tuple[float, float, float, int]:
    """Price at ``frac`` of the bar along ``path``, the low/high visited so far, the leg."""
    legs = len(path) - 1
    x = min(max(frac, 0.0), 1.0) * legs
    leg = min(int(x), legs - 1)
    price = path[leg] + (path[leg + 1] - path[leg]) * (x - leg)
    seen = [*path[: leg + 1], price]
    return price, min(seen), max(seen), leg


class ReplayExchange:
    """A read-only stand-in for a ccxt exchange, replaying candles (see the module docstring).

    Implements what the scout monitor calls -- ``id``, ``timeout``, ``fetch_ticker``,
    ``fetch_order_book`` -- plus ``load_markets``, ``markets``, ``symbols``, ``has`` and
    ``milliseconds`` for code that checks a venue before polling it. Unknown symbols raise
    ``ccxt.BadSymbol`` like a real venue. ``clock`` (epoch seconds) and ``sleep`` are injectable
    so tests are instant and deterministic.
    """

    def __init__(
        self,
        exchange_id: str,
        symbols: Iterable[str],
        *,
        data_dir: Path | None = None,
        sources: Mapping[str, ReplaySource] | None = None,
        speed: float = DEFAULT_SPEED,
        anchor: float | None = None,
        profile: VenueProfile | None = None,
        timeout_ms: int = 10_000,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(speed) and speed > 0.0):
            raise ValueError(f"replay speed must be a positive number, not {speed!r}")
        self.id = exchange_id
        self.name = f"{exchange_id} (replay)"
        self.timeout = timeout_ms
        self.profile = profile or VenueProfile.for_exchange(exchange_id)
        self.speed = float(speed)
        self._clock = clock
        self._sleep = sleep
        self.anchor = clock() if anchor is None else float(anchor)
        wanted = tuple(dict.fromkeys(symbols))
        if sources is None:
            sources = {symbol: load_replay_source(symbol, data_dir) for symbol in wanted}
        self.sources: dict[str, ReplaySource] = {s: sources[s] for s in wanted}
        self.has: dict[str, bool] = {
            "fetchTicker": True,
            "fetchOrderBook": True,
            "createOrder": False,
        }
        # Seeded, not secret: the RTT jitter must be reproducible run to run.
        self._rng = random.Random(  # noqa: S311
            zlib.crc32(exchange_id.encode()) if seed is None else seed
        )
        self.markets: dict[str, dict[str, Any]] = {}

    @property
    def symbols(self) -> list[str]:
        return list(self.sources)

    def milliseconds(self) -> int:
        """Wall-clock epoch milliseconds, as ccxt's ``milliseconds()`` (not replay time)."""
        return int(self._clock() * 1000)

    def load_markets(self, reload: bool = False) -> dict[str, dict[str, Any]]:
        if not self.markets or reload:
            self.markets = {
                symbol: {
                    "id": symbol.replace("/", "-"),
                    "symbol": symbol,
                    "base": symbol.split("/")[0],
                    "quote": symbol.split("/")[1],
                    "active": True,
                    "spot": True,
                    "type": "spot",
                    "info": self._label(symbol),
                }
                for symbol in self.sources
            }
        return self.markets

    def round_trip_ms(self) -> float:
        """The next simulated round trip: base RTT, +/-20% jitter, a 3% chance of a 5x spike."""
        jitter = 1.0 + self._rng.uniform(-0.2, 0.2)
        spike = 5.0 if self._rng.random() < 0.03 else 1.0
        return self.profile.rtt_ms * jitter * spike

    def replay_ms(self, symbol: str) -> tuple[int, float, int]:
        """Where this venue's replay is for ``symbol``: (bar index, fraction of the bar, epoch ms).

        Position = first bar + ``MAX_LAG_S`` + (wall - anchor) x speed - venue lag, wrapped over
        the file: starting ``MAX_LAG_S`` in means no venue's lag wraps it to the file's end.
        """
        moment = self._moment(symbol)
        return moment.index, moment.frac, moment.at_ms

    def fetch_ticker(self, symbol: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        self._request()
        candles = self._source(symbol).candles
        m = self._moment(symbol)
        k = m.factor
        last = m.price * k
        bid, ask = self._touch(candles, m.index, last)
        open_ = float(candles.open[m.index]) * k
        volume = float(candles.volume[m.index]) * m.frac
        return {
            "symbol": symbol,
            "timestamp": m.at_ms,
            "datetime": _iso(m.at_ms),
            "high": m.high * k,
            "low": m.low * k,
            "bid": bid,
            "bidVolume": None,
            "ask": ask,
            "askVolume": None,
            "vwap": None,
            "open": open_,
            "close": last,
            "last": last,
            "previousClose": None,
            "change": last - open_,
            "percentage": (last / open_ - 1.0) * 100.0,
            "average": None,
            "baseVolume": volume,
            "quoteVolume": volume * last,
            "info": {**self._label(symbol, m), "bar_ts": int(candles.timestamp[m.index])},
        }

    def fetch_order_book(
        self, symbol: str, limit: int | None = None, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        self._request()
        candles = self._source(symbol).candles
        m = self._moment(symbol)
        levels = 20 if limit is None else max(1, int(limit))
        bids, asks = self._book(candles, m, levels)
        return {
            "symbol": symbol,
            "bids": bids,
            "asks": asks,
            "timestamp": m.at_ms,
            "datetime": _iso(m.at_ms),
            "nonce": None,
            "info": {**self._label(symbol, m), "derived_book": True},
        }

    # -- internals -----------------------------------------------------------------------

    def _source(self, symbol: str) -> ReplaySource:
        source = self.sources.get(symbol)
        if source is None:
            raise ccxt.BadSymbol(f"{self.id} (replay) does not replay {symbol}")
        return source

    def _request(self) -> None:
        self._sleep(self.round_trip_ms() / 1000.0)

    def _moment(self, symbol: str) -> _Moment:
        candles = self._source(symbol).candles
        tf = timeframe_ms(candles.key.timeframe)
        replay_s = (self._clock() - self.anchor) * self.speed + MAX_LAG_S - self.profile.lag_s
        position = (replay_s * 1000.0) % (len(candles) * tf)
        index = min(int(position // tf), len(candles) - 1)
        frac = (position - index * tf) / tf
        path = self._path(candles, index)
        price, low, high, leg = _along(path, frac)
        span = float(candles.high[index]) - float(candles.low[index])
        tilt = (path[leg + 1] - path[leg]) / span if span > 0.0 else 0.0
        return _Moment(
            index=index,
            frac=frac,
            at_ms=int(candles.timestamp[index]) + int(frac * tf),
            price=price,
            low=low,
            high=high,
            factor=self.profile.factor(replay_s),
            tilt=max(-1.0, min(1.0, tilt)),
        )

    def _label(self, symbol: str, moment: _Moment | None = None) -> dict[str, Any]:
        source = self._source(symbol)
        label: dict[str, Any] = {
            "replay": True,
            "synthetic": source.synthetic,
            "replay_source": source.origin,
            "source_symbol": source.source_symbol,
            "speed": self.speed,
            "lag_s": round(self.profile.lag_s, 3),
            "skew": round(self.profile.skew, 6),
        }
        if moment is not None:
            label["price_factor"] = round(moment.factor, 6)
        return label

    @staticmethod
    def _path(candles: Candles, index: int) -> tuple[float, ...]:
        return intrabar_path(
            float(candles.open[index]),
            float(candles.high[index]),
            float(candles.low[index]),
            float(candles.close[index]),
        )

    @staticmethod
    def _spread(candles: Candles, index: int) -> float:
        """Spread as a fraction of mid: 5% of the bar's range, clamped to 1-50 bp."""
        close = float(candles.close[index])
        range_frac = (float(candles.high[index]) - float(candles.low[index])) / close
        return min(max(0.05 * range_frac, 1e-4), 5e-3)

    def _touch(self, candles: Candles, index: int, mid: float) -> tuple[float, float]:
        half = self._spread(candles, index) / 2.0
        return mid * (1.0 - half), mid * (1.0 + half)

    def _book(
        self, candles: Candles, m: _Moment, levels: int
    ) -> tuple[list[list[float]], list[list[float]]]:
        mid = m.price * m.factor
        bid, ask = self._touch(candles, m.index, mid)
        step = max(mid * self._spread(candles, m.index) / 2.0, mid * 1e-4)
        # The book leans the way the price is moving on this leg of the bar: bids heavier while
        # it rises, asks while it falls (a full-range leg gives an imbalance of +/-0.6).
        tilt = m.tilt
        # A bar's volume spread over a book: size per level grows away from the touch.
        unit = max(float(candles.volume[m.index]), 1e-6) / (levels * 20.0)
        bids = [
            [bid - k * step, unit * (1.0 + 0.1 * k) * (1.0 + 0.6 * tilt)] for k in range(levels)
        ]
        asks = [
            [ask + k * step, unit * (1.0 + 0.1 * k) * (1.0 - 0.6 * tilt)] for k in range(levels)
        ]
        return bids, asks


@dataclass(frozen=True)
class ReplayFeed:
    """A parsed ``NETTRACE_SCOUT_FEED=replay[:DIR]`` with its speed and anchor: builds venues."""

    data_dir: Path | None
    speed: float = DEFAULT_SPEED
    anchor: float | None = None

    def exchange(self, exchange_id: str, symbols: Iterable[str]) -> ReplayExchange:
        return ReplayExchange(
            exchange_id, symbols, data_dir=self.data_dir, speed=self.speed, anchor=self.anchor
        )


def feed_from_env(env: Mapping[str, str] | None = None) -> ReplayFeed | None:
    """The replay feed the environment asks for, or ``None`` for live ccxt exchanges.

    ``replay`` uses ``shared_data_dir()`` (synthetic candles if absent); ``replay:DIR`` uses
    DIR, which must exist. Raises ``ValueError`` with a one-line reason on a bad value.
    """
    environ = os.environ if env is None else env
    spec = environ.get(SCOUT_FEED_ENV, "").strip()
    if spec in ("", "live"):
        return None
    kind, sep, location = spec.partition(":")
    if kind != "replay":
        raise ValueError(f"{SCOUT_FEED_ENV}={spec!r}: expected 'live', 'replay' or 'replay:DIR'")
    data_dir = shared_data_dir()
    if sep:
        data_dir = Path(location).expanduser()
        if not data_dir.is_dir():
            raise ValueError(f"{SCOUT_FEED_ENV}: replay folder {location!r} does not exist")
    speed_text = environ.get(REPLAY_SPEED_ENV, "").strip()
    anchor_text = environ.get(REPLAY_ANCHOR_ENV, "").strip()
    try:
        speed = float(speed_text) if speed_text else DEFAULT_SPEED
        anchor = float(anchor_text) if anchor_text else None
    except ValueError:
        raise ValueError(
            f"{REPLAY_SPEED_ENV} and {REPLAY_ANCHOR_ENV} must be numbers "
            f"(got {speed_text!r}, {anchor_text!r})"
        ) from None
    if not (math.isfinite(speed) and speed > 0.0):
        raise ValueError(f"{REPLAY_SPEED_ENV} must be a positive number, not {speed_text!r}")
    if anchor is not None and not math.isfinite(anchor):
        raise ValueError(f"{REPLAY_ANCHOR_ENV} must be finite epoch seconds")
    return ReplayFeed(data_dir, speed, anchor)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, UTC).isoformat(timespec="milliseconds")
