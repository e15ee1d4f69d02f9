"""The ledger of adopted holdings (see ``AdoptionRow``): written once, replayed on every start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from nettrace.store.database import Database
from nettrace.store.models import AdoptionRow


@dataclass(frozen=True, slots=True)
class Adoption:
    """``amount`` base units of ``symbol`` taken on at ``price`` (quote per unit) at ``ts_ms``."""

    exchange: str
    symbol: str
    amount: float
    price: float
    ts_ms: int


class AdoptionStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def record(self, adoption: Adoption) -> None:
        with self._db.session() as session:
            session.add(
                AdoptionRow(
                    exchange=adoption.exchange,
                    symbol=adoption.symbol,
                    amount=adoption.amount,
                    price=adoption.price,
                    ts=datetime.fromtimestamp(adoption.ts_ms / 1000, tz=UTC),
                )
            )

    def all(self, exchange: str) -> list[Adoption]:
        """Every adoption on ``exchange``, oldest first."""
        query = select(AdoptionRow).where(AdoptionRow.exchange == exchange).order_by(AdoptionRow.id)
        with self._db.session() as session:
            return [
                Adoption(r.exchange, r.symbol, r.amount, r.price, int(r.ts.timestamp() * 1000))
                for r in session.scalars(query)
            ]
