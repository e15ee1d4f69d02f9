"""Benchmark: ``ema_cross`` in nettrace's backtest engine vs vectorbt vs backtesting.py.

All three frameworks run the same job on the same candles in the same invocation: TA-Lib EMA
12/26 signals at the bar close, long only, all cash, fill at the next bar's open, one fee rate
on every fill; the measured time covers signals + simulation + the trade list. The candles are
the longest real 5-minute file in ../shared/data, continued by a seeded block bootstrap
(``extend_with_continuation``) where a size asks for more bars than the file has.

Every framework and size runs in subprocesses of its own: one for the timings (best of N after
a warm-up that compiles the numba JIT), one for the peak memory (peak RSS over the RSS just
before the run), so that no framework's allocations or imports pollute another's figures.

Needs the ``bench`` extra (``pip install -e '.[bench]'``) for vectorbt and backtesting.py; a
framework that is not installed is skipped with a printed reason. Exits 1 if any measured
framework's trade list differs from nettrace's, 2 if the data set is missing.

    python benchmarks/backtest_ema_cross.py [--sizes 10000,100000,1000000] [--repeat 3]
                                            [--full] [--json OUT]
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow.parquet as pq

from nettrace.backtest.engine import BacktestConfig, run_backtest
from nettrace.market.candles import CandleKey, Candles
from nettrace.market.shared_data import shared_data_dir
from nettrace.market.synthetic import extend_with_continuation
from nettrace.strategies.base import crossed_above, crossed_below
from nettrace.strategies.ema_cross import EmaCross

NETTRACE = "nettrace"
#: The same run, then every trade read as a ``Trade`` object (what a report or export does).
NETTRACE_OBJECTS = "nettrace+Trade objs"
VECTORBT = "vectorbt"
BACKTESTING = "backtesting.py"
FRAMEWORKS = (NETTRACE, NETTRACE_OBJECTS, VECTORBT, BACKTESTING)
#: Module each framework needs (None: always present).
_MODULE = {NETTRACE: None, NETTRACE_OBJECTS: None, VECTORBT: "vectorbt", BACKTESTING: "backtesting"}
#: Distribution names, for the versions line.
_DISTRIBUTIONS = ("numpy", "pandas", "numba", "TA-Lib", "vectorbt", "backtesting")

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
#: backtesting.py runs above this many candles only with --full (it is pure-Python per bar).
BACKTESTING_MAX_DEFAULT = 100_000
#: Bars of the warm-up run (compiles nettrace's and vectorbt's numba kernels; not measured).
WARMUP_BARS = 5_000
TIMEFRAME = "5m"
REL_TOL = 1e-9
#: glibc: a fixed mmap threshold (no dynamic raise) returns every freed array to the OS, so
#: RSS follows live memory. Set for the memory subprocesses only; timings use the defaults.
_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}

# Targets from the issue, checked at the largest size run.
TARGET_VS_VECTORBT = 1.0
TARGET_VS_BACKTESTING = 20.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Job = Callable[[Candles], Any]


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


def longest_5m_file(data_dir: Path) -> Path:
    """The 5-minute candle file with the most rows (Parquet metadata only, nothing loaded)."""
    files = sorted(data_dir.glob(f"*_{TIMEFRAME}.parquet"))
    if not files:
        raise FileNotFoundError(f"no *_{TIMEFRAME}.parquet candle files in {data_dir}")
    return max(files, key=lambda path: (pq.read_metadata(path).num_rows, path.name))


def load_real(path: Path) -> Candles:
    return Candles.from_frame(pd.read_parquet(path), CandleKey.from_filename(path.name))


def candles_of_size(real: Candles, n: int, seed: int) -> Candles:
    """The first ``n`` real bars, or all of them plus a seeded continuation up to ``n``."""
    if n <= len(real):
        return real.slice(0, n)
    return extend_with_continuation(real, n, seed)


# --------------------------------------------------------------------------------------------
# The job each framework does for the user: signals + simulation + trade list (timed whole)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TradeList:
    """A framework's closed trades in one comparable form (times are bar open times, ms UTC)."""

    entry_ms: IntArray
    exit_ms: IntArray
    entry_price: FloatArray
    exit_price: FloatArray
    amount: FloatArray

    def __len__(self) -> int:
        return len(self.entry_ms)

    def save(self, path: Path) -> None:
        np.savez(path, **asdict(self))

    @classmethod
    def load(cls, path: Path) -> TradeList:
        with np.load(path) as data:
            return cls(**{name: data[name] for name in data.files})


