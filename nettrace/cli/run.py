"""``nettrace run``: the trading loop -- paper by default, on a replayed file or a live feed.

Paper trading needs no keys: orders go to the in-process paper exchange, which fills them the
way the backtest does, so a replay of a candle file makes the same trades (the same fingerprint)
as ``nettrace backtest --strategy sniper --fill maker`` on it. ``--live`` sends real orders; it
needs the exchange's keys in the environment *and* ``--i-accept-live-risk``, and refuses with
one line otherwise.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from nettrace.cli.context import CliError, CliTable, open_database, state
from nettrace.market.candles import CandleKey, Candles, timeframe_ms
from nettrace.market.live import LiveCandles
from nettrace.market.store import load_candles
from nettrace.market.validation import CandleDataError

if TYPE_CHECKING:
    from nettrace.agents.quant_engine import QuantEngine, Tick
    from nettrace.agents.scout_source import ScoutClock
    from nettrace.agents.sniper import ScoutSource
    from nettrace.agents.trading_loop import PaperSession
    from nettrace.execution.paper import Bar, PaperExchange
    from nettrace.store.database import Database

#: Paper fault injection for crash tests: the process kills itself (SIGKILL) right after the
#: paper exchange accepted this many orders, before the engine stores the acknowledgement.
KILL_AFTER_ORDERS_ENV = "NETTRACE_PAPER_KILL_AFTER_ORDERS"
#: The bearer token ``--scouts-url`` reads the cross-region view with (the primary's or the
#: operator's: a scout's token is refused there).
READ_TOKEN_ENV = "NETTRACE_READ_TOKEN"  # noqa: S105 - the variable's name, not a secret
#: Environment variables holding live keys: NETTRACE_<EXCHANGE>_API_KEY / _SECRET.
KEY_ENV = "NETTRACE_{exchange}_API_KEY"
SECRET_ENV = "NETTRACE_{exchange}_SECRET"  # noqa: S105 - the variable's name, not a secret

_STYLE = {
    "order": "cyan",
    "fill": "green",
    "closed": "bold",
    "cancelled": "yellow",
    "hardstop": "bold red",
    "gave_up": "yellow",
    "reconcile": "magenta",
}


def run(
    ctx: typer.Context,
    replay: Annotated[
        Path | None,
        typer.Option(
            help="Replay this candle file (Parquet, CSV, Freqtrade) instead of a live feed.",
            dir_okay=False,
        ),
    ] = None,
    speed: Annotated[
        str, typer.Option(help="Replay speed: 'max' (as fast as possible) or N (N x real time).")
    ] = "max",
    paper: Annotated[
        bool, typer.Option("--paper/--live", help="Paper trading (default) or real orders.")
    ] = True,
    accept_live_risk: Annotated[
        bool, typer.Option("--i-accept-live-risk", help="Required with --live: real money.")
    ] = False,
    exchange: Annotated[
        str | None,
        typer.Option(
            help="Live feed (or a --replay file's, if its name lacks it): ccxt id, e.g. kraken."
        ),
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Live feed (or a --replay file's): pair, e.g. BTC/USD.")
    ] = None,
    timeframe: Annotated[
        str,
        typer.Option(
            help="Live feed: bar size, e.g. 5m (a --replay file's: from its name or bars)."
        ),
    ] = "5m",
    cash: Annotated[
        float, typer.Option(help="Paper: starting cash (quote currency) of a new account.")
    ] = 10_000.0,
    account: Annotated[
        Path | None,
        typer.Option(
            help="Paper account file (default: DATA_DIR/paper/<exchange>_<pair>.json); "
            "an existing one is continued.",
            dir_okay=False,
        ),
    ] = None,
    reset: Annotated[
        bool, typer.Option(help="Start the paper account over (deletes its file first).")
    ] = False,
    max_volume_share: Annotated[
        float | None,
        typer.Option(
            help="Paper: cap each fill at this share of the bar's volume (partial fills)."
        ),
    ] = None,
    poll: Annotated[
        float, typer.Option(help="Live feed: seconds between polls for a newly closed bar.")
    ] = 10.0,
    warm_up: Annotated[
        int, typer.Option(help="Live feed: closed bars fetched first, for the signals' history.")
    ] = 500,
    max_bars: Annotated[
        int | None, typer.Option(help="Live feed: stop after this many new bars (default: Ctrl-C).")
    ] = None,
    scouts: Annotated[
        bool | None,
        typer.Option(
            "--scouts/--no-scouts",
            help="Hear the scouts' signals (5-7) from this database's cross-region store. "
            "Default: on for a live feed and a paced replay (--speed N), off for --speed max "
            "(with --scouts it reads them at each bar's own close).",
        ),
    ] = None,
    scouts_from: Annotated[
        str | None,
        typer.Option(
            help="Hear the scouts from this database URL instead (a recorded run's, e.g. a "
            "cluster's primary.db); orders and decisions still go to the configured one.",
        ),
    ] = None,
    scouts_url: Annotated[
        str | None,
        typer.Option(
            help="Hear the scouts from a primary's API (GET /api/v1/signals/cross-region) "
            f"with the token in {READ_TOKEN_ENV}: for a trading process away from the "
            "database. The live view only: such a run cannot be replayed exactly.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Replay: first bar to trade (ISO time, UTC); earlier bars are history only."
        ),
    ] = None,
    anchor: Annotated[
        float | None,
        typer.Option(
            help="Paced replay: epoch seconds at which the first traded bar was decided. "
            "Replays a recorded run: only the bars whose moment has passed, flat out.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Only the summary, no event lines.")] = False,
    export: Annotated[
        Path | None, typer.Option(help="Write the summary, fingerprint and trades as JSON here.")
    ] = None,
) -> None:
    """Run the trading engine: sniper decisions, GoalValidator approvals, maker orders.

    Every order is stored with its approval before it is sent; HARDSTOP halts everything.
    Only the primary region (PRIMARY_REGION, default ewr) may run this.

    A --replay file named EXCHANGE_BASE-QUOTE_TIMEFRAME.<ext> says what it holds; any other
    name needs --exchange and --symbol (the bar size then comes from the bars' spacing).

    The scouts' signals join the decision at each bar's moment: live, now; in a replay at
    --speed N, the bar's scheduled time (--anchor pins the schedule of a recorded run, e.g.
    the one `nettrace cluster status` prints, so the replay hears exactly what it heard).

    Examples (from the repository root; ../shared/data is the developer data set):
      nettrace run --paper --replay ../shared/data/bitstamp_BTC-USD_1d.parquet --speed max
      nettrace run --replay ../shared/data/coinbase_BTC-USD_1d.parquet --speed 86400 \\
        --account paper.json
      nettrace run --paper --exchange kraken --symbol BTC/USD --timeframe 5m
    """
    st = state(ctx)
    pace = _speed(speed)
    if not paper:
        _check_live(exchange, accept_live_risk)
        raise CliError(
            "live trading is not enabled in this release: the live engine needs venue-side "
            "brackets (stop-loss with the entry) that the ccxt adapter does not place yet; "
            "use --paper"
        )
    if max_volume_share is not None and not 0.0 < max_volume_share <= 1.0:
        raise CliError(f"--max-volume-share must be in (0, 1], got {max_volume_share}")
    if not cash > 0:
        raise CliError(f"--cash must be positive, got {cash}")
    feed: LiveCandles | None = None
    if replay is None:
        if not (exchange and symbol):
            raise CliError(
                "give --replay FILE (recorded candles), or --exchange and --symbol for a live "
                "feed (public data, no keys)"
            )
        feed = _live_feed(exchange, symbol, timeframe)
        with st.out.status(f"fetching recent {timeframe} bars of {symbol} from {exchange}..."):
            candles = _warm_up(feed, warm_up)
    else:
        candles = _candles(
            replay, exchange=exchange, pair=symbol,
            # the 5m default is the live feed's; a replayed file's comes from it if not given
            timeframe=None
            if getattr(ctx.get_parameter_source("timeframe"), "name", "") == "DEFAULT"
            else timeframe,
        )  # fmt: skip
    settings = st.settings
    if settings.region != settings.primary_region:
        raise CliError(
            f"region {settings.region!r} is not the primary region {settings.primary_region!r}: "
            "only the primary trades (set FLY_REGION / PRIMARY_REGION)"
        )
    start_ms = _start_ms(start, candles) if start is not None else None
    if anchor is not None and (feed is not None or pace is None):
        raise CliError("--anchor needs --replay and --speed N (it pins a paced replay's clock)")
    hear = (
        scouts
        if scouts is not None
        else (feed is not None or pace is not None or scouts_from is not None)
    )
    if scouts is False and (scouts_from is not None or scouts_url is not None):
        raise CliError("--no-scouts contradicts --scouts-from / --scouts-url")
    if scouts_from is not None and scouts_url is not None:
        raise CliError("give --scouts-from or --scouts-url, not both")
    remote = None
    if scouts_url is not None:
        from nettrace.agents.scout_source import RemoteScouts

        token = os.environ.get(READ_TOKEN_ENV)
        if not token:
            raise CliError(f"--scouts-url needs a read token in {READ_TOKEN_ENV}")
        if not scouts_url.startswith(("http://", "https://")):
            raise CliError(f"--scouts-url must be an http(s) URL, got {scouts_url!r}")
        remote = RemoteScouts(scouts_url, token)
        hear = True
    venue = candles.key.exchange
    pair = candles.key.pair
    path = account or settings.data_dir / "paper" / f"{venue}_{pair.replace('/', '-')}.json"

    from nettrace.agents.scout_source import ScoutClock, StoredScouts
    from nettrace.agents.trading_loop import bars_of, open_paper_session

    _ensure_schema(ctx, st)
    # The loop checkpoints a SQLite WAL itself, between ticks (see Database.checkpoint).
    with (
        open_database(ctx, "the order and decision tables", checkpoint_on_commit=False) as database,
        _scout_database(scouts_from, database) as heard_from,
    ):
        if reset and path.exists():
            path.unlink()
        source: ScoutSource | None = remote
        if source is None and hear:
            source = StoredScouts(
                heard_from,
                stale_after_s=settings.api_stale_after_s,
                max_ttl_s=settings.api_max_ttl_s,
            )
        with st.out.status("computing the sniper's signals over the history..."):
            session = open_paper_session(
                settings, database, candles, account_path=path, cash=cash, scouts=source,
                max_volume_share=max_volume_share, kill_after_orders=_kill_after_orders(),
                replay_clock=feed is None,
            )  # fmt: skip
        paper_exchange = session.exchange
        last_ms = paper_exchange.last_bar_ms(pair)
        if start_ms is None:
            start_ms = last_ms  # matched before a restart; the last one is ticked again
        st.out.print(
            f"{'resuming' if session.resumed else 'new'} paper account {path} "
            f"({', '.join(f'{k} {v:,.8g}' for k, v in paper_exchange.fetch_balance().items())})"
            + (f"; last bar matched {_iso(last_ms)}" if last_ms is not None else "")
        )
        st.out.print(
            "scouts: "
            + (
                (
                    f"heard from {scouts_url} (live view)"
                    if remote is not None
                    else f"heard from {heard_from.display()}'s cross-region store"
                )
                if hear
                else "not heard (candles alone; --scouts to hear them)"
            )
        )
        if candles.synthetic:
            st.out.print("[bold yellow]SYNTHETIC DATA: these candles were generated.[/]")
        # Everything built so far (history, signals, the ML model) lives for the whole run:
        # freezing it keeps the collector from walking it again on the tick path (CPython's
        # documented use of gc.freeze for long-lived processes).
        gc.collect()
        gc.freeze()
        engine = session.engine
        if feed is None:
            bars = list(bars_of(candles, start_ms))
            clock = None
            if bars and pace is not None:
                tf = timeframe_ms(candles.key.timeframe)
                clock = ScoutClock(
                    time.time() if anchor is None else anchor, bars[0].ts_ms + tf, pace
                )
                if anchor is not None:
                    # A recorded run's replay: the bars whose moment has passed, no more (a
                    # later bar's scouts have not spoken yet; waiting for them is a new run).
                    now_s = time.time()
                    bars = [b for b in bars if clock.epoch_s(b.ts_ms + tf) <= now_s]
                    if not bars:
                        raise CliError(f"--anchor {anchor}: no bar's moment has passed yet")
            elif hear:
                clock = ScoutClock.at_bar_close()
            if clock is not None and pace is not None:
                st.out.print(
                    f"clock: bar closing {_iso(clock.origin_ms)} decided at epoch "
                    f"{clock.anchor_s:.3f}, {clock.speed:g} market s per s"
                )
            summary = _replay(session, bars, clock, pace is not None, quiet, st.out)
        else:
            summary = run_live(engine, paper_exchange, feed, poll, max_bars, quiet, st.out)
    _print_summary(st.out, summary)
    if export is not None:
        try:
            export.write_text(json.dumps(summary, indent=2, allow_nan=False))
        except OSError as exc:
            raise CliError(f"cannot write {export}: {exc.strerror}") from None
        st.out.print(f"exported to {export}")


@contextlib.contextmanager
def _scout_database(url: str | None, default: Database) -> Iterator[Database]:
    """The database the scouts are heard from: ``default`` or the one at ``url`` (read only)."""
    if url is None:
        yield default
        return
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from nettrace.store.database import Database
    from nettrace.store.signals import SignalStore

    try:
        other = Database(url)
    except (ArgumentError, SQLAlchemyError, ValueError) as exc:
        raise CliError(f"--scouts-from: cannot open {url!r}: {exc}") from None
    try:
        try:
            SignalStore(other).count()
        except SQLAlchemyError as exc:
            text = str(getattr(exc, "orig", exc)).strip().splitlines()
            raise CliError(
                f"--scouts-from: {other.display()} has no readable signals table "
                f"({text[0] if text else type(exc).__name__})"
            ) from None
        yield other
    finally:
        other.dispose()


def _ensure_schema(ctx: typer.Context, st: Any) -> None:
    """Before anything is written: the database answers and is migrated.

    The default SQLite file (no DATABASE_URL) is this machine's own: it is migrated here, with
    one line saying so. A configured database is the operator's: it is never changed
    implicitly, so an unmigrated one is refused with the command that migrates it.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from nettrace.store.migrate import current_revision, head_revision, upgrade

    settings = st.settings
    url = settings.resolved_database_url()
    try:
        current = current_revision(url)
        if current == head_revision():
            return
        if settings.database_url is None:
            settings.data_dir.expanduser().mkdir(parents=True, exist_ok=True)
            upgrade(url)
            st.out.print(f"migrated {settings.database_display()} to the current schema")
            return
    except (SQLAlchemyError, OSError) as exc:
        text = str(getattr(exc, "orig", exc) or exc).strip().splitlines()
        raise CliError(
            f"cannot use {settings.database_display()}: {text[0] if text else type(exc).__name__}"
        ) from None
    raise CliError(
        f"{settings.database_display()} is not migrated to the current schema "
        f"(it is at {current or 'nothing'}): run `nettrace db upgrade`"
    )


