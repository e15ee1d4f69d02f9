"""The paper trading loop over a candle file, shared by ``nettrace run --replay`` and the primary.

One place builds the paper account, the sniper (with its scouts) and the quant engine, and one
place walks the bars: the command line and ``agents.primary_trader`` (the primary region's
``sniper`` agent under ``FlyAgentRunner``) therefore trade a file identically, which is what
lets a recorded cluster run be replayed by ``nettrace run`` and give the same trades.

Each bar is decided at its ``ScoutClock`` moment: with ``pace`` the loop waits until that
moment (plus ``grace_s``, so a push committed just before it is visible) has passed on the
wall clock, then reads the scouts as of that moment; a replay of a recorded run over the same
database has every moment in the past, runs flat out and hears the same signals.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from nettrace.agents.quant_engine import EngineConfig, QuantEngine, Tick
from nettrace.agents.scout_source import ScoutClock
from nettrace.agents.sniper import ScoutSource, SniperAgent
from nettrace.execution.paper import Bar, PaperExchange
from nettrace.market.candles import Candles, timeframe_ms
from nettrace.store.database import Database

if TYPE_CHECKING:
    from nettrace.backtest.results import Trade
    from nettrace.config.settings import Settings

__all__ = ["PaperSession", "ReplayResult", "bars_of", "open_paper_session", "replay_bars"]

#: Seconds past a bar's moment before it is decided: a push in flight at that moment commits.
DEFAULT_GRACE_S = 0.5


@dataclass
class PaperSession:
    """A paper account, its engine and the file it trades."""

    engine: QuantEngine
    exchange: PaperExchange
    candles: Candles
    account_path: Path
    resumed: bool

    def trades_since(self, first_ms: int | None) -> list[Trade]:
        """The round trips closed from ``first_ms`` on: this run's, not an earlier run's."""
        if first_ms is None:
            return []
        return [t for t in self.engine.trades if t.exit_time.timestamp() * 1000 >= first_ms]


def open_paper_session(
    settings: Settings,
    database: Database,
    candles: Candles,
    *,
    account_path: Path,
    cash: float,
    scouts: ScoutSource | None = None,
    max_volume_share: float | None = None,
    kill_after_orders: int | None = None,
    replay_clock: bool = True,
) -> PaperSession:
    """Build the session; the caller has checked the database (nothing is written before)."""
    venue, pair = candles.key.exchange, candles.key.pair
    quote = pair.split("/")[1]
    resumed = account_path.exists()
    account_path.parent.mkdir(parents=True, exist_ok=True)
    exchange = PaperExchange(
        name=f"paper:{venue}", fees=settings.fees(venue), initial_balances={quote: cash},
        state_path=account_path, max_volume_share=max_volume_share,
        kill_after_orders=kill_after_orders,
    )  # fmt: skip
    sniper = SniperAgent(scouts=scouts)
    sniper.load(candles)
    engine = QuantEngine(
        settings=settings, database=database, exchange=exchange, sniper=sniper,
        config=EngineConfig(symbols=(pair,), exchange=venue, quote_currency=quote),
        handoff_path=settings.handoff_path, replay_clock=replay_clock,
    )  # fmt: skip
    return PaperSession(engine, exchange, candles, account_path, resumed)


def bars_of(candles: Candles, start_ms: int | None) -> Iterator[Bar]:
    """The file's bars from ``start_ms`` (an open time) on."""
    pair = candles.key.pair
    for i in range(len(candles)):
        ts = int(candles.timestamp[i])
        if start_ms is not None and ts < start_ms:
            continue
        yield Bar(
            pair, ts, float(candles.open[i]), float(candles.high[i]), float(candles.low[i]),
            float(candles.close[i]), float(candles.volume[i]),
        )  # fmt: skip


@dataclass
class ReplayResult:
    """What one walk over the bars did."""

    bars: int = 0
    first_ms: int | None = None
    last: Tick | None = None
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)


def replay_bars(
    session: PaperSession,
    bars: list[Bar],
    *,
    clock: ScoutClock | None,
    pace: bool,
    on_tick: Callable[[Tick], None] | None = None,
    stop: threading.Event | None = None,
    grace_s: float = DEFAULT_GRACE_S,
    wall: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
) -> ReplayResult:
    """Tick ``bars`` in order; Ctrl-C (or ``stop``) ends the walk with what was done.

    ``clock`` None: no scouts are read (the candles alone, as the backtest). ``pace``: wait for
    each bar's moment on the wall clock (``clock`` required).
    """
    if pace and clock is None:
        raise ValueError("a paced replay needs a scout clock")
    tf = timeframe_ms(session.candles.key.timeframe)
    result = ReplayResult()
    try:
        for bar in bars:
            close_ms = bar.ts_ms + tf
            if pace and clock is not None:
                due = clock.epoch_s(close_ms) + grace_s
                while (left := due - wall()) > 0:
                    if stop is not None and stop.wait(min(left, 0.5)):
                        return result
                    if stop is None:
                        sleep(min(left, 0.5))
            if stop is not None and stop.is_set():
                return result
            session.exchange.on_bar(bar)
            now = clock.at(close_ms) if clock is not None else None
            tick = session.engine.on_bar(bar, now)
            result.last = tick
            result.bars += 1
            if result.first_ms is None:
                result.first_ms = bar.ts_ms
            for event in tick.events:
                result.counts[event.kind] = result.counts.get(event.kind, 0) + 1
            if on_tick is not None:
                on_tick(tick)
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        session.exchange.flush()
    return result