def nettrace_job(fee: float, cash: float) -> tuple[Job, Callable[[Any, Candles], TradeList]]:
    config = BacktestConfig(fee=fee, initial_cash=cash)

    def job(candles: Candles) -> Any:
        # The trade list in columns: the equivalent of vectorbt's records_arr.
        return run_backtest(EmaCross(), candles, config).records

    def to_list(records: Any, candles: Candles) -> TradeList:
        return TradeList(
            entry_ms=records.entry_ms,
            exit_ms=records.exit_ms,
            entry_price=records.entry_price,
            exit_price=records.exit_price,
            amount=records.amount,
        )

    return job, to_list


def nettrace_objects_job(
    fee: float, cash: float
) -> tuple[Job, Callable[[Any, Candles], TradeList]]:
    config = BacktestConfig(fee=fee, initial_cash=cash)

    def job(candles: Candles) -> Any:
        return run_backtest(EmaCross(), candles, config).trades

    def to_list(trades: Any, candles: Candles) -> TradeList:
        return TradeList(
            entry_ms=np.array([round(t.entry_time.timestamp() * 1000) for t in trades], np.int64),
            exit_ms=np.array([round(t.exit_time.timestamp() * 1000) for t in trades], np.int64),
            entry_price=np.array([t.entry_price for t in trades], np.float64),
            exit_price=np.array([t.exit_price for t in trades], np.float64),
            amount=np.array([t.amount for t in trades], np.float64),
        )

    return job, to_list


def vectorbt_job(fee: float, cash: float) -> tuple[Job, Callable[[Any, Candles], TradeList]]:
    """As in tests/integration/backtest/test_vectorbt_parity.py: signals shifted one bar."""
    import vectorbt as vbt
    from vectorbt.portfolio.enums import TradeStatus

    def job(candles: Candles) -> Any:
        signals = EmaCross().run(candles)
        # A tz-naive (UTC) index: with a tz-aware one, vectorbt's shape check converts the index
        # to an object array of Timestamps, ~1.5 s per million bars, which is not its engine.
        index = pd.to_datetime(candles.timestamp, unit="ms")
        # Decision at bar close, fill at the next bar's open: shift signals one bar, price=open.
        entries = pd.Series(np.r_[False, signals.entry[:-1]], index=index)
        exits = pd.Series(np.r_[False, signals.exit[:-1]], index=index)
        portfolio = vbt.Portfolio.from_signals(
            pd.Series(candles.close, index=index), entries=entries, exits=exits,
            price=pd.Series(candles.open, index=index), fees=fee, init_cash=cash,
        )  # fmt: skip
        records = portfolio.trades.records_arr
        return records[records["status"] == TradeStatus.Closed]

    def to_list(closed: Any, candles: Candles) -> TradeList:
        return TradeList(
            entry_ms=candles.timestamp[closed["entry_idx"]].astype(np.int64),
            exit_ms=candles.timestamp[closed["exit_idx"]].astype(np.int64),
            entry_price=closed["entry_price"].astype(np.float64),
            exit_price=closed["exit_price"].astype(np.float64),
            amount=closed["size"].astype(np.float64),
        )

    return job, to_list


