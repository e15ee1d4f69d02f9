"""SQLAlchemy statements compiled once for a dialect and run on the driver's own cursor.

Why this exists rather than ``Connection.execute``: the order-creation transaction (decisions,
order, first transition) sits on the decision path, which DESIGN §5 wants under a millisecond
at p99, and SQLAlchemy's per-call machinery (compiled-cache lookup, execution context, result
set-up, events) cost ~60 us per statement there against ~5-15 us for the statement itself on
SQLite. What is kept from SQLAlchemy is everything that decides *what* is written: the
statement is the table's own ``insert()``, compiled by the engine's dialect, and every value
goes through its column type's bind processor (UTC timestamps, JSON, booleans) -- so a row
written here reads back through the ORM exactly as one the ORM wrote.

Only what the decision path needs is here; everything else uses ``Database.session``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

_Processor = Callable[[Any], Any]


class CompiledInsert:
    """One ``INSERT`` for one dialect, with the exact columns it will be given."""

    def __init__(self, statement: Insert, engine: Engine, columns: Sequence[str]) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        self.sql = compiled.string
        self.columns = tuple(columns)
        #: positional paramstyles (SQLite's ``?``) list names in placeholder order; named ones
        #: (psycopg's ``%(name)s``) take a mapping.
        self._order: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        processors: dict[str, _Processor] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        self._processors = processors
        missing = set(self._order or compiled.binds) - set(columns)
        if missing:
            raise ValueError(f"{self.sql!r} takes parameters {sorted(missing)} not in columns")

    def parameters(self, values: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
        """``values`` (one per column, by column key) as the driver wants them."""
        processors = self._processors
        bound = {
            name: processors[name](value) if name in processors and value is not None else value
            for name, value in ((name, values[name]) for name in self.columns)
        }
        if self._order is None:
            return bound
        return [bound[name] for name in self._order]

    def execute(self, cursor: Any, values: Mapping[str, Any]) -> Any:
        """Run it for one row; returns the cursor (for a ``RETURNING`` statement's row)."""
        cursor.execute(self.sql, self.parameters(values))
        return cursor

    def execute_many(self, cursor: Any, rows: Iterable[Mapping[str, Any]]) -> None:
        cursor.executemany(self.sql, [self.parameters(values) for values in rows])


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[Any]:
    """A driver cursor in a transaction on one of ``engine``'s pooled connections: committed
    on success, rolled back on any error. The driver's errors come out as SQLAlchemy's (an
    ``IntegrityError`` is ``sqlalchemy.exc.IntegrityError``), as from ``Connection.execute``."""
    dbapi = engine.dialect.loaded_dbapi
    connection = engine.raw_connection()
    try:
        cursor = connection.cursor()
        try:
            yield cursor
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()
    except dbapi.Error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc
    finally:
        connection.close()
