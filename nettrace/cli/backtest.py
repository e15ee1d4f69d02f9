"""``nettrace backtest``: run a strategy on candle history and report honestly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from nettrace.cli.context import CliError, state
from nettrace.config.rules import RulesInForce
from nettrace.market.candles import CandleKey, Candles
from nettrace.market.store import CandleStore, load_candles
from nettrace.market.validation import CandleDataError
from nettrace.strategies.catalog import STRATEGIES, strategy_by_name

if TYPE_CHECKING:  # numba, TA-Lib and Plotly cost ~0.6 s to import: only a backtest needs them
    from nettrace.backtest.engine import FillModel


def backtest(
    ctx: typer.Context,
    strategy: Annotated[
        str, typer.Option(help=f"Strategy to run: {', '.join(sorted(STRATEGIES))}.")
    ],
    data: Annotated[
        list[Path] | None,
        typer.Option(
            help="Candle file (Parquet, CSV, Freqtrade feather/json); repeat for several pairs.",
            dir_okay=False,
        ),
    ] = None,
    exchange: Annotated[
        str | None,
        typer.Option(
            help="Read stored candles of this exchange (see data list); with --data: the "
            "file's exchange, when its name does not say."
        ),
    ] = None,
    pairs: Annotated[
        str | None, typer.Option(help="With --exchange: comma-separated pairs, e.g. BTC/USD.")
    ] = None,
    pair: Annotated[
        str | None,
        typer.Option(
            help="With --data: the file's pair (e.g. BTC/USD), when its name does not say."
        ),
    ] = None,
    timeframe: Annotated[
        str | None,
        typer.Option(
            help="With --exchange: e.g. 5m, 1h. With --data: the file's timeframe (default: "
            "from its name, else from the spacing of its bars)."
        ),
    ] = None,
    timerange: Annotated[
        str | None, typer.Option(help="YYYYMMDD-YYYYMMDD (either side may be empty), UTC.")
    ] = None,
    fee: Annotated[
        float | None,
        typer.Option(help="One fee rate for every fill, as a fraction (0.004 = 0.40%)."),
    ] = None,
    fill: Annotated[
        str, typer.Option(help="next_open (market at the next open) or maker (post-only limit).")
    ] = "next_open",
    cash: Annotated[float, typer.Option(help="Starting cash in quote currency.")] = 10_000.0,
    max_open: Annotated[
        int | None, typer.Option(help="Most positions open at once (default: risk limits).")
    ] = None,
    repair: Annotated[
        bool, typer.Option(help="Repair invalid candles (and say what changed) instead of failing.")
    ] = False,
    export: Annotated[
        Path | None, typer.Option(help="Write metrics, fingerprint and trades as JSON here.")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write a self-contained interactive HTML report here.")
    ] = None,
) -> None:
    """Backtest a strategy: decisions at bar close, fills at the next bar, fees on every fill.

    A --data file named EXCHANGE_BASE-QUOTE_TIMEFRAME.<ext> (e.g. coinbase_BTC-USD_1h.csv)
    says what it holds; any other name needs --exchange and --pair (the timeframe is then
    read from the spacing of the bars unless --timeframe gives it).

    Examples (from the repository root; ../shared/data is the developer data set):
      nettrace backtest --strategy ema_cross --data ../shared/data/coinbase_BTC-USD_1h.parquet \\
        --fee 0.004
      nettrace data import ../shared/data/coinbase_BTC-USD_1h.parquet
      nettrace backtest --strategy sniper --exchange coinbase --pairs BTC/USD --timeframe 1h \\
        --timerange 20180101- --report report.html
    """
    from nettrace.backtest.engine import BacktestConfig, run_backtest
    from nettrace.backtest.metrics import compute_metrics
    from nettrace.backtest.report import metrics_table, trades_table, write_report

    st = state(ctx)
    if fill not in ("next_open", "maker"):
        raise CliError(f"--fill must be next_open or maker, got {fill!r}")
    if fee is not None and not 0.0 <= fee < 1.0:
        raise CliError(f"--fee must be a fraction in [0, 1), got {fee} (0.004 means 0.40%)")
    if not cash > 0:
        raise CliError(f"--cash must be positive, got {cash}")
    if max_open is not None and max_open < 1:
        raise CliError(f"--max-open must be at least 1, got {max_open}")
    try:
        chosen = strategy_by_name(strategy)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    start_ms, end_ms = _parse_timerange(timerange)
    settings = st.settings
    candles = _load(
        data, exchange, pairs, timeframe, repair, settings.data_dir / "candles", st, pair=pair
    )
    candles = {pair: c.between(start_ms, end_ms) for pair, c in candles.items()}
    empty = [pair for pair, c in candles.items() if len(c) < 2]
    if empty:
        raise CliError(f"fewer than 2 candles for {', '.join(empty)} in timerange {timerange}")
    config = BacktestConfig(
        initial_cash=cash, fees=settings.fees(_exchange_of(candles)), fee=fee, fill=_fill(fill),
        max_open_positions=max_open,
    )  # fmt: skip
    rules = RulesInForce.from_settings(settings)  # the same rules the engine trades with
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=st.out, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task(f"backtesting {chosen.name}", total=1)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            result = run_backtest(
                chosen, candles, config, risk=rules.risk(), thresholds=rules.thresholds,
                progress=advance,
            )  # fmt: skip
        except ValueError as exc:
            raise CliError(str(exc)) from None
    result.metrics = compute_metrics(result)
    if result.synthetic:
        st.out.print("[bold yellow]SYNTHETIC DATA: these candles were generated.[/]")
    st.out.print(metrics_table(result))
    st.out.print(trades_table(result))
    st.out.print(f"trade fingerprint: {result.fingerprint}")
    from nettrace.backtest.audit import audit_backtest
    from nettrace.cli.audit import BREACHED, print_report

    audited = audit_backtest(result)  # the ledger audit's invariants, on this run's own trades
    print_report(st.out, audited, limit=10)
    if export is not None:
        _write(export, json.dumps(result.to_export(), indent=2, allow_nan=False))
        st.out.print(f"exported {len(result.trades)} trades to {export}")
    if report is not None:
        try:
            write_report(result, report)
        except OSError as exc:
            raise CliError(f"cannot write report {report}: {exc.strerror}") from None
        st.out.print(f"report written to {report}")
    if not audited.clean:  # after the export and report, which show the breaching trades
        raise typer.Exit(BREACHED)


def _exchange_of(candles: dict[str, Candles]) -> str | None:
    """The exchange whose fee schedule applies: the candles' one, if they share one."""
    exchanges = {c.key.exchange for c in candles.values()}
    return exchanges.pop() if len(exchanges) == 1 else None


