"""Terminal tables, chart figures and the offline HTML report."""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.offline
import pytest
from rich.console import Console
from rich.table import Table

from nettrace.backtest.report import (
    CANDLESTICK_MAX_BARS,
    MAX_POINTS,
    SYNTHETIC_MARK,
    build_figures,
    format_metric,
    metrics_table,
    minmax_indices,
    trades_table,
    write_report,
)
from nettrace.backtest.results import BacktestResult, Trade, TradeRecords
from nettrace.market.candles import CandleKey, Candles

HOUR = 3_600_000
DAY = 86_400_000
T0 = 19_723 * DAY  # 2024-01-01 00:00 UTC
START = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _candles(pair: str, n: int, *, step_ms: int = HOUR, synthetic: bool = False) -> Candles:
    close = 100.0 + np.sin(np.arange(n) / 7.0) * 5.0
    return Candles(
        key=CandleKey("kraken", pair, "1h"),
        timestamp=T0 + np.arange(n, dtype=np.int64) * step_ms,
        open=close - 0.5,
        high=close + 1.0,
        low=close - 1.0,
        close=close,
        volume=np.ones(n),
        synthetic=synthetic,
    )


def _trade(pair: str, entry_hour: int, exit_hour: int, entry: float, exit_: float) -> Trade:
    return Trade(
        pair=pair,
        entry_time=START + timedelta(hours=entry_hour),
        exit_time=START + timedelta(hours=exit_hour),
        entry_price=entry,
        exit_price=exit_,
        amount=2.0,
        fee=0.5,
        profit=2.0 * (exit_ - entry) - 0.5,
        exit_reason="signal" if exit_ > entry else "stop_loss",
    )


TRADES = [
    _trade("BTC/USD", 2, 5, 100.0, 110.0),  # profit +19.50
    _trade("ETH/USD", 3, 9, 101.0, 96.0),  # profit -10.50
    _trade("BTC/USD", 12, 20, 99.0, 104.0),  # profit +9.50
]


def _result(*, synthetic: bool = False, strategy: str = "ema_cross") -> BacktestResult:
    n = 30
    # Equity: 1000 flat, then a fall to 900 (-10% from the 1000 peak), then 1050 at the end.
    equity = np.full(n, 1000.0)
    equity[10:20] = 900.0
    equity[20:] = 1050.0
    return BacktestResult(
        strategy=strategy,
        timeframe="1h",
        initial_cash=1000.0,
        records=TradeRecords.from_trades(TRADES),
        timestamps=T0 + np.arange(n, dtype=np.int64) * HOUR,
        equity=equity,
        fees_paid=1.5,
        candles={"BTC/USD": _candles("BTC/USD", n), "ETH/USD": _candles("ETH/USD", n)},
        params={"fast": 12, "slow": 26},
        synthetic=synthetic,
        exposure=0.4,
    )


def _render(table: Table) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(table)
    output = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(output, str)
    return output


def _trace(figure: go.Figure, name: str) -> go.Scatter:
    matches = [trace for trace in figure.data if trace.name == name]
    assert len(matches) == 1, f"expected one {name!r} trace, found {len(matches)}"
    trace: go.Scatter = matches[0]
    return trace


def _as_datetime64(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "ms")


# --- format_metric ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("total_return", 0.05, "+5.00%"),
        ("worst_day", -0.031, "-3.10%"),
        ("win_rate", 2 / 3, "66.67%"),
        ("max_drawdown", 0.1234, "12.34%"),
        ("final_equity", 1234567.891, "1,234,567.89 USD"),
        ("trades", 3.0, "3"),
        ("sharpe", 1.23456, "1.23"),
        ("profit_factor", math.nan, "n/a"),
    ],
)
def test_format_metric(key: str, value: float, expected: str) -> None:
    assert format_metric(key, value, "USD") == expected


# --- terminal tables ----------------------------------------------------------------------------


