"""The snapshot guard: only true, positive, fully priced equity is ever stored."""

from __future__ import annotations

import io
import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, StatementError

from nettrace.domain.portfolio import Holding, PortfolioSnapshot
from nettrace.observability.log import configure_logging
from nettrace.store.database import Database
from nettrace.store.models import PortfolioSnapshotRow
from nettrace.store.snapshots import SnapshotStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(PortfolioSnapshotRow)) or 0)


def test_a_valid_snapshot_is_stored_and_read_back_in_utc(migrated_db: Database) -> None:
    store = SnapshotStore(migrated_db)
    plus_two = timezone(timedelta(hours=2))
    snapshot = PortfolioSnapshot(
        ts=T0.astimezone(plus_two),
        cash=1_000.0,
        holdings=(Holding("BTC", 0.5, 40_000.0), Holding("ETH", 0.0, None)),
    )
    outcome = store.record(snapshot)
    assert outcome.stored
    assert outcome.snapshot_id is not None
    [row] = store.latest("ewr")
    assert row.total_equity == pytest.approx(21_000.0)
    assert row.positions_value == pytest.approx(20_000.0)
    assert row.ts == T0
    assert row.ts.tzinfo is not None
    assert row.holdings[0] == {"asset": "BTC", "amount": 0.5, "price": 40_000.0}


@pytest.mark.parametrize(
    ("cash", "holdings", "fault"),
    [
        (0.0, (), "total equity 0.0 is not positive"),
        (-50.0, (), "total equity -50.0 is not positive"),
        (100.0, (Holding("BTC", 1.0, None),), "BTC: missing price"),
        (100.0, (Holding("BTC", 1.0, math.nan),), "BTC: missing price"),
        (100.0, (Holding("BTC", 1.0, 0.0),), "BTC: missing price"),
        (math.nan, (), "cash is nan"),
        (100.0, (Holding("BTC", math.inf, 10.0),), "BTC: amount inf"),
        (100.0, (Holding("BTC", -1.0, 10.0),), "BTC: amount -1.0"),
    ],
)
def test_an_untrue_snapshot_is_refused_logged_and_not_stored(
    migrated_db: Database, cash: float, holdings: tuple[Holding, ...], fault: str
) -> None:
    stream = io.StringIO()
    configure_logging(level="INFO", fmt="json", stream=stream)
    outcome = SnapshotStore(migrated_db).record(
        PortfolioSnapshot(ts=T0, cash=cash, holdings=holdings)
    )
    assert outcome.stored is False
    assert any(fault in f for f in outcome.faults), outcome.faults
    assert _count(migrated_db) == 0
    [line] = stream.getvalue().splitlines()
    logged = json.loads(line)
    assert logged["event"] == "data_fault"
    assert logged["level"] == "error"
    assert any(fault in f for f in logged["faults"])


def test_the_database_refuses_a_non_positive_total_too(migrated_db: Database) -> None:
    """Defence in depth: code that bypasses the store still cannot write a $0 snapshot."""
    with pytest.raises(IntegrityError), migrated_db.session() as session:
        session.add(
            PortfolioSnapshotRow(
                ts=T0,
                region="ewr",
                quote_currency="USD",
                total_equity=0.0,
                cash=0.0,
                positions_value=0.0,
                holdings=[],
            )
        )
    assert _count(migrated_db) == 0


def test_naive_timestamps_are_refused(migrated_db: Database) -> None:
    naive = datetime(2026, 3, 1, 12, 0)  # noqa: DTZ001 - the point of the test
    with pytest.raises(StatementError, match="naive datetime"):
        SnapshotStore(migrated_db).record(PortfolioSnapshot(ts=naive, cash=10.0))
