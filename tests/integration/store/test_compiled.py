"""Statements run on the driver's cursor (``store.compiled``) write exactly what the ORM would,
on SQLite and PostgreSQL, and their transaction is all or nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from nettrace.store.compiled import CompiledInsert, driver_transaction
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
    with driver_transaction(migrated_db.engine) as cursor:
        statement.execute(cursor, values("fast"))
        statement.execute_many(cursor, [values("fast2", approved=False, side=None)])
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
    with driver_transaction(migrated_db.engine) as cursor:
        statement.execute(cursor, values("kept"))

    # A duplicate key in the second statement: the first of the same transaction is undone,
    # and the driver's error arrives as SQLAlchemy's, as from ``Connection.execute``.
    def duplicate() -> None:
        with driver_transaction(migrated_db.engine) as cursor:
            statement.execute(cursor, values("undone"))
            statement.execute(cursor, values("kept"))

    def caller_fails() -> None:
        with driver_transaction(migrated_db.engine) as cursor:
            statement.execute(cursor, values("also-undone"))
            raise RuntimeError("caller failed")

    with pytest.raises(IntegrityError):
        duplicate()
    with pytest.raises(RuntimeError, match="caller failed"):
        caller_fails()
    assert count(migrated_db) == 1
    # The pooled connection went back clean: the next transaction works.
    with driver_transaction(migrated_db.engine) as cursor:
        statement.execute(cursor, values("next"))
    assert count(migrated_db) == 2


def test_a_statement_taking_a_value_no_column_gives_is_refused_when_compiled(
    migrated_db: Database,
) -> None:
    statement = insert(DECISIONS).values(region=bindparam("where"))
    with pytest.raises(ValueError, match=r"\['where'\] not in columns"):
        CompiledInsert(statement, migrated_db.engine, COLUMNS)
