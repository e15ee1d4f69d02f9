"""The primary region's working agents: its API (``api``) and its trading loop (``sniper``).

``FlyAgentRunner`` in the primary runs these two for real; ``meta_engine``, ``advanced_team``
and ``capital_allocator`` stay named placeholders until the WARM/HOT pipeline exists.

- ``ApiAgent`` runs ``nettrace serve`` as a child process -- the very server a developer
  runs, with its JSON error answers -- on ``NETTRACE_API_HOST``:``NETTRACE_API_PORT``. A child
  rather than a thread: the server and the trading loop each get an interpreter lock of
  their own, so a slow request never delays a tick, and a stop is a plain SIGTERM.
- ``TradingAgent`` trades paper on a replay of ``NETTRACE_TRADE_SYMBOL`` (the candles the
  scouts replay for it, on their shared replay clock), reading the scouts' pushes from the
  same database the API writes (``StoredScouts``). Each bar is decided at the wall moment it
  closes on that clock; bars already past when it starts are history. What it trades and on
  which schedule goes to ``<data_dir>/trading.json``, so ``nettrace run --replay FILE --start
  ... --anchor ... --speed ...`` can replay the run over the same database and make the same
  trades. A live feed on the primary is the live-path issue's: ``live`` is refused here.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from nettrace.observability.log import get_logger

if TYPE_CHECKING:
    from nettrace.agents.trading_loop import PaperSession, ReplayResult
    from nettrace.config.settings import Settings
    from nettrace.store.database import Database

__all__ = ["ApiAgent", "TradingAgent", "TradingPlan"]

API_HOST_ENV: Final = "NETTRACE_API_HOST"
API_PORT_ENV: Final = "NETTRACE_API_PORT"
TRADE_SYMBOL_ENV: Final = "NETTRACE_TRADE_SYMBOL"
TRADE_FEED_ENV: Final = "NETTRACE_TRADE_FEED"
TRADE_CASH_ENV: Final = "NETTRACE_TRADE_CASH"
DEFAULT_SYMBOL: Final = "BTC/USD"
PLAN_FILE: Final = "trading.json"

_log = get_logger(__name__)


class ApiAgent:
    """``nettrace serve`` as a supervised child process."""

    name = "api"

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self.host = env.get(API_HOST_ENV) or "127.0.0.1"
        self.port = int(env.get(API_PORT_ENV) or "8080")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable, "-m", "nettrace", "serve", "--host", self.host, "--port",
            str(self.port),
        ]  # fmt: skip
        # Output goes where the runner's goes (its log): one process tree, one log.
        self._process = subprocess.Popen(command, env=self._env)  # noqa: S603 - our own argv
        _log.info("api_started", host=self.host, port=self.port, pid=self._process.pid)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5.0)
        _log.info("api_stopped", pid=process.pid)


class TradingPlan(dict[str, Any]):
    """What ``trading.json`` holds: file, symbol, first traded bar, anchor, speed."""


class TradingAgent:
    """The primary's paper trading loop on the scouts' replay clock (module docstring)."""

    name = "sniper"

    def __init__(self, settings: Settings, env: Mapping[str, str]) -> None:
        from nettrace.market.replay import SCOUT_FEED_ENV, feed_from_env

        self.settings = settings
        self.symbol = env.get(TRADE_SYMBOL_ENV) or DEFAULT_SYMBOL
        spec = env.get(TRADE_FEED_ENV) or env.get(SCOUT_FEED_ENV) or "live"
        feed = feed_from_env({**env, SCOUT_FEED_ENV: spec})
        if feed is None:
            raise ValueError(
                f"{TRADE_FEED_ENV}={spec!r}: the primary's trading loop runs on a replay "
                "(replay or replay:DIR) in this release; a live feed belongs to `nettrace run "
                "--exchange ... --symbol ...`"
            )
        self.feed = feed
        self.cash = float(env.get(TRADE_CASH_ENV) or "10000")
        if not (math.isfinite(self.cash) and self.cash > 0):
            raise ValueError(f"{TRADE_CASH_ENV} must be a positive number")
        self.data_dir = settings.data_dir.expanduser()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._database: Database | None = None
        self.result: ReplayResult | None = None
        self.plan: TradingPlan | None = None
        self.failed: str | None = None

    def start(self) -> None:
        from nettrace.agents.scout_source import ScoutClock, StoredScouts
        from nettrace.agents.trading_loop import bars_of, open_paper_session
        from nettrace.market.candles import timeframe_ms
        from nettrace.market.replay import MAX_LAG_S, load_replay_source
        from nettrace.store.database import Database

        source = load_replay_source(self.symbol, self.feed.data_dir)
        candles = source.candles
        anchor = self.feed.anchor if self.feed.anchor is not None else time.time()
        # The scouts' replay: the file's first bar + MAX_LAG_S is market time at ``anchor``.
        market = ScoutClock(
            anchor, int(candles.timestamp[0]) + int(MAX_LAG_S * 1000), self.feed.speed
        )
        tf = timeframe_ms(candles.key.timeframe)
        now = time.time()
        bars = [b for b in bars_of(candles, None) if market.epoch_s(b.ts_ms + tf) >= now]
        if not bars:
            raise ValueError(f"the replay of {source.origin} is already past its last bar")
        first_close = bars[0].ts_ms + tf
        clock = ScoutClock(market.epoch_s(first_close), first_close, self.feed.speed)
        self._database = Database(self.settings.resolved_database_url(), checkpoint_on_commit=False)
        scouts = StoredScouts(
            self._database,
            stale_after_s=self.settings.api_stale_after_s,
            max_ttl_s=self.settings.api_max_ttl_s,
        )
        venue = candles.key.exchange
        account = self.data_dir / "paper" / f"{venue}_{self.symbol.replace('/', '-')}.json"
        session = open_paper_session(
            self.settings, self._database, candles, account_path=account, cash=self.cash,
            scouts=scouts,
        )  # fmt: skip
        where = self.feed.data_dir
        self.plan = TradingPlan(
            file=source.origin,
            path=None if source.synthetic or where is None else str(where / source.origin),
            symbol=self.symbol,
            exchange=venue,
            timeframe=candles.key.timeframe,
            synthetic=source.synthetic,
            start_ms=bars[0].ts_ms,
            anchor=clock.anchor_s,
            speed=clock.speed,
            account=str(account),
        )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / PLAN_FILE).write_text(json.dumps(self.plan, indent=2), encoding="utf-8")
        _log.info("primary_trading_started", **self.plan)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(session, bars, clock), name="sniper", daemon=True
        )
        self._thread.start()

    def _run(self, session: PaperSession, bars: list[Any], clock: Any) -> None:
        from nettrace.agents.trading_loop import replay_bars

        def logged(tick: Any) -> None:
            for event in tick.events:
                _log.info("trading_event", kind=event.kind, symbol=event.symbol, text=event.text)

        try:
            self.result = replay_bars(
                session, bars, clock=clock, pace=True, on_tick=logged, stop=self._stop
            )
        except Exception as exc:  # the loop's end must be visible, never a silent thread
            self.failed = f"{type(exc).__name__}: {exc}"
            _log.exception("primary_trading_failed")
            return
        _log.info(
            "primary_trading_stopped",
            bars=self.result.bars,
            state=session.engine.state.value,
            equity=self.result.last.equity if self.result.last is not None else None,
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30.0)
            self._thread = None
        if self._database is not None:
            self._database.dispose()
            self._database = None


def primary_agents(settings: Settings, env: Mapping[str, str] | None = None) -> list[Any]:
    """The primary's real agents, in start order: the API first, so scouts can push.

    With no replay feed (``NETTRACE_TRADE_FEED``/``NETTRACE_SCOUT_FEED`` unset or ``live``)
    the trading loop is left out -- the runner shows it as a placeholder -- because a live
    paper loop on the primary is the live path's issue; a malformed feed raises ``ValueError``.
    """
    from nettrace.market.replay import SCOUT_FEED_ENV

    environ = os.environ if env is None else env
    agents: list[Any] = [ApiAgent(environ)]
    spec = (environ.get(TRADE_FEED_ENV) or environ.get(SCOUT_FEED_ENV) or "live").strip()
    if spec != "live":
        agents.append(TradingAgent(settings, environ))
    else:
        _log.warning(
            "primary_trading_not_started",
            note=f"{TRADE_FEED_ENV} is live: the primary serves signals but trades only on a "
            "replay in this release (nettrace run trades paper on a live feed)",
        )
    return agents


def read_plan(data_dir: Path) -> dict[str, Any] | None:
    """The primary's ``trading.json`` (``None`` when it has not started trading)."""
    path = data_dir / PLAN_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None