def test_metrics_table_formats_fractions_as_percent_and_money_with_two_decimals() -> None:
    text = _render(metrics_table(_result()))
    assert "ema_cross" in text
    assert "BTC/USD, ETH/USD 1h" in text
    assert "+5.00%" in text  # total return 1050/1000 - 1
    assert "1,050.00 USD" in text  # final equity
    assert "1.50 USD" in text  # fees paid
    assert "10.00%" in text  # max drawdown 900/1000
    assert "66.67%" in text  # two of three trades won


def test_metrics_table_shows_the_hardstop_line_next_to_the_worst_day() -> None:
    text = _render(metrics_table(_result()))
    (line,) = [row for row in text.splitlines() if "Worst day" in row]
    # The 10% fall happens on day 0 from the initial 1000: a breach of the 5% line.
    assert "-10.00%" in line
    assert "HARDSTOP line -5.00%" in line
    assert "BREACHED" in line


def test_worst_day_inside_the_line_is_not_marked_breached() -> None:
    result = _result()
    result.equity = np.where(result.equity == 900.0, 970.0, result.equity)  # only -3%
    (line,) = [row for row in _render(metrics_table(result)).splitlines() if "Worst day" in row]
    assert "-3.00%" in line
    assert "HARDSTOP line -5.00%" in line
    assert "BREACHED" not in line


def test_metrics_table_marks_synthetic_data_only_when_synthetic() -> None:
    assert SYNTHETIC_MARK not in _render(metrics_table(_result(synthetic=False)))
    table = metrics_table(_result(synthetic=True))
    assert SYNTHETIC_MARK in str(table.title)
    assert SYNTHETIC_MARK in str(table.caption)


def test_metrics_table_does_not_interpret_markup_in_the_strategy_name() -> None:
    assert "[bold]x" in _render(metrics_table(_result(strategy="[bold]x")))


def test_trades_table_shows_at_most_limit_rows_and_says_how_many_were_left_out() -> None:
    table = trades_table(_result(), limit=2)
    assert table.row_count == 2
    text = _render(table)
    assert "first 2 of 3 trades" in text
    assert "+19.50" in text  # 2 * (110 - 100) - 0.5
    assert "-10.50" in text  # 2 * (96 - 101) - 0.5
    assert "+9.50" not in text  # the third trade is beyond the limit
    assert "2024-01-01 02:00" in text


def test_trades_table_default_shows_all_of_a_short_list() -> None:
    table = trades_table(_result())
    assert table.row_count == 3
    assert "3 trades" in _render(table)


def test_trades_table_rejects_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        trades_table(_result(), limit=-1)


# --- figures ------------------------------------------------------------------------------------


def test_one_figure_per_pair_then_equity_then_drawdown() -> None:
    titles = [figure.layout.title.text for figure in build_figures(_result())]
    assert len(titles) == 4
    assert titles[0].startswith("BTC/USD 1h")
    assert titles[1].startswith("ETH/USD 1h")
    assert titles[2].startswith("Equity")
    assert titles[3].startswith("Drawdown")


def test_entry_and_exit_markers_match_the_trades() -> None:
    figures = build_figures(_result())
    btc, eth = figures[0], figures[1]
    total_entries = sum(len(_trace(f, "entries").x) for f in (btc, eth))
    total_exits = sum(len(_trace(f, "exits").x) for f in (btc, eth))
    assert total_entries == len(TRADES)
    assert total_exits == len(TRADES)

    btc_trades = [TRADES[0], TRADES[2]]
    entries = _trace(btc, "entries")
    assert list(entries.x) == [_as_datetime64(t.entry_time) for t in btc_trades]
    assert list(entries.y) == [100.0, 99.0]
    exits = _trace(eth, "exits")
    assert list(exits.x) == [_as_datetime64(TRADES[1].exit_time)]
    assert list(exits.y) == [96.0]


def test_a_traded_pair_without_candles_still_gets_its_markers() -> None:
    result = _result()
    result.trades = [*TRADES, _trade("SOL/USD", 1, 2, 20.0, 21.0)]
    figures = build_figures(result)
    assert len(figures) == 5  # BTC, ETH, SOL (markers only), equity, drawdown
    sol = figures[2]
    assert sol.layout.title.text.startswith("SOL/USD")
    assert len(_trace(sol, "entries").x) == 1
    assert sum(len(_trace(f, "exits").x) for f in figures[:3]) == 4


