"""``nettrace data`` as a user runs it: a real process, an isolated NETTRACE_DATA_DIR, real
candles from ../shared/data, and bad files that must end in one error line and exit code 2."""

from __future__ import annotations

import csv
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nettrace.market.synthetic import synthetic_candles

REAL_FILE = "binance_ETH-BTC_4h.parquet"  # 526 bars with one gap, per the data set's manifest


def nettrace(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", "data", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nettrace: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def manifest_row(shared_data: Path, name: str) -> dict[str, str]:
    with (shared_data / "meta" / "manifest.csv").open(newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["file"] == name)


def utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def cells(table_line: str) -> list[str]:
    return [c.strip() for c in table_line.strip("│┃ ").split("│")]


def bars_csv(path: Path, n: int = 12) -> pd.DataFrame:
    t0 = 1_704_067_200_000
    close = 100.0 + np.arange(n, dtype=np.float64)
    frame = pd.DataFrame(
        {
            "timestamp": t0 + 3_600_000 * np.arange(n, dtype=np.int64),
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 2.0),
        }
    )
    frame.to_csv(path, index=False)
    return frame


def test_import_a_real_file_then_list_shows_pair_timeframe_range_rows_and_gaps(
    env: dict[str, str], shared_data: Path, tmp_path: Path
) -> None:
    expected = manifest_row(shared_data, REAL_FILE)
    result = nettrace("import", str(shared_data / REAL_FILE), env=env)
    assert result.returncode == 0, result.stderr
    rows = int(expected["rows"])
    assert f"Imported {REAL_FILE} as binance ETH/BTC 4h: {rows:,} new bars" in result.stdout
    assert f"warning: {shared_data / REAL_FILE}: {expected['n_gaps']} gap" in result.stdout
    stored = tmp_path / "home" / "candles" / REAL_FILE
    assert stored.is_file()

    listing = nettrace("list", env=env)
    assert listing.returncode == 0, listing.stderr
    line = next(x for x in listing.stdout.splitlines() if "ETH/BTC" in x)
    assert cells(line) == [
        "binance",
        "ETH/BTC",
        "4h",
        utc(int(expected["start_ms"])),
        utc(int(expected["end_ms"])),
        f"{rows:,}",
        f"{int(expected['n_gaps']):,}",
        f"{int(expected['missing_bars']):,}",
        "no",
    ]

    again = nettrace("import", str(shared_data / REAL_FILE), env=env)
    assert f"0 new bars, {rows:,} already stored; {rows:,} bars in" in again.stdout


def test_list_of_an_empty_store_says_how_to_get_data(env: dict[str, str]) -> None:
    result = nettrace("list", env=env)
    assert result.returncode == 0
    assert "No candles in" in result.stdout
    assert "nettrace data download" in result.stdout


BAD_CELLS = [
    ("high-below-low", {"high": 90.0}, "row 4 (2024-01-01T04:00:00Z): high 90.0 < low 103.0"),
    ("nan-close", {"close": float("nan")}, "row 4 (2024-01-01T04:00:00Z): close is NaN"),
]


@pytest.mark.parametrize(("case", "change", "where"), BAD_CELLS, ids=[c[0] for c in BAD_CELLS])
def test_importing_a_bad_csv_exits_2_naming_file_row_and_problem(
    env: dict[str, str], tmp_path: Path, case: str, change: dict[str, float], where: str
) -> None:
    path = tmp_path / "kraken_BTC-USD_1h.csv"
    frame = bars_csv(path)
    for column, value in change.items():
        frame.loc[4, column] = value
    frame.to_csv(path, index=False)
    line = one_error_line(nettrace("import", str(path), env=env))
    assert line.startswith(f"nettrace: error: {path}: {where}")
    assert line.endswith("add --repair to drop or fix the bad rows (every change is listed)")
    assert "No candles in" in nettrace("list", env=env).stdout  # nothing was stored


