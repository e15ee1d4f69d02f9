"""``nettrace cluster up|status|down``: the multi-region network of DESIGN §1 on one machine.

Why: the signal path -- scouts measuring venues, pushing through their outboxes, the primary
storing and serving cross-region views -- only proves itself with separate processes talking
HTTP. ``up`` starts them the way Fly would, one process per region, all on 127.0.0.1:

- the primary (``ewr``): ``python -m nettrace.agents.fly_agent_runner`` as Fly runs it, on its
  own SQLite database under the cluster folder, migrated first (the same ``upgrade`` as
  ``nettrace db upgrade``). Its agents are the API (``nettrace serve``) and the trading loop,
  paper, on a replay of ``--symbol`` on the scouts' replay clock, hearing their pushes
  (``agents.primary_trader``); the clock starts ``--warm-up`` bars into the file so the
  signals have history from the first bar traded;
- one scout per region (default ``lhr``, ``nrt``, ``sin``):
  ``python -m nettrace.agents.fly_agent_runner`` with its own ``FLY_REGION``, data folder (its
  outbox), a bearer token issued for it in the cluster's database (the same ``TokenStore.issue``
  as ``nettrace tokens issue``), the primary's URL, and a **replay feed** instead of live
  exchanges (``NETTRACE_SCOUT_FEED``; see ``nettrace.market.replay``), sharing one replay clock.

Every process is detached (its own session) with its log in ``<data_dir>/cluster/logs/``, so
the cluster outlives the shell that started it. ``<data_dir>/cluster/state.json`` (mode 0600)
records pids, process start times (so ``down`` never signals a recycled pid), ports and logs,
plus a read token of the primary's own region that ``status`` uses for
``GET /api/v1/signals/cross-region``; the token opens only this local cluster's database.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from nettrace.agents.primary_trader import (
    API_HOST_ENV,
    API_PORT_ENV,
    TRADE_SYMBOL_ENV,
    read_plan,
)
from nettrace.cli.context import CliError, CliState, CliTable, state

STATE_VERSION: Final = 1
DEFAULT_SCOUTS: Final = "lhr,nrt,sin"
LOCALHOST: Final = "127.0.0.1"
HEALTH_PATH: Final = "/healthz"
CROSS_REGION_PATH: Final = "/api/v1/signals/cross-region"
PRIMARY_START_TIMEOUT_S: Final = 30.0

app = typer.Typer(
    help=(
        "Run the multi-region network locally: a primary (ewr) and scouts as separate processes "
        "on 127.0.0.1, scouts fed by replayed candles.\n\n"
        "Examples:\n\n"
        "  nettrace cluster up                      # ewr + lhr, nrt, sin\n\n"
        "  nettrace cluster up --port 8080 --speed 120 --scouts lhr,nrt\n\n"
        "  nettrace cluster status                  # per region: alive, last heard, signals\n\n"
        "  nettrace cluster status --json\n\n"
        "  nettrace cluster down"
    ),
    no_args_is_help=True,
)


@dataclass
class ProcessInfo:
    """One started process: enough to find it again and to be sure it is still the same one."""

    region: str
    role: str
    pid: int
    log: str
    command: list[str]
    #: Kernel start time (clock ticks since boot, /proc/<pid>/stat field 22); None off Linux.
    start_ticks: int | None = None


@dataclass
class ClusterState:
    """What ``state.json`` holds."""

    started_at: str
    primary_url: str
    port: int
    database_url: str
    feed: str
    speed: float
    read_token: str
    processes: list[ProcessInfo] = field(default_factory=list)
    version: int = STATE_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ClusterState:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError("unknown state file version")
        processes = [ProcessInfo(**item) for item in data.pop("processes")]
        return cls(**data, processes=processes)


def cluster_dir(cli: CliState) -> Path:
    return cli.settings.data_dir.expanduser() / "cluster"


def _state_path(cli: CliState) -> Path:
    return cluster_dir(cli) / "state.json"


def _load_state(path: Path) -> ClusterState | None:
    if not path.is_file():
        return None
    try:
        return ClusterState.from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, KeyError) as exc:
        raise CliError(
            f"cluster state file {path} is unreadable ({exc}); stop any processes it names by "
            "hand and delete it"
        ) from None


def _write_state(path: Path, cluster: ClusterState) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # It holds a bearer token: owner-only from the first byte, then an atomic rename.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(cluster.to_json())
    tmp.replace(path)


# -- processes ------------------------------------------------------------------------------


def _start_ticks(pid: int) -> int | None:
    """The process's start time from /proc (None where /proc does not exist or it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])  # field 22 overall; fields[0] here is field 3


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].startswith("Z")


