"""Fixtures for the trading engine: a migrated database, a paper exchange, scripted strategies."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from nettrace.agents.quant_engine import EngineConfig, QuantEngine
from nettrace.agents.sniper import SniperAgent
from nettrace.config.settings import Settings
from nettrace.execution.paper import Bar, PaperExchange
from nettrace.market.candles import CandleKey, Candles, FloatArray
from nettrace.store.database import Database
from nettrace.store.migrate import upgrade
from nettrace.strategies.base import Strategy, StrategySignals

PAIR = "BTC/USD"
FIVE_MIN = 300_000
#: 2024-03-01 00:00 UTC: every scripted run stays inside one UTC day (288 five-minute bars).
DAY_START_MS = 1_709_251_200_000


def candles_from(
    closes: Sequence[float], *, spread: float = 0.002, volume: float = 1_000.0, pair: str = PAIR
) -> Candles:
    """Five-minute candles whose open is the previous close and whose range is ``spread``."""
    close = np.asarray(closes, dtype=np.float64)
    open_ = np.r_[close[0], close[:-1]]
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    n = len(close)
    return Candles(
        key=CandleKey("paper", pair, "5m"),
        timestamp=DAY_START_MS + FIVE_MIN * np.arange(n, dtype=np.int64),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=np.full(n, volume),
        synthetic=True,
    )


def bars_of(candles: Candles) -> list[Bar]:
    return [
        Bar(candles.key.pair, int(candles.timestamp[i]), float(candles.open[i]),
            float(candles.high[i]), float(candles.low[i]), float(candles.close[i]),
            float(candles.volume[i]))
        for i in range(len(candles))
    ]  # fmt: skip


@dataclass
class Scripted(Strategy):
    """A gated strategy that says exactly what the test scripts, bar by bar.

    ``entries`` / ``exits`` are bar indices; every bar carries ``confidence``, ``count`` agreeing
    signals, ``regime`` (+1/0/-1), a 5% expected move and an ATR of ``atr_fraction`` of price.
    """

    name: ClassVar[str] = "scripted"
    gated: ClassVar[bool] = True
    entries: frozenset[int] = frozenset()
    exits: frozenset[int] = frozenset()
    confidence: float | Sequence[float] = 0.9
    count: int | Sequence[int] = 3
    regime: int | Sequence[int] = 0
    atr_fraction: float = 0.01
    weights: Mapping[str, float] = field(default_factory=dict)

    def indicators(self, candles: Candles) -> dict[str, FloatArray]:
        return {}

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        n = len(candles)
        entry = np.zeros(n, dtype=np.bool_)
        exit_ = np.zeros(n, dtype=np.bool_)
        entry[[i for i in self.entries if i < n]] = True
        exit_[[i for i in self.exits if i < n]] = True
        return StrategySignals(
            entry=entry,
            exit=exit_,
            confidence=np.broadcast_to(np.asarray(self.confidence, dtype=np.float64), n).copy(),
            signal_count=np.broadcast_to(np.asarray(self.count, dtype=np.int64), n).copy(),
            regime=np.broadcast_to(np.asarray(self.regime, dtype=np.int8), n).copy(),
            expected_move=np.full(n, 0.05),
            atr=candles.close * self.atr_fraction,
        )


@dataclass
class Rig:
    """One engine with its paper exchange, database and files; ``restart`` builds a new engine
    (and exchange object) on the same files, as a restarted process would."""

    settings: Settings
    database: Database
    state_path: Path
    strategy: Strategy
    candles: Candles | list[Candles]
    balances: dict[str, float]
    handoff: Path | None = None
    max_volume_share: float | None = None
    engine: QuantEngine = field(init=False)
    exchange: PaperExchange = field(init=False)

    def __post_init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        self.exchange = PaperExchange(
            fees=self.settings.fees("paper"), initial_balances=self.balances,
            state_path=self.state_path, max_volume_share=self.max_volume_share,
        )  # fmt: skip
        agent = SniperAgent(self.strategy)
        every = self.candles if isinstance(self.candles, list) else [self.candles]
        for candles in every:
            agent.load(candles)
        symbols = tuple(c.key.pair for c in every)
        self.engine = QuantEngine(
            settings=self.settings, database=self.database, exchange=self.exchange,
            sniper=agent, config=EngineConfig(symbols=symbols), handoff_path=self.handoff,
        )  # fmt: skip

    def tick(self, bar: Bar):  # type: ignore[no-untyped-def]
        self.exchange.on_bar(bar)
        return self.engine.on_bar(bar)


RigFactory = Callable[..., Rig]


def fresh_sqlite() -> Database:
    """A migrated SQLite database of its own (for a hypothesis example: one per example)."""
    url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='nettrace-')) / 'n.db'}"
    upgrade(url)
    return Database(url)


def assert_ledger_clean(database: Database) -> None:
    """The ledger audit (issue 10) over what an engine stored: no money invariant broken."""
    from nettrace.execution.audit import audit_ledger

    report = audit_ledger(database, primary_region="ewr")
    assert report.clean, [f"{b.kind}: {b.subject}: {b.message}" for b in report.breaches]


def _factory(
    default_db: Callable[[], Database], tmp_path: Path, built: list[Rig] | None = None
) -> RigFactory:
    counter = iter(range(10_000))

    def build(
        strategy: Strategy,
        candles: Candles | list[Candles],
        *,
        balances: dict[str, float] | None = None,
        region: str = "ewr",
        handoff: Path | None = None,
        max_volume_share: float | None = None,
        **overrides: object,
    ) -> Rig:
        """``overrides``: settings for this rig (e.g. ``hardstop_action="flatten"``)."""
        made = Rig(
            settings=Settings(region=region, primary_region="ewr", **overrides),  # type: ignore[arg-type]
            database=default_db(),
            state_path=tmp_path / f"paper-{next(counter)}.json",
            strategy=strategy,
            candles=candles,
            balances=balances or {"USD": 10_000.0},
            handoff=handoff,
            max_volume_share=max_volume_share,
        )
        if built is not None:
            built.append(made)
        return made

    return build


@pytest.fixture
def rig(migrated_db: Database, tmp_path: Path) -> Iterator[RigFactory]:
    """Build a ``Rig`` on the test's migrated database (SQLite and PostgreSQL); when the test
    is done, the ledger audit runs over what its engines stored."""
    built: list[Rig] = []
    yield _factory(lambda: migrated_db, tmp_path, built)
    if built:
        assert_ledger_clean(migrated_db)


@pytest.fixture
def fresh_rig(tmp_path: Path) -> Iterator[RigFactory]:
    """Build each ``Rig`` on a new SQLite database: one per hypothesis example (each audited
    when the test is done)."""
    built: list[Rig] = []
    yield _factory(fresh_sqlite, tmp_path, built)
    for made in built:
        assert_ledger_clean(made.database)
