"""``nettrace run``: the trading loop -- paper by default, on a replayed file or a live feed.

Paper trading needs no keys: orders go to the in-process paper exchange, which fills them the
way the backtest does, so a replay of a candle file makes the same trades (the same fingerprint)
as ``nettrace backtest --strategy sniper --fill maker`` on it. ``--live`` sends real orders; it
needs the exchange's keys in the environment *and* ``--i-accept-live-risk``, and refuses with
one line otherwise.
"""

from __future__ import annotations

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
    from nettrace.execution.paper import Bar, PaperExchange

#: Paper fault injection for crash tests: the process kills itself (SIGKILL) right after the
#: paper exchange accepted this many orders, before the engine stores the acknowledgement.
KILL_AFTER_ORDERS_ENV = "NETTRACE_PAPER_KILL_AFTER_ORDERS"
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
        str | None, typer.Option(help="Live feed: ccxt exchange id, e.g. kraken.")
    ] = None,
    symbol: Annotated[str | None, typer.Option(help="Live feed: pair, e.g. BTC/USD.")] = None,
    timeframe: Annotated[str, typer.Option(help="Live feed: bar size, e.g. 5m.")] = "5m",
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
    quiet: Annotated[bool, typer.Option(help="Only the summary, no event lines.")] = False,
    export: Annotated[
        Path | None, typer.Option(help="Write the summary, fingerprint and trades as JSON here.")
    ] = None,
) -> None:
    """Run the trading engine: sniper decisions, GoalValidator approvals, maker orders.

    Every order is stored with its approval before it is sent; HARDSTOP halts everything.
    Only the primary region (PRIMARY_REGION, default ewr) may run this.

    Examples:
      nettrace run --paper --replay ../shared/data/bitstamp_BTC-USD_1d.parquet --speed max
      nettrace run --replay BTC-USD_5m.parquet --speed 60 --account paper.json
      nettrace run --paper --exchange kraken --symbol BTC/USD --timeframe 5m
      NETTRACE_KRAKEN_API_KEY=... NETTRACE_KRAKEN_SECRET=... \\
        nettrace run --live --i-accept-live-risk --exchange kraken --symbol BTC/USD
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
        candles = _candles(replay)
    settings = st.settings
    if settings.region != settings.primary_region:
        raise CliError(
            f"region {settings.region!r} is not the primary region {settings.primary_region!r}: "
            "only the primary trades (set FLY_REGION / PRIMARY_REGION)"
        )
    venue = candles.key.exchange
    pair = candles.key.pair
    path = account or settings.data_dir / "paper" / f"{venue}_{pair.replace('/', '-')}.json"
    if reset and path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)

    from nettrace.agents.quant_engine import EngineConfig, QuantEngine
    from nettrace.agents.sniper import SniperAgent
    from nettrace.execution.paper import PaperExchange

    quote = pair.split("/")[1]
    resumed = path.exists()
    paper_exchange = PaperExchange(
        name=f"paper:{venue}", fees=settings.fees(venue), initial_balances={quote: cash},
        state_path=path, max_volume_share=max_volume_share,
        kill_after_orders=_kill_after_orders(),
    )  # fmt: skip
    agent = SniperAgent()
    with st.out.status("computing the sniper's signals over the history..."):
        agent.load(candles)
    # The loop checkpoints a SQLite WAL itself, between ticks (see Database.checkpoint).
    with open_database(
        ctx, "the order and decision tables", checkpoint_on_commit=False
    ) as database:
        engine = QuantEngine(
            settings=settings, database=database, exchange=paper_exchange, sniper=agent,
            config=EngineConfig(symbols=(pair,), exchange=venue, quote_currency=quote),
            handoff_path=settings.handoff_path, replay_clock=feed is None,
        )  # fmt: skip
        start_ms = paper_exchange.last_bar_ms(pair)
        st.out.print(
            f"{'resuming' if resumed else 'new'} paper account {path} "
            f"({', '.join(f'{k} {v:,.8g}' for k, v in paper_exchange.fetch_balance().items())})"
            + (f"; continuing after {_iso(start_ms)}" if start_ms is not None else "")
        )
        if candles.synthetic:
            st.out.print("[bold yellow]SYNTHETIC DATA: these candles were generated.[/]")
        # Everything built so far (history, signals, the ML model) lives for the whole run:
        # freezing it keeps the collector from walking it again on the tick path (CPython's
        # documented use of gc.freeze for long-lived processes).
        gc.collect()
        gc.freeze()
        if feed is None:
            summary = _replay(engine, paper_exchange, candles, start_ms, pace, quiet, st.out)
        else:
            summary = run_live(engine, paper_exchange, feed, poll, max_bars, quiet, st.out)
    _print_summary(st.out, summary)
    if export is not None:
        try:
            export.write_text(json.dumps(summary, indent=2, allow_nan=False))
        except OSError as exc:
            raise CliError(f"cannot write {export}: {exc.strerror}") from None
        st.out.print(f"exported to {export}")


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
    import ccxt

    from nettrace.execution.paper import Bar

    counts: dict[str, int] = {}
    last: Tick | None = None
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
                last = engine.on_bar(bar)
                _show(last, counts, quiet, out)
                seen += 1
                if max_bars is not None and seen >= max_bars:
                    break
            else:
                sleep(poll_s)
    except KeyboardInterrupt:
        out.print("stopped (Ctrl-C)")
    return _summary(engine, feed.key, seen, last, counts)


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


def _candles(path: Path) -> Candles:
    if not path.is_file():
        raise CliError(f"candle file {path} does not exist")
    try:
        candles, _ = load_candles(path)
    except CandleDataError as exc:
        raise CliError(f"{exc} (repair it with `nettrace data import --repair`)") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if len(candles) < 2:
        raise CliError(f"{path} holds fewer than 2 candles")
    return candles


def _bars(candles: Candles, start_ms: int | None) -> Iterator[Bar]:
    from nettrace.execution.paper import Bar

    pair = candles.key.pair
    for i in range(len(candles)):
        ts = int(candles.timestamp[i])
        if start_ms is not None and ts < start_ms:
            continue  # matched before a restart; the last one is ticked again (idempotent)
        yield Bar(
            pair, ts, float(candles.open[i]), float(candles.high[i]), float(candles.low[i]),
            float(candles.close[i]), float(candles.volume[i]),
        )  # fmt: skip


def _replay(
    engine: QuantEngine,
    exchange: PaperExchange,
    candles: Candles,
    start_ms: int | None,
    pace: float | None,
    quiet: bool,
    out: Any,
) -> dict[str, Any]:
    bars = list(_bars(candles, start_ms))
    step_s = timeframe_ms(candles.key.timeframe) / 1000 / pace if pace else 0.0
    counts: dict[str, int] = {}
    last: Tick | None = None
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("equity {task.fields[equity]}"), TimeElapsedColumn(),
        console=out, transient=True, disable=quiet,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"replaying {candles.key}", total=len(bars), equity="-")
        for bar in bars:
            exchange.on_bar(bar)
            last = engine.on_bar(bar)
            _show(last, counts, quiet, out)
            progress.update(task, advance=1, equity=f"{last.equity:,.2f}")
            if step_s:
                time.sleep(step_s)
    return _summary(engine, candles.key, len(bars), last, counts)


def _summary(
    engine: QuantEngine, key: CandleKey, bars: int, last: Tick | None, counts: dict[str, int]
) -> dict[str, Any]:
    from nettrace.backtest.results import fingerprint

    trades = engine.trades
    report = engine.reconcile_report
    return {
        "pair": key.pair,
        "exchange": key.exchange,
        "timeframe": key.timeframe,
        "bars": bars,
        "state": engine.state.value,
        "equity": last.equity if last is not None else None,
        "events": counts,
        "trades": [t.to_export() for t in trades],
        "net_profit": sum(t.profit for t in trades),
        "fingerprint": fingerprint(trades),
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
    table.add_row("round trips", str(len(summary["trades"])))
    table.add_row("net profit", f"{summary['net_profit']:,.2f}")
    if summary["equity"] is not None:
        table.add_row("equity", f"{summary['equity']:,.2f}")
    out.print(table)
    out.print(f"trade fingerprint: {summary['fingerprint']}")


def _iso(ts_ms: int | None) -> str:
    from datetime import UTC, datetime

    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
