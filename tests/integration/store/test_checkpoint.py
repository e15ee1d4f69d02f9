"""The trading loop's database: SQLite's WAL auto-checkpoint off, checkpoints between ticks."""

from __future__ import annotations

from pathlib import Path

from nettrace.store.database import Database
from nettrace.store.hardstop import HardstopLatch
from nettrace.store.migrate import upgrade


def _pragma(database: Database, name: str) -> int:
    with database.engine.connect() as conn:
        return int(conn.exec_driver_sql(f"PRAGMA {name}").scalar_one())


def test_the_loop_database_never_checkpoints_inside_a_commit_and_checkpoints_on_request(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    upgrade(url)
    default, loop = Database(url), Database(url, checkpoint_on_commit=False)
    try:
        assert _pragma(default, "wal_autocheckpoint") == 1000  # SQLite's default, unchanged
        assert _pragma(loop, "wal_autocheckpoint") == 0
        latch = HardstopLatch(loop)
        for i in range(50):  # writes pile up in the WAL: no commit moved them
            latch.raise_("operator", f"drill {i}")
            latch.clear("operator", f"drill {i}")
        wal = tmp_path / "n.db-wal"
        assert wal.stat().st_size > 0
        loop.checkpoint()
        with loop.engine.connect() as conn:
            busy, frames, done = conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
        assert (busy, frames - done) == (0, 0)  # everything is in the database file now
        assert HardstopLatch(default).state().active is False  # and readable by anyone
    finally:
        default.dispose()
        loop.dispose()


def test_checkpoint_is_a_no_op_off_sqlite(migrated_db: Database) -> None:
    migrated_db.checkpoint()  # PostgreSQL: nothing to do, and no error
    assert HardstopLatch(migrated_db).state().active is False
