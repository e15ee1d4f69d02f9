"""Human-readable views of a backtest: rich tables for the terminal, one HTML file for the browser.

The HTML report is a single self-contained file with plotly.js inlined, so it opens offline, can
be mailed or archived, and shows the same thing in five years as today. Element ids are fixed
(``chart-0``, ``chart-1``, ...) so the same result always writes the same bytes.

Huge inputs are thinned before plotting: browsers choke on millions of points and the file would
grow to hundreds of megabytes. Thinning keeps each bucket's minimum and maximum, so spikes, the
deepest drawdown and the extremes of the price stay visible; every thinned chart says so in its
title. Metrics are always computed from the full-resolution data.

Metrics are recomputed with ``compute_metrics`` rather than read from ``result.metrics``, so a
table can never disagree with the curves drawn next to it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import plotly.graph_objects as go
from rich.table import Table
from rich.text import Text

from nettrace.agents.agent_goals import HARDSTOP_DAILY_LOSS
from nettrace.backtest.metrics import METRIC_KEYS, compute_metrics, drawdown_curve
from nettrace.backtest.results import BacktestResult, Trade
from nettrace.market.candles import Candles, FloatArray, IntArray

#: Above this many bars a pair is drawn as a close line instead of candlesticks.
CANDLESTICK_MAX_BARS = 50_000
#: Most points drawn per series; more are thinned (candles aggregated, lines min/max-bucketed).
MAX_POINTS = 20_000
#: Most trades listed in the HTML report's trade table (all are still marked on the charts).
HTML_TRADE_ROWS = 500
SYNTHETIC_MARK = "SYNTHETIC DATA"

DatetimeArray = npt.NDArray[np.datetime64]

_LABELS: dict[str, str] = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "sharpe": "Sharpe (daily, x sqrt 365)",
    "sortino": "Sortino (daily, x sqrt 365)",
    "max_drawdown": "Max drawdown",
    "calmar": "Calmar",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "exposure": "Exposure",
    "fees_paid": "Fees paid",
    "trades": "Trades",
    "avg_trade_return": "Avg trade return",
    "final_equity": "Final equity",
    "worst_day": "Worst day",
    "hardstop_days": "HARDSTOP days",
}
_SIGNED_PERCENT = frozenset({"total_return", "cagr", "avg_trade_return", "worst_day"})
_PERCENT = frozenset({"max_drawdown", "win_rate", "exposure"})
_MONEY = frozenset({"fees_paid", "final_equity"})
_COUNT = frozenset({"trades", "hardstop_days"})


def format_metric(key: str, value: float, currency: str = "") -> str:
    """Display string for one ``compute_metrics`` value.

    Fractions become percentages with two decimals (0.0312 -> ``3.12%``; returns are signed),
    money gets two decimals and the currency, counts are integers, ratios get two decimals and
    NaN (undefined) is ``n/a``.
    """
    if not math.isfinite(value):
        return "n/a"
    if key in _SIGNED_PERCENT:
        return f"{value:+.2%}"
    if key in _PERCENT:
        return f"{value:.2%}"
    if key in _MONEY:
        return f"{value:,.2f} {currency}".rstrip()
    if key in _COUNT:
        return f"{round(value):d}"
    return f"{value:.2f}"


def metrics_table(result: BacktestResult) -> Table:
    """The metrics of ``result`` as a terminal table, with the HARDSTOP line beside the worst day.

    Synthetic results carry the mark in both title and caption, so it survives a screenshot
    that crops either one.
    """
    title = Text(_title(result), style="bold")
    caption = None
    if result.synthetic:
        title = Text(f"{SYNTHETIC_MARK} | ", style="bold red") + title
        caption = Text(f"{SYNTHETIC_MARK}: generated candles, not market history", "bold red")
    table = Table(title=title, caption=caption)
    table.add_column("Metric")
    table.add_column("Value", justify="right")
    table.add_column("Note")
    for row in _metric_rows(result):
        style = "bold red" if row.alarm else ""
        table.add_row(row.label, Text(row.value, style=style), Text(row.note, style=style))
    return table


def trades_table(result: BacktestResult, limit: int = 20) -> Table:
    """The first ``limit`` trades as a terminal table; the caption says how many were left out."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    shown = result.trades[:limit]
    total = len(result.trades)
    title = f"Trades: {result.strategy}"
    if result.synthetic:
        title = f"{SYNTHETIC_MARK} | {title}"
    caption = f"first {len(shown)} of {total} trades" if len(shown) < total else f"{total} trades"
    table = Table(title=Text(title), caption=Text(caption))
    for name in _TRADE_COLUMNS:
        table.add_column(name, justify="left" if name in _TEXT_COLUMNS else "right")
    for number, trade in enumerate(shown, start=1):
        cells = _trade_cells(number, trade)
        style = "green" if trade.profit > 0.0 else "red" if trade.profit < 0.0 else ""
        table.add_row(*(Text(cell, style=style) for cell in cells))
    return table


