"""Benchmark: tick -> order request latency of the quant engine, in process (DESIGN §5).

DESIGN §5: "Decision path (tick -> order request), in process: p99 under a millisecond."
What is timed, per closed bar (tick), is ``QuantEngine.on_bar(bar)`` fed exactly as
``nettrace paper`` feeds it (``PaperExchange.on_bar(bar)`` first, then the engine). The engine
gets the paper exchange through a thin proxy whose ``create_order`` takes
``time.perf_counter()`` on entry and then delegates, so the exchange's own work on the order
is excluded by definition. Only ticks that send at least one order count:

* **tick -> order**: from the start of ``engine.on_bar`` to the entry of the tick's *first*
  ``create_order`` (the order request leaving the engine);
* **engine only**: the same minus the time spent inside other exchange calls before it
  (``fetch_open_orders`` / ``fetch_order`` / ``fetch_my_trades`` / ``cancel_order`` of the
  sync and manage steps) -- the in-process figure with *all* of the venue excluded; this is
  the one held against the 1 ms target;
* **whole tick**: all of ``engine.on_bar`` (every tick, and the ordering ticks alone), with and
  without the time inside the exchange.

Two workloads (``--mode``):

* ``real``: the default ``Sniper`` on a real candle file from ../shared/data (the 1-minute
  file with the most approved entry candidates, unless ``--file``): real decisions, few orders;
* ``frequent``: the same engine, rules, risk controller and order path, but the strategy is a
  benchmark-only ``Sniper`` subclass whose signals want an entry on *every* bar (and an exit on
  every bar while long) with confidence 0.99 from 5 agreeing generators, regime uptrend and an
  expected move of 2%, so that the GoalValidator approves (the law is not loosened) and nearly
  every tick sends an order. Its prices, ATR, sizing, stops and fills are real; its trading
  results mean nothing.

Each workload runs on SQLite (a WAL file database in a temp dir, the default install) and on
PostgreSQL (``--database-url``: a throw-away database is created, migrated with
``nettrace.store.migrate.upgrade`` and dropped afterwards; skipped with a printed reason when
the server cannot be reached). A ``HANDOFF.md`` without a HARDSTOP line is configured, as a
deployment would (``--no-handoff`` to leave it out). The paper venue keeps its account in
memory (no ``state_path``): its JSON persistence is the simulated exchange's cost, not the
engine's.

A second, instrumented run of each workload and database splits the decision path into where
its time goes (decision recording, order insert, approval lookup, latch read, HANDOFF read,
COMMITs, ...) by wrapping those functions in this process (nothing in ``nettrace/`` changes);
its wrappers cost ~1 us per call, so its totals read slightly above the timed run's.
``--cprofile N`` adds a third run under cProfile and prints its top N functions.

The target is held against SQLite, the database *in process* (DESIGN §5: "in process"; the
default install). With PostgreSQL the order's durable transaction is a conversation with
another process that ends in the server's own WAL flush, so the same run also measures that
floor with no engine at all (``PostgreSQL floor``: an empty transaction, and one small row
inserted and committed, on a plain psycopg connection): no engine code can go under it, and
the PostgreSQL rows are printed beside it, for information.

Exits 0 when every SQLite engine-only p99 is under the target, 1 when one is not, 2 if the
data set is missing.

    python benchmarks/tick_to_order.py [--mode real|frequent|both] [--file PATH] [--bars N]
        [--frequent-bars N] [--database-url postgresql://postgres@127.0.0.1:5432/test]
        [--no-postgres] [--no-breakdown] [--cprofile N [--cprofile-path]] [--json OUT]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import shlex
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import numpy as np
import pyarrow.parquet as pq
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

import nettrace.agents.quant_engine as quant_engine_module
import nettrace.execution.hardstop as hardstop_module
import nettrace.execution.orders as orders_module
from nettrace.agents.agent_goals import GoalValidator
from nettrace.agents.quant_engine import EngineConfig, QuantEngine
from nettrace.agents.risk_controller import RiskController
from nettrace.agents.sniper import SniperAgent
from nettrace.config.settings import Settings
from nettrace.execution.exchange import ExchangeOrder, ExchangeTrade, OrderRequest
from nettrace.execution.hardstop import HardstopGuard
from nettrace.execution.paper import Bar, PaperExchange
from nettrace.execution.portfolio import Portfolio
from nettrace.market.candles import Candles, FloatArray
from nettrace.market.shared_data import shared_data_dir
from nettrace.market.store import load_candles
from nettrace.observability.log import configure_logging
from nettrace.store.compiled import CompiledInsert, HeldConnection
from nettrace.store.database import Database
from nettrace.store.decisions import DecisionStore
from nettrace.store.fills import FillStore
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.migrate import upgrade
from nettrace.store.orders import OrderStore
from nettrace.store.snapshots import SnapshotStore
from nettrace.strategies.base import StrategySignals
from nettrace.strategies.sniper import Sniper

TARGET_P99_MS = 1.0
#: The real file with the most approved entry candidates of the default Sniper (scanned once
#: over every 5m and 1m file in ../shared/data; ~1,000 candidates in 55,918 bars).
DEFAULT_FILE = "bittrex_ETH-BTC_1m.parquet"
#: Ticks at the start of each run that are not counted (the first one runs ``start()``).
WARMUP_TICKS = 50
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
HANDOFF_TEXT = "# HANDOFF\n\nStatus: trading normally.\n\n- primary: ewr\n- no open incidents\n"


# --------------------------------------------------------------------------------------------
# The frequent-entry strategy (benchmark only)
# --------------------------------------------------------------------------------------------


class FrequentSniper(Sniper):
    """The Sniper's indicators (so ATR, regime inputs and votes are real), signals overridden.

    Every bar wants an entry (and, while long, an exit), with confidence 0.99 from 5 agreeing
    generators in an uptrend and a 2% expected move: the GoalValidator approves entries under
    the unchanged law, the risk controller sizes them on the real ATR, and rule 1 still refuses
    exits at a loss. Benchmark-only: a load generator for the order path, not a strategy.
    """

    name: ClassVar[str] = "sniper-frequent (benchmark)"
    CONFIDENCE: ClassVar[float] = 0.99
    SIGNAL_COUNT: ClassVar[int] = 5
    EXPECTED_MOVE: ClassVar[float] = 0.02

    def signals(self, candles: Candles, indicators: Mapping[str, FloatArray]) -> StrategySignals:
        base = super().signals(candles, indicators)
        n = len(candles)
        return StrategySignals(
            entry=np.ones(n, dtype=bool),
            exit=np.ones(n, dtype=bool),
            confidence=np.full(n, self.CONFIDENCE),
            signal_count=np.full(n, self.SIGNAL_COUNT, dtype=np.int64),
            regime=np.ones(n, dtype=np.int8),
            expected_move=np.full(n, self.EXPECTED_MOVE),
            atr=base.atr,
        )


# --------------------------------------------------------------------------------------------
# The timing proxy
# --------------------------------------------------------------------------------------------


class TimingExchange:
    """Delegates to the paper exchange; notes the first ``create_order`` of each tick and the
    time spent inside every exchange call (before that order, and over the whole tick)."""

    def __init__(self, inner: PaperExchange) -> None:
        self._inner = inner
        self.name = inner.name
        self.tick_start = 0.0
        self.first_order_at: float | None = None
        self.first_order_kind = ""
        self.orders_this_tick = 0
        self.exchange_before_order = 0.0
        self.exchange_in_tick = 0.0
        self.on_first_order: Callable[[float], None] | None = None
        #: SQL statements and COMMITs so far this tick (fed by engine events), and at the order.
        self.sql = 0
        self.commits = 0
        self.sql_before_order = 0
        self.commits_before_order = 0

    def begin_tick(self) -> None:
        self.first_order_at = None
        self.first_order_kind = ""
        self.orders_this_tick = 0
        self.exchange_before_order = 0.0
        self.exchange_in_tick = 0.0
        self.sql = self.commits = 0
        self.tick_start = time.perf_counter()

    def create_order(self, request: OrderRequest) -> ExchangeOrder:
        now = time.perf_counter()
        if self.first_order_at is None:
            self.first_order_at = now
            self.first_order_kind = f"{request.kind} {request.side.value}"
            self.exchange_before_order = self.exchange_in_tick
            self.sql_before_order = self.sql
            self.commits_before_order = self.commits
            if self.on_first_order is not None:
                self.on_first_order(now)
        self.orders_this_tick += 1
        try:
            return self._inner.create_order(request)
        finally:
            self.exchange_in_tick += time.perf_counter() - now

    def _call(self, name: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return getattr(self._inner, name)(*args)
        finally:
            self.exchange_in_tick += time.perf_counter() - start

    def cancel_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        return cast(ExchangeOrder, self._call("cancel_order", client_order_id, symbol))

    def fetch_order(self, client_order_id: str, symbol: str) -> ExchangeOrder:
        return cast(ExchangeOrder, self._call("fetch_order", client_order_id, symbol))

    def fetch_open_orders(self, symbol: str | None = None) -> list[ExchangeOrder]:
        return cast(list[ExchangeOrder], self._call("fetch_open_orders", symbol))

    def fetch_my_trades(self, symbol: str | None = None, since_ms: int = 0) -> list[ExchangeTrade]:
        return cast(list[ExchangeTrade], self._call("fetch_my_trades", symbol, since_ms))

    def fetch_balance(self) -> dict[str, float]:
        return cast(dict[str, float], self._call("fetch_balance"))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


# --------------------------------------------------------------------------------------------
# Breakdown: exclusive time per component, by wrapping functions in this process only
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Frame:
    label: str
    start: float
    child: float = 0.0


class Breakdown:
    """Exclusive time per labelled function, split into the decision path and the whole tick.

    Wrapped functions nest: a frame's exclusive time excludes its labelled children. SQLAlchemy
    internals (flush, COMMIT) are labelled under the innermost engine-level frame around them.
    """

    OTHER = "engine Python (unlabelled: on_bar, sync, manage, decide, portfolio, events)"

    def __init__(self) -> None:
        self._stack: list[_Frame] = []
        self._tick: defaultdict[str, float] = defaultdict(float)
        self._tick_calls: defaultdict[str, int] = defaultdict(int)
        self._at_order: dict[str, float] | None = None
        self._calls_at_order: dict[str, int] = {}
        self.path: defaultdict[str, float] = defaultdict(float)
        self.whole: defaultdict[str, float] = defaultdict(float)
        self.path_calls: defaultdict[str, int] = defaultdict(int)
        self.whole_calls: defaultdict[str, int] = defaultdict(int)
        self.path_ticks = 0
        self.whole_ticks = 0
        self.path_total = 0.0
        self.whole_total = 0.0
        self._undo: list[tuple[Any, str, Any]] = []
        self.active = False

    def wrap(self, owner: Any, attr: str, label: str, *, nested: bool = False) -> None:
        original = owner.__dict__[attr]
        func = original.__func__ if isinstance(original, staticmethod) else original
        breakdown = self

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not breakdown.active:
                return func(*args, **kwargs)
            name = label
            if nested:
                parent = breakdown._stack[-1].label if breakdown._stack else "engine"
                name = f"{parent.split(' > ')[0]} > {label}"
            frame = _Frame(name, time.perf_counter())
            breakdown._stack.append(frame)
            try:
                return func(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - frame.start
                breakdown._stack.pop()
                breakdown._tick[name] += elapsed - frame.child
                breakdown._tick_calls[name] += 1
                if breakdown._stack:
                    breakdown._stack[-1].child += elapsed

        wrapper.__wrapped__ = func  # type: ignore[attr-defined]
        setattr(
            owner, attr, staticmethod(wrapper) if isinstance(original, staticmethod) else wrapper
        )
        self._undo.append((owner, attr, original))

    def restore(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()

    def begin_tick(self) -> None:
        self._tick = defaultdict(float)
        self._tick_calls = defaultdict(int)
        self._at_order = None
        self._stack = []

    def first_order(self, now: float) -> None:
        """Snapshot the exclusive times so far, open frames included up to ``now``."""
        snap = dict(self._tick)
        for i, frame in enumerate(self._stack):
            end = self._stack[i + 1].start if i + 1 < len(self._stack) else now
            snap[frame.label] = snap.get(frame.label, 0.0) + (end - frame.start) - frame.child
        self._at_order = snap
        self._calls_at_order = dict(self._tick_calls)

    def end_tick(self, path_seconds: float | None, tick_seconds: float, count: bool) -> None:
        if not count:
            return
        self._add(self.whole, self._tick, tick_seconds)
        for name, n in self._tick_calls.items():
            self.whole_calls[name] += n
        self.whole_ticks += 1
        self.whole_total += tick_seconds
        if path_seconds is not None and self._at_order is not None:
            self._add(self.path, self._at_order, path_seconds)
            for name, n in self._calls_at_order.items():
                self.path_calls[name] += n
            self.path_ticks += 1
            self.path_total += path_seconds

    def _add(self, into: defaultdict[str, float], times: Mapping[str, float], total: float) -> None:
        labelled = 0.0
        for name, seconds in times.items():
            into[name] += seconds
            labelled += seconds
        into[self.OTHER] += max(0.0, total - labelled)


def instrument(breakdown: Breakdown) -> None:
    """Wrap the components of the tick path (this process only; restored afterwards)."""
    from sqlalchemy.engine.base import Connection
    from sqlalchemy.orm.session import Session

    wrap = breakdown.wrap
    wrap(DecisionStore, "record", "decision record (DecisionStore.record)")
    wrap(OrderStore, "create", "order create (OrderStore.create: INSERT order+transition)")
    wrap(OrderStore, "get", "order idempotency lookup (OrderStore.get: SELECT)")
    wrap(OrderStore, "_require_approved", "approval lookup (OrderStore._require_approved)")
    wrap(OrderStore, "_apply_once", "order transition (OrderStore.apply: SELECT+UPDATE+INSERT)")
    wrap(OrderStore, "in_states", "order list (OrderStore.in_states: SELECT)")
    wrap(HardstopLatch, "state", "hardstop latch read (HardstopLatch.state: SELECT)")
    wrap(hardstop_module, "handoff_says_hardstop", "HANDOFF.md read (handoff_says_hardstop)")
    wrap(SnapshotStore, "record", "snapshot write (SnapshotStore.record)")
    wrap(FillStore, "record", "fill record (FillStore.record)")
    wrap(SniperAgent, "view", "sniper view (SniperAgent.view)")
    wrap(GoalValidator, "evaluate", "GoalValidator rules (excl. its record)")
    wrap(RiskController, "position_size", "risk controller (size, thresholds)")
    wrap(RiskController, "goal_thresholds", "risk controller (size, thresholds)")
    wrap(Portfolio, "snapshot", "portfolio snapshot build (Portfolio.snapshot)")
    wrap(quant_engine_module, "decision_values", "decision audit row (decision_values)")
    wrap(quant_engine_module, "decide_entry", "entry plan (decide_entry, excl. rules/sizing)")
    wrap(QuantEngine, "_sync", "order sync (QuantEngine._sync, excl. exchange)")
    wrap(HardstopGuard, "tick", "hardstop check (HardstopGuard.tick)")
    wrap(Portfolio, "equity", "portfolio equity (Portfolio.equity)")
    wrap(orders_module, "client_order_id", "client order id (client_order_id)")
    wrap(CompiledInsert, "execute", "INSERT statements", nested=True)
    wrap(CompiledInsert, "execute_many", "INSERT statements", nested=True)
    wrap(Session, "flush", "ORM flush (INSERT/UPDATE)", nested=True)
    wrap(Connection, "_commit_impl", "COMMIT", nested=True)
    wrap(TimingExchange, "_call", "paper exchange calls (excluded from 'engine only')")
    wrap(TimingExchange, "create_order", "paper exchange calls (excluded from 'engine only')")


@contextmanager
def count_driver_sql(proxy: TimingExchange) -> Iterator[None]:
    """Count the statements and COMMITs that go straight to the driver (``store.compiled``:
    the order-creation transaction), which SQLAlchemy's engine events never see. A counter
    increment per call, in the timed run too: well under a microsecond per order."""
    execute, execute_many = CompiledInsert.execute, CompiledInsert.execute_many
    run = HeldConnection.run

    def counted_execute(self: CompiledInsert, cursor: Any, values: Mapping[str, Any]) -> Any:
        proxy.sql += 1
        return execute(self, cursor, values)

    def counted_many(self: CompiledInsert, cursor: Any, rows: Any) -> None:
        proxy.sql += 1
        execute_many(self, cursor, rows)

    def counted_run(self: HeldConnection, body: Callable[[Any], Any]) -> Any:
        result = run(self, body)
        proxy.commits += 1
        return result

    CompiledInsert.execute = counted_execute  # type: ignore[method-assign]
    CompiledInsert.execute_many = counted_many  # type: ignore[method-assign]
    HeldConnection.run = counted_run  # type: ignore[method-assign]
    try:
        yield
    finally:
        CompiledInsert.execute = execute  # type: ignore[method-assign]
        CompiledInsert.execute_many = execute_many  # type: ignore[method-assign]
        HeldConnection.run = run  # type: ignore[method-assign]


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


@contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    url = f"sqlite:///{workdir / 'nettrace.db'}"
    upgrade(url)
    yield url


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    admin = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"nettrace_t2o_{uuid.uuid4().hex[:10]}"
    admin_engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin_engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


def postgres_floor(url: str, rounds: int = 2000) -> dict[str, dict[str, float]]:
    """What a PostgreSQL transaction costs here with no engine: round trips and the server's
    WAL flush. Measured on a plain psycopg connection to ``url`` (a throw-away database)."""
    import psycopg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    floors: dict[str, list[float]] = {"empty transaction (SELECT 1, COMMIT)": [],
                                      "one-row INSERT + COMMIT": []}  # fmt: skip
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE bench_floor (id serial PRIMARY KEY, note text)")
        conn.commit()
        empty, insert = floors.values()
        for _ in range(rounds):
            start = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            conn.commit()
            empty.append((time.perf_counter() - start) * 1e3)
            start = time.perf_counter()
            conn.execute("INSERT INTO bench_floor (note) VALUES (%s)", ("x" * 200,))
            conn.commit()
            insert.append((time.perf_counter() - start) * 1e3)
    return {name: stats(values[WARMUP_TICKS:]) for name, values in floors.items()}


def postgres_reachable(admin_url: str) -> str | None:
    """None if a database can be created there, else the reason it cannot."""
    try:
        admin = make_url(admin_url).set(drivername="postgresql+psycopg")
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


# --------------------------------------------------------------------------------------------
# One run
# --------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    mode: str
    backend: str
    bars: int
    counted_ticks: int
    path_ms: list[float] = field(default_factory=list)
    path_engine_ms: list[float] = field(default_factory=list)
    order_tick_ms: list[float] = field(default_factory=list)
    order_tick_engine_ms: list[float] = field(default_factory=list)
    tick_ms: list[float] = field(default_factory=list)
    tick_engine_ms: list[float] = field(default_factory=list)
    first_kinds: dict[str, int] = field(default_factory=dict)
    sql_before_order: list[int] = field(default_factory=list)
    commits_before_order: list[int] = field(default_factory=list)
    sql_per_tick: list[int] = field(default_factory=list)
    commits_per_tick: list[int] = field(default_factory=list)
    orders: int = 0
    round_trips: int = 0
    halted: bool = False
    seconds: float = 0.0
    #: ``--cprofile-path``: the decision path's profile over the ticks that sent an order.
    path_stats: pstats.Stats | None = None


def bars_of(candles: Candles) -> list[Bar]:
    pair = candles.key.pair
    return [
        Bar(pair, int(t), float(o), float(h), float(lo), float(c), float(v))
        for t, o, h, lo, c, v in zip(
            candles.timestamp,
            candles.open,
            candles.high,
            candles.low,
            candles.close,
            candles.volume,
            strict=True,
        )
    ]


def run_once(
    mode: str,
    backend: str,
    url: str,
    candles: Candles,
    agent: SniperAgent,
    workdir: Path,
    handoff: bool,
    breakdown: Breakdown | None = None,
    profiler: cProfile.Profile | None = None,
    profile_path_only: bool = False,
) -> RunResult:
    settings = Settings(region="ewr")
    pair = candles.key.pair
    quote = pair.split("/")[1]
    paper = PaperExchange(initial_balances={quote: 10_000.0}, fees=settings.fees("paper"))
    proxy = TimingExchange(paper)
    handoff_path = None
    if handoff:
        handoff_path = workdir / "HANDOFF.md"
        handoff_path.write_text(HANDOFF_TEXT)
    database = Database(url, checkpoint_on_commit=False)  # as `nettrace run` opens it

    def on_sql(*_: Any) -> None:
        proxy.sql += 1

    def on_commit(*_: Any) -> None:
        proxy.commits += 1

    event.listen(database.engine, "before_cursor_execute", on_sql)
    event.listen(database.engine, "commit", on_commit)
    driver_sql = count_driver_sql(proxy)  # the order's own transaction skips those events
    driver_sql.__enter__()
    engine = QuantEngine(
        settings=settings,
        database=database,
        exchange=proxy,
        sniper=agent,
        config=EngineConfig(symbols=(pair,), quote_currency=quote),
        handoff_path=handoff_path,
    )
    bars = bars_of(candles)
    result = RunResult(mode, backend, len(bars), 0)
    kinds: defaultdict[str, int] = defaultdict(int)
    if breakdown is not None:
        proxy.on_first_order = breakdown.first_order
        breakdown.active = True
    path_profile = PathProfile() if profiler is not None and profile_path_only else None
    if path_profile is not None:
        proxy.on_first_order = path_profile.first_order
    perf = time.perf_counter
    gc.collect()
    gc.freeze()  # as `nettrace run` does before its loop (see nettrace/cli/run.py)
    started = perf()
    try:
        for i, bar in enumerate(bars):
            paper.on_bar(bar)
            if breakdown is not None:
                breakdown.begin_tick()
            if path_profile is not None:
                path_profile.begin_tick()
            elif profiler is not None:
                profiler.enable()
            proxy.begin_tick()
            engine.on_bar(bar)
            end = perf()
            if path_profile is not None:
                path_profile.end_tick()
            elif profiler is not None:
                profiler.disable()
            tick = end - proxy.tick_start
            counted = i >= WARMUP_TICKS
            path = None
            if proxy.first_order_at is not None:
                path = proxy.first_order_at - proxy.tick_start
            if breakdown is not None:
                breakdown.end_tick(path, tick, counted)
            result.orders += proxy.orders_this_tick
            if not counted:
                continue
            result.counted_ticks += 1
            result.tick_ms.append(tick * 1e3)
            result.tick_engine_ms.append((tick - proxy.exchange_in_tick) * 1e3)
            result.sql_per_tick.append(proxy.sql)
            result.commits_per_tick.append(proxy.commits)
            if path is not None:
                result.path_ms.append(path * 1e3)
                result.path_engine_ms.append((path - proxy.exchange_before_order) * 1e3)
                result.order_tick_ms.append(tick * 1e3)
                result.order_tick_engine_ms.append((tick - proxy.exchange_in_tick) * 1e3)
                kinds[proxy.first_order_kind] += 1
                result.sql_before_order.append(proxy.sql_before_order)
                result.commits_before_order.append(proxy.commits_before_order)
    finally:
        if breakdown is not None:
            breakdown.active = False
        result.seconds = perf() - started
        result.first_kinds = dict(kinds)
        result.round_trips = len(engine.round_trips)
        result.halted = engine.state.value == "halted"
        result.path_stats = path_profile.stats if path_profile is not None else None
        driver_sql.__exit__(None, None, None)
        database.dispose()
    return result


# --------------------------------------------------------------------------------------------
# Statistics and output
# --------------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (a value that was measured), NaN for no values."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values), q, method="inverted_cdf"))


def stats(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50": pct(values, 50),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": float(np.mean(values)) if values else float("nan"),
    }


def _med(values: list[int]) -> str:
    if not values:
        return "-"
    return f"{int(np.median(values))} [{max(values)}]"


def print_results(results: list[RunResult]) -> None:
    header = (
        f"{'workload':<10}{'db':<12}{'measure':<34}{'count':>7}{'p50 ms':>9}{'p90 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        rows = (
            ("tick -> order", r.path_ms),
            ("tick -> order, engine only *", r.path_engine_ms),
            ("whole tick (ordering ticks)", r.order_tick_ms),
            ("  engine only", r.order_tick_engine_ms),
            ("whole tick (all ticks)", r.tick_ms),
            ("  engine only", r.tick_engine_ms),
        )
        for label, values in rows:
            s = stats(values)
            print(
                f"{r.mode:<10}{r.backend:<12}{label:<34}{s['count']:>7.0f}{s['p50']:>9.3f}"
                f"{s['p90']:>9.3f}{s['p99']:>9.3f}{s['max']:>9.3f}"
            )
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(r.first_kinds.items()))
        print(
            f"{'':<22}database round trips (SQL statements / COMMITs, median [max]): "
            f"tick -> order {_med(r.sql_before_order)} / {_med(r.commits_before_order)}, "
            f"whole tick {_med(r.sql_per_tick)} / {_med(r.commits_per_tick)}"
        )
        print(
            f"{'':<22}{r.bars} bars, {r.counted_ticks} ticks counted, {r.orders} orders sent, "
            f"{r.round_trips} round trips{', HALTED' if r.halted else ''}, {r.seconds:.1f} s; "
            f"first order of the tick: {kinds or 'none'}"
        )
        print()
    print("* held against the target: the venue's own time (all exchange calls) excluded.")


def print_breakdown(title: str, breakdown: Breakdown) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    print(f"\n{title}")
    for what, table, calls, ticks, total in (
        ("decision path (tick -> first create_order)", breakdown.path, breakdown.path_calls,
         breakdown.path_ticks, breakdown.path_total),
        ("whole tick (all counted ticks)", breakdown.whole, breakdown.whole_calls,
         breakdown.whole_ticks, breakdown.whole_total),
    ):  # fmt: skip
        if not ticks:
            print(f"  {what}: no ticks")
            continue
        print(f"  {what}: {ticks} ticks, mean {total / ticks * 1e3:.3f} ms per tick")
        print(f"    {'component':<86}{'calls/tick':>11}{'us/tick':>9}{'share':>8}")
        for name, seconds in sorted(table.items(), key=lambda kv: -kv[1]):
            share = seconds / total if total else 0.0
            if share < 0.002:
                continue
            per_tick = calls.get(name, 0) / ticks
            print(f"    {name[:86]:<86}{per_tick:>11.2f}{seconds / ticks * 1e6:>9.1f}{share:>8.1%}")
            rows.append(
                {"scope": what, "component": name, "calls_per_tick": per_tick,
                 "us_per_tick": seconds / ticks * 1e6, "share": share}
            )  # fmt: skip
    return rows


class PathProfile:
    """cProfile of the decision path alone: a profiler per tick, stopped at the tick's first
    ``create_order`` and kept only for ticks that sent one (``--cprofile-path``)."""

    def __init__(self) -> None:
        self.stats: pstats.Stats | None = None
        self._profiler: cProfile.Profile | None = None
        self._ordered = False

    def begin_tick(self) -> None:
        self._ordered = False
        self._profiler = cProfile.Profile()
        self._profiler.enable()

    def first_order(self, _now: float) -> None:
        if self._profiler is not None:
            self._profiler.disable()
        self._ordered = True

    def end_tick(self) -> None:
        if self._profiler is None:
            return
        self._profiler.disable()
        if self._ordered:
            if self.stats is None:
                self.stats = pstats.Stats(self._profiler)
            else:
                self.stats.add(self._profiler)
        self._profiler = None


def print_cprofile(
    title: str, profiler: cProfile.Profile, top: int, stats: pstats.Stats | None = None
) -> None:
    print(f"\n{title}: top {top} functions by own time (cProfile; its overhead inflates calls)")
    out = stats if stats is not None else pstats.Stats(profiler)
    out.sort_stats(pstats.SortKey.TIME).print_stats(top)


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


def pick_file(args: argparse.Namespace) -> Path | None:
    if args.file:
        return Path(args.file)
    data = shared_data_dir()
    if data is None:
        return None
    preferred = data / DEFAULT_FILE
    if preferred.exists():
        return preferred
    files = sorted(data.glob("*_1m.parquet")) or sorted(data.glob("*_5m.parquet"))
    if not files:
        return None
    return max(files, key=lambda p: (pq.read_metadata(p).num_rows, p.name))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]) if __doc__ else None,
    )
    parser.add_argument(
        "--mode", choices=("real", "frequent", "both"), default="both", help="Workload(s)."
    )
    parser.add_argument("--file", help=f"Candle file (default: ../shared/data/{DEFAULT_FILE}).")
    parser.add_argument(
        "--bars",
        type=int,
        default=0,
        help="Bars of the real workload (default 0: the whole file, ~300 orders).",
    )
    parser.add_argument(
        "--frequent-bars", type=int, default=3_000, help="Bars of the frequent workload."
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("NETTRACE_BENCH_DATABASE_URL", DEFAULT_PG),
        help="A PostgreSQL server whose user may create databases (a throw-away one is made).",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only.")
    parser.add_argument("--no-handoff", action="store_true", help="Configure no HANDOFF.md.")
    parser.add_argument(
        "--no-breakdown", action="store_true", help="Skip the instrumented breakdown runs."
    )
    parser.add_argument(
        "--cprofile", type=int, default=0, metavar="N", help="Add a cProfile run, print top N."
    )
    parser.add_argument(
        "--cprofile-path",
        action="store_true",
        help="Profile only the decision path (tick start to its first create_order).",
    )
    parser.add_argument("--json", type=Path, help="Write the figures to this JSON file.")
    args = parser.parse_args()

    configure_logging("WARNING", "console")
    path = pick_file(args)
    if path is None or not path.exists():
        print("no candle file: set --file or NETTRACE_SHARED_DATA", file=sys.stderr)
        return 2
    loaded = load_candles(path)[0]
    modes = ("real", "frequent") if args.mode == "both" else (args.mode,)
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    postgres_admin: str | None = None
    if not args.no_postgres:
        reason = postgres_reachable(args.database_url)
        if reason is None:
            backends.append(("postgresql", args.database_url))
            postgres_admin = args.database_url
        else:
            print(
                f"PostgreSQL skipped ({make_url(args.database_url).render_as_string()}): {reason}"
            )

    results: list[RunResult] = []
    report: dict[str, Any] = {"file": path.name, "runs": [], "breakdown": []}
    profiles: list[tuple[str, cProfile.Profile, pstats.Stats | None]] = []
    breakdowns: list[tuple[str, Breakdown]] = []
    for mode in modes:
        size = args.bars if mode == "real" else args.frequent_bars
        candles = loaded.slice(0, min(size, len(loaded))) if size > 0 else loaded
        agent = SniperAgent(Sniper() if mode == "real" else FrequentSniper())
        agent.load(candles)
        for backend, admin in backends:
            kinds = ["timed"]
            if not args.no_breakdown:
                kinds.append("breakdown")
            if args.cprofile:
                kinds.append("cprofile")
            for kind in kinds:
                with tempfile.TemporaryDirectory(prefix="nettrace-t2o-") as tmp:
                    workdir = Path(tmp)
                    db = sqlite_database(workdir) if admin is None else postgres_database(admin)
                    with db as url:
                        breakdown = Breakdown() if kind == "breakdown" else None
                        profiler = cProfile.Profile() if kind == "cprofile" else None
                        if breakdown is not None:
                            instrument(breakdown)
                        try:
                            result = run_once(
                                mode, backend, url, candles, agent, workdir,
                                not args.no_handoff, breakdown, profiler,
                                args.cprofile_path,
                            )  # fmt: skip
                        finally:
                            if breakdown is not None:
                                breakdown.restore()
                label = f"{mode} / {backend}"
                if kind == "timed":
                    results.append(result)
                elif breakdown is not None:
                    breakdowns.append((label, breakdown))
                elif profiler is not None:
                    profiles.append((label, profiler, result.path_stats))

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(
        f"\nTick -> order request latency, QuantEngine.on_bar in process; {path.name} "
        f"({len(loaded)} bars, {loaded.key.pair}); Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} cores; "
        f"HANDOFF.md {'off' if args.no_handoff else 'on'}; first {WARMUP_TICKS} ticks of "
        "each run not counted\n"
    )
    print_results(results)
    for label, breakdown in breakdowns:
        report["breakdown"].append(
            {"run": label, "rows": print_breakdown(f"Breakdown, {label}", breakdown)}
        )
    for label, profiler, path_stats in profiles:
        scope = "decision path" if path_stats is not None else "whole ticks"
        print_cprofile(f"cProfile ({scope}), {label}", profiler, args.cprofile, path_stats)

    if postgres_admin is not None:
        with postgres_database(postgres_admin) as url:
            floor = postgres_floor(url)
        report["postgres_floor_ms"] = floor
        print("\nPostgreSQL floor, no engine (plain psycopg connection, same server, same run):")
        for name, f in floor.items():
            print(
                f"  {name:40s} p50 {f['p50']:.3f} ms  p90 {f['p90']:.3f} ms  "
                f"p99 {f['p99']:.3f} ms  ({f['count']:.0f} rounds)"
            )

    met = True
    print()
    for r in results:
        s = stats(r.path_engine_ms)
        in_process = r.backend == "sqlite"
        if not s["count"]:
            print(f"target (p99 < {TARGET_P99_MS} ms), {r.mode} / {r.backend}: no orders")
            met &= not in_process
            continue
        ok = s["p99"] < TARGET_P99_MS
        if in_process:
            met &= ok
        verdict = ("met" if ok else "NOT met") if in_process else "for information"
        print(
            f"target (tick -> order p99 < {TARGET_P99_MS:g} ms, engine only), "
            f"{r.mode} / {r.backend}: {verdict} "
            f"(p50 {s['p50']:.3f} ms, p99 {s['p99']:.3f} ms over {s['count']:.0f} orders)"
        )
        report["runs"].append(
            {
                "mode": r.mode, "backend": r.backend, "bars": r.bars, "orders": r.orders,
                "first_kinds": r.first_kinds, "halted": r.halted,
                "tick_to_order_ms": stats(r.path_ms),
                "tick_to_order_engine_ms": s,
                "order_tick_ms": stats(r.order_tick_ms),
                "order_tick_engine_ms": stats(r.order_tick_engine_ms),
                "sql_before_order": stats([float(v) for v in r.sql_before_order]),
                "commits_before_order": stats([float(v) for v in r.commits_before_order]),
                "tick_ms": stats(r.tick_ms),
                "tick_engine_ms": stats(r.tick_engine_ms),
            }
        )  # fmt: skip
    print(f"\ncommand: {command}")
    if args.json:
        report["command"] = command
        args.json.write_text(json.dumps(report, indent=2))
        print(f"figures written to {args.json}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
