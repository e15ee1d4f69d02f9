"""Statements run on the driver's cursor (``store.compiled``) write exactly what the ORM would,
on SQLite and PostgreSQL, and their transaction is all or nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from nettrace.store.compiled import CompiledInsert
from nettrace.store.database import Database
from nettrace.store.models import DecisionRow

DECISIONS: Table = DecisionRow.__table__  # type: ignore[assignment]
COLUMNS = [c.key for c in DECISIONS.columns]


def values(decision_id: str, **changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": decision_id,
        # Not UTC on purpose: stored as UTC, read back aware (the column type's processor).
        "decided_at": datetime(2024, 3, 1, 14, 5, 7, 123456, tzinfo=timezone(timedelta(hours=2))),
        "region": "ewr",
        "symbol": "BTC/USD",
        "side": "BUY",
        "regime": None,
        "confidence": 0.85,
        "signal_count": 3,
        "approved": True,
        "refusals": [{"code": "LOW_CONFIDENCE", "message": "é 70%"}],
        "inputs": {"context": {"votes": {"rsi": 0.7}, "nested": [1, 2.5, None, "x"]}},
        "thresholds": {"min_confidence": 0.7},
        "fees": {"maker": 0.004, "taker": 0.006},
        "exit_reason": None,
        "price_bound": 101.25,
        "stop_price": 96.5,
        "entry_decision_id": None,
    }
    row.update(changes)
    return row


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(DecisionRow)) or 0)


def test_rows_written_on_the_cursor_read_back_as_the_orm_writes_them(
    migrated_db: Database,
) -> None:
    statement = CompiledInsert(insert(DECISIONS), migrated_db.engine, COLUMNS)

    def write(cursor: Any) -> None:
        statement.execute(cursor, values("fast"))
        statement.execute_many(cursor, [values("fast2", approved=False, side=None)])

    migrated_db.driver.run(write)
    with migrated_db.session() as session:
        session.add(DecisionRow(**values("orm")))
    with migrated_db.session() as session:
        rows = {row.id: row for row in session.scalars(select(DecisionRow))}
    fast, orm = rows["fast"], rows["orm"]
    for column in COLUMNS:
        if column != "id":
            assert getattr(fast, column) == getattr(orm, column), column
    assert fast.decided_at == datetime(2024, 3, 1, 12, 5, 7, 123456, tzinfo=UTC)
    assert fast.decided_at.tzinfo is not None
    assert fast.inputs["context"]["nested"] == [1, 2.5, None, "x"]
    assert rows["fast2"].approved is False
    assert rows["fast2"].side is None


def test_the_transaction_is_all_or_nothing(migrated_db: Database) -> None:
    statement = CompiledInsert(insert(DECISIONS), migrated_db.engine, COLUMNS)
    driver = migrated_db.driver

    def insert_rows(*ids: str) -> Callable[[Any], None]:
        def write(cursor: Any) -> None:
            for decision_id in ids:
                statement.execute(cursor, values(decision_id))

        return write

    def caller_fails(cursor: Any) -> None:
        statement.execute(cursor, values("also-undone"))
        raise RuntimeError("caller failed")

    driver.run(insert_rows("kept"))
    # A duplicate key in the second statement: the first of the same transaction is undone,
    # and the driver's error arrives as SQLAlchemy's, as from ``Connection.execute``.
    with pytest.raises(IntegrityError):
        driver.run(insert_rows("undone", "kept"))
    with pytest.raises(RuntimeError, match="caller failed"):
        driver.run(caller_fails)
    assert count(migrated_db) == 1
    # The connection went back clean: the next transaction works.
    driver.run(insert_rows("next"))
    assert count(migrated_db) == 2


def test_a_kept_connection_that_died_is_replaced_and_the_work_done_once(
    migrated_db: Database,
) -> None:
    statement = CompiledInsert(insert(DECISIONS), migrated_db.engine, COLUMNS)
    driver = migrated_db.driver
    driver.run(lambda cursor: statement.execute(cursor, values("first")))
    kept = driver._held
    if migrated_db.engine.dialect.name == "sqlite":
        assert kept is None  # SQLite keeps none (see ``HeldConnection``): nothing can go stale
    else:
        assert kept is not None
        # The kept connection dies under us (a server restart, a network cut).
        with migrated_db.engine.connect() as admin:
            admin.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = current_database()"
            )
    driver.run(lambda cursor: statement.execute(cursor, values("second")))
    if kept is not None:
        assert driver._held is not None
        assert driver._held is not kept
    assert count(migrated_db) == 2


def test_a_statement_taking_a_value_no_column_gives_is_refused_when_compiled(
    migrated_db: Database,
) -> None:
    statement = insert(DECISIONS).values(region=bindparam("where"))
    with pytest.raises(ValueError, match=r"\['where'\] not in columns"):
        CompiledInsert(statement, migrated_db.engine, COLUMNS)
