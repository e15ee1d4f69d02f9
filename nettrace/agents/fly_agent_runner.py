"""Which agents run in which region, and the process that runs them (seed: fly_agent_runner.py).

One process per region (DESIGN §1). The region comes from ``FLY_REGION`` (Fly.io sets it), else
from the settings; the region table (``nettrace.config.regions``) says whether it is the
primary -- the trading brain -- or a scout that watches exchanges near it. Agents not built yet
run as named placeholders that say so in the log: a placeholder never pretends to trade.

Imports stay light on purpose: the seed's one-line check and ``get_agents_for_region`` need
only the region table; ccxt, the scouts and the settings are imported when agents are built.

Run it as ``python -m nettrace.agents.fly_agent_runner``; SIGTERM or SIGINT stops every agent
(last started, first stopped) and the process exits 0 after logging ``fly_agent_runner_stopped``.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Final, Protocol

from nettrace.config.regions import Region, RegionConfigError, RegionTable, load_regions
from nettrace.observability.log import get_logger

if TYPE_CHECKING:
    from nettrace.config.settings import Settings
    from nettrace.scouts.stream import StreamFeed

#: DESIGN §1: the primary's agents, in start order: its API first (scouts push to it), then
#: the trading loop (``sniper``), then the agents of the WARM/HOT pipeline (placeholders).
PRIMARY_AGENTS: Final[tuple[str, ...]] = (
    "api",
    "sniper",
    "meta_engine",
    "advanced_team",
    "capital_allocator",
)
#: The primary's agents that do not exist yet: they run as named placeholders.
PLACEHOLDER_AGENTS: Final[frozenset[str]] = frozenset(
    {"meta_engine", "advanced_team", "capital_allocator"}
)
MONITOR_PREFIX: Final = "exchange_monitor:"
PRIMARY_URL_ENV: Final = "NETTRACE_PRIMARY_URL"
SCOUT_TOKEN_ENV: Final = "NETTRACE_SCOUT_TOKEN"  # noqa: S105 (the variable's name, not a secret)

_log = get_logger(__name__)


class UnknownRegionError(ValueError):
    """The process's region is not in the region table."""

    def __init__(self, region: str, configured: Sequence[str]) -> None:
        self.region = region
        self.configured = list(configured)
        super().__init__(
            f"unknown region {region!r}: configured regions are {', '.join(self.configured)} "
            "(add it to the regions file named by NETTRACE_REGIONS_FILE)"
        )


class RunnerConfigError(ValueError):
    """The region is known but something its agents need is missing (one-line message)."""


class Agent(Protocol):
    """What the runner runs: a named thing that starts without blocking and stops when told."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class PlaceholderAgent:
    """Stands in for an agent that does not exist yet; it runs nothing and says so."""

    def __init__(self, name: str, region: str) -> None:
        self._name = name
        self._region = region

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        _log.warning(
            "agent_placeholder_started",
            agent=self._name,
            region=self._region,
            note=f"agent {self._name!r} is not implemented yet; this placeholder does nothing",
        )

    def stop(self) -> None:
        _log.info("agent_placeholder_stopped", agent=self._name, region=self._region)


AgentFactory = Callable[["FlyAgentRunner"], list[Agent]]


class FlyAgentRunner:
    """The agents of one region and their lifecycle.

    ``region`` defaults to ``$FLY_REGION``, then to the settings' region; ``regions`` to the
    table from ``load_regions()``. ``agent_factory`` builds the agent objects (tests inject
    their own); by default the primary gets its API and trading loop
    (``agents.primary_trader``) and placeholders for the rest, a scout its exchange monitors
    plus the outbox pusher. Raises ``UnknownRegionError`` for a region not in the table.
    """

    def __init__(
        self,
        region: str | None = None,
        *,
        regions: RegionTable | None = None,
        agent_factory: AgentFactory | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._env = os.environ if env is None else env
        self.regions = regions if regions is not None else load_regions(env=self._env)
        self.region = _resolve_region(region, self._env)
        config = self.regions.get(self.region)
        if config is None:
            raise UnknownRegionError(self.region, self.regions.codes())
        self.config: Region = config
        self._agent_factory = agent_factory or _default_agents
        self._stop = threading.Event()
        # Set by the signal handler, which must touch nothing with a lock: it runs between
        # any two bytecodes of the main thread, maybe inside Event.wait holding its lock.
        self._signalled: str | None = None
        self._running: list[Agent] = []

    @property
    def role(self) -> str:
        """``primary`` or ``scout``."""
        return self.config.role

    @property
    def is_primary(self) -> bool:
        return self.config.role == "primary"

    def get_agents_for_region(self) -> list[str]:
        """The names of this region's agents (DESIGN §1), in start order."""
        if self.is_primary:
            return list(PRIMARY_AGENTS)
        return [f"{MONITOR_PREFIX}{watch.id}" for watch in self.config.exchanges]

    def build_agents(self) -> list[Agent]:
        return self._agent_factory(self)

    def request_stop(self) -> None:
        """Ask ``run`` to stop (what SIGTERM does), from another thread."""
        self._stop.set()

    def run(self, *, install_signal_handlers: bool = True) -> int:
        """Start every agent, block until asked to stop, stop them in reverse; exit code 0.

        An agent that fails to start stops the ones already started and re-raises: a region
        half-running would look alive while doing part of its job.
        """
        if install_signal_handlers:
            self._install_signal_handlers()
        agents = self.build_agents()
        _log.info(
            "fly_agent_runner_starting",
            region=self.region,
            role=self.role,
            agents=[agent.name for agent in agents],
        )
        try:
            for agent in agents:
                agent.start()
                self._running.append(agent)
            _log.info("fly_agent_runner_started", region=self.region, count=len(agents))
            while not self._stop.wait(timeout=0.2) and self._signalled is None:
                pass
            if self._signalled is not None:
                _log.info("fly_agent_runner_signal", signal=self._signalled)
        finally:
            self._stop_all()
        _log.info("fly_agent_runner_stopped", region=self.region, role=self.role)
        return 0

    def _stop_all(self) -> None:
        while self._running:
            agent = self._running.pop()
            try:
                agent.stop()
            except Exception:  # one agent's failure must not keep the others running
                _log.exception("agent_stop_failed", agent=agent.name)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may install handlers; the caller stops us instead

        def handler(signum: int, frame: FrameType | None) -> None:
            self._signalled = signal.Signals(signum).name

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def _resolve_region(region: str | None, env: Mapping[str, str]) -> str:
    if region is None:
        region = env.get("FLY_REGION") or None
    if region is None:
        from nettrace.config.settings import load_settings

        region = load_settings().region
    return region.strip().lower()