def test_import_with_repair_stores_the_good_rows_and_prints_what_it_changed(
    env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "bars.csv"
    frame = bars_csv(path)
    frame.loc[4, "volume"] = -1.0
    frame.loc[7, "high"] = 90.0
    frame = pd.concat([frame, frame.iloc[[2]]], ignore_index=True)  # a duplicate bar at the end
    frame.to_csv(path, index=False)
    args = ("import", str(path), "--exchange", "kraken", "--pair", "BTC/USD", "--timeframe", "1h")
    refused = one_error_line(nettrace(*args, env=env))
    assert f"{path}: row 4 (2024-01-01T04:00:00Z): volume -1.0 is negative" in refused
    assert "; 3 more kind(s) of error;" in refused

    result = nettrace(*args, "--repair", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Imported bars.csv as kraken BTC/USD 1h: 11 new bars" in out
    assert "repaired: dropped 1 row with negative volume" in out
    assert "repaired: sorted rows by timestamp (1 row was out of order)" in out
    assert "repaired: dropped 1 row with a duplicate timestamp (kept the last of each)" in out
    assert "repaired: widened high/low to cover open and close in 1 row" in out
    assert "warning:" in out
    assert "1 gap, 1 missing bars" in out
    line = next(x for x in nettrace("list", env=env).stdout.splitlines() if "BTC/USD" in x)
    assert cells(line)[5:8] == ["11", "1", "1"]  # rows, gaps, missing bars


def test_validate_checks_without_storing_and_repairs_to_an_output_file(
    env: dict[str, str], tmp_path: Path
) -> None:
    good = tmp_path / "kraken_BTC-USD_1h.csv"
    bars_csv(good)
    ok = nettrace("validate", str(good), env=env)
    assert ok.returncode == 0, ok.stderr
    assert f"{good}: 12 bars, no errors on the 1h grid" in ok.stdout

    bad = tmp_path / "kraken_ETH-USD_1h.csv"
    frame = bars_csv(bad)
    frame.loc[9, "low"] = 0.0
    frame.to_csv(bad, index=False)
    line = one_error_line(nettrace("validate", str(bad), env=env))
    assert f"{bad}: row 9 (2024-01-01T09:00:00Z): low 0.0 is not positive" in line

    fixed = tmp_path / "fixed.parquet"
    result = nettrace("validate", str(bad), "--repair", "--output", str(fixed), env=env)
    assert result.returncode == 0, result.stderr
    assert "repaired: dropped 1 row with a price <= 0" in result.stdout
    assert f"wrote {fixed}" in result.stdout
    written = pd.read_parquet(fixed)
    assert written["timestamp"].tolist() == frame.drop(index=9)["timestamp"].tolist()
    assert "No candles in" in nettrace("list", env=env).stdout


def test_synthetic_data_is_labelled_in_the_listing(env: dict[str, str], tmp_path: Path) -> None:
    from nettrace.market.candles import CandleKey
    from nettrace.market.store import write_parquet

    made = synthetic_candles(CandleKey("synthetic", "BTC/USD", "1h"), 30, seed=5)
    path = tmp_path / made.key.filename
    write_parquet(path, made.to_frame(), synthetic=True, source=made.source)
    assert nettrace("import", str(path), env=env).returncode == 0
    line = next(x for x in nettrace("list", env=env).stdout.splitlines() if "BTC/USD" in x)
    assert cells(line)[-1] == "SYNTHETIC"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "missing.csv"), "missing.csv: no such file"),
        (("import", "{tmp}/bars.csv"), "cannot tell the exchange and pair and timeframe"),
        (("validate", "{tmp}/bars.csv", "--timeframe", "7m"), "unknown timeframe '7m'"),
        (
            ("download", "--exchange", "binanse", "--pairs", "BTC/USDT", "--since", "2024-01-01"),
            "unknown exchange 'binanse'",
        ),
        (
            ("download", "--exchange", "binance", "--pairs", "BTCUSDT", "--since", "2024-01-01"),
            "pair 'BTCUSDT' must look like BASE/QUOTE",
        ),
        (
            ("download", "--exchange", "binance", "--pairs", "BTC/USDT", "--since", "last year"),
            "--since 'last year' is not a date",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    bars_csv(tmp_path / "bars.csv")
    line = one_error_line(nettrace(*(a.format(tmp=tmp_path) for a in args), env=env))
    assert message in line
