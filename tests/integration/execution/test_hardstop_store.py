"""The HARDSTOP latch on a real database (SQLite always, PostgreSQL when configured)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nettrace.execution.hardstop import HardstopGuard
from nettrace.store.database import Database
from nettrace.store.hardstop import HardstopLatch

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def test_a_fresh_database_is_not_halted(migrated_db: Database) -> None:
    latch = HardstopLatch(migrated_db)
    assert latch.state().active is False
    assert latch.events() == []


def test_raise_survives_a_restart_and_only_clear_clears(migrated_db: Database) -> None:
    HardstopLatch(migrated_db).raise_("daily_loss", "down 6%", now=T0)
    restarted = Database(migrated_db.url)  # a new process: new engine, new pool
    try:
        latch = HardstopLatch(restarted)
        state = latch.state()
        assert state.active is True
        assert (state.source, state.reason) == ("daily_loss", "down 6%")
        assert state.raised_at == T0
        # A second raise keeps the first cause but is still logged.
        again = latch.raise_("handoff", "HARDSTOP from handoff", now=T0 + timedelta(minutes=1))
        assert (again.source, again.reason) == ("daily_loss", "down 6%")
        assert latch.state().active is True

        cleared = latch.clear("operator", "checked the feed", now=T0 + timedelta(hours=1))
        assert cleared.active is True
        assert cleared.reason == "down 6%"
        after = latch.state()
        assert after.active is False
        assert after.cleared_by == "operator"
        assert after.cleared_at == T0 + timedelta(hours=1)
    finally:
        restarted.dispose()

    events = HardstopLatch(migrated_db).events()
    assert [(e.action, e.source) for e in events] == [
        ("clear", "operator"),
        ("raise", "handoff"),
        ("raise", "daily_loss"),
    ]
    assert events[-1].reason == "down 6%"


def test_blank_or_oversized_inputs_are_refused(migrated_db: Database) -> None:
    latch = HardstopLatch(migrated_db)
    with pytest.raises(ValueError, match="reason"):
        latch.raise_("operator", "   ")
    with pytest.raises(ValueError, match="source"):
        latch.raise_("x" * 33, "why")
    assert latch.state().active is False
    assert latch.events() == []


def test_guard_raises_within_the_same_tick_and_once(migrated_db: Database) -> None:
    latch = HardstopLatch(migrated_db)
    guard = HardstopGuard(latch)
    assert guard.tick(T0, 10_000.0).active is False
    assert guard.tick(T0 + timedelta(minutes=1), 9_500.0).active is False  # exactly -5%
    state = guard.tick(T0 + timedelta(minutes=2), 9_499.0)
    assert state.active is True
    assert state.source == "daily_loss"
    assert "daily loss" in (state.reason or "")
    guard.tick(T0 + timedelta(minutes=3), 9_000.0)  # still halted: no second event
    assert [e.action for e in latch.events()] == ["raise"]
    # A new UTC day does not clear it: only the operator does.
    assert guard.tick(T0 + timedelta(days=1), 9_000.0).active is True


def test_guard_raises_from_handoff(migrated_db: Database, tmp_path: Path) -> None:
    handoff = tmp_path / "HANDOFF.md"
    handoff.write_text("# notes\n", encoding="utf-8")
    latch = HardstopLatch(migrated_db)
    guard = HardstopGuard(latch, handoff_path=handoff)
    assert guard.tick(T0, 10_000.0).active is False
    handoff.write_text("# notes\n HARDSTOP: exchange maintenance\n", encoding="utf-8")
    state = guard.tick(T0 + timedelta(minutes=1), 10_000.0)
    assert (state.active, state.source) == (True, "handoff")
    assert state.reason == "HARDSTOP: exchange maintenance"
