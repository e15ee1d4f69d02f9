"""Migrations upgrade and downgrade on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from nettrace.store import migrate
from nettrace.store.database import create_db_engine
from nettrace.store.models import Base

TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = create_db_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(database_url: str) -> None:
    assert migrate.current_revision(database_url) is None
    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES
    assert migrate.is_current(database_url)

    migrate.downgrade(database_url, "base")
    assert _tables(database_url) == set()
    assert migrate.current_revision(database_url) is None

    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES
    assert migrate.current_revision(database_url) == migrate.head_revision()


def test_upgrade_is_idempotent(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)
    assert migrate.is_current(database_url)


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    """A model change without a migration fails here, on both databases."""
    migrate.upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