def backtesting_job(fee: float, cash: float) -> tuple[Job, Callable[[Any, Candles], TradeList]]:
    """backtesting.py: the same TA-Lib EMAs and crosses via ``self.I``, all cash, next open."""
    import backtesting
    import talib

    reference = EmaCross()

    class BtEmaCross(backtesting.Strategy):  # type: ignore[misc]
        fast = reference.fast
        slow = reference.slow

        def init(self) -> None:
            close = np.asarray(self.data.Close, dtype=np.float64)
            fast = np.asarray(self.I(talib.EMA, close, self.fast, name="ema_fast"))
            slow = np.asarray(self.I(talib.EMA, close, self.slow, name="ema_slow"))
            self.entry = self.I(crossed_above, fast, slow, name="entry", plot=False)
            self.exit = self.I(crossed_below, fast, slow, name="exit", plot=False)

        def next(self) -> None:
            if self.position:
                if self.exit[-1]:
                    self.position.close()
            elif self.entry[-1]:
                self.buy()  # default size: all available cash (whole units)

    def job(candles: Candles) -> Any:
        frame = pd.DataFrame(
            {"Open": candles.open, "High": candles.high, "Low": candles.low,
             "Close": candles.close, "Volume": candles.volume},
            index=pd.to_datetime(candles.timestamp, unit="ms"),  # UTC, tz-naive as for vectorbt
        )  # fmt: skip
        with warnings.catch_warnings():
            # "Some trades remain open at the end": they are left out, as by the others.
            warnings.simplefilter("ignore")
            test = backtesting.Backtest(
                frame, BtEmaCross, cash=cash, commission=fee, trade_on_close=False,
                exclusive_orders=True,
            )  # fmt: skip
            return test.run()["_trades"]

    def to_list(trades: Any, candles: Candles) -> TradeList:
        return TradeList(
            entry_ms=candles.timestamp[trades["EntryBar"].to_numpy(np.int64)],
            exit_ms=candles.timestamp[trades["ExitBar"].to_numpy(np.int64)],
            entry_price=trades["EntryPrice"].to_numpy(np.float64),
            exit_price=trades["ExitPrice"].to_numpy(np.float64),
            amount=np.array([float(size) for size in trades["Size"]], np.float64),
        )

    return job, to_list


_JOBS = {
    NETTRACE: nettrace_job,
    NETTRACE_OBJECTS: nettrace_objects_job,
    VECTORBT: vectorbt_job,
    BACKTESTING: backtesting_job,
}


# --------------------------------------------------------------------------------------------
# Worker (one framework, one size, one measurement, in a subprocess of its own)
# --------------------------------------------------------------------------------------------