def _reap(pid: int) -> None:
    # Only our own children can be reaped (when `up` ran in this process, e.g. in tests).
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(proc: ProcessInfo) -> bool:
    """Whether ``proc`` still runs *and* is the process we started (not a recycled pid)."""
    _reap(proc.pid)
    try:
        os.kill(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process now holds the pid
    if _is_zombie(proc.pid):
        return False
    if proc.start_ticks is not None:
        return _start_ticks(proc.pid) == proc.start_ticks
    return True


def _signal(proc: ProcessInfo, signum: signal.Signals) -> None:
    """Signal the process's group (it leads its own session), falling back to the pid."""
    if not is_alive(proc):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)


def stop_processes(processes: list[ProcessInfo], timeout_s: float) -> list[ProcessInfo]:
    """SIGTERM all, wait up to ``timeout_s``, SIGKILL the rest; returns the ones killed.

    Scouts are listed after the primary and stopped first, so their last pushes can land.
    """
    for proc in reversed(processes):
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and any(is_alive(p) for p in processes):
        time.sleep(0.1)
    killed = [p for p in processes if is_alive(p)]
    for proc in killed:
        _signal(proc, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and any(is_alive(p) for p in killed):
        time.sleep(0.05)
    return killed


def _spawn(
    region: str, role: str, command: list[str], env: Mapping[str, str], log: Path
) -> ProcessInfo:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: survives the shell, signalled as a group
            close_fds=True,
        )
    return ProcessInfo(region, role, process.pid, str(log), command, _start_ticks(process.pid))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex((LOCALHOST, port)) == 0


def _log_tail(path: str, lines: int = 3) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[:200] for line in text[-lines:])


