"""compute_metrics: every value checked against arithmetic written out by hand."""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from nettrace.agents.agent_goals import HARDSTOP_DAILY_LOSS
from nettrace.backtest.metrics import METRIC_KEYS, compute_metrics, drawdown_curve
from nettrace.backtest.results import BacktestResult, Trade, TradeRecords

HOUR = 3_600_000
DAY = 86_400_000
#: 2024-01-01 00:00:00 UTC in ms (19723 days after the epoch).
T0 = 19_723 * DAY


@pytest.fixture(autouse=True)
def _warnings_are_errors() -> Iterator[None]:
    """A metric that divides by zero or takes the mean of nothing must not even warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _trade(entry: float, exit_: float, amount: float, fee: float, day: int = 0) -> Trade:
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=day)
    return Trade(
        pair="BTC/USD",
        entry_time=start,
        exit_time=start + timedelta(hours=6),
        entry_price=entry,
        exit_price=exit_,
        amount=amount,
        fee=fee,
        profit=amount * (exit_ - entry) - fee,
    )


def _result(
    times: Sequence[int],
    equity: Sequence[float],
    *,
    initial_cash: float = 1000.0,
    trades: Sequence[Trade] = (),
    fees_paid: float = 0.0,
    exposure: float = 0.0,
) -> BacktestResult:
    return BacktestResult(
        strategy="hand",
        timeframe="1h",
        initial_cash=initial_cash,
        records=TradeRecords.from_trades(trades),
        timestamps=np.array(times, dtype=np.int64),
        equity=np.array(equity, dtype=np.float64),
        fees_paid=fees_paid,
        exposure=exposure,
    )


# Three UTC days, eight bars. Day 0 starts from the initial cash (1000).
HAND_TIMES = [
    T0,  # day 0 00:00
    T0 + 6 * HOUR,
    T0 + 12 * HOUR,
    T0 + DAY,  # day 1 00:00
    T0 + DAY + 8 * HOUR,
    T0 + DAY + 16 * HOUR,
    T0 + 2 * DAY,  # day 2 00:00
    T0 + 2 * DAY + 12 * HOUR,
]
HAND_EQUITY = [1000.0, 980.0, 1010.0, 1030.0, 990.0, 1000.0, 960.0, 1050.0]
HAND_TRADES = [
    _trade(100.0, 110.0, 2.0, 0.5, day=0),  # profit 2*10 - 0.5 = 19.5, return 19.5/200
    _trade(50.0, 45.0, 4.0, 0.4, day=1),  # profit 4*-5 - 0.4 = -20.4, return -20.4/200
    _trade(200.0, 210.0, 1.0, 0.3, day=2),  # profit 10 - 0.3 = 9.7, return 9.7/200
]


@pytest.fixture
def hand() -> dict[str, float]:
    return compute_metrics(
        _result(HAND_TIMES, HAND_EQUITY, trades=HAND_TRADES, fees_paid=1.2, exposure=0.625)
    )


def test_returns_exactly_the_documented_keys(hand: dict[str, float]) -> None:
    assert tuple(hand) == METRIC_KEYS


def test_hand_built_returns(hand: dict[str, float]) -> None:
    assert hand["total_return"] == pytest.approx(1050 / 1000 - 1)  # 0.05
    assert hand["final_equity"] == 1050.0
    # Span: first bar 00:00 day 0 to last bar 12:00 day 2 = 2.5 days = 2.5/365.25 years.
    assert hand["cagr"] == pytest.approx(1.05 ** (365.25 / 2.5) - 1, rel=1e-12)


def test_hand_built_sharpe_and_sortino(hand: dict[str, float]) -> None:
    # Day closes 1010, 1000, 1050 over bases 1000 (initial cash), 1010, 1000.
    daily = [1010 / 1000 - 1, 1000 / 1010 - 1, 1050 / 1000 - 1]  # 0.01, -0.0099.., 0.05
    mean = sum(daily) / 3
    sample_std = math.sqrt(sum((r - mean) ** 2 for r in daily) / 2)
    assert sample_std == pytest.approx(statistics.stdev(daily))
    downside = math.sqrt((0.0 + (1000 / 1010 - 1) ** 2 + 0.0) / 3)
    assert hand["sharpe"] == pytest.approx(mean / sample_std * math.sqrt(365), rel=1e-12)
    assert hand["sortino"] == pytest.approx(mean / downside * math.sqrt(365), rel=1e-12)


def test_hand_built_drawdown_and_calmar(hand: dict[str, float]) -> None:
    # Running peak reaches 1030 on day 1; the lowest point after it is 960: 70/1030 below.
    assert hand["max_drawdown"] == pytest.approx(70 / 1030, rel=1e-12)
    cagr = 1.05 ** (365.25 / 2.5) - 1
    assert hand["calmar"] == pytest.approx(cagr / (70 / 1030), rel=1e-12)


def test_hand_built_trade_statistics(hand: dict[str, float]) -> None:
    assert hand["trades"] == 3.0
    assert hand["win_rate"] == pytest.approx(2 / 3)
    assert hand["profit_factor"] == pytest.approx((19.5 + 9.7) / 20.4, rel=1e-12)
    assert hand["avg_trade_return"] == pytest.approx(
        (19.5 / 200 - 20.4 / 200 + 9.7 / 200) / 3, rel=1e-12
    )
    assert hand["fees_paid"] == 1.2
    assert hand["exposure"] == 0.625


def test_hand_built_worst_day(hand: dict[str, float]) -> None:
    # Day 0: 980 below the initial 1000 = -2%. Day 1: 990 below day 0's close 1010 = -1.98%.
    # Day 2: 960 below day 1's close 1000 = -4%: the worst, and inside the HARDSTOP line.
    assert hand["worst_day"] == pytest.approx(960 / 1000 - 1, rel=1e-12)
    assert hand["hardstop_days"] == 0.0


def test_a_5_1_percent_intraday_fall_that_recovers_is_a_hardstop_day() -> None:
    times = [T0, T0 + 12 * HOUR, T0 + DAY, T0 + DAY + 6 * HOUR, T0 + DAY + 18 * HOUR]
    # Day 1 starts from 1000 (day 0's last bar), dips to 949 (-5.1%) and closes above it.
    metrics = compute_metrics(_result(times, [1000.0, 1000.0, 990.0, 949.0, 1005.0]))
    assert metrics["worst_day"] == pytest.approx(-0.051, rel=1e-12)
    assert metrics["hardstop_days"] == 1.0
    # The day ends up, so no daily return shows the breach: only the intraday view catches it.
    assert metrics["total_return"] == pytest.approx(0.005)


def test_a_fall_of_exactly_the_hardstop_line_is_not_a_breach() -> None:
    """The rule halts on *more than* 5%; 1 - 950/1000 is 0.05000000000000004 in binary."""
    times = [T0, T0 + DAY, T0 + DAY + HOUR]
    metrics = compute_metrics(_result(times, [1000.0, 950.0, 1000.0], initial_cash=1000.0))
    assert metrics["worst_day"] == pytest.approx(-HARDSTOP_DAILY_LOSS)
    assert metrics["hardstop_days"] == 0.0


def test_worst_day_is_measured_from_the_day_start_not_the_intraday_high() -> None:
    times = [T0, T0 + HOUR, T0 + 2 * HOUR]
    # Up 10% then down to 1050: 4.5% below the intraday high, but above the day's start.
    metrics = compute_metrics(_result(times, [1000.0, 1100.0, 1050.0]))
    assert metrics["worst_day"] == 0.0
    assert metrics["max_drawdown"] == pytest.approx(50 / 1100)


def test_the_first_day_starts_from_the_initial_cash() -> None:
    # The very first bar is already 6% below the initial cash: a breach on day 0.
    metrics = compute_metrics(_result([T0, T0 + HOUR], [940.0, 990.0]))
    assert metrics["worst_day"] == pytest.approx(-0.06)
    assert metrics["hardstop_days"] == 1.0
    assert metrics["max_drawdown"] == pytest.approx(0.06)


def test_days_split_at_utc_midnight() -> None:
    # 23:59 belongs to day 0 (start 1000), 00:00 to day 1 (start = 23:59's 1100).
    times = [T0 + 23 * HOUR, T0 + DAY - 60_000, T0 + DAY]
    metrics = compute_metrics(_result(times, [1000.0, 1100.0, 1040.0]))
    # If both late bars were one day, the worst fall from 1000 would be 0.
    assert metrics["worst_day"] == pytest.approx(1040 / 1100 - 1)


def test_each_breached_day_counts_once() -> None:
    times = [T0, T0 + HOUR, T0 + 2 * HOUR, T0 + DAY, T0 + DAY + HOUR, T0 + 2 * DAY]
    # Day 0 breaches twice (-6%, -7%) and counts once; day 1 from 1000 to 930 is -7%.
    equity = [940.0, 930.0, 1000.0, 930.0, 1000.0, 1000.0]
    metrics = compute_metrics(_result(times, equity))
    assert metrics["hardstop_days"] == 2.0
    assert metrics["worst_day"] == pytest.approx(-0.07)


def test_no_trades() -> None:
    metrics = compute_metrics(_result([T0, T0 + DAY], [1000.0, 1010.0]))
    assert metrics["trades"] == 0.0
    assert math.isnan(metrics["win_rate"])
    assert math.isnan(metrics["profit_factor"])
    assert math.isnan(metrics["avg_trade_return"])


def test_no_losing_trade_gives_nan_profit_factor_not_inf() -> None:
    trades = [_trade(100.0, 110.0, 1.0, 0.1), _trade(100.0, 105.0, 1.0, 0.1)]
    metrics = compute_metrics(_result([T0, T0 + DAY], [1000.0, 1014.8], trades=trades))
    assert math.isnan(metrics["profit_factor"])
    assert metrics["win_rate"] == 1.0


def test_only_losing_trades_give_zero_profit_factor() -> None:
    trades = [_trade(100.0, 90.0, 1.0, 0.1)]
    metrics = compute_metrics(_result([T0, T0 + DAY], [1000.0, 989.9], trades=trades))
    assert metrics["profit_factor"] == 0.0
    assert metrics["win_rate"] == 0.0
    assert metrics["avg_trade_return"] == pytest.approx(-10.1 / 100)


def test_a_break_even_trade_is_neither_a_win_nor_a_loss() -> None:
    flat = _trade(100.0, 100.0, 1.0, 0.0)  # profit exactly 0
    trades = [flat, _trade(100.0, 90.0, 1.0, 0.0)]  # the second loses 10
    metrics = compute_metrics(_result([T0, T0 + DAY], [1000.0, 990.0], trades=trades))
    assert metrics["win_rate"] == 0.0
    assert metrics["profit_factor"] == 0.0


def test_flat_equity() -> None:
    times = [T0 + i * 6 * HOUR for i in range(12)]  # three days
    metrics = compute_metrics(_result(times, [1000.0] * 12))
    assert metrics["total_return"] == 0.0
    assert metrics["cagr"] == 0.0
    assert math.isnan(metrics["sharpe"])  # zero volatility
    assert math.isnan(metrics["sortino"])  # no down day
    assert metrics["max_drawdown"] == 0.0
    assert math.isnan(metrics["calmar"])  # zero drawdown
    assert metrics["worst_day"] == 0.0
    assert metrics["hardstop_days"] == 0.0


def test_rising_every_day_has_sharpe_but_no_sortino() -> None:
    times = [T0, T0 + DAY, T0 + 2 * DAY]
    metrics = compute_metrics(_result(times, [1010.0, 1030.0, 1040.0]))
    daily = [0.01, 1030 / 1010 - 1, 1040 / 1030 - 1]
    assert metrics["sharpe"] == pytest.approx(
        statistics.mean(daily) / statistics.stdev(daily) * math.sqrt(365), rel=1e-12
    )
    assert math.isnan(metrics["sortino"])


def test_one_day_of_data() -> None:
    metrics = compute_metrics(_result([T0, T0 + HOUR, T0 + 5 * HOUR], [1000.0, 990.0, 1020.0]))
    assert math.isnan(metrics["cagr"])  # span of 5 hours: too short to annualise
    assert math.isnan(metrics["calmar"])
    assert math.isnan(metrics["sharpe"])  # one daily return has no spread
    assert math.isnan(metrics["sortino"])
    assert metrics["total_return"] == pytest.approx(0.02)
    assert metrics["max_drawdown"] == pytest.approx(0.01)
    assert metrics["worst_day"] == pytest.approx(-0.01)


def test_cagr_over_exactly_one_year_is_the_total_return() -> None:
    year_ms = 36_525 * DAY // 100  # 365.25 days
    metrics = compute_metrics(_result([T0, T0 + year_ms], [1000.0, 2000.0]))
    assert metrics["cagr"] == pytest.approx(1.0, rel=1e-12)


def test_cagr_that_overflows_a_float_is_nan() -> None:
    # 10x in one day compounds to 10^365.25 a year: beyond a float.
    metrics = compute_metrics(_result([T0, T0 + DAY], [1000.0, 10_000.0]))
    assert math.isnan(metrics["cagr"])
    assert math.isnan(metrics["calmar"])


def test_empty_equity_curve() -> None:
    metrics = compute_metrics(_result([], []))
    assert metrics["total_return"] == 0.0
    assert metrics["final_equity"] == 1000.0
    assert metrics["max_drawdown"] == 0.0
    assert metrics["hardstop_days"] == 0.0
    for key in ("cagr", "sharpe", "sortino", "calmar", "worst_day"):
        assert math.isnan(metrics[key]), key


def test_account_wiped_out_gives_no_inf() -> None:
    times = [T0, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY]
    metrics = compute_metrics(_result(times, [1000.0, 0.0, 0.0, 0.0]))
    assert not any(math.isinf(v) for v in metrics.values())
    assert metrics["total_return"] == -1.0
    assert metrics["max_drawdown"] == 1.0
    assert metrics["worst_day"] == -1.0


@pytest.mark.parametrize(
    ("times", "equity", "initial_cash", "message"),
    [
        ([T0, T0 + DAY], [1000.0], 1000.0, "equal length"),
        ([T0 + DAY, T0], [1000.0, 1000.0], 1000.0, "non-decreasing"),
        ([T0], [1000.0], 0.0, "initial_cash"),
    ],
)
def test_rejects_inconsistent_input(
    times: list[int], equity: list[float], initial_cash: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compute_metrics(_result(times, equity, initial_cash=initial_cash))


def test_drawdown_curve_counts_the_initial_cash_as_a_peak() -> None:
    curve = drawdown_curve(np.array([990.0, 995.0, 1020.0, 1000.0]), 1000.0)
    np.testing.assert_allclose(curve, [-0.01, -0.005, 0.0, 1000 / 1020 - 1], rtol=1e-12)


def test_a_million_bar_curve_is_self_consistent() -> None:
    # Speed is the benchmark's business (benchmarks/); this checks a long curve's figures.
    n = 1_000_000
    rng = np.random.default_rng(7)
    equity = 1000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-4, n)))
    result = BacktestResult(
        strategy="big",
        timeframe="1m",
        initial_cash=1000.0,
        records=TradeRecords.from_trades(HAND_TRADES),
        timestamps=T0 + np.arange(n, dtype=np.int64) * 60_000,
        equity=equity,
        fees_paid=0.0,
    )
    metrics = compute_metrics(result)
    # 1M minutes is 694.4 days; the result must still be self-consistent.
    assert metrics["final_equity"] == equity[-1]
    assert metrics["max_drawdown"] == pytest.approx(
        float(np.max(1 - equity / np.maximum.accumulate(np.maximum(equity, 1000.0))))
    )