def test_small_inputs_are_full_candlesticks_on_utc_axes() -> None:
    result = _result()
    btc = build_figures(result)[0]
    candles = _trace(btc, "candles")
    assert candles.type == "candlestick"
    assert len(candles.x) == 30
    assert candles.x[0] == np.datetime64("2024-01-01T00:00:00", "ms")
    assert candles.x[-1] == np.datetime64("2024-01-02T05:00:00", "ms")
    assert "downsampled" not in btc.layout.title.text


def test_long_inputs_are_aggregated_into_fewer_candles() -> None:
    n = 30_000  # above MAX_POINTS, below CANDLESTICK_MAX_BARS: 2 bars per candle
    assert MAX_POINTS < n <= CANDLESTICK_MAX_BARS
    result = _result()
    raw = _candles("BTC/USD", n, step_ms=60_000)
    result.candles = {"BTC/USD": raw}
    btc = build_figures(result)[0]
    candles = _trace(btc, "candles")
    assert len(candles.x) == 15_000
    assert "downsampled" in btc.layout.title.text
    # Candle k covers bars 2k and 2k+1: open of the first, close of the second, extremes of both.
    k = 123
    assert candles.open[k] == raw.open[2 * k]
    assert candles.close[k] == raw.close[2 * k + 1]
    assert candles.high[k] == max(raw.high[2 * k], raw.high[2 * k + 1])
    assert candles.low[k] == min(raw.low[2 * k], raw.low[2 * k + 1])


def test_huge_inputs_become_a_thinned_close_line_that_keeps_the_extremes() -> None:
    n = 200_000
    result = _result()
    raw = _candles("BTC/USD", n, step_ms=60_000)
    close = raw.close.copy()
    close[77_777] = 1.0  # a one-bar crash that plain striding would drop
    close[155_555] = 500.0  # and a one-bar spike
    raw = replace(raw, close=close)
    result.candles = {"BTC/USD": raw}
    btc = build_figures(result)[0]
    line = _trace(btc, "close")
    assert line.type == "scatter"
    assert len(line.y) <= MAX_POINTS
    assert min(line.y) == 1.0
    assert max(line.y) == 500.0
    assert line.x[0] == np.datetime64(T0, "ms")
    assert line.x[-1] == np.datetime64(T0 + (n - 1) * 60_000, "ms")
    assert "downsampled" in btc.layout.title.text


def test_equity_and_drawdown_curves() -> None:
    figures = build_figures(_result())
    equity = _trace(figures[2], "equity")
    drawdown = _trace(figures[3], "drawdown")
    assert list(equity.y) == [1000.0] * 10 + [900.0] * 10 + [1050.0] * 10
    assert equity.x[0] == np.datetime64("2024-01-01T00:00:00", "ms")
    # 900 is 10% below the 1000 peak; 1050 is a new peak.
    np.testing.assert_allclose(drawdown.y, [0.0] * 10 + [-0.1] * 10 + [0.0] * 10)


def test_long_equity_curves_are_thinned_but_keep_the_deepest_drawdown() -> None:
    n = 100_000
    equity = np.full(n, 1000.0)
    equity[61_234] = 700.0  # one bar 30% down
    result = _result()
    result.timestamps = T0 + np.arange(n, dtype=np.int64) * 60_000
    result.equity = equity
    figures = build_figures(result)
    equity_trace, drawdown_trace = _trace(figures[2], "equity"), _trace(figures[3], "drawdown")
    assert len(equity_trace.y) <= MAX_POINTS
    assert len(drawdown_trace.y) <= MAX_POINTS
    assert min(drawdown_trace.y) == pytest.approx(-0.3)
    assert "downsampled" in figures[2].layout.title.text
    assert "downsampled" in figures[3].layout.title.text


