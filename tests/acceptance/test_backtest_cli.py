"""``nettrace backtest`` as a new user runs it: import real candles, backtest, export, report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nettrace.backtest.results import Trade, fingerprint
from nettrace.market.candles import CandleKey

REAL = "binance_ETH-BTC_5m.parquet"


def nettrace(*args: str | Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nettrace", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def _trades(document: dict[str, object]) -> list[Trade]:
    from datetime import datetime

    rows = document["trades"]
    assert isinstance(rows, list)
    return [
        Trade(
            pair=row["pair"],
            entry_time=datetime.fromisoformat(row["entry_time"]),
            exit_time=datetime.fromisoformat(row["exit_time"]),
            entry_price=row["entry_price"],
            exit_price=row["exit_price"],
            amount=row["amount"],
            fee=row["fee"],
            profit=row["profit"],
        )
        for row in rows
    ]


def test_import_then_backtest_to_json_and_html(
    shared_data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    imported = nettrace("data", "import", shared_data / REAL, env=env)
    assert imported.returncode == 0, imported.stderr
    key = CandleKey.from_filename(REAL)
    out_json, out_html = tmp_path / "run.json", tmp_path / "run.html"
    run = nettrace(
        "backtest", "--strategy", "ema_cross", "--exchange", key.exchange, "--pairs", key.pair,
        "--timeframe", key.timeframe, "--timerange", "20180210-20180301", "--fee", "0.004",
        "--export", out_json, "--report", out_html, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr

    document = json.loads(out_json.read_text())
    assert {"metrics", "fingerprint", "trades"} <= set(document)
    trades = document["trades"]
    assert len(trades) > 10
    iso_utc = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    for row in trades:
        assert set(row) >= {
            "pair", "entry_time", "exit_time", "entry_price", "exit_price", "amount", "fee",
            "profit",
        }  # fmt: skip
        assert row["pair"] == "ETH/BTC"
        assert iso_utc.match(row["entry_time"]), row["entry_time"]
        assert iso_utc.match(row["exit_time"])
        assert "2018-02-10" <= row["entry_time"] < row["exit_time"] < "2018-03-01"
        assert row["fee"] == pytest.approx(
            0.004 * row["amount"] * (row["entry_price"] + row["exit_price"]), rel=1e-9
        )
    # The fingerprint printed and exported is the one the trades give.
    assert document["fingerprint"] == fingerprint(_trades(document))
    assert f"trade fingerprint: {document['fingerprint']}" in run.stdout
    metrics = document["metrics"]
    assert metrics["trades"] == len(trades)
    assert metrics["total_return"] == pytest.approx(metrics["final_equity"] / 10_000.0 - 1)
    # Fees paid cover every closed trade's fees (plus an open position's entry fee, if any).
    assert metrics["fees_paid"] >= sum(row["fee"] for row in trades) * (1 - 1e-12)

    html = out_html.read_text()
    assert html.startswith("<!DOCTYPE html>") or html.lower().startswith("<html")
    assert "ema_cross" in html
    assert not re.search(r"<script[^>]+src=\"https?://", html), "the report must open offline"


def test_data_file_and_stored_candles_give_the_same_fingerprint(
    shared_data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    direct = nettrace(
        "backtest", "--strategy", "sniper", "--data", shared_data / "coinbase_BTC-USD_1h.parquet",
        "--export", tmp_path / "a.json", env=env,
    )  # fmt: skip
    assert direct.returncode == 0, direct.stderr
    assert (
        nettrace("data", "import", shared_data / "coinbase_BTC-USD_1h.parquet", env=env).returncode
        == 0
    )
    stored = nettrace(
        "backtest", "--strategy", "sniper", "--exchange", "coinbase", "--pairs", "BTC/USD",
        "--timeframe", "1h", "--export", tmp_path / "b.json", env=env,
    )  # fmt: skip
    assert stored.returncode == 0, stored.stderr
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert a["trades"], "the sniper should trade on hourly BTC/USD"
    assert a["fingerprint"] == b["fingerprint"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--strategy", "moonshot", "--data", "{real}"], "unknown strategy 'moonshot'"),
        (["--strategy", "ema_cross", "--data", "/nope.parquet"], "/nope.parquet does not exist"),
        (["--strategy", "ema_cross"], "give --data FILE, or all of --exchange"),
        (["--strategy", "ema_cross", "--data", "{real}", "--fee", "4"], "--fee must be"),
        (["--strategy", "ema_cross", "--data", "{real}", "--timerange", "2018"], "--timerange"),
        (
            ["--strategy", "ema_cross", "--data", "{real}", "--timerange", "20180231-"],
            "not a YYYYMMDD date",
        ),
        (
            ["--strategy", "ema_cross", "--data", "{real}", "--timerange", "20300101-"],
            "fewer than 2 candles",
        ),
        (
            [
                "--strategy",
                "ema_cross",
                "--exchange",
                "kraken",
                "--pairs",
                "BTC/USD",
                "--timeframe",
                "1h",
            ],
            "no stored candles for kraken",
        ),
        (["--strategy", "ema_cross", "--data", "{real}", "--fill", "magic"], "--fill must be"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    shared_data: Path, env: dict[str, str], args: list[str], expected: str
) -> None:
    args = [a.replace("{real}", str(shared_data / REAL)) for a in args]
    result = nettrace("backtest", *args, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nettrace: error: ")
    assert expected in lines[0]


def test_bad_candles_are_refused_not_traded(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "test_BTC-USD_1h.csv"
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(50):
        high, low = (90.0, 110.0) if i == 30 else (101.0, 99.0)  # row 30: high < low
        rows.append(f"{1_704_067_200_000 + i * 3_600_000},100,{high},{low},100,1")
    bad.write_text("\n".join(rows) + "\n")
    refused = nettrace("backtest", "--strategy", "ema_cross", "--data", bad, env=env)
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert bad.name in line
    assert "high" in line
    assert "--repair" in line
    repaired = nettrace("backtest", "--strategy", "ema_cross", "--data", bad, "--repair", env=env)
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired" in repaired.stdout


def test_backtest_help_teaches_the_options(env: dict[str, str]) -> None:
    result = nettrace("backtest", "--help", env=env)
    assert result.returncode == 0
    for option in ("--strategy", "--data", "--timerange", "--fee", "--export", "--report"):
        assert option in result.stdout


def test_with_no_market_data_synthetic_candles_are_labelled_everywhere(
    env: dict[str, str], tmp_path: Path
) -> None:
    made = nettrace(
        "data", "synth", "--pairs", "BTC/USD,ETH/USD", "--timeframe", "1h", "--bars", "3000",
        "--seed", "7", env=env,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert made.stdout.count("SYNTHETIC") == 2
    env_wide = {**env, "COLUMNS": "200"}
    listed = nettrace("data", "list", env=env_wide)
    assert listed.stdout.count("SYNTHETIC") == 2

    args = ["--strategy", "sniper", "--exchange", "synthetic", "--pairs", "BTC/USD,ETH/USD"]
    run = nettrace(
        "backtest", *args, "--timeframe", "1h", "--report", tmp_path / "r.html",
        "--export", tmp_path / "r.json", env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "SYNTHETIC DATA" in run.stdout
    assert "SYNTHETIC DATA" in (tmp_path / "r.html").read_text()
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["synthetic"] is True
    assert document["pairs"] == ["BTC/USD", "ETH/USD"]

    # The same seed makes the same bars, so a second home gives the same trades.
    other = {**env, "NETTRACE_DATA_DIR": str(tmp_path / "other")}
    again = nettrace(
        "data", "synth", "--pairs", "BTC/USD,ETH/USD", "--timeframe", "1h", "--bars", "3000",
        "--seed", "7", env=other,
    )  # fmt: skip
    assert again.returncode == 0
    rerun = nettrace(
        "backtest", *args, "--timeframe", "1h", "--export", tmp_path / "s.json", env=other
    )
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads((tmp_path / "s.json").read_text())["fingerprint"] == document["fingerprint"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--bars", "1"], "--bars must be between 2"),
        (["--volatility", "-1"], "--volatility must be"),
        (["--start", "2024-01-01T00:03"], "is not a 5m bar open time"),
        (["--timeframe", "7q"], "timeframe"),
        (["--start", "yesterday"], "--start 'yesterday' is not a date"),
    ],
)
def test_synth_bad_arguments_exit_2(env: dict[str, str], args: list[str], expected: str) -> None:
    result = nettrace("data", "synth", *args, env=env)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert expected in line


def test_the_exchanges_own_fee_schedule_applies(
    shared_data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    env["NETTRACE_EXCHANGE_FEES"] = '{"binance": {"maker": 0.001, "taker": 0.002}}'
    run = nettrace(
        "backtest", "--strategy", "ema_cross", "--data", shared_data / REAL,
        "--timerange", "20180210-20180220", "--export", tmp_path / "fees.json", env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    trades = json.loads((tmp_path / "fees.json").read_text())["trades"]
    assert trades
    for row in trades:  # next-open fills are market orders: binance's taker rate, both legs
        notional = row["amount"] * (row["entry_price"] + row["exit_price"])
        assert row["fee"] == pytest.approx(0.002 * notional, rel=1e-9)


def test_a_data_file_of_any_name_takes_exchange_and_pair(
    shared_data: Path, env: dict[str, str], tmp_path: Path
) -> None:
    import pandas as pd

    csv = tmp_path / "btc daily.csv"  # issue 11: refused for not being named ..._1d.parquet
    pd.read_parquet(shared_data / "bitstamp_BTC-USD_1d.parquet").head(300).to_csv(csv, index=False)
    refused = nettrace("backtest", "--strategy", "ema_cross", "--data", csv, env=env)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    [line] = refused.stderr.strip().splitlines()
    assert str(csv) in line
    assert line.endswith("name it EXCHANGE_BASE-QUOTE_TIMEFRAME.csv or pass --exchange and --pair")
    export = tmp_path / "bt.json"
    done = nettrace("backtest", "--strategy", "ema_cross", "--data", csv, "--exchange",
                    "bitstamp", "--pair", "BTC/USD", "--export", export, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    document = json.loads(export.read_text())
    assert (document["pairs"], document["timeframe"]) == (["BTC/USD"], "1d")  # from the bars


def _help_examples(text: str) -> list[str]:
    """The commands under ``Examples`` in a ``--help`` text, continuation lines joined."""
    lines = text.split("Examples", 1)[1].split("╭", 1)[0].splitlines()[1:]
    commands: list[str] = []
    joined = ""
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        joined = f"{joined} {line}".strip()
        if joined.endswith("\\"):
            joined = joined[:-1].strip()
            continue
        commands.append(joined)
        joined = ""
    return commands


@pytest.mark.parametrize("command", ["backtest", "run"])
def test_every_help_example_names_real_files_and_real_options(
    shared_data: Path, env: dict[str, str], command: str
) -> None:
    # issue 11: the examples named files that do not exist and a name `--data` refused
    text = nettrace(command, "--help", env=env).stdout
    examples = _help_examples(text)
    assert examples
    for example in examples:
        words = example.split()
        assert words[0] == "nettrace", example
        if words[1] != command:  # e.g. `nettrace data import FILE` before a backtest
            continue
        for word in words:
            if word.startswith("--"):
                assert word in text, (example, word)
            if word.startswith("../shared/data/"):
                assert (shared_data / word.removeprefix("../shared/data/")).is_file(), example
            elif word.endswith((".parquet", ".csv")):
                pytest.fail(f"example reads a file that does not exist: {example}")
