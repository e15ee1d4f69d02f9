"""Shared fixtures.

``database_url`` runs a storage test on SQLite always, and on PostgreSQL when
``NETTRACE_TEST_DATABASE_URL`` points at a server (CI sets it). Each PostgreSQL test gets a
database of its own, created and dropped around it, so tests never see each other's rows.
In CI a missing PostgreSQL is a failure, never a silent skip.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from nettrace.store.database import Database
from nettrace.store.migrate import upgrade

PG_ENV = "NETTRACE_TEST_DATABASE_URL"


def _postgres_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url and os.environ.get("CI"):
        pytest.fail(f"CI must run the storage tests on PostgreSQL: set {PG_ENV}")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'nettrace.db'}"
        return
    admin = _postgres_admin_url()
    if admin is None:
        pytest.skip(f"PostgreSQL tests run when {PG_ENV} is set")
    name = f"nettrace_test_{uuid.uuid4().hex[:12]}"
    admin_url = make_url(admin).set(drivername="postgresql+psycopg")
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture
def migrated_db(database_url: str) -> Iterator[Database]:
    """A database at the newest migration."""
    upgrade(database_url)
    db = Database(database_url)
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real candle files in ../shared/data. Outside CI, tests skip cleanly without them."""
    from nettrace.market.shared_data import shared_data_dir

    found = shared_data_dir()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("CI needs the real candle data in ../shared/data (NETTRACE_SHARED_DATA)")
        pytest.skip("../shared/data is absent")
    return found