def _start_ms(text: str, candles: Candles) -> int:
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"--start must be an ISO time such as 2024-01-31T12:00, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ms = int(when.timestamp() * 1000)
    if not candles.timestamp[0] <= ms <= candles.timestamp[-1]:
        raise CliError(
            f"--start {text} is outside the file ({_iso(int(candles.timestamp[0]))} to "
            f"{_iso(int(candles.timestamp[-1]))})"
        )
    return ms


def _live_feed(exchange: str, symbol: str, timeframe: str) -> LiveCandles:
    from nettrace.market.download import make_exchange

    try:
        key = CandleKey(exchange, symbol, timeframe)
        return LiveCandles(make_exchange(exchange), key)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _warm_up(feed: LiveCandles, bars: int) -> Candles:
    import ccxt

    try:
        candles = feed.warm_up(bars)
    except ccxt.BaseError as exc:
        raise CliError(f"cannot read {feed.key} from {feed.key.exchange}: {exc}") from None
    if len(candles) < 2:
        raise CliError(f"{feed.key.exchange} returned fewer than 2 closed bars of {feed.key}")
    return candles


def run_live(
    engine: QuantEngine,
    exchange: PaperExchange,
    feed: LiveCandles,
    poll_s: float,
    max_bars: int | None,
    quiet: bool,
    out: Any,
    sleep: Any = time.sleep,
) -> dict[str, Any]:
    """Tick on every bar that closes, until ``max_bars`` new ones or Ctrl-C."""
    from datetime import UTC, datetime

    import ccxt

    from nettrace.execution.paper import Bar

    counts: dict[str, int] = {}
    last: Tick | None = None
    first_ms: int | None = None
    seen = 0
    try:
        while max_bars is None or seen < max_bars:
            try:
                rows = feed.poll()
            except ccxt.NetworkError as exc:  # a blip: the next poll tries again
                out.print(f"[yellow]feed: {exc}; retrying in {poll_s:g} s[/]")
                rows = []
            if rows:
                engine.sniper.append(feed.candles)
            for row in rows:
                bar = Bar(feed.key.pair, int(row[0]), *row[1:6])
                exchange.on_bar(bar)
                # Live, a bar's scouts are the ones fresh now (the sniper ignores ``now``
                # when it hears none).
                last = engine.on_bar(bar, datetime.now(UTC))
                _show(last, counts, quiet, out)
                first_ms = bar.ts_ms if first_ms is None else first_ms
                seen += 1
                if max_bars is not None and seen >= max_bars:
                    break
            else:
                sleep(poll_s)
    except KeyboardInterrupt:
        out.print("stopped (Ctrl-C)")
    finally:
        exchange.flush()
    return _summary(engine, feed.key, seen, last, counts, first_ms)


