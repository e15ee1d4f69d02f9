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

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

from sqlalchemy import Engine, PoolProxiedConnection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

_Processor = Callable[[Any], Any]
T = TypeVar("T")


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


class HeldConnection:
    """Transactions on the driver's cursor, on one pooled connection kept between them.

    Why kept: taking a connection from SQLAlchemy's pool and giving it back costs PostgreSQL
    two round trips per transaction (the pre-ping on checkout, the reset ``ROLLBACK`` on
    return) -- measured, a quarter of the order-creation transaction there. A connection that
    just committed is clean, so it is kept for the next transaction; one that failed goes back
    to the pool to be reset, or is discarded if the failure was a lost connection. When the
    *kept* connection turns out to be dead (the server restarted since), the transaction runs
    once more on a fresh, pre-pinged one: ``body`` must be safe to repeat, as the order's
    creation is (its client order id is unique).

    SQLite keeps none: its checkout costs microseconds, and holding one of its connections
    out of the pool measurably slowed every other tick's writes (whole-tick p50 0.54 -> 0.70
    ms in ``benchmarks/tick_to_order.py``).

    The driver's errors come out as SQLAlchemy's (an ``IntegrityError`` is
    ``sqlalchemy.exc.IntegrityError``), as from ``Connection.execute``.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._keep = engine.dialect.name != "sqlite"
        self._held: PoolProxiedConnection | None = None
        self._lock = threading.Lock()

    def run(self, body: Callable[[Any], T]) -> T:
        """``body(cursor)`` in one transaction: committed if it returns, rolled back if not."""
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            try:
                return self._once(held, body, retry_if_dead=True)
            except _KeptConnectionDiedError:
                pass
        return self._once(self._engine.raw_connection(), body, retry_if_dead=False)

    def close(self) -> None:
        """Give the kept connection back to the pool (``Database.dispose`` calls this)."""
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            held.close()

    def _once(self, connection: PoolProxiedConnection, body: Callable[[Any], T], *,
              retry_if_dead: bool) -> T:  # fmt: skip
        dbapi = self._engine.dialect.loaded_dbapi
        try:
            with _pipeline(connection):
                cursor = connection.cursor()
                try:
                    result = body(cursor)
                    connection.commit()
                finally:
                    cursor.close()
        except dbapi.Error as exc:
            dead = self._engine.dialect.is_disconnect(exc, connection.dbapi_connection, None)
            self._discard(connection, exc if dead else None)
            if dead and retry_if_dead:
                raise _KeptConnectionDiedError from exc
            raise DBAPIError.instance(None, None, exc, dbapi.Error) from exc
        except BaseException:
            self._discard(connection, None)
            raise
        with self._lock:
            if self._keep and self._held is None:
                self._held, connection = connection, None  # type: ignore[assignment]
        if connection is not None:  # not kept (SQLite), or another thread kept one meanwhile
            connection.close()
        return result

    @staticmethod
    def _discard(connection: PoolProxiedConnection, dead: BaseException | None) -> None:
        if dead is not None:
            connection.invalidate(dead)
        else:
            try:
                connection.rollback()
            except Exception:  # the pool resets or discards it on return anyway
                connection.invalidate()
        connection.close()


class _KeptConnectionDiedError(Exception):
    pass


def _pipeline(connection: PoolProxiedConnection) -> AbstractContextManager[Any]:
    """psycopg's pipeline mode where the driver has it: statements are sent without waiting
    for each answer, so a transaction whose statements do not read each other's results
    costs PostgreSQL one round trip for them all (and one for the COMMIT), not one each.
    SQLite runs in process: nothing to save there."""
    driver = connection.driver_connection
    pipeline = getattr(driver, "pipeline", None)
    return pipeline() if pipeline is not None else nullcontext()
