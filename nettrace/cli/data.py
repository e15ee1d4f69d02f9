"""``nettrace data``: download, import, list and validate candle data.

Candles live in ``<data_dir>/candles`` (``NETTRACE_DATA_DIR``), one Parquet file per
exchange/pair/timeframe. Bad input of any kind (an unknown exchange, a date that is not a date,
a file with a broken bar) ends in one ``nettrace: error:`` line and exit code 2, never a
traceback and never a silently stored bad bar.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from nettrace.cli.context import CliError, CliTable, state
from nettrace.market.candles import CandleKey, timeframe_ms
from nettrace.market.store import CandleStore, write_parquet
from nettrace.market.validation import CandleDataError

if TYPE_CHECKING:  # ccxt costs ~0.4 s to import; only `download` needs it at run time
    from nettrace.market.download import DownloadReport

app = typer.Typer(
    help="Download, import and list candle data (Parquet per exchange/pair/timeframe).",
    no_args_is_help=True,
)

REPAIR_HINT = "; add --repair to drop or fix the bad rows (every change is listed)"


def candle_store(ctx: typer.Context) -> CandleStore:
    """The store under the configured data directory (``NETTRACE_DATA_DIR``/candles)."""
    return CandleStore(state(ctx).settings.data_dir.expanduser() / "candles")


@app.command()
def download(
    ctx: typer.Context,
    exchange: Annotated[
        str,
        typer.Option(
            help="ccxt exchange id, e.g. binance, kraken, coinbase, bitstamp. Public data "
            "only: no API key is used."
        ),
    ],
    pairs: Annotated[
        str,
        typer.Option(help="Comma-separated ccxt symbols, e.g. BTC/USDT,ETH/USDT."),
    ],
    since: Annotated[
        str,
        typer.Option(
            help="First bar to fetch (UTC): 2024-01-01, 2024-01-01T12:00 or ms since 1970."
        ),
    ],
    timeframe: Annotated[
        str, typer.Option(help="Bar length: 1m 5m 15m 30m 1h 4h 1d 1w and others.")
    ] = "1h",
    until: Annotated[
        str | None,
        typer.Option(help="Stop before this time (UTC, same forms as --since). Default: now."),
    ] = None,
) -> None:
    """Download candles through ccxt into the store. Safe to interrupt and run again.

    A rerun continues after the last stored bar and never fetches stored bars twice; the bar
    still forming is never stored.

    Example: nettrace data download --exchange binance --pairs BTC/USDT,ETH/USDT
    --timeframe 5m --since 2024-01-01 --until 2024-02-01
    """
    from nettrace.market.download import (
        DownloadError,
        DownloadProgress,
        download_candles,
        make_exchange,
    )

    keys = _keys(exchange, pairs, timeframe)
    since_ms = parse_time(since, "--since")
    until_ms = parse_time(until, "--until") if until is not None else None
    if until_ms is not None and until_ms <= since_ms:
        raise CliError(f"--until {until} is not after --since {since}")
    try:
        client = make_exchange(exchange)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    st = state(ctx)
    store = candle_store(ctx)
    reports: list[DownloadReport] = []
    failure: str | None = None
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%  {task.fields[bars]:>9,} bars"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=st.out, transient=False) as bars:
        for key in keys:
            task = bars.add_task(key.pair, total=1, bars=0)

            def update(p: DownloadProgress, task_id: TaskID = task) -> None:
                bars.update(task_id, total=max(p.total_ms, 1), completed=p.done_ms, bars=p.bars)

            try:
                report = download_candles(
                    client, key, since_ms, store, until_ms=until_ms, progress=update
                )
            except (DownloadError, CandleDataError) as exc:
                failure = f"{key}: {exc}"
                break
            bars.update(task, total=1, completed=1)
            reports.append(report)
    if reports:
        st.out.print(_download_table(reports))
    if failure is not None:
        raise CliError(f"{failure} (bars fetched so far are stored; run again to resume)")


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV, Parquet, Freqtrade .feather or .json (.json.gz) candle file.",
            show_default=False,
        ),
    ],
    exchange: Annotated[
        str | None,
        typer.Option(help="Exchange id to file the bars under, if the file name lacks it."),
    ] = None,
    pair: Annotated[
        str | None, typer.Option(help="Pair as BASE/QUOTE (e.g. BTC/USDT) if the name lacks it.")
    ] = None,
    timeframe: Annotated[
        str | None, typer.Option(help="Bar length (e.g. 5m) if the file name lacks it.")
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            help="Sort, drop duplicate or broken rows and fix high/low instead of refusing "
            "the file. Gaps are never filled."
        ),
    ] = False,
) -> None:
    """Import a candle file into the store, merged with what is there (the file wins on
    equal timestamps).

    The key comes from the file name when it can: binance_BTC-USDT_5m.csv (ours) or
    Freqtrade's BTC_USDT-5m.feather inside a folder named after the exchange. A CSV needs a
    header with timestamp (ms) or date (ISO, UTC) and open, high, low, close, volume.

    Examples: nettrace data import ~/ft/user_data/data/binance/BTC_USDT-5m.feather;
    nettrace data import bars.csv --exchange kraken --pair BTC/USD --timeframe 1h --repair
    """
    from nettrace.market.importers import import_file, resolve_key

    _require_file(file)
    try:
        key = resolve_key(file, exchange=exchange, pair=pair, timeframe=timeframe)
        report = import_file(file, candle_store(ctx), key=key, repair=repair)
    except CandleDataError as exc:
        raise CliError(f"{exc}{'' if repair else REPAIR_HINT}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out = state(ctx).out
    replaced = f", {report.rows_replaced:,} of them changed" if report.rows_replaced else ""
    out.print(
        f"Imported {file.name} as {report.key}: {report.rows_added:,} new bars, "
        f"{report.rows_already_present:,} already stored{replaced}; "
        f"{report.rows_total:,} bars in {report.stored_path}"
    )
    for note in report.repairs:
        out.print(f"  repaired: {note}")
    for warning in report.warnings:
        out.print(f"  warning: {warning}")


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """List the stored candle files: range, size, gaps, and whether they are synthetic."""
    store = candle_store(ctx)
    try:
        infos = store.list()
    except CandleDataError as exc:
        raise CliError(str(exc)) from None
    out = state(ctx).out
    if not infos:
        out.print(
            f"No candles in {store.root}. Get some with `nettrace data download` or "
            "`nettrace data import`."
        )
        return
    table = CliTable(title=f"Candles in {store.root}")
    # The key columns never wrap, so a narrow terminal folds the dates, not the names.
    for name in ("Exchange", "Pair", "TF"):
        table.add_column(name, no_wrap=True)
    for name in ("First (UTC)", "Last (UTC)"):
        table.add_column(name, min_width=10)  # "2024-01-01" stays whole; the time may fold
    for name in ("Rows", "Gaps", "Missing bars"):
        table.add_column(name, justify="right")
    table.add_column("Synthetic")
    for info in infos:
        table.add_row(
            info.key.exchange,
            info.key.pair,
            info.key.timeframe,
            _when(info.first_ms),
            _when(info.last_ms),
            f"{info.rows:,}",
            f"{info.gaps:,}",
            f"{info.missing_bars:,}",
            "SYNTHETIC" if info.synthetic else "no",
        )
    out.print(table)


@app.command()
def validate(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="Candle file in any importable format.", show_default=False)
    ],
    timeframe: Annotated[
        str | None,
        typer.Option(help="Bar length for grid and gap checks, if the file name lacks it."),
    ] = None,
    repair: Annotated[
        bool, typer.Option(help="Repair what can be repaired honestly and list each change.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(help="With --repair: write the repaired bars to this Parquet file."),
    ] = None,
) -> None:
    """Check a candle file without storing it; exit 2 on the first kind of error.

    Example: nettrace data validate bars.csv --timeframe 5m --repair --output fixed.parquet
    """
    from nettrace.market.importers import guess_key_parts, read_frame
    from nettrace.market.store import check_frame
    from nettrace.market.validation import validate_frame

    _require_file(file)
    if output is not None and not repair:
        raise CliError("--output writes repaired bars; add --repair")
    try:
        tf = timeframe or guess_key_parts(file).get("timeframe")
        if tf is not None:
            timeframe_ms(tf)
        frame, meta = read_frame(file)
        frame, notes = check_frame(frame, str(file), tf, repair=repair)
        warnings = validate_frame(frame, str(file), tf)
    except CandleDataError as exc:
        raise CliError(f"{exc}{'' if repair else REPAIR_HINT}") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out = state(ctx).out
    for note in notes:
        out.print(f"repaired: {note}")
    for problem in warnings:
        out.print(f"warning: {problem.describe()}")
    grid = f" on the {tf} grid" if tf else " (no timeframe: grid and gaps not checked)"
    out.print(f"{file}: {len(frame):,} bars, no errors{grid}")
    if output is not None:
        write_parquet(
            output,
            frame,
            synthetic=meta.get("nettrace.synthetic") == "true",
            source=f"{file.name} repaired by nettrace",
        )
        out.print(f"wrote {output}")


#: Most bars ``data synth`` makes in one call (10M 1-minute bars is 19 years; 1.3 GB in memory).
MAX_SYNTH_BARS = 10_000_000


@app.command()
def synth(
    ctx: typer.Context,
    pairs: Annotated[
        str, typer.Option(help="Comma-separated pairs to invent, e.g. BTC/USD,ETH/USD.")
    ] = "BTC/USD",
    timeframe: Annotated[str, typer.Option(help="Bar length: 1m 5m 1h 1d ...")] = "5m",
    bars: Annotated[int, typer.Option(help="Bars per pair.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed makes the same bars.")] = 0,
    start: Annotated[str, typer.Option(help="First bar's open time (UTC).")] = "2024-01-01",
    volatility: Annotated[
        float, typer.Option(help="Annualised volatility as a fraction (0.8 = 80%/year).")
    ] = 0.8,
    exchange: Annotated[
        str, typer.Option(help="Exchange name to file them under (kept apart from real data).")
    ] = "synthetic",
) -> None:
    """Generate seeded SYNTHETIC candles into the store, for working with no market data.

    Geometric Brownian motion with wicks and volume. Every file made here is labelled
    synthetic, and `data list`, `backtest` and its report say so wherever it appears.

    Example: nettrace data synth --pairs BTC/USD,ETH/USD --timeframe 1h --bars 20000 --seed 7
    """
    from nettrace.market.synthetic import synthetic_candles

    if not 2 <= bars <= MAX_SYNTH_BARS:
        raise CliError(f"--bars must be between 2 and {MAX_SYNTH_BARS:,}, got {bars:,}")
    if not 0.0 <= volatility <= 10.0:
        raise CliError(f"--volatility must be a fraction in [0, 10], got {volatility}")
    keys = _keys(exchange, pairs, timeframe)
    start_ms = parse_time(start, "--start")
    store = candle_store(ctx)
    out = state(ctx).out
    for offset, key in enumerate(keys):
        try:
            candles = synthetic_candles(
                key, bars, seed + offset, start_ms=start_ms, annual_volatility=volatility
            )
            report = store.save(candles)
        except (CandleDataError, ValueError) as exc:
            raise CliError(f"{key}: {exc}") from None
        out.print(
            f"[bold yellow]SYNTHETIC[/] {key}: {report.rows_added:,} new bars "
            f"(seed {seed + offset}), {report.rows_total:,} in {report.path}"
        )


def parse_time(text: str, option: str) -> int:
    """``2024-01-01``, ``2024-01-01T12:00`` (naive = UTC) or integer ms → ms since 1970 UTC."""
    value = text.strip()
    if value.isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"{option} {text!r} is not a date (use 2024-01-01, 2024-01-01T12:00 or ms since "
            "1970, all UTC)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _keys(exchange: str, pairs: str, timeframe: str) -> list[CandleKey]:
    names = [p.strip() for p in pairs.split(",") if p.strip()]
    if not names:
        raise CliError("--pairs is empty (give e.g. BTC/USDT,ETH/USDT)")
    try:
        return [CandleKey(exchange=exchange, pair=name, timeframe=timeframe) for name in names]
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise CliError(f"{path}: no such file")


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _download_table(reports: list[DownloadReport]) -> Table:
    table = CliTable(title="Download summary")
    table.add_column("Pair")
    for name in ("New bars", "Already stored", "Total bars"):
        table.add_column(name, justify="right")
    table.add_column("First (UTC)")
    table.add_column("Last (UTC)")
    table.add_column("Gaps / missing", justify="right")
    for report in reports:
        table.add_row(
            str(report.key),
            f"{report.bars_added:,}",
            f"{report.bars_already_present:,}",
            f"{report.rows_total:,}",
            _when(report.first_ms),
            _when(report.last_ms),
            f"{report.gaps:,} / {report.missing_bars:,}",
        )
    return table
