"""Engines and sessions for SQLite (the default) and PostgreSQL (production and CI).

SQLite gets WAL, a busy timeout and enforced foreign keys on every connection: without them two
processes writing the same file fail with "database is locked" and orphaned rows slip in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from nettrace.store.compiled import HeldConnection

#: How long (milliseconds) a SQLite writer waits for another writer's lock before failing.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_db_engine(url: str, *, checkpoint_on_commit: bool = True, **kwargs: Any) -> Engine:
    """An engine for ``url``; plain ``postgresql://`` URLs use psycopg 3.

    For a SQLite file the parent folder is created, so a fresh install works with no set-up.
    ``checkpoint_on_commit=False`` turns SQLite's WAL auto-checkpoint off for this engine's
    connections: the trading loop then checkpoints itself between ticks
    (``Database.checkpoint``), because an auto-checkpoint runs inside whichever commit crosses
    the threshold -- measured, it was the decision path's worst latencies.
    """
    # orjson writes the JSON columns (decision audit rows, transition details, snapshots):
    # several times faster than ``json.dumps``, which was a tenth of the order-creation
    # transaction on the decision path. Reading stays with ``json.loads``, which also reads
    # rows written before (including any ``NaN`` token ``json.dumps`` let through; orjson
    # writes ``null`` for a non-finite number, as PostgreSQL's ``jsonb`` demands anyway).
    kwargs.setdefault("json_serializer", _json_text)
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        if not checkpoint_on_commit:
            event.listen(engine, "connect", _no_auto_checkpoint)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _no_auto_checkpoint(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA wal_autocheckpoint=0")
    finally:
        cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


class Database:
    """One engine and its session factory; the unit every repository is built on."""

    def __init__(
        self, url: str, *, checkpoint_on_commit: bool = True, **engine_kwargs: Any
    ) -> None:
        self.url = url
        self.engine = create_db_engine(
            url, checkpoint_on_commit=checkpoint_on_commit, **engine_kwargs
        )
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: The decision path's transactions (``store.compiled``): one connection, kept.
        self.driver = HeldConnection(self.engine)

    def display(self) -> str:
        """The URL with any password masked, safe to print and log."""
        return self.engine.url.render_as_string(hide_password=True)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on any error."""
        with self._sessions.begin() as session:
            yield session

    def checkpoint(self) -> None:
        """SQLite: move the WAL into the database file without blocking anyone (PASSIVE);
        a no-op elsewhere. The trading loop calls it between ticks (see ``create_db_engine``)."""
        if self.engine.dialect.name != "sqlite":
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def dispose(self) -> None:
        self.driver.close()
        self.engine.dispose()