def _show(tick: Tick, counts: dict[str, int], quiet: bool, out: Any) -> None:
    for event in tick.events:
        counts[event.kind] = counts.get(event.kind, 0) + 1
        if not quiet:
            style = _STYLE.get(event.kind, "")
            text = f"{_iso(event.ts_ms)} {event.kind:<9} {event.symbol} {event.text}"
            out.print(f"[{style}]{text}[/]" if style else text, highlight=False)


def _kill_after_orders() -> int | None:
    raw = os.environ.get(KILL_AFTER_ORDERS_ENV)
    if not raw:
        return None
    try:
        return max(int(raw), 1)
    except ValueError:
        raise CliError(f"{KILL_AFTER_ORDERS_ENV} must be a whole number, got {raw!r}") from None


def _speed(value: str) -> float | None:
    if value.strip().lower() == "max":
        return None
    try:
        pace = float(value)
    except ValueError:
        raise CliError(f"--speed must be 'max' or a number > 0, got {value!r}") from None
    if not pace > 0:
        raise CliError(f"--speed must be 'max' or a number > 0, got {value!r}")
    return pace


def _check_live(exchange: str | None, accepted: bool) -> None:
    if not exchange:
        raise CliError("--live needs --exchange (the venue whose keys are in the environment)")
    name = exchange.upper().replace("-", "_")
    missing = [
        env.format(exchange=name)
        for env in (KEY_ENV, SECRET_ENV)
        if not os.environ.get(env.format(exchange=name))
    ]
    if missing:
        raise CliError(f"--live needs keys from the environment: {', '.join(missing)} unset")
    if not accepted:
        raise CliError("--live places real orders with real money: add --i-accept-live-risk")