def test_chart_titles_carry_the_synthetic_mark_only_when_synthetic() -> None:
    assert all(
        SYNTHETIC_MARK in f.layout.title.text for f in build_figures(_result(synthetic=True))
    )
    assert not any(SYNTHETIC_MARK in f.layout.title.text for f in build_figures(_result()))


def test_minmax_indices() -> None:
    values = np.arange(1000, dtype=np.float64) % 17.0
    values[500] = -5.0
    values[501] = 99.0
    picks = minmax_indices(values, 100)
    assert len(picks) <= 100
    assert np.all(np.diff(picks) > 0)  # sorted, no duplicates
    assert {0, 999, 500, 501} <= set(picks.tolist())
    np.testing.assert_array_equal(minmax_indices(values, 1000), np.arange(1000))
    with pytest.raises(ValueError, match="max_points"):
        minmax_indices(values, 3)


# --- HTML report --------------------------------------------------------------------------------


@pytest.fixture
def report_html(tmp_path: Path) -> str:
    path = write_report(_result(), tmp_path / "nested" / "report.html")
    assert path == tmp_path / "nested" / "report.html"
    assert path.is_file()
    return path.read_text(encoding="utf-8")


def test_report_opens_offline(report_html: str) -> None:
    scripts = re.findall(r"<script\b[^>]*>", report_html)
    assert scripts, "the charts need scripts"
    assert all("src" not in tag for tag in scripts), scripts
    assert 'src="http' not in report_html
    assert "<link" not in report_html
    # The plotly.js bundle itself is inlined (its banner names the version).
    assert f"plotly.js v{plotly.offline.get_plotlyjs_version()}" in report_html
    assert report_html.count("Plotly.newPlot(") >= 4


def test_report_has_one_chart_div_per_figure(report_html: str) -> None:
    assert report_html.count('class="plotly-graph-div"') == 4  # BTC, ETH, equity, drawdown
    for index in range(4):
        assert f'id="chart-{index}"' in report_html


def test_report_names_the_run(report_html: str) -> None:
    result = _result()
    assert result.fingerprint in report_html
    assert "ema_cross" in report_html
    assert "BTC/USD, ETH/USD 1h" in report_html
    assert "fast=12" in report_html
    assert "+5.00%" in report_html  # the metrics table
    assert "HARDSTOP line -5.00%" in report_html
    assert "+19.50" in report_html  # the trade table


def test_report_banner_iff_synthetic(tmp_path: Path) -> None:
    real = write_report(_result(), tmp_path / "real.html").read_text(encoding="utf-8")
    fake = write_report(_result(synthetic=True), tmp_path / "fake.html").read_text(encoding="utf-8")
    assert 'class="synthetic-banner"' in fake
    assert "<title>[SYNTHETIC DATA]" in fake
    assert 'class="synthetic-banner"' not in real
    assert SYNTHETIC_MARK not in real


def test_report_escapes_the_strategy_name(tmp_path: Path) -> None:
    text = write_report(_result(strategy="<b>x</b>"), tmp_path / "r.html").read_text("utf-8")
    assert "&lt;b&gt;x&lt;/b&gt;" in text
    assert "<b>x</b>" not in text


def test_report_is_reproducible(tmp_path: Path) -> None:
    first = write_report(_result(), tmp_path / "a.html").read_bytes()
    second = write_report(_result(), tmp_path / "b.html").read_bytes()
    assert first == second


def test_report_with_no_trades_and_no_bars(tmp_path: Path) -> None:
    result = BacktestResult(
        strategy="idle",
        timeframe="1h",
        initial_cash=1000.0,
        records=TradeRecords.from_trades([]),
        timestamps=np.empty(0, dtype=np.int64),
        equity=np.empty(0, dtype=np.float64),
        fees_paid=0.0,
    )
    text = write_report(result, tmp_path / "idle.html").read_text("utf-8")
    assert "No trades." in text
    assert text.count('class="plotly-graph-div"') == 2  # equity and drawdown only
    assert "n/a" in text