def _wait_healthy(url: str, primary: ProcessInfo, timeout_s: float) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_alive(primary):
            raise CliError(f"the primary exited on start: {_log_tail(primary.log)}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(url + HEALTH_PATH, timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    raise CliError(f"the primary did not answer {HEALTH_PATH} within {timeout_s:.0f} s")


# -- up -------------------------------------------------------------------------------------


def _scout_list(text: str, primary: str, scouts_known: set[str]) -> list[str]:
    regions = [part.strip().lower() for part in text.split(",") if part.strip()]
    if not regions:
        raise CliError("--scouts needs at least one region, e.g. lhr,nrt,sin")
    for region in regions:
        if region == primary:
            raise CliError(f"{region} is the primary; --scouts lists scout regions only")
        if region not in scouts_known:
            raise CliError(
                f"unknown scout region {region!r}: scouts in the region table are "
                f"{', '.join(sorted(scouts_known))}"
            )
    return list(dict.fromkeys(regions))


def _base_env(cli: CliState) -> dict[str, str]:
    env = dict(os.environ)
    env["NETTRACE_LOG_FORMAT"] = "json"  # logs go to files: one JSON object a line
    if cli.config_file is not None:
        env["NETTRACE_CONFIG"] = str(cli.config_file.resolve())
    return env


@app.command()
def up(
    ctx: typer.Context,
    port: Annotated[
        int | None,
        typer.Option(
            help="The primary's port on 127.0.0.1 (default: a free one).", min=1, max=65535
        ),
    ] = None,
    scouts: Annotated[
        str, typer.Option(help="Comma-separated scout regions from the region table.")
    ] = DEFAULT_SCOUTS,
    feed: Annotated[
        str,
        typer.Option(
            help="The scouts' feed: replay (../shared/data, else synthetic), replay:DIR, or "
            "live (real exchanges over the network)."
        ),
    ] = "replay",
    speed: Annotated[float, typer.Option(help="Replay seconds per wall second.", min=0.001)] = 60.0,
    symbol: Annotated[
        str, typer.Option(help="The pair the primary trades (paper, on the replay).")
    ] = "BTC/USD",
    warm_up: Annotated[
        int, typer.Option(help="Bars of the traded file replayed before the clock starts.", min=0)
    ] = 300,
) -> None:
    """Start the primary and the scouts as detached processes and record them.

    Exits 2 if a cluster is already up in this data folder (`nettrace cluster down` first).
    """
    from nettrace.config.regions import RegionConfigError, load_regions
    from nettrace.market.replay import (
        REPLAY_ANCHOR_ENV,
        REPLAY_SPEED_ENV,
        SCOUT_FEED_ENV,
        feed_from_env,
    )

    cli = state(ctx)
    settings = cli.settings
    path = _state_path(cli)
    existing = _load_state(path)
    if existing is not None:
        if any(is_alive(p) for p in existing.processes):
            raise CliError(
                f"a cluster is already up ({existing.primary_url}, state {path}); "
                "run `nettrace cluster down` first"
            )
        path.unlink()  # every process it names is gone: a leftover from a crash
    try:
        table = load_regions()
    except RegionConfigError as exc:
        raise CliError(str(exc)) from None
    primary = table.primary
    if settings.primary_region != primary:
        raise CliError(
            f"PRIMARY_REGION is {settings.primary_region!r} but the region table's primary is "
            f"{primary!r}; they must agree"
        )
    known = {code for code, region in table.regions.items() if region.role == "scout"}
    regions = _scout_list(scouts, primary, known)
    feed_env = {SCOUT_FEED_ENV: feed, REPLAY_SPEED_ENV: repr(speed), REPLAY_ANCHOR_ENV: ""}
    try:
        replay = feed_from_env(feed_env)
    except ValueError as exc:
        raise CliError(f"--feed/--speed: {exc}") from None
    # One replay clock for every process, started ``warm_up`` bars of the traded file ago.
    anchor = time.time()
    if replay is not None:
        from nettrace.market.candles import timeframe_ms
        from nettrace.market.replay import load_replay_source

        traded = load_replay_source(symbol, replay.data_dir).candles
        anchor -= warm_up * timeframe_ms(traded.key.timeframe) / 1000.0 / speed
    if port is None:
        port = _free_port()
    elif _port_in_use(port):
        raise CliError(f"port {port} on {LOCALHOST} is already in use; pick another --port")

    root = cluster_dir(cli)
    logs = root / "logs"
    root.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{root / 'primary.db'}"
    tokens = _prepare_database(database_url, [primary, *regions])
    url = f"http://{LOCALHOST}:{port}"
    base = _base_env(cli)
    started: list[ProcessInfo] = []
    try:
        primary_env = {
            **base,
            **feed_env,
            REPLAY_ANCHOR_ENV: f"{anchor:.3f}",
            "FLY_REGION": primary,
            "DATABASE_URL": database_url,
            "NETTRACE_DATA_DIR": str(root / primary),
            API_HOST_ENV: LOCALHOST,
            API_PORT_ENV: str(port),
            TRADE_SYMBOL_ENV: symbol,
        }
        runner = [sys.executable, "-m", "nettrace.agents.fly_agent_runner"]
        started.append(_spawn(primary, "primary", runner, primary_env, logs / f"{primary}.log"))
        _wait_healthy(url, started[0], PRIMARY_START_TIMEOUT_S)
        for region in regions:
            scout_env = {
                **base,
                **feed_env,
                REPLAY_ANCHOR_ENV: f"{anchor:.3f}",
                "FLY_REGION": region,
                "NETTRACE_DATA_DIR": str(root / region),
                "NETTRACE_PRIMARY_URL": url,
                "NETTRACE_SCOUT_TOKEN": tokens[region],
            }
            scout_env.pop("DATABASE_URL", None)  # a scout has an outbox, not a database
            started.append(_spawn(region, "scout", runner, scout_env, logs / f"{region}.log"))
        cluster = ClusterState(
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
            primary_url=url,
            port=port,
            database_url=database_url,
            feed=feed,
            speed=speed,
            read_token=tokens[primary],
            processes=started,
        )
        _write_state(path, cluster)
    except BaseException:
        stop_processes(started, timeout_s=5.0)
        raise
    out = cli.out
    out.print(f"Cluster up: primary {primary} at {url}, scouts {', '.join(regions)} ({feed} feed).")
    for proc in started:
        out.print(f"  {proc.region:<4} {proc.role:<8} pid {proc.pid:<8} log {proc.log}")
    out.print(
        "`nettrace cluster status` shows what the primary hears; `nettrace cluster down` stops it."
    )


def _prepare_database(database_url: str, regions: list[str]) -> dict[str, str]:
    """Migrate the cluster's database and issue one token per region (the primary's reads).

    In process, with the functions ``nettrace db upgrade`` and ``nettrace tokens issue`` call:
    the same effect without three more interpreter start-ups, and the tokens never pass
    through a pipe or a command line where ``ps`` could show them.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from nettrace.store.database import Database
    from nettrace.store.migrate import upgrade
    from nettrace.store.tokens import TokenStore

    try:
        upgrade(database_url)
        database = Database(database_url)
        try:
            store = TokenStore(database)
            # A restart after a crash reuses the database: its old tokens die with the old run.
            for region in regions:
                store.revoke(region=region)
            return {region: store.issue(region, label="cluster")[0] for region in regions}
        finally:
            database.dispose()
    except SQLAlchemyError as exc:
        raise CliError(f"cannot prepare the cluster database: {exc}") from None


# -- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegionStatus:
    """One row of ``status``."""

    region: str
    role: str
    pid: int | None
    alive: bool
    last_heard_at: str | None
    age_s: float | None
    stale: bool | None
    signals: int
    log: str


def _fetch_cross_region(cluster: ClusterState) -> tuple[dict[str, Any] | None, str]:
    import requests

    try:
        response = requests.get(
            cluster.primary_url + CROSS_REGION_PATH,
            params={"limit": 10_000},
            headers={"Authorization": f"Bearer {cluster.read_token}"},
            timeout=5.0,
        )
    except requests.RequestException as exc:
        return None, f"primary unreachable: {type(exc).__name__}"
    if response.status_code != 200:
        return None, f"primary answered {response.status_code}: {response.text[:200]}"
    body = response.json()
    return (body, "") if isinstance(body, dict) else (None, "primary answered non-JSON")


def cluster_status(cluster: ClusterState) -> tuple[list[RegionStatus], str]:
    """Per region: the process, and what the primary's cross-region view says of it."""
    view, problem = _fetch_cross_region(cluster)
    heard: dict[str, Any] = (view or {}).get("regions", {}) or {}
    rows = []
    for proc in cluster.processes:
        seen = heard.get(proc.region) or {}
        rows.append(
            RegionStatus(
                region=proc.region,
                role=proc.role,
                pid=proc.pid,
                alive=is_alive(proc),
                last_heard_at=seen.get("last_heard_at"),
                age_s=seen.get("age_s"),
                stale=seen.get("stale") if proc.role == "scout" and view is not None else None,
                signals=len(seen.get("signals") or []),
                log=proc.log,
            )
        )
    return rows, problem


@dataclass(frozen=True)
class TradingStatus:
    """What the primary's trading loop has done, read from the cluster's database."""

    plan: dict[str, Any] | None
    decisions: int
    approved: int
    orders: dict[str, int]
    round_trips: int
    last_decision: dict[str, Any] | None
    problem: str = ""
    net_profit: float = 0.0
    #: The round trips' fingerprint (``backtest.results.fingerprint``), to compare a replay.
    fingerprint: str = ""


def trading_status(cluster: ClusterState, root: Path) -> TradingStatus:
    """Decisions, orders and the newest decision with the scouts it heard (fail soft)."""
    from sqlalchemy import func, select
    from sqlalchemy.exc import SQLAlchemyError

    from nettrace.store.database import Database
    from nettrace.store.models import DecisionRow, OrderRow

    primary = next((p.region for p in cluster.processes if p.role == "primary"), "ewr")
    plan = read_plan(root / primary)
    database = Database(cluster.database_url)
    try:
        with database.session() as session:
            decisions = int(session.scalar(select(func.count()).select_from(DecisionRow)) or 0)
            approved = int(
                session.scalar(
                    select(func.count()).select_from(DecisionRow).where(DecisionRow.approved)
                )
                or 0
            )
            orders = {
                str(state): int(n)
                for state, n in session.execute(
                    select(OrderRow.state, func.count()).group_by(OrderRow.state)
                )
            }
            newest = session.scalars(
                select(DecisionRow).order_by(DecisionRow.decided_at.desc()).limit(1)
            ).first()
            last = None
            if newest is not None:
                context = dict(newest.inputs.get("context") or {})
                last = {
                    "decided_at": newest.decided_at.isoformat(),
                    "symbol": newest.symbol,
                    "side": newest.side,
                    "approved": newest.approved,
                    "confidence": newest.confidence,
                    "signal_count": newest.signal_count,
                    "scouts": context.get("scouts") or [],
                }
        from nettrace.agents.quant_engine import trades_of
        from nettrace.backtest.results import fingerprint
        from nettrace.execution.portfolio import Portfolio
        from nettrace.store.fills import FillStore

        quote = str((plan or {}).get("symbol", "BTC/USD")).split("/")[-1]
        _, closed = Portfolio.from_fills(quote, 0.0, FillStore(database).all_fills())
        trades = trades_of(closed)
    except SQLAlchemyError as exc:
        return TradingStatus(plan, 0, 0, {}, 0, None, f"cluster database: {type(exc).__name__}")
    finally:
        database.dispose()
    return TradingStatus(
        plan,
        decisions,
        approved,
        orders,
        len(trades),
        last,
        net_profit=sum(t.profit for t in trades),
        fingerprint=fingerprint(trades),
    )


@app.command()
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per region: pid and whether it runs, role, when the primary last heard from it, how
    many fresh signals it holds from it.

    Exit code 0 when every process runs and no scout is stale or unheard, 1 otherwise.
    """
    cli = state(ctx)
    path = _state_path(cli)
    cluster = _load_state(path)
    if cluster is None:
        raise CliError(f"no cluster is up here (no {path}); start one with `nettrace cluster up`")
    rows, problem = cluster_status(cluster)
    healthy = not problem and all(
        row.alive and (row.role != "scout" or row.stale is False) for row in rows
    )
    trading = trading_status(cluster, cluster_dir(cli))
    if as_json:
        payload = {
            "primary_url": cluster.primary_url,
            "healthy": healthy,
            "problem": problem or None,
            "regions": [asdict(row) for row in rows],
            "trading": asdict(trading),
        }
        typer.echo(json.dumps(payload, indent=2))
    else:
        table = CliTable(title=f"Cluster at {cluster.primary_url} ({cluster.feed} feed)")
        for column in ("region", "role", "pid", "alive", "last heard", "stale", "fresh signals"):
            table.add_column(column)
        for row in rows:
            age = f"{row.age_s:.1f} s ago" if row.age_s is not None else "never"
            stale = "-" if row.stale is None else ("STALE" if row.stale else "no")
            table.add_row(
                row.region,
                row.role,
                str(row.pid),
                "yes" if row.alive else "NO",
                "-" if row.role == "primary" else age,
                stale,
                str(row.signals),
            )
        cli.out.print(table)
        if problem:
            cli.out.print(f"[red]{problem}[/red]")
        _print_trading(cli, cluster, trading)
    raise typer.Exit(0 if healthy else 1)


def _print_trading(cli: CliState, cluster: ClusterState, trading: TradingStatus) -> None:
    out = cli.out
    plan = trading.plan
    if plan is None:
        out.print("Trading: the primary has not started its trading loop (see its log).")
        return
    out.print(
        f"Trading (paper): {plan.get('symbol')} on a replay of {plan.get('file')} "
        f"at {plan.get('speed')}x; {trading.decisions} decisions ({trading.approved} approved), "
        f"orders {', '.join(f'{k} {v}' for k, v in sorted(trading.orders.items())) or 'none'}, "
        f"{trading.round_trips} round trip(s), net {trading.net_profit:,.2f}; "
        f"trade fingerprint {trading.fingerprint[:16]}."
    )
    last = trading.last_decision
    if last is not None:
        heard = ", ".join(
            f"{s.get('region')}:{s.get('source')} {s.get('side')} {s.get('confidence', 0):.2f}"
            for s in last["scouts"]
        )
        out.print(
            f"  newest decision {last['decided_at']} {last['side']} "
            f"{'approved' if last['approved'] else 'refused'} (confidence "
            f"{(last['confidence'] or 0):.2f}, {last['signal_count']} agreeing); scouts heard: "
            f"{heard or 'none'}"
        )
    out.print(
        f"  replay it: nettrace run --replay {plan.get('path') or plan.get('file')} --start "
        f"{_iso_ms(plan.get('start_ms'))} --anchor {plan.get('anchor')} "
        f"--speed {plan.get('speed')} "
        f"--scouts-from {cluster.database_url}"
    )
    if trading.problem:
        out.print(f"[red]{trading.problem}[/red]")


def _iso_ms(ms: Any) -> str:
    if not isinstance(ms, int):
        return "?"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")


# -- down -----------------------------------------------------------------------------------


@app.command()
def down(
    ctx: typer.Context,
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait after SIGTERM before SIGKILL.", min=0.0)
    ] = 10.0,
) -> None:
    """SIGTERM every process of the cluster (scouts first), SIGKILL stragglers, forget it.

    Nothing to do when no cluster is up (exit 0), so cleanup scripts may always call it.
    """
    cli = state(ctx)
    path = _state_path(cli)
    cluster = _load_state(path)
    if cluster is None:
        cli.out.print("No cluster is up here; nothing to stop.")
        return
    killed = stop_processes(cluster.processes, timeout_s=timeout)
    survivors = [p for p in cluster.processes if is_alive(p)]
    if survivors:
        raise CliError(
            "could not stop pid(s) "
            + ", ".join(str(p.pid) for p in survivors)
            + f"; state kept in {path}"
        )
    path.unlink()
    for proc in cluster.processes:
        how = "killed (SIGKILL)" if proc in killed else "stopped"
        cli.out.print(f"  {proc.region:<4} {proc.role:<8} pid {proc.pid:<8} {how}")
    cli.out.print("Cluster down.")