def _fill(value: str) -> FillModel:
    return "maker" if value == "maker" else "next_open"


def _load(
    data: list[Path] | None,
    exchange: str | None,
    pairs: str | None,
    timeframe: str | None,
    repair: bool,
    root: Path,
    st: object,
    *,
    pair: str | None = None,
) -> dict[str, Candles]:
    if data and pairs:
        raise CliError("--pairs reads stored candles; with --data FILE give the file's --pair")
    if pair and not data:
        raise CliError("--pair names the pair of a --data FILE; for stored candles use --pairs")
    if pair and len(data or []) > 1:
        raise CliError("--pair applies to one --data FILE; name the files EXCHANGE_BASE-QUOTE_TF")
    loaded: dict[str, Candles] = {}
    try:
        if data:
            for path in data:
                if not path.is_file():
                    raise CliError(f"candle file {path} does not exist")
                candles, notes = load_candles(
                    path, repair=repair, exchange=exchange, pair=pair, timeframe=timeframe
                )
                _notes(st, path.name, notes)
                if candles.key.pair in loaded:
                    raise CliError(f"pair {candles.key.pair} given twice (--data {path})")
                loaded[candles.key.pair] = candles
            return loaded
        if not (exchange and pairs and timeframe):
            raise CliError("give --data FILE, or all of --exchange, --pairs and --timeframe")
        store = CandleStore(root)
        for pair in (p.strip() for p in pairs.split(",") if p.strip()):
            key = CandleKey(exchange, pair, timeframe)
            if not store.path_for(key).is_file():
                raise CliError(
                    f"no stored candles for {key} (run `nettrace data download` or `data import`)"
                )
            candles, notes = store.load(key, repair=repair)
            _notes(st, str(key), notes)
            loaded[pair] = candles
    except CandleDataError as exc:
        raise CliError(f"{exc} (use --repair to fix what can be fixed)") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return loaded


def _notes(st: object, source: str, notes: list[str]) -> None:
    out = getattr(st, "out", None)
    for note in notes:
        if out is not None:
            out.print(f"[yellow]repaired {source}:[/] {note}")


def _parse_timerange(value: str | None) -> tuple[int | None, int | None]:
    if value is None:
        return None, None
    start, sep, end = value.partition("-")
    if not sep:
        raise CliError(f"--timerange {value!r} must look like 20240101-20240301")
    bounds: list[int | None] = []
    for part in (start, end):
        if not part:
            bounds.append(None)
            continue
        try:
            moment = datetime.strptime(part, "%Y%m%d").replace(tzinfo=UTC)
        except ValueError:
            raise CliError(f"--timerange {value!r}: {part!r} is not a YYYYMMDD date") from None
        bounds.append(int(moment.timestamp() * 1000))
    if bounds[0] is not None and bounds[1] is not None and bounds[0] >= bounds[1]:
        raise CliError(f"--timerange {value!r}: the start must be before the end")
    return bounds[0], bounds[1]


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