def _candles(
    path: Path,
    *,
    exchange: str | None = None,
    pair: str | None = None,
    timeframe: str | None = None,
) -> Candles:
    if not path.is_file():
        raise CliError(f"candle file {path} does not exist")
    try:
        candles, _ = load_candles(
            path, exchange=exchange, pair=pair, timeframe=timeframe, flags={"pair": "--symbol"}
        )
    except CandleDataError as exc:
        raise CliError(f"{exc} (repair it with `nettrace data import --repair`)") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if len(candles) < 2:
        raise CliError(f"{path} holds fewer than 2 candles")
    return candles


def _replay(
    session: PaperSession,
    bars: list[Bar],
    clock: ScoutClock | None,
    pace: bool,
    quiet: bool,
    out: Any,
) -> dict[str, Any]:
    from nettrace.agents.trading_loop import replay_bars

    candles = session.candles
    counts: dict[str, int] = {}
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("equity {task.fields[equity]}"), TimeElapsedColumn(),
        console=out, transient=True, disable=quiet,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"replaying {candles.key}", total=len(bars), equity="-")

        def shown(tick: Tick) -> None:
            _show(tick, counts, quiet, out)
            progress.update(task, advance=1, equity=f"{tick.equity:,.2f}")

        result = replay_bars(session, bars, clock=clock, pace=pace, on_tick=shown)
    if result.interrupted:
        out.print("stopped (Ctrl-C)")
    summary = _summary(
        session.engine, candles.key, result.bars, result.last, counts, result.first_ms
    )
    if clock is not None:
        summary["clock"] = {
            "anchor": clock.anchor_s,
            "origin_ms": clock.origin_ms,
            "speed": clock.speed,
        }
    return summary


