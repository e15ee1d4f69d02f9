"""The daily-loss monitor and the HANDOFF.md parser: pure, no database."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from nettrace.agents.agent_goals import HARDSTOP_DAILY_LOSS
from nettrace.execution.hardstop import DailyLossMonitor, handoff_says_hardstop

DAY = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def started(equity: float = 10_000.0) -> DailyLossMonitor:
    monitor = DailyLossMonitor()
    assert monitor.check(DAY, equity) is None
    return monitor


@pytest.mark.parametrize(
    ("fall", "breach"),
    [(0.0499, False), (0.05, False), (0.0501, True), (0.5, True)],
    ids=["-4.99%", "-5.00%", "-5.01%", "-50%"],
)
def test_the_line_is_strictly_beyond_five_percent(fall: float, breach: bool) -> None:
    monitor = started(10_000.0)
    result = monitor.check(DAY + timedelta(hours=3), 10_000.0 * (1 - fall))
    assert (result is not None) is breach
    if result is not None:
        assert result.change == pytest.approx(-fall)
        assert result.day_start_equity == 10_000.0
        assert "daily loss" in result.reason


def test_exactly_five_percent_in_awkward_floats_is_not_a_breach() -> None:
    for start in (1.0, 3.3, 123.456, 98_765.4321):
        monitor = started(start)
        assert monitor.check(DAY + timedelta(minutes=1), start * (1 - HARDSTOP_DAILY_LOSS)) is None


def test_unrealised_losses_count_mark_to_market() -> None:
    # Cash 2,000 plus 1 BTC marked at 8,000; the price falls to 7,400 without any sale.
    monitor = started(2_000.0 + 1.0 * 8_000.0)
    assert monitor.check(DAY + timedelta(hours=1), 2_000.0 + 1.0 * 7_600.0) is None  # -4%
    breach = monitor.check(DAY + timedelta(hours=2), 2_000.0 + 1.0 * 7_400.0)  # -6%
    assert breach is not None
    assert breach.change == pytest.approx(-0.06)


def test_a_recovery_within_the_day_keeps_the_day_start() -> None:
    monitor = started(10_000.0)
    assert monitor.check(DAY + timedelta(hours=1), 10_500.0) is None
    assert monitor.day_start_equity == 10_000.0
    assert monitor.check(DAY + timedelta(hours=2), 9_400.0) is not None


def test_day_rolls_over_at_utc_midnight() -> None:
    monitor = started(10_000.0)
    before_midnight = DAY + timedelta(hours=23, minutes=59, seconds=59)
    assert monitor.check(before_midnight, 9_600.0) is None
    # The first tick of the new UTC day sets its start: 9,000 is day start, not a -10% fall.
    assert monitor.check(DAY + timedelta(days=1), 9_000.0) is None
    assert monitor.day == date(2026, 3, 3)
    assert monitor.day_start_equity == 9_000.0
    assert monitor.check(DAY + timedelta(days=1, hours=1), 8_600.0) is None  # -4.4%
    assert monitor.check(DAY + timedelta(days=1, hours=2), 8_500.0) is not None  # -5.6%


def test_the_day_is_the_utc_day_not_the_local_one() -> None:
    from zoneinfo import ZoneInfo

    monitor = DailyLossMonitor()
    # 20:00 in New York on 1 March is 01:00 UTC on 2 March.
    monitor.check(datetime(2026, 3, 1, 20, 0, tzinfo=ZoneInfo("America/New_York")), 100.0)
    assert monitor.day == date(2026, 3, 2)


def test_an_explicit_day_start_value_is_used() -> None:
    monitor = DailyLossMonitor()
    monitor.set_day_start(DAY.date(), 10_000.0)
    breach = monitor.check(DAY + timedelta(hours=5), 9_000.0)
    assert breach is not None
    assert breach.day_start_equity == 10_000.0
    with pytest.raises(ValueError, match="day-start"):
        monitor.set_day_start(DAY.date(), 0.0)


@pytest.mark.parametrize("bad", [0.0, -5.0, math.nan, math.inf, -math.inf])
def test_bad_equity_is_a_data_fault_never_a_breach(bad: float) -> None:
    monitor = started(10_000.0)
    assert monitor.check(DAY + timedelta(hours=1), bad) is None
    assert monitor.day_start_equity == 10_000.0
    # A bad first tick of the day does not become the day start either.
    fresh = DailyLossMonitor()
    assert fresh.check(DAY, bad) is None
    assert fresh.day_start_equity is None


def test_naive_timestamps_and_loose_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        DailyLossMonitor().check(datetime(2026, 3, 2), 100.0)  # noqa: DTZ001
    with pytest.raises(ValueError, match="tighten"):
        DailyLossMonitor(limit=0.10)
    assert DailyLossMonitor(limit=0.02).check(DAY, 100.0) is None


def test_handoff_first_hardstop_line(tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text(
        "# Handoff\n\nnotes: no HARDSTOP today\n  HARDSTOP exchange outage\nHARDSTOP second\n",
        encoding="utf-8",
    )
    assert handoff_says_hardstop(handoff) == "HARDSTOP exchange outage"


def test_handoff_without_the_line_missing_or_unset(tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text("# Handoff\n- hardstop lowercase does not count\n", encoding="utf-8")
    assert handoff_says_hardstop(handoff) is None
    assert handoff_says_hardstop(tmp_path / "missing.md") is None
    assert handoff_says_hardstop(None) is None
