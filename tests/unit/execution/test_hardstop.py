"""The daily-loss monitor and the HANDOFF.md parser (pure), and the guard that ties them to a
real latch (``migrated_db``: SQLite always, PostgreSQL when configured).

Both sources fail closed (DESIGN §3): an equity that cannot be measured and a HANDOFF.md that
cannot be read raise HARDSTOP.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from nettrace.agents.agent_goals import HARDSTOP_DAILY_LOSS
from nettrace.execution import hardstop as hardstop_module
from nettrace.execution.hardstop import (
    DailyLossMonitor,
    HardstopGuard,
    UnreadableHandoff,
    handoff_says_hardstop,
)
from nettrace.store.database import Database
from nettrace.store.hardstop import HardstopLatch

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


BAD_EQUITY = [math.nan, math.inf, -math.inf, 0.0, -5.0]
BAD_IDS = ["nan", "inf", "-inf", "zero", "negative"]


def fault_reason(bad: float) -> str:
    return (
        f"equity {bad!r} is not a positive finite number (a missing price or an empty account)"
        ": treated as a breach"
    )


# Changed: this test used to pin the fail-open rule ("a data fault, never a breach").
@pytest.mark.parametrize("bad", BAD_EQUITY, ids=BAD_IDS)
def test_bad_equity_is_a_breach_and_never_the_day_start(bad: float) -> None:
    monitor = started(10_000.0)
    breach = monitor.check(DAY + timedelta(hours=1), bad)
    assert breach is not None
    assert breach.fault is not None
    assert breach.reason == fault_reason(bad)
    assert breach.day == DAY.date()
    assert breach.day_start_equity == 10_000.0
    assert breach.change is None
    assert monitor.day_start_equity == 10_000.0
    # A valid tick after it is still measured against the real day start.
    assert monitor.check(DAY + timedelta(hours=2), 9_600.0) is None  # -4%
    assert monitor.day_start_equity == 10_000.0
    later = monitor.check(DAY + timedelta(hours=3), 9_400.0)  # -6%
    assert later is not None
    assert later.fault is None
    assert "daily loss" in later.reason


@pytest.mark.parametrize("bad", BAD_EQUITY, ids=BAD_IDS)
def test_bad_equity_with_no_day_start_yet_is_still_a_breach(bad: float) -> None:
    fresh = DailyLossMonitor()
    breach = fresh.check(DAY, bad)
    assert breach is not None
    assert breach.day_start_equity is None
    assert breach.reason == fault_reason(bad)
    assert fresh.day_start_equity is None
    # The first valid tick then becomes the day start.
    assert fresh.check(DAY + timedelta(minutes=1), 100.0) is None
    assert fresh.day_start_equity == 100.0


def test_bad_first_tick_of_a_new_day_does_not_report_yesterdays_start() -> None:
    monitor = started(10_000.0)
    breach = monitor.check(DAY + timedelta(days=1), math.nan)
    assert breach is not None
    assert breach.day == date(2026, 3, 3)
    assert breach.day_start_equity is None  # yesterday's 10,000 is not today's start
    assert monitor.check(DAY + timedelta(days=1, minutes=1), 9_000.0) is None
    assert (monitor.day, monitor.day_start_equity) == (date(2026, 3, 3), 9_000.0)


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


def read_error(path: Path) -> str:
    """The sentence an unreadable ``path`` must give: the path and the OS's own error."""
    try:
        path.read_bytes()
    except FileNotFoundError:
        pytest.fail(f"{path} is missing, not unreadable")
    except OSError as exc:
        return f"HANDOFF.md {path} is unreadable: {exc}"
    pytest.fail(f"{path} is readable")