def build_figures(result: BacktestResult) -> list[go.Figure]:
    """The report's charts, in page order: one price chart per pair (sorted), equity, drawdown.

    Each price chart carries two marker traces named ``entries`` and ``exits`` with one point per
    trade of that pair, at the fill time and price. A pair that traded but has no candles still
    gets a chart (markers only), so every trade is drawn somewhere.
    """
    figures = [
        _price_figure(result, pair, result.candles.get(pair))
        for pair in _pairs(result, include_traded=True)
    ]
    figures.append(_equity_figure(result))
    figures.append(_drawdown_figure(result))
    return figures


def write_report(result: BacktestResult, path: Path) -> Path:
    """Write the HTML report of ``result`` to ``path`` (parents created) and return ``path``."""
    figures = build_figures(result)
    charts = []
    for index, figure in enumerate(figures):
        chart = figure.to_html(
            full_html=False,
            include_plotlyjs=index == 0,
            div_id=f"chart-{index}",
            config={"displaylogo": False},
        )
        charts.append(f'<section class="chart">{chart}</section>')
    banner = ""
    if result.synthetic:
        banner = (
            f'<div class="synthetic-banner">{SYNTHETIC_MARK}: these results come from generated '
            "candles, not market history. They say nothing about real performance.</div>"
        )
    title = html.escape(_title(result))
    page_title = f"[{SYNTHETIC_MARK}] {title}" if result.synthetic else title
    document = _PAGE.format(
        page_title=page_title,
        banner=banner,
        title=title,
        fingerprint=html.escape(result.fingerprint),
        params=html.escape(", ".join(f"{k}={v!r}" for k, v in sorted(result.params.items()))),
        metrics=_metrics_html(result),
        charts="\n".join(charts),
        trades=_trades_html(result),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document, encoding="utf-8")
    return path


# --- tables -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MetricRow:
    label: str
    value: str
    note: str
    alarm: bool


def _metric_rows(result: BacktestResult) -> list[_MetricRow]:
    metrics = compute_metrics(result)
    currency = _quote_currency(result)
    line = f"HARDSTOP line {-HARDSTOP_DAILY_LOSS:.2%}"
    breached = metrics["hardstop_days"] > 0
    notes = {
        "worst_day": f"{line}: BREACHED" if breached else line,
        "hardstop_days": f"days with an intraday fall > {HARDSTOP_DAILY_LOSS:.2%}",
        "max_drawdown": "below the running peak",
        "profit_factor": "n/a = no losing trade" if math.isnan(metrics["profit_factor"]) else "",
        "cagr": "n/a = span under one day" if math.isnan(metrics["cagr"]) else "",
    }
    return [
        _MetricRow(
            label=_LABELS[key],
            value=format_metric(key, metrics[key], currency),
            note=notes.get(key, ""),
            alarm=breached and key in {"worst_day", "hardstop_days"},
        )
        for key in METRIC_KEYS
    ]


