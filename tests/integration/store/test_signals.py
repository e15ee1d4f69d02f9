"""Signal ids are unique per source region (SQLite and PostgreSQL, both insert paths)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, text

from nettrace.store import migrate
from nettrace.store.database import Database, create_db_engine
from nettrace.store.signals import SignalStore

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _signal(region: str, signal_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": signal_id,
        "source": "orderbook",
        "source_region": region,
        "exchange": "kraken",
        "symbol": "BTC/USD",
        "side": "BUY",
        "confidence": 0.8,
        "ts": NOW,
        "ttl_s": 3600.0,
        "meta": {},
    }
    row.update(overrides)
    return row


def _stored(db: Database) -> list[tuple[str, str, str]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT source_region, id, side FROM signals ORDER BY source_region, id")
        ).all()
    return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def test_the_same_id_from_two_regions_is_two_signals(migrated_db: Database) -> None:
    store = SignalStore(migrated_db)
    lhr = store.push("lhr", [_signal("lhr", "sig-1")], received_at=NOW)
    nrt = store.push("nrt", [_signal("nrt", "sig-1", side="SELL")], received_at=NOW)
    assert (lhr.accepted, lhr.duplicates) == (1, 0)
    assert (nrt.accepted, nrt.duplicates) == (1, 0)  # was (0, 1): dropped as lhr's duplicate
    assert _stored(migrated_db) == [("lhr", "sig-1", "BUY"), ("nrt", "sig-1", "SELL")]
    # Within one region the id is still the idempotency key: a retry stores nothing.
    again = store.push("nrt", [_signal("nrt", "sig-1", side="BUY")], received_at=NOW)
    assert (again.accepted, again.duplicates) == (0, 1)
    assert store.count() == 2
    view = store.cross_region(now=NOW, stale_after_s=120, max_ttl_s=86_400)
    assert {name: [s.id for s in r.signals] for name, r in view.regions.items()} == {
        "lhr": ["sig-1"],
        "nrt": ["sig-1"],
    }


def test_in_batch_dedupe_keys_on_region_and_id(migrated_db: Database) -> None:
    """One batch (the store's own contract, bulk path on PostgreSQL): repeats of the same
    (source_region, id) count as duplicates, the same id of another region does not."""
    store = SignalStore(migrated_db)
    batch = [
        _signal("lhr", "b"),
        _signal("nrt", "b"),
        _signal("lhr", "b", side="SELL"),  # repeat: the first one wins
        _signal("lhr", "a"),
    ]
    counts = store.push("lhr", batch, received_at=NOW)
    assert (counts.accepted, counts.duplicates) == (3, 1)
    assert _stored(migrated_db) == [("lhr", "a", "BUY"), ("lhr", "b", "BUY"), ("nrt", "b", "BUY")]


def test_migration_0005_keeps_rows_and_downgrades(database_url: str) -> None:
    migrate.upgrade(database_url, "0004")
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO signals (id, source, source_region, exchange, symbol, side, "
                    "confidence, ts, ttl_s, meta, received_at) VALUES ('old-1', 'trend', 'lhr', "
                    "'kraken', 'BTC/USD', 'BUY', 0.9, :ts, 60, '{}', :ts)"
                ),
                {"ts": NOW},
            )
        migrate.upgrade(database_url)
        pk = inspect(engine).get_pk_constraint("signals")
        assert pk["constrained_columns"] == ["source_region", "id"]
        db = Database(database_url)
        try:
            store = SignalStore(db)
            assert store.push("nrt", [_signal("nrt", "old-1")], received_at=NOW).accepted == 1
            assert store.push("lhr", [_signal("lhr", "old-1")], received_at=NOW).duplicates == 1
            assert _stored(db) == [("lhr", "old-1", "BUY"), ("nrt", "old-1", "BUY")]
        finally:
            db.dispose()
        migrate.downgrade(database_url, "0004")
        engine.dispose()
        assert inspect(engine).get_pk_constraint("signals")["constrained_columns"] == ["id"]
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT source_region, id FROM signals")).all()
        assert [tuple(row) for row in kept] == [("lhr", "old-1")]
    finally:
        engine.dispose()