def test_handoff_that_is_a_directory_is_unreadable(tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.mkdir()
    reason = handoff_says_hardstop(handoff)
    assert isinstance(reason, UnreadableHandoff)
    assert reason == read_error(handoff)
    assert "Is a directory" in reason


def test_handoff_under_a_file_is_unreadable(tmp_path: Path) -> None:
    parent = tmp_path / "notes"
    parent.write_text("a file, not a directory\n", encoding="utf-8")
    handoff = parent / "HANDOFF.md"
    reason = handoff_says_hardstop(handoff)
    assert isinstance(reason, UnreadableHandoff)
    assert reason == read_error(handoff)
    assert "Not a directory" in reason


def test_handoff_without_read_permission_is_unreadable(tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text("# Handoff\nall good\n", encoding="utf-8")
    handoff.chmod(0o000)
    try:
        if os.access(handoff, os.R_OK):
            pytest.skip("chmod 000 does not stop this user (root) from reading")
        reason = handoff_says_hardstop(handoff)
        assert isinstance(reason, UnreadableHandoff)
        assert reason == read_error(handoff)
        assert "Permission denied" in reason
    finally:
        handoff.chmod(0o600)


def test_handoff_that_is_not_utf8_is_unreadable(tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_bytes(b"# Handoff\nall good \xff\xfe\n")
    reason = handoff_says_hardstop(handoff)
    assert isinstance(reason, UnreadableHandoff)
    assert reason.startswith(f"HANDOFF.md {handoff} is unreadable: ")
    assert "'utf-8' codec can't decode byte 0xff" in reason


def test_handoff_hardstop_on_the_first_line_after_a_byte_order_mark(tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_bytes("\ufeffHARDSTOP: outage\n".encode())
    line = handoff_says_hardstop(handoff)
    assert line == "HARDSTOP: outage"
    assert not isinstance(line, UnreadableHandoff)


# -- the guard on a real latch --------------------------------------------------------------

T0 = DAY


@pytest.mark.parametrize("bad", [math.nan, math.inf, 0.0, -1.0], ids=["nan", "inf", "0", "-1"])
def test_guard_raises_daily_loss_for_a_bad_equity(migrated_db: Database, bad: float) -> None:
    latch = HardstopLatch(migrated_db)
    guard = HardstopGuard(latch, latch_recheck_s=0.0)
    assert guard.tick(T0, 10_000.0).active is False
    state = guard.tick(T0 + timedelta(minutes=1), bad)
    assert (state.active, state.source) == (True, "daily_loss")
    assert state.reason == fault_reason(bad)
    assert latch.state().reason == fault_reason(bad)  # persisted, not just returned
    assert [e.action for e in latch.events()] == ["raise"]
    assert guard.monitor.day_start_equity == 10_000.0

    # After the operator clears it, valid equity is measured against the real day start.
    latch.clear("operator", "price feed fixed", now=T0 + timedelta(minutes=2))
    assert guard.tick(T0 + timedelta(minutes=3), 9_600.0).active is False  # -4%
    again = guard.tick(T0 + timedelta(minutes=4), 9_400.0)  # -6%
    assert (again.active, again.source) == (True, "daily_loss")
    assert "daily loss -6.00%" in (again.reason or "")


def test_guard_raises_for_a_bad_equity_before_any_day_start(migrated_db: Database) -> None:
    latch = HardstopLatch(migrated_db)
    guard = HardstopGuard(latch)
    state = guard.tick(T0, math.nan)
    assert (state.active, state.source) == (True, "daily_loss")
    assert state.reason == fault_reason(math.nan)
    assert guard.monitor.day_start_equity is None


def test_guard_raises_for_a_handoff_directory(migrated_db: Database, tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.mkdir()
    state = HardstopGuard(HardstopLatch(migrated_db), handoff_path=handoff).tick(T0, 10_000.0)
    assert (state.active, state.source) == (True, "handoff")
    assert state.reason == read_error(handoff)


def test_guard_raises_when_handoff_cannot_be_stat_ed(migrated_db: Database, tmp_path: Path) -> None:
    parent = tmp_path / "notes"
    parent.write_text("a file\n", encoding="utf-8")
    handoff = parent / "HANDOFF.md"
    with pytest.raises(NotADirectoryError):
        handoff.stat()
    state = HardstopGuard(HardstopLatch(migrated_db), handoff_path=handoff).tick(T0, 10_000.0)
    assert (state.active, state.source) == (True, "handoff")
    assert state.reason == read_error(handoff)


def test_guard_raises_for_undecodable_handoff(migrated_db: Database, tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_bytes(b"# notes \xc3\x28\n")
    state = HardstopGuard(HardstopLatch(migrated_db), handoff_path=handoff).tick(T0, 10_000.0)
    assert (state.active, state.source) == (True, "handoff")
    assert (state.reason or "").startswith(f"HANDOFF.md {handoff} is unreadable: 'utf-8' codec")


def test_guard_missing_handoff_does_not_halt(migrated_db: Database, tmp_path: Path) -> None:
    latch = HardstopLatch(migrated_db)
    guard = HardstopGuard(latch, handoff_path=tmp_path / "HANDOFF.md")
    assert guard.tick(T0, 10_000.0).active is False
    assert guard.tick(T0 + timedelta(minutes=1), 10_000.0).active is False
    assert latch.events() == []


def test_guard_raises_when_a_cached_handoff_loses_read_permission(
    migrated_db: Database, tmp_path: Path
) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text("# Handoff\nall good\n", encoding="utf-8")
    guard = HardstopGuard(HardstopLatch(migrated_db), handoff_path=handoff)
    assert guard.tick(T0, 10_000.0).active is False  # read and cached as "no line"
    chmod_until_ctime_moves(handoff, 0o000)  # mtime and size unchanged
    try:
        if os.access(handoff, os.R_OK):
            pytest.skip("chmod 000 does not stop this user (root) from reading")
        state = guard.tick(T0 + timedelta(minutes=1), 10_000.0)
        assert (state.active, state.source) == (True, "handoff")
        assert state.reason == read_error(handoff)
    finally:
        handoff.chmod(0o600)


def chmod_until_ctime_moves(path: Path, mode: int) -> None:
    """chmod ``path``; repeat until its ctime changed (the clock may be coarser than a test)."""
    before = path.stat().st_ctime_ns
    path.chmod(mode)
    for _ in range(200):
        if path.stat().st_ctime_ns != before:
            return
        time.sleep(0.005)
        path.chmod(mode)
    pytest.fail("ctime never moved")


@pytest.fixture
def handoff_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path | None]:
    """Every call the guard makes to ``handoff_says_hardstop``, by path."""
    calls: list[Path | None] = []
    real: Callable[[Path | None], str | None] = hardstop_module.handoff_says_hardstop

    def counted(path: Path | None) -> str | None:
        calls.append(path)
        return real(path)

    monkeypatch.setattr(hardstop_module, "handoff_says_hardstop", counted)
    return calls


def test_guard_caches_a_readable_handoff_until_its_stat_changes(
    migrated_db: Database, tmp_path: Path, handoff_reads: list[Path | None]
) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text("# Handoff\nall good\n", encoding="utf-8")
    guard = HardstopGuard(HardstopLatch(migrated_db), handoff_path=handoff)
    for minute in range(3):
        assert guard.tick(T0 + timedelta(minutes=minute), 10_000.0).active is False
    assert len(handoff_reads) == 1
    chmod_until_ctime_moves(handoff, 0o600)  # a permission change is seen (ctime)
    assert guard.tick(T0 + timedelta(minutes=3), 10_000.0).active is False
    assert len(handoff_reads) == 2


def test_guard_rereads_an_unreadable_handoff_every_tick_and_never_crashes(
    migrated_db: Database, tmp_path: Path, handoff_reads: list[Path | None]
) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.mkdir()
    latch = HardstopLatch(migrated_db)
    guard = HardstopGuard(latch, handoff_path=handoff, latch_recheck_s=0.0)
    for minute in range(3):
        state = guard.tick(T0 + timedelta(minutes=minute), 10_000.0)
        assert (state.active, state.source) == (True, "handoff")
    assert len(handoff_reads) == 3  # not cached: a directory's stat does not change
    assert [e.action for e in latch.events()] == ["raise"]  # one event per raise

    # The operator clears it while the file is still unreadable: the next tick raises again.
    latch.clear("operator", "looked", now=T0 + timedelta(minutes=3))
    state = guard.tick(T0 + timedelta(minutes=4), 10_000.0)
    assert (state.active, state.source) == (True, "handoff")
    assert len(handoff_reads) == 4

    # The file is fixed: the latch stays up (only the operator clears it), no crash.
    handoff.rmdir()
    handoff.write_text("# Handoff\nall good\n", encoding="utf-8")
    assert guard.tick(T0 + timedelta(minutes=5), 10_000.0).active is True
    assert len(handoff_reads) == 5  # the fixed file is read
    latch.clear("operator", "fixed the file", now=T0 + timedelta(minutes=6))
    assert guard.tick(T0 + timedelta(minutes=7), 10_000.0).active is False
    assert guard.tick(T0 + timedelta(minutes=8), 10_000.0).active is False
    assert len(handoff_reads) == 5  # and cached again while it does not change
