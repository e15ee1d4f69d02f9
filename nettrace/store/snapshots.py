"""Portfolio snapshots, stored only when they can be true.

A snapshot whose total is zero, negative or NaN, or that valued a holding without a price, is a
data fault: storing it would show the operator a fake crash and could trip HARDSTOP on a feed
glitch. Such a snapshot is refused, logged as ``data_fault``, and never written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import func, select

from nettrace.domain.portfolio import PortfolioSnapshot
from nettrace.store.database import Database
from nettrace.store.models import PortfolioSnapshotRow

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SnapshotOutcome:
    """Whether a snapshot was stored; if not, every fault that refused it."""

    stored: bool
    snapshot_id: int | None = None
    faults: tuple[str, ...] = ()


def snapshot_faults(snapshot: PortfolioSnapshot) -> list[str]:
    """Every reason ``snapshot`` cannot be true; empty when it may be stored."""
    faults: list[str] = []
    if not math.isfinite(snapshot.cash):
        faults.append(f"cash is {snapshot.cash!r}")
    for holding in snapshot.holdings:
        if not math.isfinite(holding.amount) or holding.amount < 0:
            faults.append(f"{holding.asset}: amount {holding.amount!r} is not finite and >= 0")
        elif holding.amount != 0 and (
            holding.price is None or not math.isfinite(holding.price) or holding.price <= 0
        ):
            faults.append(f"{holding.asset}: missing price (got {holding.price!r})")
    if faults:
        return faults
    total = snapshot.total_equity
    if not math.isfinite(total):
        faults.append(f"total equity is {total!r}")
    elif total <= 0:
        faults.append(f"total equity {total!r} is not positive")
    return faults


class SnapshotStore:
    """Stores mark-to-market snapshots through the guard; reads the latest back."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def record(self, snapshot: PortfolioSnapshot) -> SnapshotOutcome:
        faults = snapshot_faults(snapshot)
        if faults:
            _log.error(
                "data_fault",
                kind="portfolio_snapshot_refused",
                ts=snapshot.ts.isoformat(),
                region=snapshot.region,
                faults=faults,
            )
            return SnapshotOutcome(stored=False, faults=tuple(faults))
        row = PortfolioSnapshotRow(
            ts=snapshot.ts,
            region=snapshot.region,
            quote_currency=snapshot.quote_currency,
            total_equity=snapshot.total_equity,
            cash=snapshot.cash,
            positions_value=snapshot.positions_value,
            holdings=[
                {"asset": h.asset, "amount": h.amount, "price": h.price} for h in snapshot.holdings
            ],
        )
        with self._db.session() as session:
            session.add(row)
            session.flush()
            snapshot_id = row.id
        return SnapshotOutcome(stored=True, snapshot_id=snapshot_id)

    def latest(self, region: str, limit: int = 1) -> list[PortfolioSnapshotRow]:
        query = (
            select(PortfolioSnapshotRow)
            .where(PortfolioSnapshotRow.region == region)
            .order_by(PortfolioSnapshotRow.ts.desc(), PortfolioSnapshotRow.id.desc())
            .limit(limit)
        )
        with self._db.session() as session:
            return list(session.scalars(query))

    def first_since(self, region: str, since: datetime) -> PortfolioSnapshotRow | None:
        """The earliest snapshot at or after ``since`` (the UTC day's start value after a
        restart, so the daily-loss line does not move because the process did)."""
        query = (
            select(PortfolioSnapshotRow)
            .where(PortfolioSnapshotRow.region == region, PortfolioSnapshotRow.ts >= since)
            .order_by(PortfolioSnapshotRow.ts, PortfolioSnapshotRow.id)
            .limit(1)
        )
        with self._db.session() as session:
            return session.scalar(query)

    def peak_equity(self, region: str) -> float | None:
        """The highest stored equity (the drawdown the risk controller scales by)."""
        with self._db.session() as session:
            value = session.scalar(
                select(func.max(PortfolioSnapshotRow.total_equity)).where(
                    PortfolioSnapshotRow.region == region
                )
            )
        return None if value is None else float(value)