def _summary(
    engine: QuantEngine,
    key: CandleKey,
    bars: int,
    last: Tick | None,
    counts: dict[str, int],
    first_ms: int | None,
) -> dict[str, Any]:
    from nettrace.backtest.results import fingerprint

    # This run's round trips, apart from the account's: a resumed account (or a restart after
    # a crash) holds earlier runs' too, which are not this run's doing.
    every = engine.trades
    trades = [
        t for t in every if first_ms is not None and t.exit_time.timestamp() * 1000 >= first_ms
    ]
    report = engine.reconcile_report
    return {
        "pair": key.pair,
        "exchange": key.exchange,
        "timeframe": key.timeframe,
        "bars": bars,
        "first_bar": _iso(first_ms) if first_ms is not None else None,
        "last_bar": _iso(last.ts_ms) if last is not None else None,
        "state": engine.state.value,
        "equity": last.equity if last is not None else None,
        "events": counts,
        "trades": [t.to_export() for t in trades],
        "net_profit": sum(t.profit for t in trades),
        "fingerprint": fingerprint(trades),
        "account": {
            "round_trips": len(every),
            "net_profit": sum(t.profit for t in every),
            "fingerprint": fingerprint(every),
        },
        "reconcile": {
            "clean": report.clean,
            "resolved": report.resolved,
            "orphans_cancelled": report.orphans_cancelled,
            "adopted": report.adopted,
            "brackets_restored": report.brackets_restored,
        },
    }


def _print_summary(out: Any, summary: dict[str, Any]) -> None:
    table = CliTable(
        title=f"paper run: {summary['exchange']} {summary['pair']} {summary['timeframe']}"
    )
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("bars", str(summary["bars"]))
    table.add_row("trading state", summary["state"])
    for kind in ("order", "fill", "cancelled", "closed", "hardstop"):
        table.add_row(f"{kind} events", str(summary["events"].get(kind, 0)))
    table.add_row("round trips (this run)", str(len(summary["trades"])))
    table.add_row("net profit (this run)", f"{summary['net_profit']:,.2f}")
    account = summary["account"]
    if account["round_trips"] != len(summary["trades"]):
        table.add_row("round trips (account)", str(account["round_trips"]))
        table.add_row("net profit (account)", f"{account['net_profit']:,.2f}")
    if summary["equity"] is not None:
        table.add_row("equity", f"{summary['equity']:,.2f}")
    out.print(table)
    out.print(f"trade fingerprint: {summary['fingerprint']}")
    if summary["account"]["fingerprint"] != summary["fingerprint"]:
        out.print(f"account trade fingerprint: {summary['account']['fingerprint']}")


def _iso(ts_ms: int | None) -> str:
    from datetime import UTC, datetime

    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