def _default_agents(runner: FlyAgentRunner) -> list[Agent]:
    from nettrace.config.settings import load_settings

    settings = load_settings()
    if runner.is_primary:
        return _primary_agents(runner, settings)
    return _scout_agents(runner, settings)


def _primary_agents(runner: FlyAgentRunner, settings: Settings) -> list[Agent]:
    from nettrace.agents.primary_trader import primary_agents

    try:
        real: dict[str, Agent] = {a.name: a for a in primary_agents(settings, runner._env)}
    except ValueError as exc:
        raise RunnerConfigError(str(exc)) from None
    return [
        real[name] if name in real else PlaceholderAgent(name, runner.region)
        for name in PRIMARY_AGENTS
    ]


def _scout_agents(runner: FlyAgentRunner, settings: Settings) -> list[Agent]:
    """One monitor per exchange sharing one mid board, one outbox and its pusher."""
    from nettrace.market.download import make_exchange
    from nettrace.market.replay import feed_from_env
    from nettrace.scouts.monitor import ExchangeMonitor, ExchangeMonitorAgent, MidBoard
    from nettrace.scouts.outbox import PUSH_PATH, Outbox, OutboxPusher

    primary = runner.regions.regions[runner.regions.primary]
    base = runner._env.get(PRIMARY_URL_ENV) or primary.url
    token = runner._env.get(SCOUT_TOKEN_ENV)
    if not base:
        raise RunnerConfigError(
            f"scout {runner.region} needs the primary's URL: set {PRIMARY_URL_ENV} or "
            f"regions.{runner.regions.primary}.url"
        )
    if not token:
        raise RunnerConfigError(
            f"scout {runner.region} needs its bearer token: set {SCOUT_TOKEN_ENV}"
        )
    try:  # NETTRACE_SCOUT_FEED=replay[:DIR]: replayed candles instead of live venues
        feed = feed_from_env(runner._env)
    except ValueError as exc:
        raise RunnerConfigError(str(exc)) from None
    data_dir: Path = settings.data_dir.expanduser()
    outbox = Outbox(
        data_dir / f"outbox-{runner.region}.db",
        region=runner.region,
        push_url=base.rstrip("/") + PUSH_PATH,
        token=token,
    )
    board = MidBoard()
    agents: list[Agent] = []
    for watch in runner.config.exchanges:
        exchange = (
            make_exchange(watch.id, timeout_ms=10_000)
            if feed is None
            else feed.exchange(watch.id, watch.symbols)
        )
        monitor = ExchangeMonitor(
            exchange,
            watch.symbols,
            region=runner.region,
            outbox=outbox,
            board=board,
            # Live venues stream over websockets where ccxt.pro can; replays have no sockets.
            stream=_stream_feed(watch.id, watch.symbols) if feed is None else None,
        )
        agents.append(ExchangeMonitorAgent(monitor))
    agents.append(OutboxPusher(outbox))
    return agents


def _stream_feed(exchange_id: str, symbols: Sequence[str]) -> StreamFeed | None:
    """A websocket feed (ccxt.pro) for a venue that offers one, else None: REST only."""
    from nettrace.scouts.stream import StreamFeed, has_stream

    if not has_stream(exchange_id):
        return None
    import ccxt.pro

    exchange = getattr(ccxt.pro, exchange_id)({"enableRateLimit": True, "timeout": 10_000})
    return StreamFeed(exchange, symbols)


def main(argv: Sequence[str] | None = None) -> int:
    """Run this region's agents until SIGTERM/SIGINT. Configuration errors exit 2, one line."""
    from nettrace.config.settings import SettingsError, load_settings
    from nettrace.observability.log import configure_logging

    try:
        settings = load_settings()
        configure_logging(settings.log_level, settings.log_format, settings.secret_values())
        runner = FlyAgentRunner()
        if runner.regions.primary != settings.primary_region:
            raise RunnerConfigError(
                f"PRIMARY_REGION is {settings.primary_region!r} but the region table's primary "
                f"is {runner.regions.primary!r}; they must agree"
            )
        return runner.run()
    except (SettingsError, RegionConfigError, UnknownRegionError, RunnerConfigError) as exc:
        print(f"fly_agent_runner: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