def _status_kb(field: str) -> int | None:
    """A ``/proc/self/status`` field in kB (Linux), or None where there is none."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _measure_memory(job: Job, candles: Candles) -> tuple[float, str]:
    """Peak RSS during one run minus RSS just before it, in MB."""
    gc.collect()
    baseline = _status_kb("VmRSS")
    if baseline is not None and _reset_peak_rss():
        result = job(candles)
        peak = _status_kb("VmHWM") or 0
        del result
        return (peak - baseline) / 1024, "peak RSS (VmHWM, reset before the run) - RSS before"
    # Fallback (no /proc): lifetime peak, so imports and data loading are included.
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = job(candles)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del result
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return (after - before) / scale, "ru_maxrss growth (lifetime peak; no /proc/self/clear_refs)"


def worker(args: argparse.Namespace) -> None:
    """Run one measurement and print one JSON line; the trade list goes to ``--trades-out``."""
    real = load_real(Path(args.file))
    candles = candles_of_size(real, args.size, args.seed)
    job, to_list = _JOBS[args.worker](args.fee, args.cash)
    job(candles.slice(0, min(WARMUP_BARS, len(candles))))  # warm-up: JIT compile, first calls
    report: dict[str, Any] = {"framework": args.worker, "size": args.size}
    if args.mode == "memory":
        report["peak_mb"], report["memory_method"] = _measure_memory(job, candles)
    else:
        seconds = []
        result: Any = None
        for _ in range(args.repeat):
            result = None
            gc.collect()
            start = time.perf_counter()
            result = job(candles)
            seconds.append(time.perf_counter() - start)
        trades = to_list(result, candles)
        trades.save(Path(args.trades_out))
        report["seconds"] = seconds
        report["trades"] = len(trades)
    print(json.dumps(report))


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    size: int
    framework: str
    seconds: float | None = None
    all_seconds: list[float] | None = None
    peak_mb: float | None = None
    trades: int | None = None
    identical: bool | None = None
    detail: str = ""
    extrapolated: bool = False
    skipped: str = ""

    @property
    def throughput(self) -> float | None:
        return self.size / self.seconds if self.seconds else None


def compare(ours: TradeList, theirs: TradeList) -> tuple[bool, str]:
    """Equal count, equal entry/exit times, prices and amounts within ``REL_TOL`` relative."""
    if len(ours) != len(theirs):
        return False, f"{len(ours)} trades vs {len(theirs)}"
    checks = (
        ("entry time", ours.entry_ms != theirs.entry_ms),
        ("exit time", ours.exit_ms != theirs.exit_ms),
        ("entry price", ~np.isclose(ours.entry_price, theirs.entry_price, rtol=REL_TOL, atol=0)),
        ("exit price", ~np.isclose(ours.exit_price, theirs.exit_price, rtol=REL_TOL, atol=0)),
        ("amount", ~np.isclose(ours.amount, theirs.amount, rtol=REL_TOL, atol=0)),
    )
    for what, differs in checks:
        if differs.any():
            k = int(np.argmax(differs))
            return False, f"{what} differs first at trade {k} of {len(ours)}"
    rel = np.abs(theirs.amount / ours.amount - 1.0) if len(ours) else np.zeros(1)
    return True, f"max rel. amount diff {float(rel.max()):.1e}"


def _run_worker(
    args: argparse.Namespace, framework: str, size: int, mode: str, trades_out: Path
) -> dict[str, Any]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", framework, "--mode", mode,
        "--size", str(size), "--repeat", str(args.repeat), "--file", str(args.data_file),
        "--seed", str(args.seed), "--cash", repr(args.cash), "--fee", repr(args.fee),
        "--trades-out", str(trades_out),
    ]  # fmt: skip
    env = {**os.environ, "TQDM_DISABLE": "1"}  # backtesting.py's progress bar
    if mode == "memory":
        env.update(_MEMORY_ENV)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(
            f"{framework} {mode} worker at {size:,} candles failed:\n{done.stderr.strip()}"
        )
    parsed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed


def _missing(framework: str) -> str:
    module = _MODULE[framework]
    if module is None or importlib.util.find_spec(module) is not None:
        return ""
    return f"{module} not installed (pip install -e '.[bench]')"


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(args: argparse.Namespace, real: Candles) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench_ema_cross_") as tmp:
        for size in args.sizes:
            lists: dict[str, TradeList] = {}
            for framework in FRAMEWORKS:
                row = Row(size=size, framework=framework)
                rows.append(row)
                row.skipped = _missing(framework)
                too_slow = framework == BACKTESTING and size > BACKTESTING_MAX_DEFAULT
                if not row.skipped and too_slow and not args.full:
                    row.skipped = "not run above 100,000 candles without --full"
                if row.skipped:
                    continue
                out = Path(tmp) / f"{framework}_{size}.npz"
                _progress(f"  {framework:<15} {size:>10,} candles: timing ...")
                timed = _run_worker(args, framework, size, "time", out)
                row.all_seconds = timed["seconds"]
                row.seconds = min(timed["seconds"])
                row.trades = timed["trades"]
                lists[framework] = TradeList.load(out)
                _progress(f"  {framework:<15} {size:>10,} candles: peak memory ...")
                memory = _run_worker(args, framework, size, "memory", out.with_suffix(".mem"))
                row.peak_mb = memory["peak_mb"]
                args.memory_method = memory["memory_method"]
            ours = lists.get(NETTRACE)
            for row in rows[-len(FRAMEWORKS) :]:
                if row.framework != NETTRACE and ours is not None and row.framework in lists:
                    row.identical, row.detail = compare(ours, lists[row.framework])
    _extrapolate_backtesting(rows)
    return rows


def _extrapolate_backtesting(rows: list[Row]) -> None:
    """Estimate unmeasured backtesting.py sizes at the throughput of its largest measured one."""
    measured = [r for r in rows if r.framework == BACKTESTING and r.seconds]
    if not measured:
        return
    basis = max(measured, key=lambda r: r.size)
    rate = basis.throughput or 0.0
    for row in rows:
        if row.framework == BACKTESTING and row.seconds is None and "--full" in row.skipped:
            row.seconds = row.size / rate
            row.extrapolated = True
            row.skipped = f"extrapolated linearly from {basis.size:,} candles (run --full)"


def _find(rows: list[Row], size: int, framework: str) -> Row | None:
    return next((r for r in rows if r.size == size and r.framework == framework), None)


def _ratio(row: Row, reference: Row | None) -> float | None:
    if reference is None or row.throughput is None or reference.throughput is None:
        return None
    return row.throughput / reference.throughput


def print_table(rows: list[Row], repeat: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ema_cross backtest, best of {repeat} (after a warm-up run)")
    for header in ("candles", "framework", "seconds", "candles/s", "vs vectorbt",
                   "vs backtesting.py", "peak MB", "trades", "identical trade list"):  # fmt: skip
        table.add_column(header, justify="left" if header == "framework" else "right")
    for row in rows:
        mark = "~" if row.extrapolated else ""
        vs_vbt = _ratio(row, _find(rows, row.size, VECTORBT))
        bt = _find(rows, row.size, BACKTESTING)
        vs_bt = _ratio(row, bt)
        bt_mark = "~" if bt is not None and bt.extrapolated and row is not bt else ""
        if row.framework == NETTRACE:
            identical = "reference"
        elif row.identical is None:
            identical = row.skipped or "-"
        else:
            identical = ("yes" if row.identical else "NO") + f" ({row.detail})"
        if row.seconds is None:
            table.add_row(f"{row.size:,}", row.framework, "-", "-", "-", "-", "-", "-", identical)
            continue
        table.add_row(
            f"{row.size:,}",
            row.framework,
            f"{mark}{row.seconds:.3f}",
            f"{mark}{row.throughput or 0:,.0f}",
            f"{mark}{vs_vbt:.2f}x" if vs_vbt is not None else "-",
            f"{mark or bt_mark}{vs_bt:.1f}x" if vs_bt is not None else "-",
            f"{row.peak_mb:.1f}" if row.peak_mb is not None else "-",
            f"{row.trades:,}" if row.trades is not None else "-",
            identical,
        )
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)


def check_targets(rows: list[Row], size: int) -> list[tuple[str, bool | None, str]]:
    """The issue's targets at ``size``: (description, met or None if unmeasured, figures)."""
    ours, vbt, bt = (_find(rows, size, f) for f in (NETTRACE, VECTORBT, BACKTESTING))
    results: list[tuple[str, bool | None, str]] = []
    speed_vbt = _ratio(ours, vbt) if ours and vbt else None
    if speed_vbt is None or vbt is None:
        results.append((f">= {TARGET_VS_VECTORBT}x vectorbt, identical trades", None, "no data"))
    else:
        met = speed_vbt >= TARGET_VS_VECTORBT and bool(vbt.identical)
        figures = f"{speed_vbt:.2f}x, identical: {'yes' if vbt.identical else 'no'}"
        results.append((f">= {TARGET_VS_VECTORBT}x vectorbt, identical trades", met, figures))
    speed_bt = _ratio(ours, bt) if ours and bt else None
    if speed_bt is None or bt is None:
        results.append((f">= {TARGET_VS_BACKTESTING:.0f}x backtesting.py", None, "no data"))
    else:
        label = " (EXTRAPOLATED backtesting.py time)" if bt.extrapolated else ""
        results.append(
            (
                f">= {TARGET_VS_BACKTESTING:.0f}x backtesting.py",
                speed_bt >= TARGET_VS_BACKTESTING,
                f"{speed_bt:.1f}x{label}",
            )
        )
    if ours is None or vbt is None or ours.peak_mb is None or vbt.peak_mb is None:
        results.append(("peak memory <= vectorbt's", None, "no data"))
    else:
        figures = f"{ours.peak_mb:.1f} MB vs {vbt.peak_mb:.1f} MB"
        results.append(("peak memory <= vectorbt's", ours.peak_mb <= vbt.peak_mb, figures))
    return results


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(part.replace("_", "")) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be integers, got {text!r}") from None
    if not sizes or min(sizes) < 100:
        raise argparse.ArgumentTypeError("need at least one size, each >= 100 candles")
    return sizes


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark the ema_cross backtest (TA-Lib EMA 12/26, long only, all cash, next-open "
            "fills) in nettrace against vectorbt (Portfolio.from_signals) and backtesting.py, "
            "on the same real 5m candles (the longest file in ../shared/data, continued by a "
            "seeded bootstrap when shorter). Prints seconds and candles/s (best of --repeat "
            "after a warm-up run; signals + simulation + trade list), throughput ratios, peak "
            "memory (separate subprocess per framework and size) and whether each trade list "
            "equals nettrace's. Exits 1 if a trade list differs."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=",".join(str(n) for n in DEFAULT_SIZES),
        help="comma-separated candle counts",
    )  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per measurement")
    parser.add_argument(
        "--full", action="store_true",
        help=f"also run backtesting.py above {BACKTESTING_MAX_DEFAULT:,} candles (minutes); "
        "otherwise its time there is extrapolated and labelled as such",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write results as JSON")
    parser.add_argument(
        "--file", default=None,
        help="candle file name in the data set (None: the longest *_5m.parquet there)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=42, help="seed of the continuation")
    parser.add_argument("--fee", type=float, default=0.004, help="fee rate on every fill")
    parser.add_argument(
        "--cash", type=float, default=1e100,
        help="initial cash (quote). Huge on purpose: all-cash ema_cross at a 0.4%% fee loses "
        "~0.8%% per round trip, ~1e-81 of the wallet over 1M bars; vectorbt treats amounts "
        "below 1e-12 as zero and backtesting.py buys whole units, so a small wallet would "
        "stop them trading. Results scale with the cash; trade times do not depend on it",
    )  # fmt: skip
    # Internal: one measurement in a subprocess.
    parser.add_argument("--worker", choices=FRAMEWORKS, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("time", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--trades-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    data_dir = shared_data_dir()
    if data_dir is None:
        print("no data set: set NETTRACE_SHARED_DATA or put it at ../shared/data", file=sys.stderr)
        return 2
    args.data_file = data_dir / args.file if args.file else longest_5m_file(data_dir)
    args.memory_method = ""
    real = load_real(args.data_file)

    print(f"data: {args.data_file} ({len(real):,} real {real.key.timeframe} bars, {real.key})")
    for size in args.sizes:
        n_real = min(size, len(real))
        print(
            f"  {size:>10,} candles: {n_real:>7,} real + {size - n_real:>9,} synthetic "
            f"(seeded continuation, seed={args.seed})"
        )
    print(f"fee {args.fee:g} per fill, initial cash {args.cash:g}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in _versions().items()))
    rows = measure(args, real)

    print_table(rows, args.repeat)
    print(
        f"Timing: wall clock (perf_counter), best of {args.repeat} in one subprocess per "
        f"framework and size, after one warm-up run on {WARMUP_BARS:,} bars (numba JIT compile "
        "of nettrace and vectorbt) that is not counted. Each timed run is the whole job: "
        "TA-Lib EMA signals + simulation + trade list (nettrace: run_backtest(...).records, "
        "the trade list in numpy columns; nettrace+Trade objs: run_backtest(...).trades, the "
        "same list as Python objects, built on first read; vectorbt: "
        "Portfolio.from_signals(...).trades.records_arr, closed only; "
        "backtesting.py: Backtest(...).run()['_trades'], which includes its statistics)."
    )
    print(
        f"Peak MB: {args.memory_method or 'n/a'}, in a separate subprocess per framework and "
        "size after imports, data loading and the warm-up run (glibc "
        f"MALLOC_MMAP_THRESHOLD_={_MEMORY_ENV['MALLOC_MMAP_THRESHOLD_']} there, so freed "
        "arrays go back to the OS and RSS follows live memory)."
    )
    print(
        "Identical: same number of closed trades, entry/exit bar times equal, entry/exit "
        f"prices and amounts within {REL_TOL:g} relative of nettrace's. backtesting.py sizes in "
        "whole units; at this cash the rounding is far below that tolerance. '~' = "
        "extrapolated, not measured."
    )
    largest = max(args.sizes)
    targets = check_targets(rows, largest)
    print(f"Targets at {largest:,} candles:")
    for description, met, figures in targets:
        verdict = "n/a " if met is None else ("MET " if met else "MISS")
        print(f"  [{verdict}] {description}: {figures}")

    if args.json:
        document = {
            "data_file": str(args.data_file),
            "real_bars": len(real),
            "seed": args.seed,
            "fee": args.fee,
            "cash": args.cash,
            "repeat": args.repeat,
            "warmup_bars": WARMUP_BARS,
            "memory_method": args.memory_method,
            "versions": _versions(),
            "rows": [
                {
                    **asdict(row),
                    "candles_per_s": row.throughput,
                    "real": min(row.size, len(real)),
                    "synthetic": max(0, row.size - len(real)),
                }
                for row in rows
            ],
            "targets": [
                {"target": d, "met": m, "figures": f, "candles": largest} for d, m, f in targets
            ],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")

    differs = [r for r in rows if r.identical is False]
    for row in differs:
        print(f"TRADE LISTS DIFFER: {row.framework} at {row.size:,}: {row.detail}", file=sys.stderr)
    return 1 if differs else 0


if __name__ == "__main__":
    sys.exit(main())