_TRADE_COLUMNS = (
    "#",
    "Pair",
    "Entry (UTC)",
    "Exit (UTC)",
    "Entry price",
    "Exit price",
    "Amount",
    "Fee",
    "Profit",
    "Return",
    "Exit reason",
)
_TEXT_COLUMNS = frozenset({"Pair", "Entry (UTC)", "Exit (UTC)", "Exit reason"})


def _trade_cells(number: int, trade: Trade) -> list[str]:
    return [
        str(number),
        trade.pair,
        _utc_text(trade.entry_time),
        _utc_text(trade.exit_time),
        _price_text(trade.entry_price),
        _price_text(trade.exit_price),
        f"{trade.amount:.8g}",
        f"{trade.fee:,.2f}",
        f"{trade.profit:+,.2f}",
        f"{trade.return_fraction:+.2%}",
        trade.exit_reason,
    ]


def _metrics_html(result: BacktestResult) -> str:
    rows = "".join(
        f"<tr{' class=alarm' if row.alarm else ''}><th>{html.escape(row.label)}</th>"
        f"<td>{html.escape(row.value)}</td><td>{html.escape(row.note)}</td></tr>"
        for row in _metric_rows(result)
    )
    return f'<table class="metrics"><tbody>{rows}</tbody></table>'


def _trades_html(result: BacktestResult) -> str:
    shown = result.trades[:HTML_TRADE_ROWS]
    if not shown:
        return "<p>No trades.</p>"
    head = "".join(f"<th>{html.escape(name)}</th>" for name in _TRADE_COLUMNS)
    body = "".join(
        f'<tr class="{"win" if t.profit > 0 else "loss" if t.profit < 0 else ""}">'
        + "".join(f"<td>{html.escape(cell)}</td>" for cell in _trade_cells(i, t))
        + "</tr>"
        for i, t in enumerate(shown, start=1)
    )
    note = (
        f"first {len(shown)} of {len(result.trades)} trades"
        if len(shown) < len(result.trades)
        else f"{len(shown)} trades"
    )
    return (
        f'<table class="trades"><caption>{note}</caption><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>"
    )


# --- figures ----------------------------------------------------------------------------------


def _price_figure(result: BacktestResult, pair: str, candles: Candles | None) -> go.Figure:
    figure = go.Figure()
    kind = "no candles"
    if candles is not None and len(candles):
        kind = _add_price_trace(figure, candles)
    trades = [t for t in result.trades if t.pair == pair]
    figure.add_trace(
        go.Scatter(
            name="entries",
            mode="markers",
            x=_trade_times([t.entry_time for t in trades]),
            y=np.array([t.entry_price for t in trades], dtype=np.float64),
            marker={"symbol": "triangle-up", "size": 11, "color": "#1f77b4"},
            hovertext=[f"entry {t.amount:.8g} @ {_price_text(t.entry_price)}" for t in trades],
            hoverinfo="x+text",
        )
    )
    figure.add_trace(
        go.Scatter(
            name="exits",
            mode="markers",
            x=_trade_times([t.exit_time for t in trades]),
            y=np.array([t.exit_price for t in trades], dtype=np.float64),
            marker={
                "symbol": "triangle-down",
                "size": 11,
                "color": ["#2ca02c" if t.profit > 0 else "#d62728" for t in trades],
            },
            hovertext=[
                f"exit @ {_price_text(t.exit_price)} ({t.exit_reason}), profit {t.profit:+,.2f}"
                for t in trades
            ],
            hoverinfo="x+text",
        )
    )
    synthetic = result.synthetic or (candles is not None and candles.synthetic)
    figure.update_layout(
        title=_chart_title(f"{pair} {result.timeframe}: {kind}", synthetic),
        xaxis={"title": "time (UTC)", "rangeslider": {"visible": False}},
        yaxis={"title": f"price ({_quote_of(pair) or 'quote'})"},
        **_LAYOUT,
    )
    return figure


def _add_price_trace(figure: go.Figure, candles: Candles) -> str:
    """Candlesticks (aggregated if long) up to the candlestick limit, else a thinned close line."""
    n = len(candles)
    if n > CANDLESTICK_MAX_BARS:
        keep = minmax_indices(candles.close, MAX_POINTS)
        figure.add_trace(
            go.Scatter(
                name="close",
                mode="lines",
                x=_datetimes(candles.timestamp[keep]),
                y=candles.close[keep],
                line={"width": 1, "color": "#555"},
            )
        )
        return f"close, downsampled to {len(keep):,} of {n:,} points (min/max per bucket)"
    per_candle = max(1, math.ceil(n / MAX_POINTS))
    starts = np.arange(0, n, per_candle)
    ends = np.concatenate((starts[1:], [n])) - 1
    figure.add_trace(
        go.Candlestick(
            name="candles",
            x=_datetimes(candles.timestamp[starts]),
            open=candles.open[starts],
            high=np.maximum.reduceat(candles.high, starts),
            low=np.minimum.reduceat(candles.low, starts),
            close=candles.close[ends],
        )
    )
    if per_candle > 1:
        return f"candlestick, downsampled: {per_candle} bars per candle ({len(starts):,} of {n:,})"
    return "candlestick"


def _equity_figure(result: BacktestResult) -> go.Figure:
    equity = np.asarray(result.equity, dtype=np.float64)
    keep = minmax_indices(equity, MAX_POINTS)
    figure = go.Figure(
        go.Scatter(
            name="equity",
            mode="lines",
            x=_datetimes(np.asarray(result.timestamps)[keep]),
            y=equity[keep],
            line={"width": 1.5, "color": "#1f77b4"},
        )
    )
    figure.add_hline(
        y=result.initial_cash,
        line={"dash": "dot", "color": "#888"},
        annotation_text="initial cash",
    )
    currency = _quote_currency(result) or "quote"
    figure.update_layout(
        title=_chart_title(_thinned("Equity", len(keep), len(equity)), result.synthetic),
        xaxis={"title": "time (UTC)"},
        yaxis={"title": f"equity ({currency})"},
        **_LAYOUT,
    )
    return figure


def _drawdown_figure(result: BacktestResult) -> go.Figure:
    drawdown = drawdown_curve(np.asarray(result.equity, dtype=np.float64), result.initial_cash)
    keep = minmax_indices(drawdown, MAX_POINTS)
    figure = go.Figure(
        go.Scatter(
            name="drawdown",
            mode="lines",
            fill="tozeroy",
            x=_datetimes(np.asarray(result.timestamps)[keep]),
            y=drawdown[keep],
            line={"width": 1, "color": "#d62728"},
        )
    )
    title = _thinned("Drawdown from running peak", len(keep), len(drawdown))
    figure.update_layout(
        title=_chart_title(title, result.synthetic),
        xaxis={"title": "time (UTC)"},
        yaxis={"title": "drawdown", "tickformat": ".1%"},
        **_LAYOUT,
    )
    return figure


def minmax_indices(values: FloatArray, max_points: int) -> IntArray:
    """Sorted indices of at most ``max_points`` samples of ``values`` that keep its shape.

    Splits the series into equal buckets and keeps each bucket's minimum and maximum plus the
    first and last sample, so peaks and troughs survive thinning (plain striding would drop the
    one bar that crashed). Returns every index when the series is already short enough.
    """
    n = len(values)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    if max_points < 4:
        raise ValueError(f"max_points must be >= 4 to thin a series, got {max_points}")
    buckets = (max_points - 2) // 2
    size = math.ceil(n / buckets)
    data = np.asarray(values, dtype=np.float64)
    # Pad with the last value: an argmin/argmax landing in the padding means "the last sample".
    padded = np.concatenate((data, np.full(buckets * size - n, data[-1])))
    grid = padded.reshape(buckets, size)
    offsets = np.arange(buckets, dtype=np.int64) * size
    picks = np.concatenate(
        ([0, n - 1], offsets + grid.argmin(axis=1), offsets + grid.argmax(axis=1))
    )
    return np.unique(np.minimum(picks, n - 1)).astype(np.int64)


_LAYOUT: dict[str, object] = {
    "template": "plotly_white",
    "height": 480,
    "margin": {"l": 60, "r": 30, "t": 60, "b": 50},
    "hovermode": "x unified",
}


def _chart_title(text: str, synthetic: bool) -> str:
    return f"{SYNTHETIC_MARK}: {text}" if synthetic else text


def _thinned(text: str, kept: int, total: int) -> str:
    if kept < total:
        return f"{text} (downsampled to {kept:,} of {total:,} points, min/max per bucket)"
    return text


def _datetimes(ms: IntArray) -> DatetimeArray:
    """Epoch milliseconds as naive datetime64 holding UTC wall time.

    Naive on purpose: plotly.js has no time zones and would render an offset string in the
    browser's zone or not at all; the axes are labelled UTC instead.
    """
    return np.asarray(ms, dtype=np.int64).astype("datetime64[ms]")


def _trade_times(moments: Sequence[datetime]) -> DatetimeArray:
    ms = [round(_as_utc(moment).timestamp() * 1000) for moment in moments]
    return _datetimes(np.array(ms, dtype=np.int64))


# --- text helpers -----------------------------------------------------------------------------


def _pairs(result: BacktestResult, *, include_traded: bool = False) -> list[str]:
    pairs = set(result.candles)
    if include_traded or not pairs:
        pairs |= {t.pair for t in result.trades}
    return sorted(pairs)


def _title(result: BacktestResult) -> str:
    pairs = ", ".join(_pairs(result)) or "no pairs"
    return f"{result.strategy}: {pairs} {result.timeframe}"


def _quote_of(pair: str) -> str:
    return pair.split("/")[1] if pair.count("/") == 1 else ""


def _quote_currency(result: BacktestResult) -> str:
    """The quote currency shared by every pair, or "" if they differ or are unknown."""
    quotes = {_quote_of(pair) for pair in _pairs(result)}
    return quotes.pop() if len(quotes) == 1 else ""


def _as_utc(moment: datetime) -> datetime:
    """Trade times are UTC; a naive one is taken as UTC, not as the machine's local time."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _utc_text(moment: datetime) -> str:
    return _as_utc(moment).strftime("%Y-%m-%d %H:%M")


def _price_text(price: float) -> str:
    """Prices span 1e-8 (memecoins) to 1e5 (BTC): fixed decimals would hide or bloat them."""
    if abs(price) >= 1000:
        return f"{price:,.2f}"
    if abs(price) >= 1:
        return f"{price:,.4f}"
    return f"{price:.6g}"


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{page_title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }}
.synthetic-banner {{ background: #b00020; color: #fff; font-weight: bold; font-size: 1.4rem;
  padding: 0.8rem 1rem; margin-bottom: 1rem; position: sticky; top: 0; z-index: 10; }}
code {{ font-size: 0.95rem; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: 0.25rem 0.7rem; border-bottom: 1px solid #ddd; text-align: right; }}
table.metrics th {{ text-align: left; }}
tr.alarm td, tr.alarm th {{ color: #b00020; font-weight: bold; }}
tr.win td {{ color: #1a7f37; }}
tr.loss td {{ color: #b00020; }}
section.chart {{ margin: 1rem 0; }}
</style>
</head>
<body>
{banner}
<h1>{title}</h1>
<p>Trade fingerprint (sha256): <code class="fingerprint">{fingerprint}</code></p>
<p>Parameters: <code>{params}</code></p>
<h2>Metrics</h2>
{metrics}
<h2>Charts</h2>
{charts}
<h2>Trades</h2>
{trades}
</body>
</html>
"""
